"""The inner loop: optimizer steps with masks re-applied after each, and evaluation.

The loss is the task's objective plus the penalties of the phase's training hooks; the loop
knows neither which task nor which method it serves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from rnnprune.data.base import Split, TaskData
from rnnprune.models.masking import MaskedWeights
from rnnprune.objectives import Objective

if TYPE_CHECKING:  # hooks are only called here; their module builds on this one's settings
    from rnnprune.training.hooks import TrainingHook


@dataclass(frozen=True)
class OptimizerSettings:
    name: str
    lr: float
    momentum: float
    weight_decay: float
    lr_schedule: str
    grad_clip: float | None
    plateau_factor: float = 0.25


@dataclass
class Plateau:
    """Reduce-on-plateau state of one phase: the lr multiplier and the best validation loss.

    With `lr_schedule: plateau`, every epoch whose validation loss does not beat the phase's
    best multiplies the lr by `factor` (PyTorch's word-language-model example quarters it).
    """

    factor: float
    scale: float = 1.0
    best: float = math.inf

    def update(self, settings: OptimizerSettings, val_loss: float) -> None:
        if settings.lr_schedule != "plateau":
            return
        if val_loss < self.best:
            self.best = val_loss
        else:
            self.scale *= self.factor


def make_optimizer(
    model: nn.Module, settings: OptimizerSettings, hooks: Sequence[TrainingHook] = ()
) -> torch.optim.Optimizer:
    """The optimizer over the model's parameters and any learnable hook state (a trainable
    regularizer's embedding)."""
    params: Iterable[nn.Parameter] = [*model.parameters(), *(p for hook in hooks for p in hook.parameters())]
    if settings.name == "adam":
        return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.name == "adamw":
        return torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    return torch.optim.SGD(
        params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
    )


def learning_rate(settings: OptimizerSettings, step: int, start: int, end: int) -> float:
    """Learning rate at `step` of a cycle [start, end): constant or cosine to zero (plateau's
    multiplier is applied by the phase that tracks it)."""
    if settings.lr_schedule in ("constant", "plateau") or end <= start:
        return settings.lr
    progress = (step - start) / (end - start)
    return 0.5 * settings.lr * (1.0 + math.cos(math.pi * progress))


def train_steps(
    model: MaskedWeights,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    settings: OptimizerSettings,
    first_step: int,
    lr_at: Callable[[int], float],
    objective: Objective,
    hooks: Sequence[TrainingHook] = (),
) -> dict[str, float]:
    """One pass over `batches`, steps numbered from `first_step`; returns the mean losses.

    The losses are `train_loss` (objective plus penalties, what was minimised) and, when a
    hook penalises, `train_task_loss` and `train_penalty` apart.
    """
    model.train()
    task_total, penalty_total, seen, step, penalised = 0.0, 0.0, 0, first_step, False
    for inputs, targets in batches:
        # 1. hooks act on the weights (mask events) before the step's lr and forward pass
        for hook in hooks:
            hook.before_step(step, model, optimizer)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        # 2. the loss: the task's, plus every hook's penalty
        task_loss = objective.loss(model(inputs), targets)
        loss = task_loss
        penalties = [penalty for hook in hooks if (penalty := hook.penalty(model)) is not None]
        if penalties:
            penalty = penalties[0]
            for more in penalties[1:]:
                penalty = penalty + more
            loss = task_loss + penalty
            penalty_total += penalty.item() * len(targets)
            penalised = True
        # 3. dense gradients (hooks read them before clipping), the step, masks re-applied
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for hook in hooks:
            hook.after_backward(model)
        if settings.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        model.apply_masks(optimizer)
        for hook in hooks:
            hook.after_step(model, optimizer)
        task_total += task_loss.item() * len(targets)
        seen += len(targets)
        step += 1
    seen = max(seen, 1)
    losses = {"train_loss": (task_total + penalty_total) / seen}
    if penalised:
        losses.update(train_task_loss=task_total / seen, train_penalty=penalty_total / seen)
    return losses


# Outputs held at once while evaluating (128 MiB of float32 logits): a language model reading
# out 35 steps of a 33k-word vocabulary would need 4.8 GB for a batch of 1,024.
EVAL_OUTPUTS = 2**25


def eval_batch_size(model: nn.Module, split: Split) -> int:
    """Examples per evaluation batch: up to 1,024, fewer when each example has many outputs
    (counted on one example: the model alone knows what it reads out)."""
    if not len(split):
        return 1
    outputs = max(1, model(split.inputs[:1]).numel())
    return max(1, min(1024, EVAL_OUTPUTS // outputs))


@torch.no_grad()
def evaluate(model: MaskedWeights, split: Split, objective: Objective) -> dict[str, float]:
    """The objective's metrics over a whole split (`loss` and the task's quality metric)."""
    model.eval()
    totals: dict[str, float] = {}
    for inputs, targets in split.batches(eval_batch_size(model, split)):
        for key, value in objective.totals(model(inputs), targets).items():
            totals[key] = totals.get(key, 0.0) + value
    return objective.summarise(totals)


def evaluate_splits(model: MaskedWeights, data: TaskData, prefix: str = "") -> dict[str, float]:
    """`{prefix}val_<metric>` and `{prefix}test_<metric>` of `model`."""
    return {
        f"{prefix}{name}_{key}": value
        for name, split in (("val", data.val), ("test", data.test))
        for key, value in evaluate(model, split, data.objective).items()
    }
