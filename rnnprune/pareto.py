"""Pareto fronts over finished trials: which runs no other run beats on every objective.

Everything here is a pure function over plain data (arrays of points, `TrialPoint` records),
so fronts, ranks, hypervolumes and picks are tested without MLflow; `analyse` turns runs read
from MLflow (via `rnnprune.tracking`) into a `FrontAnalysis`, and `rnnprune pareto` /
`rnnprune pick` write its results back.

Conventions: a point is one row of objective values. Objectives that are minimised are
negated internally, so "a dominates b" always means a >= b everywhere and a > b somewhere.
Equal points do not dominate each other, so duplicates share a front.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

ALL_METHODS = "all"


@dataclass(frozen=True)
class Objective:
    """A run metric and whether larger is better."""

    metric: str
    maximize: bool
    label: str


OBJECTIVES: dict[str, Objective] = {
    o.metric: o
    for o in (
        Objective("test_accuracy", True, "test accuracy"),
        Objective("val_accuracy", True, "validation accuracy"),
        Objective("sparsity", True, "sparsity (prunable weights)"),
        Objective("sparsity_total", True, "sparsity (all parameters)"),
        Objective("nonzero_params", False, "non-zero parameters"),
        Objective("theoretical_speedup", True, "theoretical speed-up"),
        Objective("compression_ratio", True, "compression ratio"),
        Objective("test_loss", False, "test loss"),
        Objective("val_loss", False, "validation loss"),
        Objective("test_perplexity", False, "test perplexity"),
        Objective("val_perplexity", False, "validation perplexity"),
        Objective("test_error_cm", False, "test position error (cm)"),
        Objective("val_error_cm", False, "validation position error (cm)"),
        Objective("test_mse", False, "test MSE"),
        Objective("val_mse", False, "validation MSE"),
    )
}
DEFAULT_OBJECTIVES = ("test_accuracy", "sparsity")

# Chance-level quality of each task (by quality metric): the hypervolume's reference point, so
# an area counts only what beats guessing (adding problem: always predicting 1.0 has MSE 1/6).
# Sparsity's reference is 0 (dense), speed-up's and compression's 1 (no gain).
CHANCE_QUALITY: dict[tuple[str, str], float] = {
    ("seq_mnist", "accuracy"): 0.1,
    ("adding", "mse"): 1.0 / 6.0,
}
NEUTRAL_REFERENCE: dict[str, float] = {
    "sparsity": 0.0,
    "sparsity_total": 0.0,
    "theoretical_speedup": 1.0,
    "compression_ratio": 1.0,
}
# Objectives that measure size or speed; the others measure quality.
ACCOUNTING_OBJECTIVES = frozenset(
    {"sparsity", "sparsity_total", "nonzero_params", "theoretical_speedup", "compression_ratio"}
)
# Params that say which draw of a configuration a run is, not which configuration.
SEED_PARAMS = frozenset({"seed", "trial_hash"})


def _oriented(points: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Points with minimised objectives negated, so larger is better in every column."""
    signs = np.where(np.asarray(maximize, dtype=bool), 1.0, -1.0)
    return np.asarray(points, dtype=float).reshape(-1, len(signs)) * signs


