"""The Pareto dashboard: one self-contained HTML page (inline SVG + vanilla JS) and a PNG.

The page embeds its data as JSON and draws itself, so it opens from disk or from the MLflow
UI's artifact view with no network. The template (`dashboard_template.html`) ships inside the
package so an installed rnnprune renders without the repository checkout; `dashboards/` holds
the how-to and an example page.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rnnprune.pareto import RunRecord, analyse, configuration_key, step_line, task_of

TEMPLATE = Path(__file__).with_name("dashboard_template.html")
DATA_MARKER = "/*__PARETO_DATA__*/null"
# Colour-blind-safe qualitative palette (Okabe & Ito), cycled when there are more methods.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000")
HOVER_PREFIXES = ("pruning.", "model.", "training.epochs", "seed")


# The x axes the page offers: size (sparsity, non-zero parameters) and measured speed.
X_AXES = ("sparsity", "nonzero_params", "speedup_b1", "speedup_b64")
SPEED_AXES = ("speedup_b1", "speedup_b64")


def dashboard_data(
    runs: Sequence[RunRecord],
    quality: str,
    link: Callable[[RunRecord], str],
    title: str,
) -> dict[str, Any]:
    """Everything the page draws: one point per run, seed means with spread (sample std over
    `seeds`, `rnnprune.stats`), fronts per x axis. Labels and directions: the catalogue. A run
    without a metric (no measured speed-up) is left off that axis's view only."""
    analyses = {x: analyse(runs, (quality, x), task_of(runs)) for x in X_AXES}
    by_sparsity = analyses["sparsity"]
    y_metric = by_sparsity.objectives[0]
    x_metrics = {x: analyses[x].objectives[1] for x in X_AXES}
    # Each axis's seed means, by configuration: a configuration's mean on one axis is over the
    # seeds that report that axis's metric.
    on_axis = {x: {configuration_key(p.runs[0].params): p for p in analyses[x].points} for x in X_AXES}
    methods = sorted({p.method for p in by_sparsity.points})
    colors = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}
    trials, configs = [], []
    for index, point in enumerate(by_sparsity.points):
        same = {x: on_axis[x].get(configuration_key(point.runs[0].params)) for x in X_AXES}
        configs.append(
            {
                "method": point.method,
                "label": point.label,
                "seeds": len(point.runs),
                "rank": by_sparsity.rank[index],
                "y": point.mean[quality],
                "y_std": point.std[quality],
                "x": {x: p.mean[x] if p is not None else None for x, p in same.items()},
                "x_std": {x: p.std[x] if p is not None else None for x, p in same.items()},
            }
        )
        for run in point.runs:
            trials.append(
                {
                    "run_id": run.run_id,
                    "run_name": run.run_name,
                    "method": point.method,
                    "config": index,
                    "y": run.metrics[quality],
                    "x": {x: run.metrics.get(x) for x in X_AXES},
                    "url": link(run),
                    "params": {k: v for k, v in sorted(run.params.items()) if k.startswith(HOVER_PREFIXES)},
                    "metrics": {
                        k: run.metrics[k]
                        for k in (
                            quality,
                            "sparsity",
                            "nonzero_params",
                            "theoretical_speedup",
                            *SPEED_AXES,
                            "latency_ms_b1",
                            "model_bytes",
                        )
                        if k in run.metrics
                    },
                }
            )
    fronts: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for x, analysis in analyses.items():
        maximize = [y_metric.maximize, x_metrics[x].maximize]
        groups = {
            "all": analysis.points,
            **{m: [p for p in analysis.points if p.method == m] for m in methods},
        }
        fronts[x] = {}
        for name, points in groups.items():
            if points:
                matrix = [[p.mean[x], p.mean[quality]] for p in points]
                fronts[x][name] = step_line(matrix, [maximize[1], maximize[0]])
    return {
        "title": title,
        "y_label": y_metric.label,
        "x_labels": {x: m.label for x, m in x_metrics.items()},
        "methods": methods,
        "colors": colors,
        "trials": trials,
        "configs": configs,
        "fronts": fronts,
        "hypervolume": by_sparsity.hypervolume,
        "reference": by_sparsity.reference,
    }


def render_html(data: dict[str, Any], path: Path) -> Path:
    """Write the page with its data inlined (`</` escaped so no string can close the script)."""
    payload = json.dumps(data).replace("</", "<\\/")
    page = TEMPLATE.read_text().replace(DATA_MARKER, payload)
    path.write_text(page)
    return path


def _panel(axes: Any, data: dict[str, Any], x: str) -> None:
    """Quality against one x axis: trials, seed means with spread, per-method and overall fronts."""
    for method in data["methods"]:
        color = data["colors"][method]
        trials = [t for t in data["trials"] if t["method"] == method and t["x"][x] is not None]
        axes.scatter([t["x"][x] for t in trials], [t["y"] for t in trials], s=12, color=color, alpha=0.45)
        configs = [c for c in data["configs"] if c["method"] == method and c["x"][x] is not None]
        axes.errorbar(
            [c["x"][x] for c in configs],
            [c["y"] for c in configs],
            xerr=[c["x_std"][x] for c in configs],
            yerr=[c["y_std"] for c in configs],
            fmt="o",
            color=color,
            markersize=5,
            capsize=3,
            label=method,
        )
        line = data["fronts"][x].get(method)
        if line:
            axes.plot(*zip(*line, strict=True), color=color, linewidth=1, linestyle="--", alpha=0.8)
    front = data["fronts"][x].get("all")
    if front:
        axes.plot(*zip(*front, strict=True), color="black", linewidth=1.6, label="Pareto front (all)")
    axes.set_xlabel(data["x_labels"][x])
    axes.set_ylabel(data["y_label"])
    axes.grid(alpha=0.3)


def render_png(data: dict[str, Any], path: Path) -> Path:
    """The static twin of the page: quality vs sparsity and, where trials measured it, quality
    vs measured speed-up at batch 1 beside it."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    speed = any(t["x"]["speedup_b1"] is not None for t in data["trials"])
    figure, panels = plt.subplots(
        1, 2 if speed else 1, figsize=(14 if speed else 8, 5), dpi=120, squeeze=False
    )
    for axes, x in zip(panels[0], ("sparsity", "speedup_b1"), strict=False):
        _panel(axes, data, x)
    if data["methods"]:  # a sweep with no finished trial still gets its (empty) page
        panels[0][0].legend(fontsize=8, loc="lower left")
    figure.suptitle(data["title"])
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def write_dashboard(
    runs: Sequence[RunRecord], quality: str, link: Callable[[RunRecord], str], title: str, folder: Path
) -> list[Path]:
    """pareto.html, pareto.png and the data behind them (pareto.json) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    data = dashboard_data(runs, quality, link, title)
    (folder / "pareto.json").write_text(json.dumps(data, indent=1))
    return [
        render_html(data, folder / "pareto.html"),
        render_png(data, folder / "pareto.png"),
        folder / "pareto.json",
    ]
