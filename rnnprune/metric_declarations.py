"""What a metric is: the declaration type and the metrics every trial reports.

A leaf module (no torch, Ray, MLflow or task import), so that objectives and tasks declare
their metrics with it and `rnnprune.catalogue`, which looks metrics up across tasks, can read
them without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    # Measured once, at the end of a trial (`rnnprune.deploy`): the deployable form against the
    # trial's dense model, one thread (or the trial's GPU), interleaved in one process.
    Metric("latency_ms_b1", "minimize", "latency at batch 1 (ms)", headline=True),
    Metric("latency_ms_b64", "minimize", "latency at batch 64 (ms)"),
    Metric("speedup_b1", "maximize", "measured speed-up at batch 1", 1.0, headline=True),
    Metric("speedup_b64", "maximize", "measured speed-up at batch 64", 1.0, headline=True),
    Metric("model_bytes", "minimize", "deployable file size (bytes)", headline=True),
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