def non_dominated(points: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Boolean mask of the points no other point dominates (O(n²), fine for sweep sizes)."""
    oriented = _oriented(points, maximize)
    if len(oriented) == 0:
        return np.zeros(0, dtype=bool)
    geq = (oriented[:, None, :] >= oriented[None, :, :]).all(axis=2)  # [i, j]: i >= j everywhere
    gt = (oriented[:, None, :] > oriented[None, :, :]).any(axis=2)
    dominated_by = geq & gt  # [i, j]: i dominates j
    return ~dominated_by.any(axis=0)


def pareto_ranks(points: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Rank 1 is the front; rank k the front of what remains once ranks < k are removed."""
    oriented = _oriented(points, maximize)
    ranks = np.zeros(len(oriented), dtype=int)
    rank = 0
    while (ranks == 0).any():
        rank += 1
        remaining = np.flatnonzero(ranks == 0)
        front = non_dominated(oriented[remaining], [True] * oriented.shape[1])
        ranks[remaining[front]] = rank
    return ranks


def hypervolume_2d(points: np.ndarray, reference: Sequence[float], maximize: Sequence[bool]) -> float:
    """Area dominated by the points and bounded by the reference point (exact, O(n log n)).

    Points that do not beat the reference in both objectives add nothing. Sweeping the front
    by decreasing x, each point adds the strip between its y and the best y seen so far.
    """
    oriented = _oriented(points, maximize)
    ref = _oriented(np.asarray(reference, dtype=float), maximize)[0]
    beyond = oriented[(oriented > ref).all(axis=1)]
    area, best_y = 0.0, ref[1]
    for x, y in sorted(map(tuple, beyond), key=lambda p: (-p[0], -p[1])):
        if y > best_y:
            area += (x - ref[0]) * (y - best_y)
            best_y = y
    return float(area)


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
class TrialRun:
    """What the front needs from one finished MLflow child run."""

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
    """One configuration: mean and standard deviation of each objective over its seeds."""

    method: str
    runs: tuple[TrialRun, ...]
    mean: Mapping[str, float]
    std: Mapping[str, float]

    @property
    def label(self) -> str:
        target = self.runs[0].params.get("pruning.target_sparsity", "?")
        return f"{self.method}@{target}"


def aggregate_seeds(runs: Iterable[TrialRun], metrics: Iterable[str]) -> list[ConfigPoint]:
    """Group runs by configuration and average each metric over the group's seeds.

    A run missing one of the metrics is left out (a trial stopped before its final metrics),
    so every mean is over the same runs. Population std (ddof=0): one seed has spread 0.
    """
    wanted = list(metrics)
    groups: dict[tuple[tuple[str, str], ...], list[TrialRun]] = {}
    for run in runs:
        if all(m in run.metrics and math.isfinite(run.metrics[m]) for m in wanted):
            groups.setdefault(configuration_key(run.params), []).append(run)
    points = []
    for members in groups.values():
        values = np.array([[run.metrics[m] for m in wanted] for run in members])
        points.append(
            ConfigPoint(
                method=members[0].method,
                runs=tuple(sorted(members, key=lambda r: r.params.get("seed", ""))),
                mean=dict(zip(wanted, values.mean(axis=0).tolist(), strict=True)),
                std=dict(zip(wanted, values.std(axis=0).tolist(), strict=True)),
            )
        )
    return sorted(points, key=lambda p: (p.method, -p.mean[wanted[0]]))


def reference_point(objectives: Sequence[Objective], task: str | None) -> tuple[float, ...] | None:
    """The hypervolume's reference: chance accuracy, zero sparsity, no speed-up; None if unknown."""
    values = []
    for objective in objectives:
        quality = objective.metric.partition("_")[2]  # test_accuracy -> accuracy
        if (task, quality) in CHANCE_QUALITY:
            values.append(CHANCE_QUALITY[(task, quality)])  # type: ignore[index]
        elif objective.metric in NEUTRAL_REFERENCE:
            values.append(NEUTRAL_REFERENCE[objective.metric])
        else:
            return None
    return tuple(values)


@dataclass
class FrontAnalysis:
    """Fronts over all methods and per method, ranks and hypervolumes of one set of runs."""

    objectives: tuple[Objective, ...]
    points: list[ConfigPoint]
    rank: list[int]  # Pareto rank over all methods, per point
    on_method_front: list[bool]  # non-dominated among its own method's points
    reference: tuple[float, ...] | None
    hypervolume: dict[str, float] = field(default_factory=dict)  # method (or "all") -> area

    @property
    def maximize(self) -> list[bool]:
        return [o.maximize for o in self.objectives]

    def matrix(self, points: Sequence[ConfigPoint] | None = None) -> np.ndarray:
        chosen = self.points if points is None else points
        return np.array([[p.mean[o.metric] for o in self.objectives] for p in chosen]).reshape(
            -1, len(self.objectives)
        )

    def front(self) -> list[ConfigPoint]:
        """The front over all methods, by the first objective, best first."""
        first = self.objectives[0]
        members = [p for p, r in zip(self.points, self.rank, strict=True) if r == 1]
        return sorted(members, key=lambda p: p.mean[first.metric], reverse=first.maximize)


def analyse(
    runs: Iterable[TrialRun],
    objectives: Sequence[str] = DEFAULT_OBJECTIVES,
    task: str | None = None,
) -> FrontAnalysis:
    """Aggregate seeds, then rank all configurations and find each method's own front."""
    if not 2 <= len(objectives) <= 3:
        raise ValueError(f"a front needs two or three objectives, got {list(objectives)}")
    typed = tuple(OBJECTIVES[name] for name in objectives)
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
    reference = reference_point(typed, task)
    hypervolume: dict[str, float] = {}
    if reference is not None and len(typed) == 2 and points:
        hypervolume[ALL_METHODS] = hypervolume_2d(matrix, reference, maximize)
        for method in methods:
            indices = [i for i, p in enumerate(points) if p.method == method]
            hypervolume[method] = hypervolume_2d(matrix[indices], reference, maximize)
    return FrontAnalysis(typed, points, ranks, on_method_front, reference, hypervolume)


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
                "pareto_objectives": ",".join(o.metric for o in analysis.objectives),
            }
    return tags


