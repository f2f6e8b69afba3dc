"""Path integration in a square box (Sorscher et al.'s grid-cell task, as used by the moduli
regularisation paper): from a known start and the velocity at every step, say where you are.

The network reads the start position once, as a place-cell code encoded into h0, then the
T velocity vectors; at every step it outputs logits over the place cells, trained against
the place-cell code of the true position and scored by the distance between the true
position and the one decoded from its three strongest logits.

The reference draws a fresh batch of 200 trajectories at every optimizer step (infinite
data). Here the training set is a finite pool (`train_trajectories`, 200,000 by default:
1,000 steps of 200), so that the trainer's epochs, shuffling and caching work as for every
other task; val and test are 1,000 trajectories each (the reference's five validation
batches of 200). All three come from `data_seed`, which every trial shares, so every
configuration sees the same trajectories (in the reference the global numpy seed set for
the place cells fixes the stream for all runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from rnnprune.data.base import Architecture, Split, Task, TaskData, TaskParams, ensure_fits_in_memory
from rnnprune.metric_declarations import Metric
from rnnprune.objectives import LOSS, DeclaredMetrics

TIME_STEP = 0.02  # seconds per step
TURN_SD = 11.52  # rad/s: standard deviation of the random turning velocity
SPEED_SCALE = 0.13 * 2 * math.pi  # m/s: scale of the Rayleigh-distributed forward speed
BORDER = 0.03  # m: closer than this to a wall, and heading at it, the animal turns away
WALL_SLOWDOWN = 0.25  # speed factor while turning away from a wall
DECODING_CELLS = 3  # the position read out is the mean centre of this many top logits
STREAMS = {"train": 0, "val": 1, "test": 2}
ERROR_CM = Metric("error_cm", "minimize", "position error (cm)")


class NavigationParams(TaskParams):
    sequence_length: int = Field(default=50, ge=1, description="Velocity steps T per trajectory.")
    place_cells: int = Field(
        default=512, ge=DECODING_CELLS, description="Place cells Np: the output and the initial-state code."
    )
    place_cell_width: float = Field(default=0.12, gt=0.0, description="Place-cell tuning width sigma (m).")
    surround_scale: float = Field(
        default=2.0,
        gt=1.0,
        description="Surround variance over centre variance in the difference-of-Gaussians tuning.",
    )
    box_size: float = Field(
        default=2.2, gt=2 * BORDER, description="Side of the square box centred at 0 (m)."
    )
    place_cell_seed: int = Field(
        default=0, description="Seed of the place-cell centres (0 gives the reference's layout)."
    )
    train_trajectories: int = Field(
        default=200_000,
        ge=1,
        description="Size of the seeded training pool (the reference draws a fresh batch per step).",
    )
    val_trajectories: int = Field(default=1000, ge=1, description="Validation trajectories.")
    test_trajectories: int = Field(default=1000, ge=1, description="Test trajectories.")
    data_seed: int = Field(
        default=0, description="Seed of the train/val/test trajectory streams (shared by all trials)."
    )


class PlaceCells(nn.Module):
    """Positions (..., 2) -> difference-of-Gaussians place-cell codes (..., Np) summing to 1.

    The centres are drawn by numpy's legacy generator so that seed 0 reproduces the
    reference's layout (it calls `np.random.seed(0)` then draws x and y). They are a
    persistent buffer: a saved model carries the code its encoder was trained on.
    """

    centres: torch.Tensor

    def __init__(self, count: int, width: float, surround_scale: float, box_size: float, seed: int) -> None:
        super().__init__()
        legacy = np.random.RandomState(seed)
        half = box_size / 2
        x, y = legacy.uniform(-half, half, count), legacy.uniform(-half, half, count)
        self.register_buffer("centres", torch.tensor(np.stack([x, y], axis=1), dtype=torch.float32))
        self.width = width
        self.surround_scale = surround_scale

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        # |x - c|^2 expanded, so no (..., Np, 2) difference tensor is built for long batches.
        squared = (
            positions.square().sum(-1, keepdim=True)
            - 2 * positions @ self.centres.T
            + self.centres.square().sum(-1)
        )
        variance = self.width**2
        code = F.softmax(-squared / (2 * variance), dim=-1) - F.softmax(
            -squared / (2 * self.surround_scale * variance), dim=-1
        )
        code = code + code.min(dim=-1, keepdim=True).values.abs()
        return code / code.sum(dim=-1, keepdim=True)

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits (..., Np) -> positions (..., 2): the mean centre of the strongest cells."""
        return self.centres[logits.topk(DECODING_CELLS, dim=-1).indices].mean(dim=-2)


