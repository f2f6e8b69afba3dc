"""Pareto results against MLflow: read a sweep's runs, tag them, log the front and the
dashboard to the parent run(s), register a pick, write a results page.

The analysis itself is `rnnprune.pareto` and `rnnprune.report` (pure); every MLflow call goes
through `rnnprune.tracking`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from rnnprune import catalogue, provenance
from rnnprune.curves import DEFAULT_DROP, build_curves, quality_base, wanted
from rnnprune.dashboard import write_dashboard
from rnnprune.deploy import deployable
from rnnprune.pareto import (
    Constraint,
    FrontAnalysis,
    Pick,
    RunRecord,
    analyse,
    as_plain,
    default_objectives,
    format_front,
    front_note,
    pick,
    quality_objective,
    run_tags,
    task_of,
)
from rnnprune.report import TRAINED_PREFIX, ResultsReport, build_report
from rnnprune.results_page import Page, Section, write_page
from rnnprune.tracking import (
    OUTPUTS_TAG,
    TrackingError,
    artifact_url,
    download_run_artifact,
    log_run_model,
    log_text_to_parent,
    log_to_parent,
    metric_histories,
    register_run_model,
    run_url,
    set_run_description,
    set_run_tags,
    sweep_scope,
    ui_base,
)


@dataclass(frozen=True)
class Published:
    scope: str  # "sweep" or "experiment"
    analysis: FrontAnalysis
    files: list[Path]  # local copies of the dashboard and front
    parent_run_ids: list[str]


def read_runs(tracking_uri: str, name: str) -> tuple[str, list[dict[str, Any]], list[RunRecord]]:
    """(scope kind, parent runs, finished trial runs) of a sweep or of every sweep of an experiment."""
    # Only what fronts, picks, reports and the dashboard read: the per-tensor and per-gate
    # sparsities and diagnostics are most of a run's metrics. A lottery trial's trained sparse
    # model reports as sparse_* (`rnnprune.report.models_of`).
    kind, parents, children = sweep_scope(
        tracking_uri, name, lambda metric: catalogue.is_reported_name(metric.removeprefix(TRAINED_PREFIX))
    )
    return kind, parents, [RunRecord(**child) for child in children]


def publish(
    tracking_uri: str,
    name: str,
    output_dir: Path,
    objectives: Sequence[str] | None = None,
    ui_url: str | None = None,
) -> Published:
    """`rnnprune pareto`: tag every run with its front membership, and log hypervolumes and the
    dashboard to the parent run(s). Over an experiment, each sweep's parent gets the
    experiment-wide front under `pareto/<experiment>/` and metrics prefixed `experiment.`."""
    kind, parents, runs = read_runs(tracking_uri, name)
    task = task_of(runs)
    objectives = objectives or default_objectives(task)
    analysis = analyse(runs, objectives, task)
    set_run_tags(tracking_uri, run_tags(analysis, f"{kind}:{name}"))
    base = ui_url or ui_base(tracking_uri)
    folder = Path(output_dir)
    files = write_dashboard(
        runs,
        quality_objective(objectives, task),
        lambda r: run_url(base, r.experiment_id, r.run_id),
        f"Pareto view: {kind} {name}",
        folder,
    )
    (folder / "front.json").write_text(json.dumps(as_plain(analysis), indent=1))
    (folder / "front.txt").write_text(format_front(analysis) + "\n")
    files += [folder / "front.json", folder / "front.txt"]
    prefix, artifact_dir = ("", "pareto") if kind == "sweep" else ("experiment.", f"pareto/{name}")
    metrics = {f"{prefix}hypervolume.{method}": volume for method, volume in analysis.hypervolume.items()}
    metrics[f"{prefix}pareto_front_size"] = float(sum(r == 1 for r in analysis.rank))
    for parent in parents:
        log_to_parent(tracking_uri, parent["run_id"], metrics, files, artifact_dir)
        if kind == "sweep":  # the description states the sweep's own front
            url = artifact_url(base, parent["experiment_id"], parent["run_id"], f"{artifact_dir}/pareto.html")
            set_run_description(tracking_uri, parent["run_id"], front_note(analysis, f"Sweep {name}", url))
    return Published(kind, analysis, files, [p["run_id"] for p in parents])


@dataclass(frozen=True)
class Registered:
    pick: Pick
    model_name: str = ""
    version: str = ""
    alias: str = ""
    deployable_name: str = ""  # the deployable form, registered beside the masked model
    deployable_version: str = ""
    deployable_form: str = ""


DEPLOYABLE_ARTIFACT = "deployable"


def pick_and_register(
    tracking_uri: str, name: str, constraint: Constraint, model_name: str, register: bool = True
) -> Registered:
    """`rnnprune pick`: register the chosen Pareto-optimal run's model with tags and an alias,
    and its deployable form (`rnnprune.deploy`, chosen by measuring on this machine) as
    `<model_name>-deployable` with the same alias (with `register=False`, only choose it)."""
    _, _, runs = read_runs(tracking_uri, name)
    chosen = pick(runs, constraint)
    if chosen.run is None or chosen.point is None or not register:
        return Registered(chosen)
    if chosen.run.tags.get(OUTPUTS_TAG) != "true":
        raise TrackingError(
            f"run {chosen.run.run_id} is the pick but has no logged model (sweep with tracking.log_models)"
        )
    resolved = chosen.constraint  # its quality metric filled in from the runs' task
    quality = resolved.quality_metric or ""
    metrics = chosen.run.metrics
    tags = {
        "method": chosen.point.method,
        "sparsity": f"{metrics['sparsity']:.6g}",
        "quality": f"{metrics[quality]:.6g}",
        "quality_metric": quality,
        "nonzero_params": f"{metrics.get('nonzero_params', float('nan')):.0f}",
        "target_sparsity": chosen.run.params.get("pruning.target_sparsity", ""),
        "sweep": chosen.run.tags.get("sweep", ""),
        "run_id": chosen.run.run_id,
        "pareto": "true",
        "constraint": f"{resolved.kind}={resolved.bound:g}",
    }
    for name in ("speedup_b1", "speedup_b64", "model_bytes"):
        if name in metrics:  # measured by the trial (absent with latency.measure: false)
            tags[name] = f"{metrics[name]:.6g}"
    alias = resolved.alias()
    version = register_run_model(tracking_uri, chosen.run.run_id, model_name, tags, alias)
    # Only a pick loads the trial code (tasks, training): `rnnprune pareto` starts without it.
    from rnnprune.training.runner import load_model

    with tempfile.TemporaryDirectory() as directory:
        model_pt = download_run_artifact(tracking_uri, chosen.run.run_id, "model.pt", Path(directory))
        _, model, example = load_model(model_pt)
    form = deployable(model, example)
    log_run_model(tracking_uri, chosen.run.run_id, form.module, example, DEPLOYABLE_ARTIFACT)
    deployable_name = f"{model_name}-deployable"
    deployable_version = register_run_model(
        tracking_uri,
        chosen.run.run_id,
        deployable_name,
        {**tags, "form": form.form, "masked_model": f"{model_name}/{version}"},
        alias,
        DEPLOYABLE_ARTIFACT,
    )
    return Registered(chosen, model_name, version, alias, deployable_name, deployable_version, form.form)


REPORT_ARTIFACTS = "report"  # the parent run's folder of results pages


@dataclass(frozen=True)
class Reported:
    reports: list[ResultsReport]  # one per name reported
    page: Page
    artifact: str  # the HTML page's path among each parent run's artifacts
    parent_run_ids: list[str]


def publish_report(
    tracking_uri: str,
    names: Sequence[str],
    markdown_path: Path,
    command: Sequence[str],
    baseline: str | None = None,
    title: str | None = None,
    drop: float | None = None,
    versus: tuple[str, str] | None = None,
) -> Reported:
    """`rnnprune report`: the results page of a sweep (or of every sweep of an experiment) as
    Markdown with plots at `markdown_path`, and as HTML on the parent run(s); several names give
    one page with a part each (reproductions of one paper on several tasks, say). Runs that
    tracked layer graphs per epoch (`track.graphs`) add their curves, quality falling by `drop`
    (default `rnnprune.curves.DEFAULT_DROP`); `versus` (axis, value) compares each row with
    its own method at that value of a swept axis."""
    drop = DEFAULT_DROP if drop is None else drop
    sections, parents, scopes = [], [], []
    # 1) read and analyse every name before writing anything: a bad name or baseline leaves no page
    for name in names:
        kind, name_parents, runs = read_runs(tracking_uri, name)
        report = build_report(runs, baseline, versus)
        tracked = [r.run_id for r in runs if r.params.get("track.graphs", "").lower() == "true"]
        keep = partial(wanted, quality_base=quality_base(report.quality))
        histories = metric_histories(tracking_uri, tracked, keep)
        curves = build_curves(runs, histories, report.axes, report.quality, drop)
        commits = tuple(
            sorted({p["tags"]["git_commit"][:7] for p in name_parents if p["tags"].get("git_commit")})
        )
        sections.append(Section(report, f"{kind.capitalize()} {name}", curves, commits))
        parents += name_parents
        scopes.append(f"{kind} {name}")
    # 2) one page, its HTML twin on every parent run
    default_title = f"Results of {' and '.join(scopes)}"
    page = write_page(sections, Path(markdown_path), title or default_title, provenance.current(command))
    artifact = f"{REPORT_ARTIFACTS}/{Path(markdown_path).stem}.html"
    for parent in parents:
        log_text_to_parent(tracking_uri, parent["run_id"], {artifact: page.html})
    return Reported([s.report for s in sections], page, artifact, [p["run_id"] for p in parents])
