"""A trial compiled, once and before any training, into the phases it trains.

`compile_plan` is a pure function of the config: it reads every setting that shapes
training and says, per phase, what the engine (`rnnprune.training.engine`) does. A phase is
a frozen value holding its own settings only, never the whole trial config; a new kind of
training (dynamic sparse training, a structured regularizer) is a new phase or a new field
here and a hook, not another loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rnnprune.config import TrialConfig
from rnnprune.pruning.base import MethodParams, WeightKind
from rnnprune.pruning.schedules import PruningEvent, cycle_bounds
from rnnprune.training.factories import optimizer_settings
from rnnprune.training.loop import OptimizerSettings


def steps_per_epoch(examples: int, batch_size: int) -> int:
    """Optimizer steps in one pass over `examples` (the last batch may be short)."""
    return -(-examples // batch_size)


@dataclass(frozen=True)
class FreshInit:
    """New weights from the named initialisation draw; with `keep_masks`, under the masks
    the previous phase ended with (the lottery ticket)."""

    draw: str
    keep_masks: bool = False


@dataclass(frozen=True)
class DenseWeights:
    """The cached dense run's weights after `epoch` epochs (a rewind point); None: after its
    last epoch, the trained dense model."""

    epoch: int | None = None


WeightSource = FreshInit | DenseWeights


@dataclass(frozen=True)
class RegularizerDraw:
    """The method's regularizer, its random structure drawn from `generator(seed, draw)`;
    with `from_dense`, its learnable state continues from the end of the dense run."""

    method: str
    params: MethodParams
    draw: str
    from_dense: bool = False


@dataclass(frozen=True)
class MaskSchedule:
    """Mask events: at each event's phase step the method recomputes the masks of the pool
    (`scope`), nested in the current ones, event k drawing from `generator(seed, "prune", k)`.
    A restarting event begins a round: fresh optimizer moments, and with `rewind_epoch` the
    surviving weights reset to the dense run's weights after that epoch."""

    method: str
    params: MethodParams
    scope: tuple[WeightKind, ...]
    events: tuple[PruningEvent, ...]
    rewind_epoch: int | None = None


@dataclass(frozen=True, kw_only=True)
class Phase:
    """One phase of training, all the engine needs to run it.

    Epoch e (1-based) of the phase is numbered `epoch_offset + e` in its draws and reports:
    dropout from `derived_seed(seed, draw, n)`, batch order from `generator(seed,
    f"{draw}-order", n)`. The ticket continues the pruning phase's numbering, as it always has.
    """

    name: str
    epochs: int
    draw: str
    epoch_offset: int = 0
    batch_size: int
    steps_per_epoch: int
    optimizer: OptimizerSettings  # with the plateau rule (`lr_schedule: plateau`, its factor)
    # Phase steps where a learning-rate cycle (cosine to zero, or flat) starts; each runs to
    # the next start, the last to the end of the phase. An iterative round restarts it.
    cycle_starts: tuple[int, ...] = (0,)
    start: WeightSource
    regularizer: RegularizerDraw | None
    masks: MaskSchedule | None = None
    # The pool whose sparsity each epoch reports, with its number and the latest mask event's
    # diagnostics; None: the epoch reports its losses only (the dense phase, as it always has).
    pool: tuple[WeightKind, ...] | None
    # Prefix under which the trial reports this phase's final model (val and test), if it does.
    final_prefix: str | None = None

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def cycle_bounds(self, step: int) -> tuple[int, int]:
        """First and one-past-last step of the learning-rate cycle containing `step`."""
        return cycle_bounds(self.cycle_starts, step, self.steps)


@dataclass(frozen=True)
class TrialPlan:
    """The trial's phases in order. The first is the dense phase, trained once per
    `TrialConfig.dense_hash` and shared through the dense cache; the others run in the
    trial's output directory and are the epochs it reports."""

    phases: tuple[Phase, ...]

    @property
    def dense(self) -> Phase:
        return self.phases[0]

    @property
    def trial_phases(self) -> tuple[Phase, ...]:
        return self.phases[1:]

    @property
    def trial_epochs(self) -> int:
        return sum(phase.epochs for phase in self.trial_phases)

    def epochs_of(self, name: str) -> int:
        """Epochs of the phase called `name` (0 when the trial has none)."""
        return sum(phase.epochs for phase in self.phases if phase.name == name)


def compile_plan(config: TrialConfig, steps_per_epoch: int) -> TrialPlan:
    """The phases `config` trains: dense, prune (the schedule), and with `pruning.lottery`
    the ticket (fresh weights under the final masks, trained for the dense + pruning epochs)."""
    training, pruning = config.training, config.pruning
    schedule = pruning.schedule.plan(pruning.target_sparsity, steps_per_epoch)
    method, params = pruning.method, pruning.typed_params

    def regularizer(draw: str, from_dense: bool = False) -> RegularizerDraw | None:
        return RegularizerDraw(method, params, draw, from_dense) if config.regularizes else None

    def phase(**settings: Any) -> Phase:
        return Phase(batch_size=training.batch_size, steps_per_epoch=steps_per_epoch, **settings)

    dense = phase(
        name="dense",
        epochs=training.epochs,
        draw="dense",
        optimizer=optimizer_settings(training),
        start=FreshInit("init"),
        regularizer=regularizer("regularizer"),
        pool=None,
    )
    ticket_epochs = training.epochs + schedule.epochs if pruning.lottery else 0
    prune = phase(
        name="prune",
        epochs=schedule.epochs,
        draw="prune",
        optimizer=optimizer_settings(training, pruning.lr),
        cycle_starts=schedule.cycle_starts,
        start=DenseWeights(),
        # The same draw as the dense phase: the penalty keeps its structure across phases.
        regularizer=regularizer("regularizer", from_dense=True),
        masks=MaskSchedule(method, params, pruning.scope, schedule.events, schedule.rewind_epoch),
        pool=pruning.scope,
        final_prefix="sparse_" if ticket_epochs > 0 else None,
    )
    if ticket_epochs == 0:
        return TrialPlan((dense, prune))
    lottery = phase(
        name="lottery",
        epochs=ticket_epochs,
        draw="prune",
        epoch_offset=schedule.epochs,
        optimizer=optimizer_settings(training),
        start=FreshInit("lottery-init", keep_masks=True),
        # A new draw, as the reference does: the ticket's penalty is unrelated to its mask.
        regularizer=regularizer("lottery-regularizer"),
        pool=pruning.scope,
    )
    return TrialPlan((dense, prune, lottery))
