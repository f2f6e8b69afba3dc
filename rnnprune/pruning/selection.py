"""Score-based selection shared by the baselines: prune the k lowest scores, ties by position."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rnnprune.pruning.base import Masks, PrunableWeight


def prune_count(numel: int, target_sparsity: float) -> int:
    """Number of entries to prune so that `numel` reaches `target_sparsity` (rounded)."""
    return min(numel, round(target_sparsity * numel))


def lowest_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Keep-mask (same shape as `scores`) pruning exactly the `k` lowest scores.

    Ties are broken deterministically by flat position (earlier entries are pruned first),
    thanks to a stable sort; already-pruned weights should score -inf so they count first.
    """
    flat = scores.reshape(-1)
    keep = torch.ones(flat.numel(), dtype=torch.bool, device=flat.device)
    if k > 0:
        order = torch.sort(flat, stable=True).indices
        keep[order[:k]] = False
    return keep.reshape(scores.shape)


def global_selection(
    weights: Sequence[PrunableWeight], scores: Sequence[torch.Tensor], target_sparsity: float
) -> Masks:
    """Prune the lowest scores over the whole pool, pooled across tensors."""
    flat = torch.cat([s.reshape(-1) for s in scores])
    keep = lowest_k_mask(flat, prune_count(flat.numel(), target_sparsity))
    masks: Masks = {}
    offset = 0
    for weight in weights:
        masks[weight.name] = keep[offset : offset + weight.numel].reshape(weight.weight.shape)
        offset += weight.numel
    return masks


def layerwise_selection(
    weights: Sequence[PrunableWeight], scores: Sequence[torch.Tensor], target_sparsity: float
) -> Masks:
    """Prune the lowest scores of every tensor separately, each to the target sparsity."""
    return {
        weight.name: lowest_k_mask(score, prune_count(weight.numel, target_sparsity))
        for weight, score in zip(weights, scores, strict=True)
    }


def masked_scores(weight: PrunableWeight, scores: torch.Tensor) -> torch.Tensor:
    """Scores with already-pruned entries at -inf, so pruning stays nested."""
    return scores.masked_fill(~weight.mask.to(torch.bool), float("-inf"))
