"""What a task optimises and how it scores a model: the loss, the metrics, the quality.

Every task hands the trainer one `Objective`. The trainer never knows whether it is
classifying digits, regressing a sum or decoding a position: it minimises `loss`, sums
`totals` over evaluation batches and turns them into metrics with `summarise`. Metric names
are reported as `val_<name>` / `test_<name>`; `quality` names the one that ranks models
(Pareto fronts, schedulers, picks), and `maximize` says which way is better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch
from torch.nn import functional as F


class Objective(Protocol):
    quality: str
    maximize: bool
    # Every metric `summarise` returns: known before any data is loaded, so a sweep spec can
    # be checked against what its trials will report.
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


@dataclass(frozen=True)
class Classification:
    """Cross-entropy on the readout of the last step; top-1 accuracy."""

    quality: str = "accuracy"
    maximize: bool = True
    metrics: ClassVar[tuple[str, ...]] = ("loss", "accuracy")

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
class MeanSquaredError:
    """Regression of one value per sequence (the adding problem); MSE is loss and quality."""

    quality: str = "mse"
    maximize: bool = False
    metrics: ClassVar[tuple[str, ...]] = ("loss", "mse")

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs.reshape(targets.shape), targets)

    def totals(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        squared = F.mse_loss(outputs.reshape(targets.shape), targets, reduction="sum").item()
        return {"squared_error": squared, "count": float(targets.numel())}

    def summarise(self, totals: dict[str, float]) -> dict[str, float]:
        mse = totals["squared_error"] / max(totals["count"], 1.0)
        return {"loss": mse, "mse": mse}


@dataclass(frozen=True)
class LanguageModelling:
    """Next-token prediction at every step: token-averaged NLL, perplexity and top-1 accuracy.

    Accuracy is correct predictions over predicted tokens (the reference code divided by the
    length of the last chunk instead, which scales it by batch/bptt; not reproduced).
    """

    quality: str = "perplexity"
    maximize: bool = False
    metrics: ClassVar[tuple[str, ...]] = ("loss", "perplexity", "accuracy")

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
