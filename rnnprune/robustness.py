"""Noise robustness of a trained model: test accuracy under Gaussian input noise.

Inputs of every task are standardised (MNIST mean/std, CIFAR channel statistics, MFCCs per
coefficient), so a noise level is a standard deviation in units of the data's own spread.
The draws are seeded, so two models (say, a Ramanujan-preserving and a plain magnitude
ticket) are compared on exactly the same corrupted inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rnnprune.data.base import Split
from rnnprune.objectives import Classification
from rnnprune.training.loop import evaluate

DEFAULT_LEVELS = (0.0, 0.1, 0.25, 0.5, 1.0)


@torch.no_grad()
def noise_robustness(
    model: nn.Module,
    split: Split,
    levels: Sequence[float] = DEFAULT_LEVELS,
    seed: int = 0,
    prefix: str = "robustness",
) -> dict[str, float]:
    """`{prefix}.noise_<level>.accuracy` for each level: accuracy on inputs + N(0, level²)."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    results = {}
    for level in levels:
        noise = torch.randn(split.inputs.shape, generator=generator).to(split.inputs.device)
        noisy = Split(split.inputs + level * noise, split.targets)
        results[f"{prefix}.noise_{level:g}.accuracy"] = evaluate(model, noisy, Classification())["accuracy"]  # type: ignore[arg-type]
    return results