def format_front(analysis: FrontAnalysis) -> str:
    """The front over all methods as a table, with each method's hypervolume under it."""
    names = [o.metric for o in analysis.objectives]
    header = f"{'method':<22}{'target':>8}{'seeds':>6}" + "".join(f"{n:>24}" for n in names) + "  runs"
    lines = [header, "-" * len(header)]
    for point in analysis.front():
        cells = "".join(
            f"{_number(point.mean[n]):>14} ± {_number(point.std[n], spread=True):<7}" for n in names
        )
        target = point.runs[0].params.get("pruning.target_sparsity", "?")
        runs = ",".join(r.run_id[:8] for r in point.runs)
        lines.append(f"{point.method:<22}{target:>8}{len(point.runs):>6}{cells}  {runs}")
    if not analysis.points:
        lines.append("(no finished runs with these metrics)")
    if analysis.hypervolume:
        reference = ", ".join(f"{n}={v:g}" for n, v in zip(names, analysis.reference or (), strict=True))
        lines.append(f"\nhypervolume against ({reference}):")
        for method, area in sorted(analysis.hypervolume.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {method:<22}{area:.4f}")
    return "\n".join(lines)


def _number(value: float, spread: bool = False) -> str:
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.3f}" if spread else f"{value:.4f}"


# ---- picking one model ---------------------------------------------------------------------

ConstraintKind = Literal["min_accuracy", "min_sparsity", "max_params"]


@dataclass(frozen=True)
class Constraint:
    kind: ConstraintKind
    bound: float
    accuracy_metric: str = "test_accuracy"

    def objectives(self) -> tuple[str, str]:
        """(constrained metric, optimised metric): the pair the pick's front is taken over."""
        if self.kind == "min_accuracy":
            return self.accuracy_metric, "sparsity"
        if self.kind == "min_sparsity":
            return "sparsity", self.accuracy_metric
        return "nonzero_params", self.accuracy_metric

    @property
    def _upper_bound(self) -> bool:
        """Whether the bound is a ceiling: a parameter budget, or the quality bound of a metric
        where lower is better (at most 10 cm of error, at most this perplexity)."""
        if self.kind == "max_params":
            return True
        return self.kind == "min_accuracy" and not OBJECTIVES[self.accuracy_metric].maximize

    def met_by(self, value: float) -> bool:
        return value <= self.bound if self._upper_bound else value >= self.bound

    def shortfall(self, value: float) -> float:
        """How far a value misses the bound, relative to the bound (0 when met)."""
        missing = value - self.bound if self._upper_bound else self.bound - value
        return max(missing, 0.0) / max(abs(self.bound), 1e-12)

    def alias(self) -> str:
        """A registry alias naming the pick (letters, digits, '-' and '_' only)."""
        prefix = {"min_accuracy": "acc", "min_sparsity": "sparsity", "max_params": "params"}[self.kind]
        bound = f"{self.bound:g}".replace(".", "_").replace("+", "")
        return f"pick-{prefix}{bound}"


