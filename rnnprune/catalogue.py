"""Every metric a trial reports, declared once: its name, which way is better, its label, which
tasks report it, and its hypervolume reference.

Two kinds of metric. The common ones every trial reports whatever its task (sparsity, parameter
counts, speed-up, wall time, training loss) are declared here, in `COMMON`. A task's own metrics
are declared by its objective (`declares` in `rnnprune/objectives.py`, one `Metric` per value
its `summarise` returns), and the task adds its chance levels (`Task.chance`): the same
classification objective has chance accuracy 0.1 on ten digits and 1/35 on 35 words. Trials
report task metrics per split (`val_accuracy`, `test_accuracy`, `dense_test_accuracy`), and
`metric(name, task)` resolves such a name from the task's declarations, so a task (or a
plugin's task) that declares a new quality metric is ranked, scheduled, plotted and picked with
no edit anywhere else.

Leaf module (no torch, Ray or MLflow): task declarations are read through the task registry,
imported on the first lookup of a task metric.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from rnnprune.errors import RnnpruneError

Direction = Literal["maximize", "minimize"]


class MetricError(RnnpruneError, ValueError):
    """A metric name no task reports, or one whose direction depends on the task."""


@dataclass(frozen=True)
class Metric:
    """One metric as trials report it.

    `tasks` is None for a common metric (every task reports it); for a task metric it holds the
    tasks the lookup found reporting it: the named task, or every registered task that declares
    it when no task was named. `reference` is the hypervolume's reference value: chance quality
    on the task, or the neutral value of an accounting metric (sparsity 0, speed-up 1); None
    where there is none, and then no hypervolume is computed over this metric.
    """

    name: str
    direction: Direction
    label: str
    reference: float | None = None
    tasks: frozenset[str] | None = None
    per_epoch: bool = False  # reported at every epoch (what schedulers and searchers can read)
    headline: bool = False  # in one trial's summary (`rnnprune train`)

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def mode(self) -> Literal["max", "min"]:
        """The direction as Ray Tune and Optuna spell it."""
        return "max" if self.maximize else "min"

    @property
    def better(self) -> str:
        return "higher" if self.maximize else "lower"

    @property
    def per_task(self) -> bool:
        """A task's own metric (quality, loss), not an accounting one every trial reports."""
        return self.tasks is not None


class DeclaringTask(Protocol):
    """What the catalogue reads from a task (`rnnprune.data.base.Task`)."""

    name: str

    def declared_metrics(self) -> tuple[Metric, ...]: ...

    def quality_metric(self) -> Metric: ...


COMMON: tuple[Metric, ...] = (
    Metric("train_loss", "minimize", "training loss", per_epoch=True),
    Metric("target_sparsity", "maximize", "target sparsity", reference=0.0, headline=True),
    Metric("sparsity", "maximize", "sparsity (prunable weights)", 0.0, per_epoch=True, headline=True),
    Metric("sparsity_total", "maximize", "sparsity (all parameters)", 0.0, per_epoch=True, headline=True),
    Metric("nonzero_params", "minimize", "non-zero parameters", per_epoch=True, headline=True),
    Metric("nonzero_params_pool", "minimize", "non-zero prunable weights", per_epoch=True),
    Metric("total_params", "minimize", "parameters", per_epoch=True),
    Metric("compression_ratio", "maximize", "compression ratio", 1.0, per_epoch=True, headline=True),
    Metric("compression_ratio_pool", "maximize", "compression ratio (prunable weights)", 1.0, per_epoch=True),
    Metric("theoretical_speedup", "maximize", "theoretical speed-up", 1.0, per_epoch=True, headline=True),
    Metric("wall_time_s", "minimize", "wall time (s)", headline=True),
)
_COMMON = {m.name: m for m in COMMON}

