"""`rnnprune sweep`: validate the spec, open the MLflow parent run, run Tune, summarise.

Order matters: the spec, the data and the tracking server are all checked before Ray
starts, and a sweep that exists is only ever continued (`--resume`), never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from rnnprune import catalogue
from rnnprune.config import TrialConfig
from rnnprune.data import registry as task_registry
from rnnprune.data.base import resolve_data_root
from rnnprune.errors import ConfigError, DataError
from rnnprune.publish import publish
from rnnprune.sweep.cluster import check_ray_address
from rnnprune.sweep.lock import sweep_lock
from rnnprune.sweep.progress import ProgressLine
from rnnprune.sweep.resources import check_cluster_resources, check_local_resources
from rnnprune.sweep.scheduler import PerLevelASHA
from rnnprune.sweep.spec import LoadedSpec, Sampled, SweepSpec, Variant, load_spec, matched_overrides
from rnnprune.sweep.trainable import (
    FINAL_REPORT,
    MATCHED_KEY,
    WORKER_LOG_MODELS_ENV,
    WORKER_SETUP_HOOK,
    WORKER_TRACKING_URI_ENV,
    SweepContext,
    sampled_key,
    sweep_trial,
)
from rnnprune.tracking import (
    SweepTracking,
    check_tracking,
    experiment_url,
    is_local,
    resolve_tracking_uri,
    ui_base,
)
from rnnprune.training.preflight import check_plugins

logger = logging.getLogger(__name__)

STATE_FILE = "rnnprune_sweep.json"
PARETO_DIR = "pareto"
PATH_ENV = ("RNNPRUNE_DATA_DIR", "RNNPRUNE_CACHE_DIR")
FORWARDED_ENV = (*PATH_ENV, "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@dataclass(frozen=True)
class SweepOutcome:
    experiment_dir: Path
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    rows: list[dict[str, Any]]
    errors: int


def _distribution(axis: Sampled) -> Any:
    if axis.choice is not None:
        return tune.choice(axis.choice)
    if axis.uniform is not None:
        return tune.uniform(*axis.uniform)
    if axis.loguniform is not None:
        return tune.loguniform(*axis.loguniform)
    return tune.randint(axis.randint[0], axis.randint[1])  # type: ignore[index]


def param_space(loaded: LoadedSpec) -> dict[str, Any]:
    variants = list(range(len(loaded.variants)))
    sampled = {
        sampled_key(v.method, path): _distribution(axis)
        for v in loaded.variants
        for path, axis in v.sampled.items()
    }
    grid = loaded.spec.search.algorithm == "grid"
    return {"variant": tune.grid_search(variants) if grid else tune.choice(variants), "sampled": sampled}


def _target_sparsity(loaded: LoadedSpec) -> Any:
    def level_of(config: dict[str, Any]) -> float:
        variant = loaded.variants[config["variant"]]
        sampled = {p: config["sampled"][sampled_key(variant.method, p)] for p in variant.sampled}
        return loaded.trial_config(variant, sampled).pruning.target_sparsity

    return level_of


def _tune_config(loaded: LoadedSpec) -> tune.TuneConfig:
    spec = loaded.spec
    search_alg = None
    if spec.search.algorithm == "optuna":
        search_alg = OptunaSearch(
            metric=[o.metric for o in spec.search.objectives],
            mode=[o.mode for o in spec.search.objectives],
            seed=spec.search.seed,
        )
    scheduler = None
    if spec.scheduler.kind == "asha":
        longest = max(_lowest_trial(loaded, v).pruning.schedule.plan(0.5, 1).epochs for v in loaded.variants)
        scheduler = PerLevelASHA(
            _target_sparsity(loaded),
            spec.scheduler.metric,
            spec.scheduler.mode,
            spec.scheduler.grace_period,
            spec.scheduler.reduction_factor,
            max(longest, 1),
        )
    # reuse_actors: a fresh worker process per trial re-imports torch, MLflow and Ray (seconds
    # each); reusing them keeps the sweep's overhead per trial small.
    return tune.TuneConfig(
        num_samples=spec.search.num_samples,
        search_alg=search_alg,
        scheduler=scheduler,
        max_concurrent_trials=spec.max_concurrent_trials,
        reuse_actors=True,
    )


class TrackingJanitor(tune.Callback):
    """Driver side: a trial that errors past its last retry ends FAILED in MLflow, and one
    stopped early by the scheduler ends FINISHED with a tag saying so."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str) -> None:
        self.tracking_uri, self.experiment_id, self.parent_run_id = tracking_uri, experiment_id, parent_run_id

    def _tracking(self) -> SweepTracking:
        return SweepTracking(self.tracking_uri, self.experiment_id, self.parent_run_id)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._tracking().mark_trial_failed(trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._tracking().finish_stopped_trial(trial.trial_id)


def _git_commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
    )
    return result.stdout.strip() or "unknown"