@dataclass(frozen=True)
class Pick:
    point: ConfigPoint | None  # None: nothing on the front meets the constraint
    run: TrialRun | None  # the configuration's seed run that is registered
    closest: list[ConfigPoint]  # front points nearest to meeting the constraint, when None


def pick(runs: Sequence[TrialRun], constraint: Constraint, closest: int = 3) -> Pick:
    """The front point (over the constraint's pair of objectives) that meets the bound and is
    best on the other objective; ties go to the better constrained value.

    Only non-dominated configurations are candidates, so a dominated run is never chosen. Of
    the chosen configuration's seeds, the registered run is the one that meets the bound and is
    best on the optimised objective (a mean that meets the bound has at least one such seed).
    """
    constrained, optimised = constraint.objectives()
    analysis = analyse(runs, (constrained, optimised))
    front = [p for p, r in zip(analysis.points, analysis.rank, strict=True) if r == 1]
    first, second = OBJECTIVES[constrained], OBJECTIVES[optimised]

    def better(point: ConfigPoint | TrialRun, metric: Objective) -> float:
        value = point.mean[metric.metric] if isinstance(point, ConfigPoint) else point.metrics[metric.metric]
        return value if metric.maximize else -value

    meeting = [p for p in front if constraint.met_by(p.mean[constrained])]
    if not meeting:
        nearest = sorted(front, key=lambda p: constraint.shortfall(p.mean[constrained]))[:closest]
        return Pick(None, None, nearest)
    chosen = max(meeting, key=lambda p: (better(p, second), better(p, first)))
    seeds = [r for r in chosen.runs if constraint.met_by(r.metrics[constrained])]
    run = max(seeds, key=lambda r: (better(r, second), better(r, first)))
    return Pick(chosen, run, [])


def describe(point: ConfigPoint, metrics: Sequence[str]) -> str:
    values = ", ".join(f"{m}={point.mean[m]:.4g}" for m in metrics if m in point.mean)
    return f"{point.label} ({values}; runs {', '.join(r.run_id for r in point.runs)})"


def as_plain(analysis: FrontAnalysis) -> dict[str, Any]:
    """The analysis as JSON-ready data (written beside the dashboard)."""
    return {
        "objectives": [o.metric for o in analysis.objectives],
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
                "run_ids": [r.run_id for r in p.runs],
            }
            for p, rank, method_front in zip(
                analysis.points, analysis.rank, analysis.on_method_front, strict=True
            )
        ],
    }


# ---- against MLflow: read a sweep's runs, tag them, log the front, register a pick ----------


@dataclass(frozen=True)
class Published:
    scope: str  # "sweep" or "experiment"
    analysis: FrontAnalysis
    files: list[Path]  # local copies of the dashboard and front
    parent_run_ids: list[str]


def read_runs(tracking_uri: str, name: str) -> tuple[str, list[dict[str, Any]], list[TrialRun]]:
    """(scope kind, parent runs, finished trial runs) of a sweep or of every sweep of an experiment."""
    from mlflow import MlflowClient

    from rnnprune.tracking import sweep_scope

    kind, parents, children = sweep_scope(MlflowClient(tracking_uri), name)
    return kind, parents, [TrialRun(**child) for child in children]


