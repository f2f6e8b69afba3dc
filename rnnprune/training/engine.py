"""The phase engine: one function trains any phase of a trial plan, epoch by epoch.

Each epoch draws its dropout and batch order from its position (so a resumed phase draws
exactly what an uninterrupted one does), runs the optimizer steps with the phase's hooks,
evaluates, saves the phase's state in the one checkpoint format, and reports. The engine
knows nothing of Ray or MLflow, nor where its checkpoints go: its caller says.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from rnnprune.data.base import TaskData
from rnnprune.metrics import sparsity_report
from rnnprune.models.masking import MASK_SUFFIX, MaskedWeights
from rnnprune.pruning import registry as method_registry
from rnnprune.training.factories import make_trial_regularizer
from rnnprune.training.hooks import MaskEventsHook, MaskUpdateHook, PenaltyHook, TrainingHook
from rnnprune.training.loop import (
    Plateau,
    evaluate,
    evaluate_splits,
    learning_rate,
    make_optimizer,
    train_steps,
)
from rnnprune.training.plan import DenseWeights, Phase
from rnnprune.training.state import atomic_torch_save, derived_seed, generator


class DenseCheckpoints(Protocol):
    """The cached dense run, where phases after it start or rewind to."""

    def state_at(self, epoch: int) -> dict[str, torch.Tensor]: ...

    @property
    def epochs(self) -> int: ...

    @property
    def regularizer_state(self) -> dict[str, torch.Tensor] | None: ...


@dataclass(frozen=True)
class PhaseEnv:
    """What the phases of one trial share: the data, the trial seed, the network factory
    (a fresh network on the device from a named initialisation draw), the dense run, and
    the readings each pruning-phase epoch adds to its metrics (they must not change the model)."""

    data: TaskData
    seed: int
    build_model: Callable[[str], MaskedWeights]
    dense: DenseCheckpoints | None = None
    readings: Callable[[MaskedWeights], dict[str, float]] | None = None

    def dense_run(self) -> DenseCheckpoints:
        if self.dense is None:
            raise RuntimeError("this phase starts from the dense run, which is not trained yet")
        return self.dense


@dataclass
class PhaseOutcome:
    """What a finished phase leaves the trial: its epochs' metrics and seconds, the latest
    diagnostics, and its final model's metrics when the plan reports them."""

    name: str
    history: list[dict[str, float]]
    seconds: float
    diagnostics: dict[str, float]
    metrics: dict[str, float] = field(default_factory=dict)


class PhaseRun:
    """A phase in progress: its model, hooks and optimizer, and what it has done so far."""

    def __init__(
        self, phase: Phase, model: MaskedWeights, hooks: list[TrainingHook], carried: dict[str, float]
    ) -> None:
        self.phase, self.model, self.hooks = phase, model, hooks
        self.carried = carried  # diagnostics of earlier phases, reported until a hook has its own
        self.optimizer = make_optimizer(model, phase.optimizer, hooks)
        self.plateau = Plateau(phase.optimizer.plateau_factor)
        self.epoch, self.seconds = 0, 0.0
        self.history: list[dict[str, float]] = []

    @property
    def diagnostics(self) -> dict[str, float]:
        return {
            **self.carried,
            **{key: value for hook in self.hooks for key, value in hook.metrics().items()},
        }

    def lr_at(self, step: int) -> float:
        settings = self.phase.optimizer
        return self.plateau.scale * learning_rate(settings, step, *self.phase.cycle_bounds(step))

    def state_dict(self) -> dict[str, Any]:
        """The phase's checkpoint: everything it needs to continue after the current epoch."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "hooks": [hook.state_dict() for hook in self.hooks],
            "epoch": self.epoch,
            "history": self.history,
            "plateau": asdict(self.plateau),
            "seconds": self.seconds,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        for hook, hook_state in zip(self.hooks, state["hooks"], strict=True):
            hook.load_state_dict(hook_state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.history, self.seconds = state["epoch"], list(state["history"]), state["seconds"]
        self.plateau = Plateau(**state["plateau"])

    def outcome(self, data: TaskData) -> PhaseOutcome:
        prefix = self.phase.final_prefix
        metrics = evaluate_splits(self.model, data, prefix) if prefix is not None else {}
        return PhaseOutcome(self.phase.name, self.history, self.seconds, self.diagnostics, metrics)


def save_checkpoint(run: PhaseRun, path: Path, **header: Any) -> Path:
    """Write the run's state (and its caller's `header` entries) atomically to `path`."""
    atomic_torch_save({**header, **run.state_dict()}, path)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by `save_checkpoint`, on the CPU (loading moves it to the model)."""
    return torch.load(path, weights_only=False, map_location="cpu")


