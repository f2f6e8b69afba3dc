"""Magnitude pruning baselines: global (one threshold over the pool) and layerwise."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rnnprune.pruning.base import Masks, MethodParams, NoParams, PrunableWeight, PruningMethod
from rnnprune.pruning.selection import global_selection, layerwise_selection, masked_scores


def _magnitudes(weights: Sequence[PrunableWeight]) -> list[torch.Tensor]:
    return [masked_scores(w, w.weight.detach().abs().float()) for w in weights]


def prune_global_magnitude(
    weights: Sequence[PrunableWeight],
    target_sparsity: float,
    params: MethodParams,
    generator: torch.Generator,
) -> Masks:
    return global_selection(weights, _magnitudes(weights), target_sparsity)


def prune_layerwise_magnitude(
    weights: Sequence[PrunableWeight],
    target_sparsity: float,
    params: MethodParams,
    generator: torch.Generator,
) -> Masks:
    return layerwise_selection(weights, _magnitudes(weights), target_sparsity)


GLOBAL_MAGNITUDE = PruningMethod(
    name="global_magnitude",
    params=NoParams,
    prune=prune_global_magnitude,
    description="Prune the smallest |w| over the whole prunable pool (one global threshold).",
)

LAYERWISE_MAGNITUDE = PruningMethod(
    name="layerwise_magnitude",
    params=NoParams,
    prune=prune_layerwise_magnitude,
    description="Prune the smallest |w| of every tensor, each tensor to the target sparsity.",
)
