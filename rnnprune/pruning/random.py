"""Random pruning: the sanity-check baseline (does the choice of weights matter at all?)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field

from rnnprune.pruning.base import Masks, MethodParams, PrunableWeight, PruningMethod
from rnnprune.pruning.selection import global_selection, layerwise_selection, masked_scores


class RandomParams(MethodParams):
    layerwise: bool = Field(
        default=False,
        description="Prune every tensor to the target separately instead of over the pool.",
    )


def prune_random(
    weights: Sequence[PrunableWeight],
    target_sparsity: float,
    params: MethodParams,
    generator: torch.Generator,
) -> Masks:
    assert isinstance(params, RandomParams)
    scores = [
        masked_scores(w, torch.rand(w.weight.shape, generator=generator).to(w.weight.device)) for w in weights
    ]
    select = layerwise_selection if params.layerwise else global_selection
    return select(weights, scores, target_sparsity)


RANDOM = PruningMethod(
    name="random",
    params=RandomParams,
    prune=prune_random,
    description="Prune uniformly random surviving weights (seeded by the trial seed).",
)