def task_of(runs: Sequence[TrialRun]) -> str | None:
    """The task all runs share (it sets the chance-accuracy reference), else None."""
    tasks = {r.tags.get("task") or r.params.get("task.name") for r in runs}
    return tasks.pop() if len(tasks) == 1 else None


def default_objectives(task: str | None) -> tuple[str, str]:
    """The task's test quality metric and sparsity (test accuracy when runs mix tasks)."""
    from rnnprune.data import registry as task_registry

    if task in task_registry.registered_tasks:
        return f"test_{task_registry.get(task).objective.quality}", "sparsity"  # type: ignore[arg-type]
    return DEFAULT_OBJECTIVES


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
    from mlflow import MlflowClient

    from rnnprune.dashboard import write_dashboard
    from rnnprune.tracking import log_to_parent, run_url, set_run_tags, ui_base

    kind, parents, runs = read_runs(tracking_uri, name)
    objectives = objectives or default_objectives(task_of(runs))
    analysis = analyse(runs, objectives, task_of(runs))
    client = MlflowClient(tracking_uri)
    set_run_tags(client, run_tags(analysis, f"{kind}:{name}"))
    base = ui_url or ui_base(tracking_uri)
    accuracy = next((o for o in objectives if o not in ACCOUNTING_OBJECTIVES), "test_accuracy")
    folder = Path(output_dir)
    files = write_dashboard(
        runs,
        accuracy,
        lambda r: run_url(base, r.experiment_id, r.run_id),
        f"Pareto view: {kind} {name}",
        folder,
    )
    (folder / "front.json").write_text(json.dumps(as_plain(analysis), indent=1))
    (folder / "front.txt").write_text(format_front(analysis) + "\n")
    files += [folder / "front.json", folder / "front.txt"]
    prefix, artifact_dir = ("", "pareto") if kind == "sweep" else ("experiment.", f"pareto/{name}")
    metrics = {f"{prefix}hypervolume.{method}": area for method, area in analysis.hypervolume.items()}
    metrics[f"{prefix}pareto_front_size"] = float(sum(r == 1 for r in analysis.rank))
    for parent in parents:
        log_to_parent(client, parent["run_id"], metrics, files, artifact_dir)
    return Published(kind, analysis, files, [p["run_id"] for p in parents])


@dataclass(frozen=True)
class Registered:
    pick: Pick
    model_name: str = ""
    version: str = ""
    alias: str = ""


def pick_and_register(tracking_uri: str, name: str, constraint: Constraint, model_name: str) -> Registered:
    """`rnnprune pick`: register the chosen Pareto-optimal run's model with tags and an alias."""
    from rnnprune.tracking import OUTPUTS_TAG, TrackingError, register_run_model

    _, _, runs = read_runs(tracking_uri, name)
    chosen = pick(runs, constraint)
    if chosen.run is None or chosen.point is None:
        return Registered(chosen)
    if chosen.run.tags.get(OUTPUTS_TAG) != "true":
        raise TrackingError(
            f"run {chosen.run.run_id} is the pick but has no logged model (sweep with tracking.log_models)"
        )
    metrics = chosen.run.metrics
    tags = {
        "method": chosen.point.method,
        "sparsity": f"{metrics['sparsity']:.6g}",
        "accuracy": f"{metrics[constraint.accuracy_metric]:.6g}",
        "nonzero_params": f"{metrics.get('nonzero_params', float('nan')):.0f}",
        "target_sparsity": chosen.run.params.get("pruning.target_sparsity", ""),
        "sweep": chosen.run.tags.get("sweep", ""),
        "run_id": chosen.run.run_id,
        "pareto": "true",
        "constraint": f"{constraint.kind}={constraint.bound:g}",
    }
    alias = constraint.alias()
    version = register_run_model(tracking_uri, chosen.run.run_id, model_name, tags, alias)
    return Registered(chosen, model_name, version, alias)
