"""The inner loop: optimizer steps with masks re-applied after each, and evaluation."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from rnnprune.data.base import Split
from rnnprune.models.recurrent import RecurrentClassifier


@dataclass(frozen=True)
class OptimizerSettings:
    name: str
    lr: float
    momentum: float
    weight_decay: float
    lr_schedule: str
    grad_clip: float | None


def make_optimizer(model: nn.Module, settings: OptimizerSettings) -> torch.optim.Optimizer:
    params = model.parameters()
    if settings.name == "adam":
        return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.name == "adamw":
        return torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    return torch.optim.SGD(
        params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
    )


def learning_rate(settings: OptimizerSettings, step: int, start: int, end: int) -> float:
    """Learning rate at `step` of a cycle [start, end): constant or cosine to zero."""
    if settings.lr_schedule == "constant" or end <= start:
        return settings.lr
    progress = (step - start) / (end - start)
    return 0.5 * settings.lr * (1.0 + math.cos(math.pi * progress))


def train_steps(
    model: RecurrentClassifier,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    settings: OptimizerSettings,
    first_step: int,
    lr_at: Callable[[int], float],
    before_step: Callable[[int], None] | None = None,
) -> tuple[float, int]:
    """One pass over `batches`; returns (mean training loss, next step index).

    `before_step(step)` runs before each optimizer step (pruning events hook in there).
    """
    model.train()
    total_loss, seen, step = 0.0, 0, first_step
    for inputs, targets in batches:
        if before_step is not None:
            before_step(step)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        loss = F.cross_entropy(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        model.apply_masks(optimizer)
        total_loss += loss.item() * len(targets)
        seen += len(targets)
        step += 1
    return total_loss / max(seen, 1), step


@torch.no_grad()
def evaluate(model: RecurrentClassifier, split: Split, batch_size: int = 1024) -> dict[str, float]:
    model.eval()
    total_loss, correct = 0.0, 0
    for inputs, targets in split.batches(batch_size):
        logits = model(inputs)
        total_loss += F.cross_entropy(logits, targets, reduction="sum").item()
        correct += int((logits.argmax(dim=1) == targets).sum())
    return {"loss": total_loss / len(split), "accuracy": correct / len(split)}