def _lowest_trial(loaded: LoadedSpec, variant: Variant) -> TrialConfig:
    """The grid point's trial with every sampled axis at its lowest value."""
    return loaded.trial_config(variant, {p: a.extremes()[0] for p, a in variant.sampled.items()})


def _check_data(loaded: LoadedSpec) -> None:
    """Locally, the data must be there before Ray starts (a cluster's workers read their own)."""
    config = _lowest_trial(loaded, loaded.variants[0])
    task = task_registry.get(config.task.name)
    task.check(config.task.typed_params, resolve_data_root(config.task.data_dir), config.task.download)


def _check_plugins(loaded: LoadedSpec, on_cluster: bool) -> None:
    """Try each plugin task, model and method of the sweep once (see `training.preflight`).

    A cluster's driver may not hold the data its workers read; then the check waits for the
    trials, which fail with the same one-line errors.
    """
    configs = [_lowest_trial(loaded, variant) for variant in loaded.variants]
    try:
        check_plugins(configs)
    except DataError as error:
        if not on_cluster:
            raise
        logger.info("plugins not tried before the sweep: this machine lacks the data (%s)", error)


def _test_quality(loaded: LoadedSpec) -> tuple[str, bool]:
    """The task's test quality metric (name, larger is better), for the progress line."""
    quality = catalogue.quality(_lowest_trial(loaded, loaded.variants[0]).task.name)
    return quality.name, quality.maximize


def worker_env(spec: SweepSpec, tracking_uri: str, workdir: Path) -> dict[str, str]:
    """The environment the driver gives its Ray workers."""
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    for name in PATH_ENV:  # workers run in their own folders: a relative path means the driver's
        if name in env:
            env[name] = str((workdir / Path(env[name]).expanduser()).resolve())
    env[WORKER_TRACKING_URI_ENV] = tracking_uri
    env[WORKER_LOG_MODELS_ENV] = "1" if spec.tracking.log_models else "0"
    # The thread count Ray would give each trial, set from the worker's start: Ray sets
    # OMP_NUM_THREADS only when the trial's actor starts, after the setup hook has loaded
    # torch (and its OpenMP pool, one thread per core: 4x slower epochs measured on 2 cores).
    env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", str(max(math.floor(spec.resources.cpu), 1)))
    return env


