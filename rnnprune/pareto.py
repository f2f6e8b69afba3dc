"""Pareto fronts over finished trials: which runs no other run beats on every objective.

Everything here is a pure function over plain records (arrays of points, `RunRecord`s), so
fronts, ranks, hypervolumes and picks are tested without MLflow; `rnnprune.publish` reads runs
from MLflow and writes the results back. Objective directions, labels and hypervolume
references come from the metric catalogue (`rnnprune.catalogue`).

Non-dominated sorting and hypervolumes are moocore's. Conventions: "a dominates b" means a is
at least as good everywhere and better somewhere, so equal points do not dominate each other
and duplicates share a front (moocore's `keep_weakly=True`; its ranks give duplicates one rank
too). A point adds to the hypervolume only where it beats the reference in every objective.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import moocore
import numpy as np

from rnnprune import catalogue
from rnnprune.catalogue import Metric
from rnnprune.errors import RnnpruneError
from rnnprune.stats import format_spread, seed_stats

ALL_METHODS = "all"
# Runs of several tasks have no one quality metric; classifiers' is the usual one.
DEFAULT_OBJECTIVES = ("test_accuracy", "sparsity")
# Params that say which draw of a configuration a run is, not which configuration.
SEED_PARAMS = frozenset({"seed", "trial_hash"})


def _points(points: np.ndarray, width: int) -> np.ndarray:
    return np.asarray(points, dtype=float).reshape(-1, width)


def non_dominated(points: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Boolean mask of the points no other point dominates (duplicates of a front point stay)."""
    matrix = _points(points, len(maximize))
    return moocore.is_nondominated(matrix, maximise=list(maximize), keep_weakly=True)


