"""What a task optimises and how it scores a model: the loss, the metrics, the quality.

Every task hands the trainer one `Objective`. The trainer never knows whether it is
classifying digits, regressing a sum or decoding a position: it minimises `loss`, sums
`totals` over evaluation batches and turns them into metrics with `summarise`. Metric names
are reported as `val_<name>` / `test_<name>`.

Each objective declares its metrics as catalogue values (`declares`: name, direction, label),
and which one ranks models (`quality_metric`: Pareto fronts, schedulers, picks). `quality`,
`maximize` and `metrics` are derived from those declarations, never written twice. A new
objective with a new quality metric needs nothing else: `rnnprune.catalogue` reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch.nn import functional as F

from rnnprune.metric_declarations import Metric

LOSS = Metric("loss", "minimize", "loss")
ACCURACY = Metric("accuracy", "maximize", "accuracy")
MSE = Metric("mse", "minimize", "MSE")
PERPLEXITY = Metric("perplexity", "minimize", "perplexity")


class Objective(Protocol):
    # Every metric `summarise` returns: known before any data is loaded, so a sweep spec can
    # be checked against what its trials will report.
    declares: ClassVar[tuple[Metric, ...]]
    quality_metric: ClassVar[Metric]
    quality: ClassVar[str]
    maximize: ClassVar[bool]
    metrics: ClassVar[tuple[str, ...]]

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean loss of a batch (what the optimizer minimises, penalties aside)."""
        ...

    def totals(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Sums over a batch, added up across batches (`count` is the normaliser)."""
        ...

    def summarise(self, totals: dict[str, float]) -> dict[str, float]:
        """Metrics from summed totals; always holds `loss` and `quality`."""
        ...


class DeclaredMetrics:
    """Base of an objective: set `declares` and `quality_metric`; the names follow from them."""

    declares: ClassVar[tuple[Metric, ...]]
    quality_metric: ClassVar[Metric]
    quality: ClassVar[str]
    maximize: ClassVar[bool]
    metrics: ClassVar[tuple[str, ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.quality_metric not in cls.declares:
            raise TypeError(f"{cls.__name__}: quality_metric {cls.quality_metric.name!r} is not in declares")
        cls.quality = cls.quality_metric.name
        cls.maximize = cls.quality_metric.maximize
        cls.metrics = tuple(m.name for m in cls.declares)


@dataclass(frozen=True)
class Classification(DeclaredMetrics):
    """Cross-entropy on the readout of the last step; top-1 accuracy."""

    declares: ClassVar[tuple[Metric, ...]] = (LOSS, ACCURACY)
    quality_metric: ClassVar[Metric] = ACCURACY

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets)

    def totals(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return {
            "loss": F.cross_entropy(outputs, targets, reduction="sum").item(),
            "correct": float((outputs.argmax(dim=-1) == targets).sum()),
            "count": float(len(targets)),
        }

    def summarise(self, totals: dict[str, float]) -> dict[str, float]:
        count = max(totals["count"], 1.0)
        return {"loss": totals["loss"] / count, "accuracy": totals["correct"] / count}


@dataclass(frozen=True)
class MeanSquaredError(DeclaredMetrics):
    """Regression of one value per sequence (the adding problem); MSE is loss and quality."""

    declares: ClassVar[tuple[Metric, ...]] = (LOSS, MSE)
    quality_metric: ClassVar[Metric] = MSE

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs.reshape(targets.shape), targets)

    def totals(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        squared = F.mse_loss(outputs.reshape(targets.shape), targets, reduction="sum").item()
        return {"squared_error": squared, "count": float(targets.numel())}

    def summarise(self, totals: dict[str, float]) -> dict[str, float]:
        mse = totals["squared_error"] / max(totals["count"], 1.0)
        return {"loss": mse, "mse": mse}


@dataclass(frozen=True)
class LanguageModelling(DeclaredMetrics):
    """Next-token prediction at every step: token-averaged NLL, perplexity and top-1 accuracy.

    Accuracy is correct predictions over predicted tokens (the reference code divided by the
    length of the last chunk instead, which scales it by batch/bptt; not reproduced).
    """

    declares: ClassVar[tuple[Metric, ...]] = (LOSS, PERPLEXITY, ACCURACY)
    quality_metric: ClassVar[Metric] = PERPLEXITY

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))

    def totals(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        logits, tokens = outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1)
        return {
            "nll": F.cross_entropy(logits, tokens, reduction="sum").item(),
            "correct": float((logits.argmax(dim=-1) == tokens).sum()),
            "count": float(tokens.numel()),
        }

    def summarise(self, totals: dict[str, float]) -> dict[str, float]:
        count = max(totals["count"], 1.0)
        nll = totals["nll"] / count
        return {"loss": nll, "perplexity": math.exp(min(nll, 700.0)), "accuracy": totals["correct"] / count}