def run_sweep(
    spec_path: Path | LoadedSpec,
    address: str | None = None,
    tracking_uri: str | None = None,
    resume: bool = False,
    workdir: Path | None = None,
    num_cpus: int | None = None,
    progress: bool = True,
) -> SweepOutcome:
    """Run (or with `resume`, continue) a sweep; everything is checked before Ray starts.

    `spec_path` is a spec file or one already loaded (`load_spec`); with `progress`, a line per
    finished trial goes to stderr.
    """
    workdir = Path(workdir or Path.cwd()).resolve()
    loaded = spec_path if isinstance(spec_path, LoadedSpec) else load_spec(spec_path)
    spec = loaded.spec
    uri = resolve_tracking_uri(tracking_uri or spec.tracking.tracking_uri, workdir)
    check_tracking(uri)
    address = address or os.environ.get("RAY_ADDRESS")
    check_ray_address(address)
    if address is None:
        check_local_resources(spec.resources, num_cpus)
        _check_data(loaded)
    _check_plugins(loaded, on_cluster=address is not None)

    storage = spec.storage_path if spec.storage_path.is_absolute() else workdir / spec.storage_path
    with sweep_lock(storage, spec.name):
        return _run_locked(loaded, storage, uri, address, resume, workdir, num_cpus, progress)


def _run_locked(
    loaded: LoadedSpec,
    storage: Path,
    uri: str,
    address: str | None,
    resume: bool,
    workdir: Path,
    num_cpus: int | None,
    progress: bool,
) -> SweepOutcome:
    spec, spec_path = loaded.spec, loaded.path
    experiment_dir = storage / spec.name
    state_path = experiment_dir / STATE_FILE
    state = json.loads(state_path.read_text()) if state_path.is_file() else None
    if resume:
        if state is None or not tune.Tuner.can_restore(str(experiment_dir)):
            raise ConfigError(
                f"--resume: no sweep to resume at {experiment_dir}; run without --resume to start it"
            )
        if state["spec_digest"] != loaded.digest:
            raise ConfigError(
                f"--resume: {spec_path} changed since sweep {spec.name} started; restore the "
                f"original spec, or give the changed one a new `name`"
            )
    elif state is not None or experiment_dir.exists():
        raise ConfigError(
            f"sweep {spec.name} already exists at {experiment_dir}: pass --resume to continue it, "
            f"or give the spec a new `name` (existing results are kept)"
        )

    env = worker_env(spec, uri, workdir)
    ray.init(
        address=address,
        num_cpus=num_cpus if address is None else None,
        # Each worker pays MLflow's start-up once, before its first trial (worker_setup).
        runtime_env={
            **spec.runtime_env.ray_runtime_env(spec_path.parent),  # plugins the nodes lack
            "env_vars": env,
            "worker_process_setup_hook": WORKER_SETUP_HOOK,
        },
        include_dashboard=False if address is None else None,
        ignore_reinit_error=True,
        log_to_driver=False,
    )
    try:  # a cluster that can never run a trial is refused before the parent run exists
        if address is not None:
            check_cluster_resources(spec.resources)
        tracking = SweepTracking.open(
            uri,
            spec.experiment,
            workdir,
            spec.name,
            {"sweep": spec.name, "git_commit": _git_commit(), "spec_digest": loaded.digest[:16]},
            state["parent_run_id"] if state else None,
        )
        experiment_id, parent_run_id = tracking.experiment_id, tracking.parent_run_id
        if state is None:
            experiment_dir.mkdir(parents=True, exist_ok=True)
            state_path.write_text(
                json.dumps(
                    {
                        "parent_run_id": parent_run_id,
                        "experiment_id": experiment_id,
                        "tracking_uri": uri,
                        "spec_digest": loaded.digest,
                    },
                    indent=2,
                )
            )
            tracking.log_documents(
                {f"sweep/{spec_path.name}": loaded.text}, {"sweep/base_trial.json": loaded.base}
            )
    except BaseException:
        ray.shutdown()
        raise
    context = SweepContext(loaded, uri, experiment_id, parent_run_id, spec.tracking.log_models)
    trainable = tune.with_resources(
        tune.with_parameters(sweep_trial, context=context), spec.resources.ray_resources()
    )
    # Tune warns on every checkpoint-heavy stretch that snapshots are frequent; a sweep that
    # checkpoints every epoch means to, and the warning buried the progress lines. Tune's
    # TensorBoard logger warns once per NaN value of every result (a method's diagnostic that is
    # undefined for a layer, say); MLflow already leaves NaN values out.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)
    status = "FAILED"
    try:
        if resume:
            tuner = tune.Tuner.restore(str(experiment_dir), trainable, resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=param_space(loaded),
                tune_config=_tune_config(loaded),
                run_config=tune.RunConfig(
                    name=spec.name,
                    storage_path=str(storage),
                    failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                    callbacks=[
                        TrackingJanitor(uri, experiment_id, parent_run_id),
                        ProgressLine(loaded.trial_count, *_test_quality(loaded), enabled=progress),
                    ],
                    # Our progress line replaces Tune's periodic status table.
                    verbose=0,
                ),
            )
        results = tuner.fit()
        errors = len(results.errors)
        if spec.matched_baselines is not None:
            errors += _run_matched(loaded, results, tracking, trainable, experiment_dir, progress)
        tracking.fail_unfinished_children()
        rows = summary_rows(tracking)
        tracking.log_metrics(
            {"trials_finished": sum(r["status"] == "FINISHED" for r in rows), "trials_failed": errors}
        )
        # Front tags, hypervolumes, dashboard.
        publish(uri, spec.name, experiment_dir / PARETO_DIR, spec.pareto.objectives)
        status = "FINISHED" if errors == 0 else "FAILED"
        return SweepOutcome(experiment_dir, uri, experiment_id, parent_run_id, rows, errors)
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        tracking.finish(status)
        ray.shutdown()


