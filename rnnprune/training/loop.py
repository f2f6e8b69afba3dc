"""The inner loop: optimizer steps with masks re-applied after each, and evaluation.

The loss is the task's objective plus, when the method regularises, its penalty; the loop
knows neither which task nor which method it serves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from rnnprune.data.base import Split
from rnnprune.models.recurrent import RecurrentNet
from rnnprune.objectives import Objective
from rnnprune.regularization import Regularizer


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
    model: nn.Module, settings: OptimizerSettings, regularizer: Regularizer | None = None
) -> torch.optim.Optimizer:
    """The optimizer over the model's parameters and any learnable regularizer state."""
    params: Iterable[nn.Parameter] = list(model.parameters())
    if regularizer is not None:
        params = [*params, *regularizer.parameters()]
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
    model: RecurrentNet,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    settings: OptimizerSettings,
    first_step: int,
    lr_at: Callable[[int], float],
    objective: Objective,
    before_step: Callable[[int], None] | None = None,
    regularizer: Regularizer | None = None,
) -> tuple[dict[str, float], int]:
    """One pass over `batches`; returns (mean training losses, next step index).

    `before_step(step)` runs before each optimizer step (pruning events hook in there).
    The losses are `train_loss` (objective plus penalty, what was minimised) and, with a
    regularizer, `train_task_loss` and `train_penalty` apart.
    """
    model.train()
    task_total, penalty_total, seen, step = 0.0, 0.0, 0, first_step
    for inputs, targets in batches:
        if before_step is not None:
            before_step(step)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        task_loss = objective.loss(model(inputs), targets)
        loss = task_loss
        if regularizer is not None:
            penalty = regularizer.penalty(model)
            loss = task_loss + penalty
            penalty_total += penalty.item() * len(targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        model.apply_masks(optimizer)
        if regularizer is not None:
            regularizer.after_step()
        task_total += task_loss.item() * len(targets)
        seen += len(targets)
        step += 1
    seen = max(seen, 1)
    losses = {"train_loss": (task_total + penalty_total) / seen}
    if regularizer is not None:
        losses.update(train_task_loss=task_total / seen, train_penalty=penalty_total / seen)
    return losses, step


# Outputs held at once while evaluating (128 MiB of float32 logits): a language model reading
# out 35 steps of a 33k-word vocabulary would need 4.8 GB for a batch of 1,024.
EVAL_OUTPUTS = 2**25


def eval_batch_size(model: RecurrentNet, split: Split) -> int:
    """Examples per evaluation batch: up to 1,024, fewer when each example has many outputs."""
    steps = split.inputs.shape[1] if model.architecture.readout == "all" else 1
    return max(1, min(1024, EVAL_OUTPUTS // (steps * model.readout.out_features)))


@torch.no_grad()
def evaluate(model: RecurrentNet, split: Split, objective: Objective) -> dict[str, float]:
    """The objective's metrics over a whole split (`loss` and the task's quality metric)."""
    model.eval()
    totals: dict[str, float] = {}
    for inputs, targets in split.batches(eval_batch_size(model, split)):
        for key, value in objective.totals(model(inputs), targets).items():
            totals[key] = totals.get(key, 0.0) + value
    return objective.summarise(totals)