# How trials prefix a task metric, longest first so `dense_test_` is not read as `test_`.
SPLITS: tuple[tuple[str, str], ...] = (
    ("dense_test_", "dense test"),
    ("dense_val_", "dense validation"),
    ("test_", "test"),
    ("val_", "validation"),
    ("train_", "training"),
)


def headline_names() -> tuple[str, ...]:
    """The common metrics a one-trial summary shows, after the task's quality."""
    return tuple(m.name for m in COMMON if m.headline)


def split(name: str) -> tuple[str, str] | None:
    """(split prefix, task metric) of a reported name: `test_error_cm` -> ("test_", "error_cm")."""
    for prefix, _ in SPLITS:
        if name.startswith(prefix) and len(name) > len(prefix):
            return prefix, name.removeprefix(prefix)
    return None


def _lookup(task: str | DeclaringTask | None) -> DeclaringTask | None:
    """A task by name from the registry (None for a name not registered here)."""
    if task is None or not isinstance(task, str):
        return task
    from rnnprune.data import registry  # torch and the task's module load here, on first use

    return registry.registered_tasks.get(task)


def _all_tasks() -> list[DeclaringTask]:
    from rnnprune.data import registry

    return list(registry.registered_tasks.values())


def _declared(base: str, task: DeclaringTask | None) -> Metric | None:
    """The task metric `base` as `task` declares it, else as the registered tasks do."""
    if task is not None:
        found = next((m for m in task.declared_metrics() if m.name == base), None)
        if found is not None:
            return found
    # Not the named task's (runs of several tasks, or records naming the wrong task): the
    # direction and label still come from whichever tasks declare it; the chance level is
    # per task, so there is none.
    matches = [m for t in _all_tasks() for m in t.declared_metrics() if m.name == base]
    if not matches:
        return None
    directions = {m.direction for m in matches}
    if len(directions) > 1:
        both = ", ".join(sorted(f"{next(iter(m.tasks or ()))}: {m.direction}" for m in matches))
        raise MetricError(f"metric {base!r} has no single direction ({both}); name the task of the runs")
    tasks = frozenset(t for m in matches for t in (m.tasks or ()))
    return replace(matches[0], tasks=tasks, reference=None)


def metric(name: str, task: str | DeclaringTask | None = None, option: str = "metric") -> Metric:
    """The metric a trial reports as `name`, with the task's chance level where it has one.

    Raises MetricError naming `option` (the field or flag that gave the name) and the known names.
    """
    if name in _COMMON:
        return _COMMON[name]
    parts = split(name)
    if parts is not None:
        prefix, base = parts
        declared = _declared(base, _lookup(task))
        if declared is not None:
            split_label = dict(SPLITS)[prefix]
            return replace(declared, name=name, label=f"{split_label} {declared.label}")
    raise MetricError(f"{option}: unknown metric {name!r}; known: {describe_names(task)}")


def quality(task: str | DeclaringTask, split_prefix: str = "test_") -> Metric:
    """The task's quality metric (what ranks its models) as reported on one split."""
    found = _lookup(task)
    if found is None:
        raise MetricError(f"task: unknown task {task!r}; registered: {', '.join(_task_names())}")
    return metric(f"{split_prefix}{found.quality_metric().name}", found)


def _task_names() -> list[str]:
    from rnnprune.data import registry

    return registry.names()


def task_metric_names(task: str | DeclaringTask | None = None) -> list[str]:
    """Unprefixed task metrics: the task's, or every registered task's (in declaration order)."""
    found = _lookup(task)
    tasks: Iterable[DeclaringTask] = [found] if found is not None else _all_tasks()
    return list(dict.fromkeys(m.name for t in tasks for m in t.declared_metrics()))


def describe_names(task: str | DeclaringTask | None = None) -> str:
    """The known metric names in one line (for errors and --help)."""
    prefixes = "/".join(prefix for prefix, _ in SPLITS)
    return f"{', '.join(_COMMON)}; or {prefixes} followed by one of {', '.join(task_metric_names(task))}"