MATCHED_RUN_PREFIX = "matched-"


def matched_trials(
    loaded: LoadedSpec, results: tune.ResultGrid, tracking: SweepTracking
) -> list[dict[str, Any]]:
    """Tune configs of the matched baselines: for each reference trial that ran to its end, each
    baseline at the `sparsity` it reached. Trials that would be the same config (two references
    reaching the same sparsity) run once, matched to every reference (`matched_to`: run ids)."""
    spec = loaded.spec
    by_hash: dict[str, dict[str, Any]] = {}
    for result in results:
        metrics = result.metrics or {}
        if result.error is not None or not metrics.get(FINAL_REPORT):
            continue
        variant = loaded.variants[result.config["variant"]]
        if variant.method not in spec.matched_references:
            continue
        sampled = {p: result.config["sampled"][sampled_key(variant.method, p)] for p in variant.sampled}
        reference_run = tracking.trial_run_id(metrics["trial_id"]) or metrics["trial_id"]
        reached = float(metrics["sparsity"])
        for baseline in spec.matched_baselines.methods:  # type: ignore[union-attr]
            overrides = matched_overrides(variant.overrides(sampled), baseline, reached)
            try:
                config = loaded.config_of(overrides, f"matched baseline {baseline}")
            except ConfigError as error:  # a reached sparsity no target can be (0, say)
                logger.warning("no %s baseline for run %s: %s", baseline, reference_run, error)
                continue
            entry = by_hash.setdefault(config.hash(), {"overrides": overrides, "matched_to": []})
            entry["matched_to"].append(reference_run)
    return [
        {"hash": key, "overrides": e["overrides"], "matched_to": ",".join(sorted(e["matched_to"]))}
        for key, e in sorted(by_hash.items())
    ]


