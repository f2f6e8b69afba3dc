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

from rnnprune.models.masking import MASK_SUFFIX, MaskedWeights
from rnnprune.pruning import registry as method_registry
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