def is_current_format(state: Mapping[str, Any]) -> bool:
    """Whether a checkpoint was written by `save_checkpoint` (not by an rnnprune before the
    phase engine, whose checkpoints had no hook states)."""
    return "hooks" in state


def start_phase(
    phase: Phase,
    env: PhaseEnv,
    previous: Mapping[str, torch.Tensor] | None = None,
    carried: dict[str, float] | None = None,
) -> PhaseRun:
    """The phase's model where the plan says its weights start, and its hooks.

    `previous` is the state the previous phase ended with (whose masks a ticket keeps);
    `carried` the diagnostics it reported.
    """
    start = phase.start
    # 1. the weights
    if isinstance(start, DenseWeights):
        dense = env.dense_run()
        model = env.build_model("init")  # the architecture; its weights are replaced next
        model.load_state_dict(dense.state_at(dense.epochs if start.epoch is None else start.epoch))
    else:
        model = env.build_model(start.draw)
        if start.keep_masks:
            if previous is None:
                raise RuntimeError(f"phase {phase.name!r} keeps masks but no phase ran before it")
            model.load_state_dict(
                {k: v for k, v in previous.items() if k.endswith(MASK_SUFFIX)}, strict=False
            )
    # 2. the hooks: the method's regularizer, the schedule's mask events, then the method's
    # own mask updates between them (dynamic sparse training)
    hooks: list[TrainingHook] = []
    if phase.regularizer is not None:
        draw = phase.regularizer
        regularizer = make_trial_regularizer(draw.method, draw.params, model, generator(env.seed, draw.draw))
        learnt = env.dense_run().regularizer_state if draw.from_dense else None
        if learnt is not None:
            regularizer.load_state_dict(learnt)
        hooks.append(PenaltyHook(regularizer))
    if phase.masks is not None:
        hooks.append(MaskEventsHook(phase.masks, env.seed, env.dense_run().state_at))
        if method_registry.get(phase.masks.method).dynamic is not None:
            hooks.append(MaskUpdateHook(phase.masks, env.seed, phase.steps))
    return PhaseRun(phase, model, hooks, dict(carried or {}))


EpochReporter = Callable[[PhaseRun, dict[str, float], Path], None]
"""(run, the epoch's metrics, its checkpoint) after each epoch; `run.epoch` is the epoch."""


def run_phase(
    run: PhaseRun, env: PhaseEnv, save: Callable[[PhaseRun], Path], report: EpochReporter | None = None
) -> None:
    """Train the phase's remaining epochs; after each, `save` the run, then `report` it."""
    phase, data, model = run.phase, env.data, run.model
    pool = [w.name for w in model.prunable_weights(phase.pool)] if phase.pool is not None else None
    if phase.epochs == 0:
        _after_last_step(run)  # a phase without epochs still applies its events (one-shot, no fine-tuning)
    while run.epoch < phase.epochs:
        started = time.perf_counter()
        epoch = run.epoch + 1
        number = phase.epoch_offset + epoch
        # 1. the epoch's dropout and batch order, from its position alone
        torch.manual_seed(derived_seed(env.seed, phase.draw, number))
        batches = data.train.batches(phase.batch_size, generator(env.seed, f"{phase.draw}-order", number))
        # 2. its optimizer steps, and after the phase's last one, events scheduled past it
        losses = train_steps(
            model,
            run.optimizer,
            batches,
            phase.optimizer,
            (epoch - 1) * phase.steps_per_epoch,
            run.lr_at,
            data.objective,
            run.hooks,
        )
        if epoch == phase.epochs:
            _after_last_step(run)
        # 3. validation, which drives the plateau rule
        val = evaluate(model, data.val, data.objective)
        run.plateau.update(phase.optimizer, val["loss"])
        run.seconds += time.perf_counter() - started
        # 4. the epoch's metrics, the checkpoint, the report
        metrics = {**losses, **{f"val_{key}": value for key, value in val.items()}}
        if pool is not None:
            sparsity = sparsity_report(model, pool).summary()
            metrics = {"epoch": float(number), **metrics, **sparsity, **run.diagnostics}
            if env.readings is not None:
                metrics.update(env.readings(model))
        run.history.append(metrics)
        run.epoch = epoch
        path = save(run)
        if report is not None:
            report(run, metrics, path)


def _after_last_step(run: PhaseRun) -> None:
    for hook in run.hooks:
        hook.before_step(run.phase.steps, run.model, run.optimizer)