def _run_matched(
    loaded: LoadedSpec,
    results: tune.ResultGrid,
    tracking: SweepTracking,
    trainable: Any,
    experiment_dir: Path,
    progress: bool,
) -> int:
    """Run the matched baselines after the grid; returns how many errored.

    The Tune run is named by the set of matched trials, so a resumed sweep whose grid gave the
    same set restores it (Tune skips its finished trials); a grid that has changed since (trials
    that errored finished on resume) gets a new run without the trials already FINISHED in MLflow.
    """
    wanted = matched_trials(loaded, results, tracking)
    if not wanted:
        return 0
    digest = hashlib.sha256(",".join(t["hash"] for t in wanted).encode()).hexdigest()[:12]
    name = f"{MATCHED_RUN_PREFIX}{digest}"
    run_dir = experiment_dir / name
    if tune.Tuner.can_restore(str(run_dir)):
        tuner = tune.Tuner.restore(str(run_dir), trainable, resume_errored=True)
    else:
        finished = {
            run["params"].get("trial_hash")
            for run in tracking.trial_runs()
            if run["status"] == "FINISHED" and "matched_to" in run["tags"]
        }
        pending = [t for t in wanted if t["hash"] not in finished]
        if not pending:
            return 0
        spec = loaded.spec
        tuner = tune.Tuner(
            trainable,
            param_space={MATCHED_KEY: tune.grid_search(pending)},
            tune_config=tune.TuneConfig(max_concurrent_trials=spec.max_concurrent_trials, reuse_actors=True),
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(experiment_dir),
                failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                callbacks=[
                    TrackingJanitor(tracking.tracking_uri, tracking.experiment_id, tracking.parent_run_id),
                    ProgressLine(len(pending), *_test_quality(loaded), enabled=progress),
                ],
                verbose=0,
            ),
        )
    return len(tuner.fit().errors)


def summary_rows(tracking: SweepTracking) -> list[dict[str, Any]]:
    """One row per trial with its task's quality metric (`accuracy`, `error_cm`, `mse`...)."""
    rows = []
    for run in tracking.trial_runs():
        metrics, tags = run["metrics"], run["tags"]
        task = task_registry.registered_tasks.get(tags.get("task", ""))
        quality = task.quality_metric().name if task is not None else "accuracy"
        rows.append(
            {
                "run": run["run_name"],
                "run_id": run["run_id"],
                "status": run["status"],
                "method": tags.get("method"),
                "target": float(tags.get("target_sparsity", "nan")),
                "seed": tags.get("seed"),
                "sparsity": metrics.get("sparsity"),
                "quality": quality,
                "val": metrics.get(f"val_{quality}"),
                "test": metrics.get(f"test_{quality}"),
                "dense_cache_hit": metrics.get("dense_cache_hit"),
                "matched_to": tags.get("matched_to"),
            }
        )
    return sorted(rows, key=lambda r: (r["method"] or "", r["target"], r["seed"] or ""))


def format_table(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any, digits: int = 4) -> str:
        return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    quality = rows[0]["quality"] if rows else "accuracy"
    val, test = f"val_{quality}", f"test_{quality}"
    width = len(test) + 2
    header = f"{'method':<22}{'target':>8}{'seed':>6}{'sparsity':>10}{val:>{width}}{test:>{width}}  status"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['method'] or '?':<22}{cell(r['target'], 2):>8}{r['seed'] or '-':>6}"
            f"{cell(r['sparsity']):>10}{cell(r['val']):>{width}}{cell(r['test']):>{width}}"
            f"  {r['status']}"
        )
    return "\n".join(lines)


def ui_command(tracking_uri: str, experiment_id: str) -> str:
    page = experiment_url(ui_base(tracking_uri), experiment_id)
    if is_local(tracking_uri):
        return f"mlflow ui --backend-store-uri {tracking_uri} --port 5000   # then open {page}"
    return f"open {page} in a browser"


def print_outcome(outcome: SweepOutcome, out: Any = sys.stdout) -> None:
    print(format_table(outcome.rows), file=out)
    front = outcome.experiment_dir / PARETO_DIR / "front.txt"
    if front.is_file():  # written by `publish` at the end of the sweep
        print(f"\nPareto front (dashboard: {front.with_name('pareto.html')}):\n{front.read_text()}", file=out)
    print(
        f"\nMLflow parent run {outcome.parent_run_id} (experiment {outcome.experiment_id}); view with:\n  "
        f"{ui_command(outcome.tracking_uri, outcome.experiment_id)}",
        file=out,
    )
