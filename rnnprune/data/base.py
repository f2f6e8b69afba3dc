"""What a task hands the trainer: tensors already split, and the shapes to build a model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict

DATA_DIR_ENV = "RNNPRUNE_DATA_DIR"


class TaskParams(BaseModel):
    """Base of every task's typed parameter block (unknown fields are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Split:
    inputs: torch.Tensor  # (examples, time, features)
    targets: torch.Tensor  # (examples,)

    def __len__(self) -> int:
        return len(self.targets)

    def to(self, device: torch.device) -> Split:
        return Split(self.inputs.to(device), self.targets.to(device))

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Mini-batches in order, or shuffled by `generator` (deterministic per seed)."""
        if generator is None:
            order = None
        else:
            order = torch.randperm(len(self), generator=generator).to(self.targets.device)
        for start in range(0, len(self), batch_size):
            if order is None:
                yield (
                    self.inputs[start : start + batch_size],
                    self.targets[start : start + batch_size],
                )
            else:
                index = order[start : start + batch_size]
                yield self.inputs[index], self.targets[index]


@dataclass(frozen=True)
class TaskData:
    train: Split
    val: Split
    test: Split
    input_size: int
    num_classes: int

    def to(self, device: torch.device) -> TaskData:
        return TaskData(
            self.train.to(device),
            self.val.to(device),
            self.test.to(device),
            self.input_size,
            self.num_classes,
        )


def default_data_root() -> Path:
    """Where data lives when neither the config nor RNNPRUNE_DATA_DIR says."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "rnnprune" / "data"


def resolve_data_root(configured: Path | None) -> Path:
    """The config's `task.data_dir`, else $RNNPRUNE_DATA_DIR, else the user cache."""
    if configured is not None:
        return Path(configured).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    return default_data_root()


def carve_validation(
    inputs: torch.Tensor, targets: torch.Tensor, fraction: float, seed: int
) -> tuple[Split, Split]:
    """Split a training set into (train, validation) by a seeded permutation."""
    order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))
    num_val = round(fraction * len(targets))
    val, train = order[:num_val], order[num_val:]
    return Split(inputs[train], targets[train]), Split(inputs[val], targets[val])
