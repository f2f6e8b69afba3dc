"""Training hooks: the one interface through which a method acts while a phase trains.

The engine calls every hook of a phase at fixed points of each optimizer step and keeps
their state in the phase checkpoint. Mask events (the pruning schedule) and a method's
regularizer are hooks; a dynamic-sparse-training method (regrowth from dense gradients in
`after_backward`) or a structured penalty is another hook, not another loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from rnnprune.errors import PluginError
from rnnprune.models.masking import MASK_SUFFIX, MaskedWeights
from rnnprune.pruning import registry as method_registry
from rnnprune.pruning.base import PruningResult, check_masks
from rnnprune.regularization import Regularizer
from rnnprune.training.plan import MaskSchedule
from rnnprune.training.state import generator


class TrainingHook:
    """Does nothing at every point; a hook overrides the points where it acts."""

    def parameters(self) -> Iterator[nn.Parameter]:
        """Learnable state the phase's optimizer trains with the model."""
        return iter(())

    def penalty(self, model: MaskedWeights) -> torch.Tensor | None:
        """A scalar added to the task loss at this step (None: no penalty)."""
        return None

    def before_step(self, step: int, model: MaskedWeights, optimizer: torch.optim.Optimizer) -> None:
        """Before optimizer step `step` (counted from the phase start) and its forward pass;
        also once with `step` = the phase's step count, after its last step."""

    def after_backward(self, model: MaskedWeights) -> None:
        """After backward, before clipping: the parameters' `.grad` are dense, pruned weights too."""

    def after_step(self, model: MaskedWeights, optimizer: torch.optim.Optimizer) -> None:
        """After the optimizer step, once the masks are re-applied."""

    def metrics(self) -> dict[str, float]:
        """Diagnostics every epoch reports (and the final metrics, of the trial's last ones)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned (a resumed phase continues exactly)."""


class PenaltyHook(TrainingHook):
    """A method's regularizer: its penalty every step, its projection after every step."""

    def __init__(self, regularizer: Regularizer) -> None:
        self.regularizer = regularizer

    def parameters(self) -> Iterator[nn.Parameter]:
        return self.regularizer.parameters()

    def penalty(self, model: MaskedWeights) -> torch.Tensor:
        return self.regularizer.penalty(model)

    def after_step(self, model: MaskedWeights, optimizer: torch.optim.Optimizer) -> None:
        self.regularizer.after_step()

    def state_dict(self) -> dict[str, Any]:
        return self.regularizer.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.regularizer.load_state_dict(state)


class MaskEventsHook(TrainingHook):
    """The pruning schedule: runs the method at each event's step and reports its diagnostics."""

    def __init__(
        self,
        schedule: MaskSchedule,
        seed: int,
        rewind_state: Callable[[int], Mapping[str, torch.Tensor]],
    ) -> None:
        self.schedule, self.seed, self.rewind_state = schedule, seed, rewind_state
        self.method = method_registry.get(schedule.method)
        self.next_event = 0
        self.diagnostics: dict[str, float] = {}  # of the latest event

    def before_step(self, step: int, model: MaskedWeights, optimizer: torch.optim.Optimizer) -> None:
        """Apply every event scheduled at or before `step` that has not run yet."""
        events = self.schedule.events
        while self.next_event < len(events) and events[self.next_event].step <= step:
            event = events[self.next_event]
            result = self.method(
                model.prunable_weights(self.schedule.scope),
                event.target_sparsity,
                self.schedule.params,
                generator(self.seed, "prune", self.next_event),
            )
            model.set_masks(result.masks)  # nested in the current masks by the method's call
            self.diagnostics = {f"prune.{key}": value for key, value in result.diagnostics.items()}
            if event.restart:  # a new round
                if self.schedule.rewind_epoch is not None:
                    kept = {name + MASK_SUFFIX: mask for name, mask in model.masks().items()}
                    model.load_state_dict(
                        {**self.rewind_state(self.schedule.rewind_epoch), **kept}, strict=False
                    )
                # Forgetting the moments is a fresh optimizer: the lr is set before every step.
                optimizer.state.clear()
            self.next_event += 1

    def metrics(self) -> dict[str, float]:
        return self.diagnostics

    def state_dict(self) -> dict[str, Any]:
        return {"next_event": self.next_event, "diagnostics": self.diagnostics}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.next_event, self.diagnostics = state["next_event"], dict(state["diagnostics"])


class MaskUpdateHook(TrainingHook):
    """A dynamic-sparse-training method's mask updates between the schedule's events.

    At each step the method says is due, the update reads the dense gradients in
    `after_backward` (before clipping and the step) and replaces the pool's masks, update
    at step t drawing from `generator(seed, "mask-update", t)`. At a step where a schedule
    event ran, the event's masks stand and no update runs, so events and updates interleave
    the same way in every run. The pool keeps its number of kept weights at every update.
    """

    def __init__(self, schedule: MaskSchedule, seed: int, phase_steps: int) -> None:
        self.schedule, self.seed, self.phase_steps = schedule, seed, phase_steps
        dynamic = method_registry.get(schedule.method).dynamic
        if dynamic is None:
            raise ValueError(f"method {schedule.method!r} has no mask updates")
        self.dynamic = dynamic
        self.event_steps = {event.step for event in schedule.events}
        self.step = 0
        self.updates = 0
        self.diagnostics: dict[str, float] = {}  # of the latest update

    def before_step(self, step: int, model: MaskedWeights, optimizer: torch.optim.Optimizer) -> None:
        self.step = step

    def after_backward(self, model: MaskedWeights) -> None:
        step, params = self.step, self.schedule.params
        if step in self.event_steps or not self.dynamic.due(params, step, self.phase_steps):
            return
        weights = model.prunable_weights(self.schedule.scope)
        outcome = self.dynamic.update(
            weights, params, step, self.phase_steps, generator(self.seed, "mask-update", step)
        )
        result = outcome if isinstance(outcome, PruningResult) else PruningResult(outcome)
        check_masks(self.schedule.method, result.masks, weights)
        kept_before = sum(int(w.mask.sum()) for w in weights)
        kept_after = sum(int(result.masks[w.name].sum()) for w in weights)
        if kept_after != kept_before:
            raise PluginError(
                f"pruning.method: {self.schedule.method} updated the masks at step {step} to keep "
                f"{kept_after} weights of the pool instead of {kept_before}; an update must regrow "
                "as many weights as it drops"
            )
        model.set_masks(result.masks)  # regrown weights were zero, and so were their moments
        self.updates += 1
        self.diagnostics = {f"update.{key}": value for key, value in result.diagnostics.items()}

    def metrics(self) -> dict[str, float]:
        return {"mask_updates": float(self.updates), **self.diagnostics}

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "diagnostics": self.diagnostics}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.updates, self.diagnostics = state["updates"], dict(state["diagnostics"])
