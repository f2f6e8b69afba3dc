"""Per-epoch curves of a sweep's runs: quality and layer-graph margins against the remaining
weights, the seed spread at each epoch, and for each run the first epoch where each margin is
negative against the first where quality has fallen.

This is how an iterative reproduction is read (expander.md: "where accuracy falls against
where Δ_S / Δ_R first cross zero"): every epoch of a pruning phase logs its sparsity and
validation metrics, and with `track.graphs` (and `track.test`) its graph margins and test
metrics, as MLflow metric histories. Runs without graph margins have no curves here.

Pure: runs and their histories in, a `CurvesReport` out (`rnnprune.results_page` draws it,
`rnnprune.publish` reads the histories).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rnnprune.catalogue import Metric
from rnnprune.pareto import RunRecord
from rnnprune.report import Axes, seed_of, variant_of
from rnnprune.stats import SeedStats, seed_stats

GRAPH_PREFIX = "graph."
MARGINS = ("delta_r", "delta_s", "delta_r_w", "delta_s_w")
MARGIN_LABELS = {"delta_r": "Δ_R", "delta_s": "Δ_S", "delta_r_w": "Δ_R^w", "delta_s_w": "Δ_S^w"}
DEFAULT_DROP = 0.01
"""Quality has fallen once it is worse than the dense model's by more than this (metric units:
one point of accuracy)."""

History = Mapping[str, Sequence[tuple[int, float]]]
"""One run's metric histories: name -> (step, value), the step being the trial's epoch."""


def wanted(name: str, quality_base: str) -> bool:
    """The histories the curves read: sparsity, the quality on val and test, graph margins."""
    if name in ("sparsity", f"val_{quality_base}", f"test_{quality_base}"):
        return True
    return name.startswith(GRAPH_PREFIX) and name.rsplit(".", 1)[-1] in MARGINS


def quality_base(quality: Metric) -> str:
    """`accuracy` of `test_accuracy`: the name both splits report per epoch."""
    return quality.name.removeprefix("test_").removeprefix("val_")


@dataclass(frozen=True)
class Epoch:
    """One epoch of one configuration over its seeds; `remaining` in % of the pool."""

    epoch: int
    remaining: SeedStats
    values: Mapping[str, SeedStats]  # val_/test_ quality and each graph's margins


@dataclass(frozen=True)
class Curve:
    label: str  # the variant, with the values of the shared axes
    group: str  # the shared axes' values: one plot per group
    seeds: int
    epochs: list[Epoch]


@dataclass(frozen=True)
class Crossing:
    """Where one run's quality fell and each margin first went negative (remaining %)."""

    label: str
    seed: str
    dense: float  # the dense model's validation quality
    falls_at: float | None  # None: it never fell by more than the drop
    margins: Mapping[str, tuple[float, str] | None]  # margin -> (remaining %, first graph), or never


@dataclass(frozen=True)
class CurvesReport:
    quality: Metric
    drop: float
    graphs: tuple[str, ...]  # layer graphs that report margins, e.g. G_ih_l0, G_hh_l0, G_cat_l0
    curves: list[Curve]
    crossings: list[Crossing]


def _tracks_test(run: RunRecord) -> bool:
    return run.params.get("track.test", "").lower() == "true"


def _epochs(history: History, test: bool) -> dict[int, dict[str, float]]:
    """Per epoch, the run's readings; test metrics only where the run tracked them (otherwise
    the one test value is the final model's, logged at the last epoch's step)."""
    rows: dict[int, dict[str, float]] = defaultdict(dict)
    for name, points in history.items():
        if name.startswith("test_") and not test:
            continue
        for step, value in points:
            rows[step][name] = value
    return {step: row for step, row in sorted(rows.items()) if "sparsity" in row}


def _worse(value: float, reference: float, drop: float, maximize: bool) -> bool:
    return value < reference - drop if maximize else value > reference + drop


def _crossing(
    label: str, run: RunRecord, rows: dict[int, dict[str, float]], quality: Metric, drop: float
) -> Crossing:
    base = quality_base(quality)
    dense = run.metrics.get(f"dense_val_{base}", math.nan)
    falls_at = next(
        (
            100.0 * (1.0 - row["sparsity"])
            for row in rows.values()
            if f"val_{base}" in row and _worse(row[f"val_{base}"], dense, drop, quality.maximize)
        ),
        None,
    )
    margins: dict[str, tuple[float, str] | None] = {}
    for margin in MARGINS:
        margins[margin] = next(
            (
                (100.0 * (1.0 - row["sparsity"]), name.split(".")[1])
                for row in rows.values()
                for name in sorted(row)
                if name.startswith(GRAPH_PREFIX) and name.endswith(f".{margin}") and row[name] < 0
            ),
            None,
        )
    return Crossing(label, seed_of(run), dense, falls_at, margins)


def build_curves(
    runs: Sequence[RunRecord],
    histories: Mapping[str, History],
    axes: Axes,
    quality: Metric,
    drop: float = DEFAULT_DROP,
) -> CurvesReport | None:
    """Curves of the runs whose histories (by run id) hold graph margins; None if none do."""
    tracked = [r for r in runs if any(n.startswith(GRAPH_PREFIX) for n in histories.get(r.run_id, {}))]
    if not tracked:
        return None
    groups: dict[tuple[str, str], list[tuple[RunRecord, dict[int, dict[str, float]]]]] = defaultdict(list)
    for run in sorted(tracked, key=seed_of):
        shared = ", ".join(f"{k}={run.params.get(k, '—')}" for k in axes.shared)
        groups[(variant_of(run, axes), shared)].append(
            (run, _epochs(histories[run.run_id], _tracks_test(run)))
        )
    curves, crossings = [], []
    graphs: set[str] = set()
    for (variant, shared), members in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        label = f"{variant} [{shared}]" if shared else variant
        steps = sorted({step for _, rows in members for step in rows})
        epochs = []
        for step in steps:
            present = [rows[step] for _, rows in members if step in rows]
            names = sorted({name for row in present for name in row} - {"sparsity"})
            graphs.update(n.split(".")[1] for n in names if n.startswith(GRAPH_PREFIX))
            values = {
                name: seed_stats(row[name] for row in present if name in row and math.isfinite(row[name]))
                for name in names
                if any(name in row and math.isfinite(row[name]) for row in present)
            }
            remaining = seed_stats(100.0 * (1.0 - row["sparsity"]) for row in present)
            epochs.append(Epoch(step, remaining, values))
        curves.append(Curve(label, shared, len(members), epochs))
        crossings += [_crossing(label, run, rows, quality, drop) for run, rows in members]
    return CurvesReport(quality, drop, tuple(sorted(graphs)), curves, crossings)
