"""The adding problem: a long-memory regression benchmark for recurrent networks.

Each step carries a value u ~ U(0, 1) and a marker; exactly two steps, at distinct random
positions, are marked, and the target is the sum of their values. Predicting the mean
(1.0) gives an MSE of Var(u1 + u2) = 1/6, the baseline a model must beat.

The reference draws fresh numbers on every access (infinite data). Here train, validation
and test are finite pools drawn from `data_seed`, shared by all trials, so configurations
are compared on the same examples and the test set is fixed (the reference reports only
the training MSE).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from rnnprune.data.base import Architecture, Split, Task, TaskData, TaskParams, ensure_fits_in_memory
from rnnprune.objectives import MeanSquaredError

STREAMS = {"train": 0, "val": 1, "test": 2}


class AddingParams(TaskParams):
    sequence_length: int = Field(default=50, ge=2, description="Steps T per sequence (two are marked).")
    train_examples: int = Field(
        default=100_000,
        ge=1,
        description="Size of the seeded training pool (the reference draws fresh data each access).",
    )
    val_examples: int = Field(default=10_000, ge=1, description="Validation sequences.")
    test_examples: int = Field(default=10_000, ge=1, description="Fixed test sequences.")
    data_seed: int = Field(
        default=0, description="Seed of the train/val/test streams (shared by all trials)."
    )


def generate_sequences(count: int, sequence_length: int, rng: np.random.Generator) -> Split:
    """inputs (count, T, 2): (value, marker) per step; targets (count,): the marked sum."""
    values = rng.random((count, sequence_length))
    # The two smallest of T independent uniforms sit at two distinct, uniformly random steps.
    marked = rng.random((count, sequence_length)).argsort(axis=1)[:, :2]
    markers = np.zeros((count, sequence_length))
    np.put_along_axis(markers, marked, 1.0, axis=1)
    targets = np.take_along_axis(values, marked, axis=1).sum(axis=1)
    inputs = np.stack([values, markers], axis=-1)
    return Split(torch.from_numpy(inputs.astype(np.float32)), torch.from_numpy(targets.astype(np.float32)))


def _sizes(params: AddingParams) -> dict[str, int]:
    return {"train": params.train_examples, "val": params.val_examples, "test": params.test_examples}


def check(params: AddingParams, root: Path, download: bool) -> None:
    """Nothing to read: only the size of what `load` would generate can be wrong."""
    examples = sum(_sizes(params).values())
    ensure_fits_in_memory(
        examples * (2 * params.sequence_length + 1) * 4,  # float32 inputs and targets
        f"{examples:,} sequences of sequence_length={params.sequence_length}",
        "lower task.params.train_examples (or val_examples, test_examples, sequence_length).",
    )


def load(params: AddingParams, root: Path, download: bool) -> TaskData:
    splits = {
        name: generate_sequences(
            count, params.sequence_length, np.random.default_rng([params.data_seed, STREAMS[name]])
        )
        for name, count in _sizes(params).items()
    }
    return TaskData(
        splits["train"],
        splits["val"],
        splits["test"],
        input_size=2,
        num_classes=1,
        objective=MeanSquaredError(),
        architecture=Architecture(readout="last"),
    )


TASK = Task(
    name="adding",
    params=AddingParams,
    check=check,  # type: ignore[arg-type]
    load=load,  # type: ignore[arg-type]
    description="The adding problem: sum the two marked values of a sequence (MSE; baseline 1/6).",
    objective=MeanSquaredError,
    chance={"mse": 1.0 / 6.0},  # always predicting 1.0, the mean of the sum
)
