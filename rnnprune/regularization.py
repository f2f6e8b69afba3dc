"""Training penalties on the weights: the hook through which a method shapes training.

A method that regularises (moduli regularisation) hands the trainer a `Regularizer`; its
penalty is added to the task loss at every optimizer step of every phase, dense included,
so its settings are part of what names the dense model (`TrialConfig.dense_hash`). A
regularizer is a module: fixed coefficients are buffers rebuilt from the trial seed, and
learnable ones (a trainable neuron embedding) are parameters the optimizer updates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


class Regularizer(nn.Module):
    """`penalty(model)` is a scalar added to the loss; `after_step()` runs after each step."""

    def penalty(self, model: nn.Module) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self) -> None:
        """Project learnable state back onto its domain (e.g. points onto a sphere)."""


@dataclass(frozen=True)
class RegularizerHook:
    """How a method builds its regularizer.

    `active(params)` says whether these parameters penalise at all (a method with a `none`
    setting trains exactly like a plain one and shares its dense model); `build(params,
    model, generator)` makes the regularizer for a model, drawing any random structure
    (neuron coordinates, permutations) from `generator`. `defining(params)` is the part of
    the parameters the penalty depends on, which names the dense model; None: all of them
    (a method whose other parameters only choose masks shares one dense model across them).
    """

    active: Callable[..., bool]
    build: Callable[..., Regularizer]
    defining: Callable[..., dict[str, Any]] | None = None
