"""Dynamic sparse training: RigL (Evci et al. 2020), with SET and Selfish-RNN's choices as switches.

The mask function gives the sparse mask at each schedule event (the initial one at the
target, with one-shot); between events, every `update_every_steps` steps until
`stop_fraction` of the phase, each group of weights drops a fraction of its smallest
active weights and regrows as many where the dense gradient is largest (RigL) or at random
(SET, the control). A group keeps its count of kept weights exactly, so the pool's sparsity
holds at every step. A group is a gate block of a matrix (`redistribution: none`) or a
whole matrix (`gate`: Selfish-RNN's cell-weight redistribution, where weights flow between
the gates of a cell). Regrown weights start at zero, with zero optimizer moments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field

from rnnprune.pruning.base import (
    DynamicSparsity,
    Masks,
    MethodParams,
    PrunableWeight,
    PruningMethod,
    PruningResult,
)
from rnnprune.pruning.selection import global_selection, lowest_k_mask, masked_scores, prune_count


class RigLParams(MethodParams):
    update_every_steps: int = Field(
        default=100, ge=1, description="ΔT: optimizer steps between drop-and-regrow updates."
    )
    drop_fraction: float = Field(
        default=0.3, gt=0.0, le=1.0, description="α: fraction of a group's active weights dropped (initial)."
    )
    drop_schedule: Literal["cosine", "constant"] = Field(
        default="cosine",
        description="cosine: α/2·(1 + cos(π t / T_end)), RigL's decay; constant: α at every update.",
    )
    stop_fraction: float = Field(
        default=0.75,
        gt=0.0,
        le=1.0,
        description="T_end as a fraction of the pruning phase's steps: the topology freezes after it.",
    )
    distribution: Literal["uniform", "erk", "global"] = Field(
        default="uniform",
        description="How an event spreads the kept weights over the pool's matrices: uniform "
        "(every matrix at the target), erk (Erdős–Rényi: density ∝ (rows + columns) / (rows · columns)), "
        "global (one threshold over the pool).",
    )
    selection: Literal["magnitude", "random"] = Field(
        default="magnitude",
        description="Which weights an event keeps: the largest |w| of the trained model, or random "
        "(RigL's sparse initialisation; with training.epochs: 0 the trial trains sparse from scratch).",
    )
    regrow: Literal["gradient", "random"] = Field(
        default="gradient", description="gradient: largest dense |∂L/∂w| (RigL); random: SET."
    )
    redistribution: Literal["none", "gate"] = Field(
        default="none",
        description="none: every gate block keeps its count of weights; gate: the gates of a matrix "
        "share one count, weights dropped and regrown across them (Selfish-RNN), so gate densities move.",
    )


def allocate(total: int, shares: Sequence[float], capacity: Sequence[int]) -> list[int]:
    """`total` kept weights split in proportion to `shares`, none above its `capacity`.

    Water-filling: a matrix whose share exceeds its capacity is filled and the rest is
    shared again (RigL's dense layers under ERK); the integer parts are rounded by largest
    remainder, so the counts add up to `total` exactly (when the capacities allow it).
    """
    counts = [0] * len(shares)
    open_ = [i for i, share in enumerate(shares) if share > 0 and capacity[i] > 0]
    remaining = min(total, sum(capacity[i] for i in open_))
    while open_:
        scale = remaining / sum(shares[i] for i in open_)
        full = [i for i in open_ if shares[i] * scale >= capacity[i]]
        if not full:
            break
        for i in full:
            counts[i] = capacity[i]
            remaining -= capacity[i]
        open_ = [i for i in open_ if i not in full]
    if not open_:
        return counts
    ideal = {i: shares[i] * remaining / sum(shares[j] for j in open_) for i in open_}
    for i in open_:
        counts[i] = math.floor(ideal[i])
    # Largest remainders first, ties by position.
    order = sorted(open_, key=lambda i: (-(ideal[i] - counts[i]), i))
    for i in order[: remaining - sum(counts[i] for i in open_)]:
        counts[i] += 1
    return counts


def _event_scores(
    weights: Sequence[PrunableWeight], params: RigLParams, generator: torch.Generator
) -> list[torch.Tensor]:
    if params.selection == "random":
        raw = [torch.rand(w.weight.shape, generator=generator).to(w.weight.device) for w in weights]
    else:
        raw = [w.weight.detach().abs().float() for w in weights]
    return [masked_scores(w, score) for w, score in zip(weights, raw, strict=True)]


def prune_rigl(
    weights: Sequence[PrunableWeight],
    target_sparsity: float,
    params: MethodParams,
    generator: torch.Generator,
) -> Masks:
    """The masks of a schedule event: the pool at `target_sparsity`, spread by `distribution`."""
    assert isinstance(params, RigLParams)
    scores = _event_scores(weights, params, generator)
    if params.distribution == "global":
        return global_selection(weights, scores, target_sparsity)
    numel = sum(w.numel for w in weights)
    keep = numel - prune_count(numel, target_sparsity)
    shares = [
        float(w.numel) if params.distribution == "uniform" else float(sum(w.weight.shape)) for w in weights
    ]
    # Capacity: what a matrix keeps now, so that nesting in the current masks loses nothing.
    kept = allocate(keep, shares, [int(w.mask.sum()) for w in weights])
    return {
        w.name: lowest_k_mask(score, w.numel - count)
        for w, score, count in zip(weights, scores, kept, strict=True)
    }


def drop_fraction_at(params: RigLParams, step: int, phase_steps: int) -> float:
    """α at phase step `step`: cosine-decayed to zero at T_end, or constant."""
    if params.drop_schedule == "constant":
        return params.drop_fraction
    end = params.stop_fraction * phase_steps
    return 0.5 * params.drop_fraction * (1.0 + math.cos(math.pi * min(step / end, 1.0)))


def update_due(params: MethodParams, step: int, phase_steps: int) -> bool:
    """Every ΔT steps after the first, before T_end."""
    assert isinstance(params, RigLParams)
    return 0 < step < params.stop_fraction * phase_steps and step % params.update_every_steps == 0


def _groups(weight: PrunableWeight, redistribution: str) -> list[slice]:
    """Row ranges that each keep their count: gate blocks, or the whole matrix."""
    rows = weight.weight.shape[0]
    blocks = len(weight.gates) if redistribution == "none" and rows % len(weight.gates) == 0 else 1
    size = rows // blocks
    return [slice(b * size, (b + 1) * size) for b in range(blocks)]


def _highest_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Flat indices of the `k` highest scores, ties by position (a stable sort)."""
    return torch.sort(scores, descending=True, stable=True).indices[:k]


def update_rigl(
    weights: Sequence[PrunableWeight],
    params: MethodParams,
    step: int,
    phase_steps: int,
    generator: torch.Generator,
) -> PruningResult:
    """Drop the smallest active |w| of every group and regrow as many (gradient or random)."""
    assert isinstance(params, RigLParams)
    fraction = drop_fraction_at(params, step, phase_steps)
    masks: Masks = {}
    dropped = regrown = 0
    for w in weights:
        old = w.mask.to(torch.bool)
        new = old.clone()
        magnitude = w.weight.detach().abs().float()
        if params.regrow == "random":
            growth = torch.rand(w.weight.shape, generator=generator).to(w.weight.device)
        elif w.weight.grad is not None:
            growth = w.weight.grad.detach().abs().float()
        else:  # a weight the loss does not reach has no gradient: every candidate ties
            growth = torch.zeros_like(magnitude)
        for rows in _groups(w, params.redistribution):
            active = old[rows].reshape(-1)
            k = min(round(fraction * int(active.sum())), int(active.sum()))
            if k == 0:
                continue
            group = new[rows].reshape(-1)  # a copy when the block is not contiguous: written back
            # 1) drop: the k smallest active magnitudes (inactive entries score +inf)
            drop_scores = magnitude[rows].reshape(-1).masked_fill(~active, float("inf"))
            group[~lowest_k_mask(drop_scores, k)] = False
            # 2) regrow: the k highest scores among the entries not kept after the drop
            grow_scores = growth[rows].reshape(-1).masked_fill(group, float("-inf"))
            group[_highest_k(grow_scores, k)] = True
            new[rows] = group.reshape(new[rows].shape)
            dropped += k
            regrown += int((group & ~active).sum())
        masks[w.name] = new
    return PruningResult(
        masks, {"drop_fraction": fraction, "dropped": float(dropped), "regrown": float(regrown)}
    )


RIGL = PruningMethod(
    name="rigl",
    params=RigLParams,
    prune=prune_rigl,
    description="Dynamic sparse training (RigL, Evci et al. 2020): the pool at the target from the "
    "schedule's events (uniform, ERK or global; magnitude or random), then every ΔT steps until "
    "T_end each gate block (or, with redistribution: gate, each matrix: Selfish-RNN) drops a "
    "cosine-decayed fraction of its smallest weights and regrows as many by dense gradient "
    "(regrow: random is SET), keeping the sparsity exact; regrown weights start at zero.",
    dynamic=DynamicSparsity(due=update_due, update=update_rigl),
)
