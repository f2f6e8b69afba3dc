"""A task from outside the package, with a quality metric no built-in task reports: F1 of a
binary detector. Trial configs name it by reference (`task.name: plugin_tasks:TASK`); nothing
in rnnprune knows it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import torch
from pydantic import Field
from torch.nn import functional as F

from rnnprune.data.base import Split, Task, TaskData, TaskParams
from rnnprune.metric_declarations import Metric
from rnnprune.objectives import LOSS, DeclaredMetrics

F1 = Metric("f1", "maximize", "F1 score")


@dataclass(frozen=True)
class DetectionF1(DeclaredMetrics):
    """Cross-entropy over two classes; F1 of the positive class."""

    declares: ClassVar[tuple[Metric, ...]] = (LOSS, F1)
    quality_metric: ClassVar[Metric] = F1

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets)

    def totals(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        predicted = outputs.argmax(dim=-1)
        return {
            "loss": F.cross_entropy(outputs, targets, reduction="sum").item(),
            "true_positive": float(((predicted == 1) & (targets == 1)).sum()),
            "predicted_positive": float((predicted == 1).sum()),
            "positive": float((targets == 1).sum()),
            "count": float(len(targets)),
        }

    def summarise(self, totals: dict[str, float]) -> dict[str, float]:
        precision_and_recall = totals["predicted_positive"] + totals["positive"]
        f1 = 2 * totals["true_positive"] / precision_and_recall if precision_and_recall else 0.0
        return {"loss": totals["loss"] / max(totals["count"], 1.0), "f1": f1}


class DetectionParams(TaskParams):
    examples: int = Field(default=96, ge=8, description="Sequences per split.")


def _split(examples: int, seed: int) -> Split:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(examples, 6, 3, generator=generator)
    return Split(inputs, (inputs[:, :, 0].sum(dim=1) > 0).long())


def check(params: DetectionParams, root: Path, download: bool) -> None:
    """Generated data: nothing to check."""


def load(params: DetectionParams, root: Path, download: bool) -> TaskData:
    splits = [_split(params.examples, seed) for seed in (0, 1, 2)]
    return TaskData(*splits, input_size=3, num_classes=2, objective=DetectionF1())


TASK = Task(
    name="detection_f1",
    params=DetectionParams,
    check=check,  # type: ignore[arg-type]
    load=load,  # type: ignore[arg-type]
    description="Detect a positive running sum (F1; chance 0.5).",
    objective=DetectionF1,
    chance={"f1": 0.5},
)


def _load_fails(params: DetectionParams, root: Path, download: bool) -> TaskData:
    raise KeyError("column 'y' not found in the user's CSV")


FAILING_LOADER = replace(TASK, name="failing_loader", load=_load_fails)  # type: ignore[arg-type]
