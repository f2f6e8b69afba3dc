"""When to prune: one-shot, iterative (with optional rewind), gradual (Zhu & Gupta's cubic
ramp) and linear (a ramp in equal steps at epoch starts, as Mackey et al. prune).

Every schedule turns into a `PruningPlan`: the number of epochs of the pruning phase and
the optimizer steps at which masks are recomputed, with the pool sparsity to reach there.
The trial plan (`rnnprune.training.plan`) turns it into the pruning phase's mask events and
learning-rate cycles, which one engine runs, so every method works under every schedule.
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class PruningEvent:
    """Recompute masks before optimizer step `step` (counted from the phase start).

    `restart` starts a new round: fresh optimizer and learning-rate cycle, and the surviving
    weights are rewound to the dense checkpoint when the schedule asks for it.
    """

    step: int
    target_sparsity: float
    restart: bool = False


@dataclass(frozen=True)
class PruningPlan:
    epochs: int
    events: tuple[PruningEvent, ...]
    rewind_epoch: int | None = None

    @functools.cached_property
    def cycle_starts(self) -> tuple[int, ...]:
        """Steps where a learning-rate cycle starts: 0 and every restarting event after it."""
        return (0, *sorted({e.step for e in self.events if e.restart and e.step > 0}))

    def segment_bounds(self, step: int, total_steps: int) -> tuple[int, int]:
        """First and one-past-last step of the learning-rate cycle containing `step`."""
        return cycle_bounds(self.cycle_starts, step, total_steps)


def cycle_bounds(starts: tuple[int, ...], step: int, end: int) -> tuple[int, int]:
    """First and one-past-last step of the cycle containing `step`, of cycles beginning at
    the sorted `starts` (the first is 0) and the last running until `end`.

    Asked before every optimizer step, so it bisects rather than scans.
    """
    index = bisect.bisect_right(starts, step) - 1
    return starts[index], (starts[index + 1] if index + 1 < len(starts) else end)


class _Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OneShotSchedule(_Schedule):
    """Prune once to the target after dense training, then fine-tune."""

    kind: Literal["one_shot"] = "one_shot"
    finetune_epochs: int = Field(default=5, ge=0, description="Epochs of fine-tuning after pruning.")

    def plan(self, target_sparsity: float, steps_per_epoch: int) -> PruningPlan:
        return PruningPlan(self.finetune_epochs, (PruningEvent(0, target_sparsity),))


class IterativeSchedule(_Schedule):
    """k rounds of prune + retrain, each pruning the same fraction of the remaining weights.

    With `rewind_epoch` set, the surviving weights are reset after each pruning round to the
    dense run's weights at that epoch (0 = initialisation), as in lottery-ticket work.
    """

    kind: Literal["iterative"] = "iterative"
    rounds: int = Field(default=3, ge=1, description="Number of prune + retrain rounds.")
    retrain_epochs: int = Field(default=2, ge=0, description="Retraining epochs per round.")
    rewind_epoch: int | None = Field(
        default=None,
        ge=0,
        description="Dense epoch to rewind surviving weights to (None: no rewind).",
    )

    def round_fraction(self, target_sparsity: float) -> float:
        """Fraction of the remaining weights pruned in each round."""
        return 1.0 - (1.0 - target_sparsity) ** (1.0 / self.rounds)

    def plan(self, target_sparsity: float, steps_per_epoch: int) -> PruningPlan:
        density_per_round = 1.0 - self.round_fraction(target_sparsity)
        events = tuple(
            PruningEvent(
                step=r * self.retrain_epochs * steps_per_epoch,
                # The last round lands exactly on the target, free of rounding drift.
                target_sparsity=(
                    target_sparsity if r == self.rounds - 1 else 1.0 - density_per_round ** (r + 1)
                ),
                restart=True,
            )
            for r in range(self.rounds)
        )
        return PruningPlan(self.rounds * self.retrain_epochs, events, self.rewind_epoch)


def cubic_sparsity(
    step: int,
    start_step: int,
    num_events: int,
    frequency: int,
    initial: float,
    final: float,
    exponent: float = 3.0,
) -> float:
    """Zhu & Gupta (2017): s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3, clamped to [t0, t0 + n dt]."""
    span = num_events * frequency
    progress = min(max((step - start_step) / span, 0.0), 1.0) if span > 0 else 1.0
    return final + (initial - final) * (1.0 - progress) ** exponent


class GradualSchedule(_Schedule):
    """Sparsity grows from `initial_sparsity` to the target along the cubic curve.

    Masks are recomputed every `frequency_steps` optimizer steps during `prune_epochs`
    (the last event reaches the target exactly), then the model is fine-tuned.
    """

    kind: Literal["gradual"] = "gradual"
    prune_epochs: int = Field(default=5, ge=1, description="Epochs over which sparsity ramps up.")
    frequency_steps: int = Field(default=50, ge=1, description="Optimizer steps between events (dt).")
    initial_sparsity: float = Field(default=0.0, ge=0.0, lt=1.0, description="s_i at the first event.")
    exponent: float = Field(default=3.0, gt=0.0, description="3 is Zhu & Gupta's cubic ramp.")
    finetune_epochs: int = Field(default=3, ge=0, description="Epochs after the last event.")

    def plan(self, target_sparsity: float, steps_per_epoch: int) -> PruningPlan:
        ramp_steps = self.prune_epochs * steps_per_epoch
        # The last event must fall inside the ramp, so dt is shortened if the ramp is short.
        frequency = min(self.frequency_steps, max(ramp_steps - 1, 1))
        num_events = max(1, math.floor((ramp_steps - 1) / frequency))
        events = tuple(
            PruningEvent(
                step=j * frequency,
                target_sparsity=cubic_sparsity(
                    j * frequency,
                    0,
                    num_events,
                    frequency,
                    self.initial_sparsity,
                    target_sparsity,
                    self.exponent,
                ),
            )
            for j in range(num_events + 1)
        )
        return PruningPlan(self.prune_epochs + self.finetune_epochs, events)


class LinearSchedule(_Schedule):
    """Sparsity grows in equal steps, one pruning event at the start of each ramp epoch.

    Event k (k = 1..prune_epochs) comes at the start of pruning-phase epoch k and prunes to
    target·k/prune_epochs, so the last ramp epoch trains at the target; then fine-tuning.
    After one dense epoch, `prune_epochs: E-1` is the moduli reference's schedule (amount
    target·e/(E-1) at the start of epoch e of E).
    """

    kind: Literal["linear"] = "linear"
    prune_epochs: int = Field(default=29, ge=1, description="Epochs over which sparsity ramps up.")
    finetune_epochs: int = Field(default=0, ge=0, description="Epochs after the last event.")

    def plan(self, target_sparsity: float, steps_per_epoch: int) -> PruningPlan:
        events = tuple(
            PruningEvent(
                step=(k - 1) * steps_per_epoch,
                target_sparsity=target_sparsity
                if k == self.prune_epochs
                else target_sparsity * k / self.prune_epochs,
            )
            for k in range(1, self.prune_epochs + 1)
        )
        return PruningPlan(self.prune_epochs + self.finetune_epochs, events)


Schedule = Annotated[
    OneShotSchedule | IterativeSchedule | GradualSchedule | LinearSchedule, Field(discriminator="kind")
]