@dataclass(frozen=True, eq=False)
class PlaceCellDecoding(DeclaredMetrics):
    """Soft-label cross-entropy against the true position's place-cell code; quality is the
    decoding error in cm, averaged over every (trajectory, step) as the reference reports it.

    Targets are true positions (N, T, 2); outputs are logits (N, T, Np). The place cells
    move to the outputs' device on first use (this objective owns its copy, so moving it
    never touches the model's).
    """

    place_cells: PlaceCells
    declares: ClassVar[tuple[Metric, ...]] = (LOSS, ERROR_CM)
    quality_metric: ClassVar[Metric] = ERROR_CM

    def _cells(self, device: torch.device) -> PlaceCells:
        if self.place_cells.centres.device != device:
            self.place_cells.to(device)
        return self.place_cells

    def _cross_entropy(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        labels = self._cells(outputs.device)(targets)
        return -(labels * F.log_softmax(outputs, dim=-1)).sum(dim=-1)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._cross_entropy(outputs, targets).mean()

    def totals(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        decoded = self._cells(outputs.device).decode(outputs)
        return {
            "loss": self._cross_entropy(outputs, targets).sum().item(),
            "distance_cm": (100 * (decoded - targets).norm(dim=-1)).sum().item(),
            "count": float(targets.shape[:-1].numel()),
        }

    def summarise(self, totals: dict[str, float]) -> dict[str, float]:
        count = max(totals["count"], 1.0)
        return {"loss": totals["loss"] / count, "error_cm": totals["distance_cm"] / count}


def wall_turn(position: np.ndarray, heading: np.ndarray, half: float) -> tuple[np.ndarray, np.ndarray]:
    """(near_wall, turn) for positions (N, 2) and headings (N,).

    Near a wall (closer than BORDER) and heading at it (within 90 degrees of its outward
    normal), the animal turns by sign(a)(pi/2 - |a|), a being the heading relative to that
    normal, so that it ends up running along the wall.
    """
    distances = np.stack(  # to the walls whose outward normals point at 0, 90, 180, 270 degrees
        [half - position[:, 0], half - position[:, 1], half + position[:, 0], half + position[:, 1]]
    )
    nearest = distances.argmin(axis=0)
    relative = np.mod(heading - nearest * (math.pi / 2) + math.pi, 2 * math.pi) - math.pi
    near_wall = (distances.min(axis=0) < BORDER) & (np.abs(relative) < math.pi / 2)
    turn = np.where(near_wall, np.sign(relative) * (math.pi / 2 - np.abs(relative)), 0.0)
    return near_wall, turn


def generate_trajectories(
    count: int, sequence_length: int, box_size: float, rng: np.random.Generator
) -> Split:
    """`count` random walks of T+2 positions, as a Split.

    inputs (count, T+1, 2): the start (position 1, in m) then the velocity steps 1..T
    (speed * dt * (cos h, sin h), in m per step); targets (count, T, 2): positions 2..T+1.
    Vectorised over trajectories, looping over time, in float64 so the positions are the
    exact running sums of the steps before rounding to float32.
    """
    half = box_size / 2
    position = rng.uniform(-half, half, size=(count, 2))
    heading = rng.uniform(0.0, 2 * math.pi, size=count)
    inputs = np.empty((count, sequence_length + 1, 2), dtype=np.float32)
    targets = np.empty((count, sequence_length, 2), dtype=np.float32)
    for step in range(sequence_length + 1):  # step 0 leads from position 0 to position 1
        near_wall, turn = wall_turn(position, heading, half)
        speed = rng.rayleigh(SPEED_SCALE, size=count)
        distance = np.where(near_wall, WALL_SLOWDOWN * speed, speed) * TIME_STEP
        velocity = distance[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)
        position = position + velocity
        if step == 0:
            inputs[:, 0] = position
        else:
            inputs[:, step] = velocity
            targets[:, step - 1] = position
        heading = heading + turn + rng.normal(0.0, TURN_SD, size=count) * TIME_STEP
    return Split(torch.from_numpy(inputs), torch.from_numpy(targets))


def _sizes(params: NavigationParams) -> dict[str, int]:
    return {
        "train": params.train_trajectories,
        "val": params.val_trajectories,
        "test": params.test_trajectories,
    }


def check(params: NavigationParams, root: Path, download: bool) -> None:
    """Nothing to read: only the size of what `load` would generate can be wrong."""
    trajectories = sum(_sizes(params).values())
    ensure_fits_in_memory(
        trajectories * (2 * params.sequence_length + 1) * 2 * 4,  # float32 inputs and targets
        f"{trajectories:,} trajectories of sequence_length={params.sequence_length}",
        "lower task.params.train_trajectories (or val_trajectories, test_trajectories, sequence_length).",
    )


def load(params: NavigationParams, root: Path, download: bool) -> TaskData:
    splits = {
        name: generate_trajectories(
            count,
            params.sequence_length,
            params.box_size,
            np.random.default_rng([params.data_seed, STREAMS[name]]),
        )
        for name, count in _sizes(params).items()
    }

    def place_cells() -> PlaceCells:
        return PlaceCells(
            params.place_cells,
            params.place_cell_width,
            params.surround_scale,
            params.box_size,
            params.place_cell_seed,
        )

    return TaskData(
        splits["train"],
        splits["val"],
        splits["test"],
        input_size=2,
        num_classes=params.place_cells,
        objective=PlaceCellDecoding(place_cells()),
        architecture=Architecture(
            readout="all", initial_code=place_cells(), initial_code_size=params.place_cells, bias=False
        ),
    )


TASK = Task(
    name="navigation",
    params=NavigationParams,
    check=check,  # type: ignore[arg-type]
    load=load,  # type: ignore[arg-type]
    description="Path integration in a 2.2 m box: velocities in, place-cell logits out at every step.",
    objective=PlaceCellDecoding,
)