def pareto_ranks(points: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Rank 1 is the front; rank k the front of what remains once ranks < k are removed."""
    matrix = _points(points, len(maximize))
    return np.asarray(moocore.pareto_rank(matrix, maximise=list(maximize)), dtype=int) + 1


def hypervolume(points: np.ndarray, reference: Sequence[float], maximize: Sequence[bool]) -> float:
    """Volume (area in 2-D) dominated by the points and bounded by the reference point (exact).

    Points that do not beat the reference in every objective add nothing.
    """
    matrix = _points(points, len(maximize))
    return float(moocore.hypervolume(matrix, ref=np.asarray(reference, dtype=float), maximise=list(maximize)))


def step_line(points: np.ndarray, maximize: Sequence[bool]) -> list[tuple[float, float]]:
    """Vertices of the front's attainment line in data coordinates, ordered by x.

    Between two neighbouring front points the line turns at the corner made of the worse x
    and the worse y of the two: the boundary of what the front dominates.
    """
    front = np.unique(np.asarray(points, dtype=float)[non_dominated(points, maximize)], axis=0)
    front = front[np.argsort(front[:, 0], kind="stable")]
    vertices: list[tuple[float, float]] = []
    for index, (x, y) in enumerate(front):
        if index:
            prev_x, prev_y = vertices[-1]
            worse_x = min(prev_x, x) if maximize[0] else max(prev_x, x)
            worse_y = min(prev_y, y) if maximize[1] else max(prev_y, y)
            vertices.append((float(worse_x), float(worse_y)))
        vertices.append((float(x), float(y)))
    return vertices


@dataclass(frozen=True)
class RunRecord:
    """What the front needs from one finished trial run."""

    run_id: str
    experiment_id: str
    run_name: str
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    tags: Mapping[str, str]

    @property
    def method(self) -> str:
        return self.tags.get("method") or self.params.get("pruning.method", "?")


def configuration_key(params: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """A run's configuration: its flattened trial config without the seed (and the hash of it)."""
    return tuple(sorted((k, v) for k, v in params.items() if k not in SEED_PARAMS))


@dataclass(frozen=True)
class ConfigPoint:
    """One configuration: mean and sample std (`rnnprune.stats`) of each objective over its seeds."""

    method: str
    runs: tuple[RunRecord, ...]
    mean: Mapping[str, float]
    std: Mapping[str, float]

    @property
    def n(self) -> int:
        """Seeds averaged (every objective is averaged over the same runs)."""
        return len(self.runs)

    @property
    def label(self) -> str:
        target = self.runs[0].params.get("pruning.target_sparsity", "?")
        return f"{self.method}@{target}"


def aggregate_seeds(runs: Iterable[RunRecord], metrics: Iterable[str]) -> list[ConfigPoint]:
    """Group runs by configuration and average each metric over the group's seeds.

    A run missing one of the metrics is left out (a trial stopped before its final metrics),
    so every mean is over the same runs. Spread: `rnnprune.stats.seed_stats` (sample std).
    """
    wanted = list(metrics)
    groups: dict[tuple[tuple[str, str], ...], list[RunRecord]] = {}
    for run in runs:
        if all(m in run.metrics and math.isfinite(run.metrics[m]) for m in wanted):
            groups.setdefault(configuration_key(run.params), []).append(run)
    points = []
    for members in groups.values():
        stats = {m: seed_stats(run.metrics[m] for run in members) for m in wanted}
        points.append(
            ConfigPoint(
                method=members[0].method,
                runs=tuple(sorted(members, key=lambda r: r.params.get("seed", ""))),
                mean={m: s.mean for m, s in stats.items()},
                std={m: s.std for m, s in stats.items()},
            )
        )
    return sorted(points, key=lambda p: (p.method, -p.mean[wanted[0]]))


def reference_point(objectives: Sequence[Metric]) -> tuple[float, ...] | None:
    """The hypervolume's reference: chance quality, zero sparsity, no speed-up; None if unknown."""
    if any(o.reference is None for o in objectives):
        return None
    return tuple(float(o.reference) for o in objectives)  # type: ignore[arg-type]


@dataclass
class FrontAnalysis:
    """Fronts over all methods and per method, ranks and hypervolumes of one set of runs."""

    objectives: tuple[Metric, ...]
    points: list[ConfigPoint]
    rank: list[int]  # Pareto rank over all methods, per point
    on_method_front: list[bool]  # non-dominated among its own method's points
    reference: tuple[float, ...] | None
    hypervolume: dict[str, float] = field(default_factory=dict)  # method (or "all") -> volume

    @property
    def maximize(self) -> list[bool]:
        return [o.maximize for o in self.objectives]

    def front(self) -> list[ConfigPoint]:
        """The front over all methods, by the first objective, best first."""
        first = self.objectives[0]
        members = [p for p, r in zip(self.points, self.rank, strict=True) if r == 1]
        return sorted(members, key=lambda p: p.mean[first.name], reverse=first.maximize)


def objective_metrics(
    names: Sequence[str], task: str | None, option: str = "objectives"
) -> tuple[Metric, ...]:
    """Catalogue metrics of the objectives; a one-line MetricError names `option` for an unknown one."""
    return tuple(catalogue.metric(name, task, option=option) for name in names)


def analyse(
    runs: Iterable[RunRecord],
    objectives: Sequence[str] = DEFAULT_OBJECTIVES,
    task: str | None = None,
) -> FrontAnalysis:
    """Aggregate seeds, then rank all configurations, find each method's own front and, where
    every objective has a reference, the hypervolume over all methods and per method."""
    if not 2 <= len(objectives) <= 3:
        raise ValueError(f"a front needs two or three objectives, got {list(objectives)}")
    typed = objective_metrics(objectives, task)
    points = aggregate_seeds(runs, objectives)
    maximize = [o.maximize for o in typed]
    matrix = np.array([[p.mean[o] for o in objectives] for p in points]).reshape(-1, len(objectives))
    ranks = pareto_ranks(matrix, maximize).tolist()
    methods = sorted({p.method for p in points})
    on_method_front = [False] * len(points)
    for method in methods:
        indices = [i for i, p in enumerate(points) if p.method == method]
        for i, keep in zip(indices, non_dominated(matrix[indices], maximize), strict=True):
            on_method_front[i] = bool(keep)
    reference = reference_point(typed)
    volumes: dict[str, float] = {}
    if reference is not None and points:
        volumes[ALL_METHODS] = hypervolume(matrix, reference, maximize)
        for method in methods:
            indices = [i for i, p in enumerate(points) if p.method == method]
            volumes[method] = hypervolume(matrix[indices], reference, maximize)
    return FrontAnalysis(typed, points, ranks, on_method_front, reference, volumes)


def run_tags(analysis: FrontAnalysis, scope: str) -> dict[str, dict[str, str]]:
    """MLflow tags per run id: front membership over all methods and within its method."""
    tags: dict[str, dict[str, str]] = {}
    for point, rank, method_front in zip(
        analysis.points, analysis.rank, analysis.on_method_front, strict=True
    ):
        for run in point.runs:
            tags[run.run_id] = {
                "pareto": str(rank == 1).lower(),
                "pareto_rank": str(rank),
                "pareto_method": str(method_front).lower(),
                "pareto_scope": scope,
                "pareto_objectives": ",".join(o.name for o in analysis.objectives),
            }
    return tags


def format_front(analysis: FrontAnalysis) -> str:
    """The front over all methods as a table (mean ± sample std over `seeds`; "—" for one
    seed), with each method's hypervolume under it."""
    names = [o.name for o in analysis.objectives]
    header = f"{'method':<22}{'target':>8}{'seeds':>6}" + "".join(f"{n:>24}" for n in names) + "  runs"
    lines = [header, "-" * len(header)]
    for point in analysis.front():
        cells = "".join(f"{_number(point.mean[n]):>14} ± {_spread(point.std[n], point.n):<7}" for n in names)
        target = point.runs[0].params.get("pruning.target_sparsity", "?")
        runs = ",".join(r.run_id[:8] for r in point.runs)
        lines.append(f"{point.method:<22}{target:>8}{point.n:>6}{cells}  {runs}")
    if not analysis.points:
        lines.append("(no finished runs with these metrics)")
    if analysis.hypervolume:
        reference = ", ".join(f"{n}={v:g}" for n, v in zip(names, analysis.reference or (), strict=True))
        lines.append(f"\nhypervolume against ({reference}):")
        for method, volume in sorted(analysis.hypervolume.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {method:<22}{volume:.4f}")
    return "\n".join(lines)


def front_note(analysis: FrontAnalysis, title: str, dashboard_url: str, most: int = 8) -> str:
    """A few Markdown lines stating the front (for a sweep's parent run description)."""
    names = [o.name for o in analysis.objectives]
    front = analysis.front()
    lines = [
        f"**{title}**: {len(analysis.points)} configurations of {len({p.method for p in analysis.points})} "
        f"method(s); the Pareto front over {' and '.join(names)} holds {len(front)}.",
        "",
        f"[Pareto dashboard]({dashboard_url}) (the `pareto/` artifacts of this run).",
        "",
    ]
    for point in front[:most]:
        values = ", ".join(f"{n} {_number(point.mean[n])} ± {_spread(point.std[n], point.n)}" for n in names)
        lines.append(f"- {point.label} (n={point.n}): {values}")
    if len(front) > most:
        lines.append(f"- … and {len(front) - most} more (front.txt)")
    if ALL_METHODS in analysis.hypervolume:
        lines += ["", f"Hypervolume of the front: {analysis.hypervolume[ALL_METHODS]:.4f}."]
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4f}"


def _spread(std: float, n: int) -> str:
    return format_spread(std, n, digits=0) if abs(std) >= 1000 else format_spread(std, n)


def task_of(runs: Sequence[RunRecord]) -> str | None:
    """The task all runs share (it sets the chance-quality reference), else None."""
    tasks = {r.tags.get("task") or r.params.get("task.name") for r in runs}
    return tasks.pop() if len(tasks) == 1 else None


def default_objectives(task: str | None) -> tuple[str, str]:
    """The task's test quality metric and sparsity (test accuracy when runs mix tasks)."""
    from rnnprune.data import registry as task_registry

    if task in task_registry.registered_tasks:
        return catalogue.quality(task).name, "sparsity"  # type: ignore[arg-type]
    return DEFAULT_OBJECTIVES


def quality_objective(objectives: Sequence[str], task: str | None) -> str:
    """The objective that measures quality (not size or speed): what the dashboard plots."""
    quality = next((m for m in objective_metrics(objectives, task) if m.per_task), None)
    return quality.name if quality is not None else default_objectives(task)[0]


def as_plain(analysis: FrontAnalysis) -> dict[str, Any]:
    """The analysis as JSON-ready data (written beside the dashboard)."""
    return {
        "objectives": [o.name for o in analysis.objectives],
        "reference": analysis.reference,
        "hypervolume": analysis.hypervolume,
        "points": [
            {
                "method": p.method,
                "label": p.label,
                "rank": rank,
                "on_method_front": method_front,
                "mean": dict(p.mean),
                "std": dict(p.std),
                "n": p.n,
                "run_ids": [r.run_id for r in p.runs],
            }
            for p, rank, method_front in zip(
                analysis.points, analysis.rank, analysis.on_method_front, strict=True
            )
        ],
    }


# ---- picking one model ---------------------------------------------------------------------

ConstraintKind = Literal[
    "min_quality", "max_quality", "min_sparsity", "max_params", "min_speedup", "max_bytes"
]
# The `rnnprune pick` flag of each kind, for errors that say which flag to use.
CONSTRAINT_FLAGS: dict[str, str] = {
    "min_quality": "--min-quality",
    "max_quality": "--max-quality",
    "min_sparsity": "--min-sparsity",
    "max_params": "--max-params",
    "min_speedup": "--min-speedup",
    "max_bytes": "--max-bytes",
}
# The metric each kind other than a quality bound constrains (a speed-up: at `speedup_batch`).
CONSTRAINED_METRIC: dict[str, str] = {
    "min_sparsity": "sparsity",
    "max_params": "nonzero_params",
    "min_speedup": "speedup_b{batch}",
    "max_bytes": "model_bytes",
}
SPEEDUP_BATCHES = (1, 64)


class ConstraintError(RnnpruneError, ValueError):
    """A pick's bound does not fit its quality metric's direction."""


@dataclass(frozen=True)
class Constraint:
    """A pick's bound. Quality bounds go the metric's own way: `min_quality` for a metric where
    higher is better, `max_quality` where lower is better (at most 10 cm of error).
    `quality_metric` None: the test quality metric of the runs' task. `min_speedup` bounds the
    measured speed-up at `speedup_batch` (1 or 64)."""

    kind: ConstraintKind
    bound: float
    quality_metric: str | None = None
    speedup_batch: int = 1

    @property
    def constrained_metric(self) -> str | None:
        """The metric the bound is on, for a bound other than on quality."""
        template = CONSTRAINED_METRIC.get(self.kind)
        return template.format(batch=self.speedup_batch) if template is not None else None

    def objectives(self, quality: str) -> tuple[str, str]:
        """(constrained metric, optimised metric): the pair the pick's front is taken over."""
        constrained = self.constrained_metric
        if constrained is None:
            return quality, "sparsity"
        return constrained, quality

    def check(self, quality: Metric) -> None:
        """A quality bound against its metric's direction: one line naming the flag to use."""
        wanted = "min_quality" if quality.maximize else "max_quality"
        if self.kind in ("min_quality", "max_quality") and self.kind != wanted:
            raise ConstraintError(
                f"{CONSTRAINT_FLAGS[self.kind]}: {quality.name} is {quality.better}-is-better, so bound "
                f"it with {CONSTRAINT_FLAGS[wanted]} {self.bound:g}"
            )
        if self.speedup_batch not in SPEEDUP_BATCHES:
            measured = " and ".join(map(str, SPEEDUP_BATCHES))
            raise ConstraintError(
                f"--speedup-batch: trials measure speed-ups at batch {measured}, not "
                f"{self.speedup_batch}; give one of those"
            )

    @property
    def _upper_bound(self) -> bool:
        """Whether the bound is a ceiling: a parameter or file-size budget, a lower-is-better quality."""
        return self.kind in ("max_params", "max_quality", "max_bytes")

    def met_by(self, value: float) -> bool:
        return value <= self.bound if self._upper_bound else value >= self.bound

    def shortfall(self, value: float) -> float:
        """How far a value misses the bound, relative to the bound (0 when met)."""
        missing = value - self.bound if self._upper_bound else self.bound - value
        return max(missing, 0.0) / max(abs(self.bound), 1e-12)

    def alias(self) -> str:
        """A registry alias naming the pick (letters, digits, '-' and '_' only)."""
        if self.kind in ("min_quality", "max_quality"):
            parts = catalogue.split(self.quality_metric or "")
            base = parts[1] if parts else "quality"
            prefix = "acc" if base == "accuracy" else base  # the aliases accuracy picks always had
        else:
            prefix = {
                "min_sparsity": "sparsity",
                "max_params": "params",
                "min_speedup": "speedup",
                "max_bytes": "bytes",
            }[self.kind]
        bound = f"{self.bound:g}".replace(".", "_").replace("+", "")
        batch = f"-b{self.speedup_batch}" if self.kind == "min_speedup" and self.speedup_batch != 1 else ""
        return f"pick-{prefix}{bound}{batch}"


@dataclass(frozen=True)
class Pick:
    constraint: Constraint  # with its quality metric resolved
    point: ConfigPoint | None  # None: nothing on the front meets the constraint
    run: RunRecord | None  # the configuration's seed run that is registered
    closest: list[ConfigPoint]  # front points nearest to meeting the constraint, when None


def pick(runs: Sequence[RunRecord], constraint: Constraint, closest: int = 3) -> Pick:
    """The front point (over the constraint's pair of objectives) that meets the bound and is
    best on the other objective; ties go to the better constrained value.

    Only non-dominated configurations are candidates, so a dominated run is never chosen. Of
    the chosen configuration's seeds, the registered run is the one that meets the bound and is
    best on the optimised objective (a mean that meets the bound has at least one such seed).
    """
    task = task_of(runs)
    name = constraint.quality_metric or default_objectives(task)[0]
    quality = catalogue.metric(name, task, option="--quality-metric")
    constraint.check(quality)
    constraint = replace(constraint, quality_metric=name)
    constrained, optimised = constraint.objectives(name)
    analysis = analyse(runs, (constrained, optimised), task)
    front = [p for p, r in zip(analysis.points, analysis.rank, strict=True) if r == 1]
    first, second = analysis.objectives

    def better(point: ConfigPoint | RunRecord, metric: Metric) -> float:
        value = point.mean[metric.name] if isinstance(point, ConfigPoint) else point.metrics[metric.name]
        return value if metric.maximize else -value

    meeting = [p for p in front if constraint.met_by(p.mean[constrained])]
    if not meeting:
        nearest = sorted(front, key=lambda p: constraint.shortfall(p.mean[constrained]))[:closest]
        return Pick(constraint, None, None, nearest)
    chosen = max(meeting, key=lambda p: (better(p, second), better(p, first)))
    seeds = [r for r in chosen.runs if constraint.met_by(r.metrics[constrained])]
    run = max(seeds, key=lambda r: (better(r, second), better(r, first)))
    return Pick(constraint, chosen, run, [])


def describe(point: ConfigPoint, metrics: Sequence[str]) -> str:
    values = ", ".join(f"{m}={point.mean[m]:.4g}" for m in metrics if m in point.mean)
    return f"{point.label} ({values}; runs {', '.join(r.run_id for r in point.runs)})"
