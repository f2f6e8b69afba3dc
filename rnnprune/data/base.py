"""What a task hands the trainer: tensors already split, the network around the recurrent
stack, and the objective that scores it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from rnnprune.errors import DataError
from rnnprune.metric_declarations import Metric
from rnnprune.objectives import Classification, Objective

DATA_DIR_ENV = "RNNPRUNE_DATA_DIR"


class TaskParams(BaseModel):
    """Base of every task's typed parameter block (unknown fields are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Split:
    inputs: torch.Tensor  # (examples, time, features), or (examples, time) token ids
    targets: torch.Tensor  # (examples, ...): whatever the task's objective reads

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
class Architecture:
    """What a task fixes about the network around the recurrent stack.

    The defaults are a sequence classifier: dense features in, zero initial state, a biased
    readout of the last step. `vocab_size` puts an embedding (of `input_size` dimensions)
    before the stack, for token inputs. `initial_code` makes the first input step a
    side input: h0 = encoder(initial_code(inputs[:, 0])) with a bias-free linear encoder of
    `initial_code_size` inputs, and the sequence proper is inputs[:, 1:] (path integration
    starts from a known position). `readout: all` reads every step (language models, path
    integration). `init_range` starts the embedding and readout weights uniform in
    ±init_range with a zero readout bias (the word-language-model example's initialisation).
    """

    readout: Literal["last", "all"] = "last"
    vocab_size: int | None = None
    initial_code: nn.Module | None = None
    initial_code_size: int = 0
    bias: bool = True
    init_range: float | None = None


@dataclass(frozen=True)
class TaskData:
    train: Split
    val: Split
    test: Split
    input_size: int
    num_classes: int  # outputs per read-out step (classes, tokens, place cells, 1 for regression)
    objective: Objective = field(default_factory=Classification)
    architecture: Architecture = field(default_factory=Architecture)

    def to(self, device: torch.device) -> TaskData:
        return TaskData(
            self.train.to(device),
            self.val.to(device),
            self.test.to(device),
            self.input_size,
            self.num_classes,
            self.objective,
            self.architecture,
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


def ensure_fits_in_memory(needed_bytes: int, what: str, fix: str) -> None:
    """Fail now if generated data cannot fit in memory, rather than after minutes of
    generation (a worker killed for memory says nothing about why)."""
    try:
        available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: nothing to compare with
        return
    if needed_bytes > available / 2:
        raise DataError(
            f"task.params: {what} need {needed_bytes / 2**30:.1f} GiB, more than half of this "
            f"machine's {available / 2**30:.1f} GiB.\nFix: {fix}"
        )


@dataclass(frozen=True)
class Task:
    """A registered task: its typed parameters, how to check and load its data, and the
    objective `load` hands the trainer (known up front, before any data is read).

    `chance` gives the quality of guessing on this task's data, by objective metric name
    (accuracy 0.1 on ten classes): the hypervolume's reference point. It belongs to the task,
    not the objective, because one objective serves tasks with different chance levels.
    """

    name: str
    params: type[TaskParams]
    check: Callable[[TaskParams, Path, bool], None]
    load: Callable[[TaskParams, Path, bool], TaskData]
    description: str
    objective: type[Objective] = Classification
    chance: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.chance) - set(self.objective.metrics)
        if unknown:
            raise ValueError(
                f"task {self.name}: chance names {sorted(unknown)}, which its objective does not "
                f"report; use one of {list(self.objective.metrics)}"
            )

    def reported_metrics(self) -> tuple[str, ...]:
        """The task's metrics as trials report them every epoch."""
        return tuple(f"val_{name}" for name in self.objective.metrics)

    def declared_metrics(self) -> tuple[Metric, ...]:
        """The objective's metrics as this task reports them: its name and chance levels added."""
        return tuple(
            replace(m, tasks=frozenset({self.name}), reference=self.chance.get(m.name))
            for m in self.objective.declares
        )

    def quality_metric(self) -> Metric:
        """The metric that ranks this task's models (unprefixed: `accuracy`, `error_cm`)."""
        return next(m for m in self.declared_metrics() if m.name == self.objective.quality)
