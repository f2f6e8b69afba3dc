"""Every metric a trial reports, declared once: its name, which way is better, its label, which
tasks report it, and its hypervolume reference.

Two kinds of metric. The common ones every trial reports whatever its task (sparsity, parameter
counts, speed-up, wall time, training loss) are declared in `COMMON`
(`rnnprune/metric_declarations.py`, beside the `Metric` type itself). A task's own metrics
are declared by its objective (`declares` in `rnnprune/objectives.py`, one `Metric` per value
its `summarise` returns), and the task adds its chance levels (`Task.chance`): the same
classification objective has chance accuracy 0.1 on ten digits and 1/35 on 35 words. Trials
report task metrics per split (`val_accuracy`, `test_accuracy`, `dense_test_accuracy`), and
`metric(name, task)` resolves such a name from the task's declarations, so a task (or a
plugin's task) that declares a new quality metric is ranked, scheduled, plotted and picked with
no edit anywhere else.

No torch, Ray or MLflow on import: task declarations are read through the task registry,
imported on the first lookup of a task metric.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from rnnprune.metric_declarations import (
    COMMON,
    SPLITS,
    DeclaringTask,
    Direction,
    Metric,
    MetricError,
    headline_names,
    split,
)

__all__ = [
    "COMMON",
    "SPLITS",
    "DeclaringTask",
    "Direction",
    "Metric",
    "MetricError",
    "describe_names",
    "headline_names",
    "is_reported_name",
    "metric",
    "quality",
    "split",
    "task_metric_names",
]
_COMMON = {m.name: m for m in COMMON}


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


def is_reported_name(name: str) -> bool:
    """Whether `name` can be a catalogue metric (a common one, or a split-prefixed task metric):
    what fronts, picks and dashboards may read; per-tensor, per-gate, graph and method
    diagnostics are not. Reads no task."""
    return name in _COMMON or split(name) is not None


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
