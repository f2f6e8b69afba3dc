"""Block magnitude pruning: whole rows × cols tiles of each matrix, so block-sparse kernels skip them.

Every pool matrix is cut into tiles of the `block` shape, from its top-left corner, with no
padding: the shape must divide every matrix (checked before training, naming the matrix). A
tile is scored by its L2 norm (masked weights; tiles already pruned score -inf, so masks stay
nested and tile-aligned under every schedule), and the lowest-scoring tiles are pruned, over
the whole pool or per matrix. All tiles have the same size, so the pool reaches the target
to within one tile.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from pydantic import Field, field_validator

from rnnprune.pruning.base import Masks, MethodParams, PrunableWeight, PruningMethod
from rnnprune.pruning.selection import lowest_k_mask, prune_count


class BlockParams(MethodParams):
    block: tuple[int, int] = Field(
        default=(4, 4),
        description="[rows, cols] of a tile, e.g. [4, 4], [8, 1] or [16, 1]; both must divide the "
        "shape of every pruned matrix (no padding).",
    )
    allocation: Literal["global", "layerwise"] = Field(
        default="global",
        description="global: the lowest tiles over the whole pool; layerwise: every matrix to the target.",
    )

    @field_validator("block", mode="before")
    @classmethod
    def _two_positive_integers(cls, block: Any) -> Any:
        fits = (
            isinstance(block, list | tuple)
            and len(block) == 2
            and all(isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in block)
        )
        if not fits:
            raise ValueError(
                f"give [rows, cols], two positive integers such as [4, 4] or [8, 1] (got {block!r})"
            )
        return block


def _tiles(weight: PrunableWeight, block: tuple[int, int]) -> tuple[int, int]:
    (rows, cols), (height, width) = weight.weight.shape, block
    return rows // height, cols // width


def _tile_scores(weight: PrunableWeight, block: tuple[int, int]) -> torch.Tensor:
    """(rows / height, cols / width) L2 norms of the tiles; -inf for tiles already all pruned."""
    (tile_rows, tile_cols), (height, width) = _tiles(weight, block), block
    values = (weight.weight.detach() * weight.mask).float().reshape(tile_rows, height, tile_cols, width)
    live = weight.mask.reshape(tile_rows, height, tile_cols, width).any(dim=3).any(dim=1)
    return values.square().sum(dim=(1, 3)).sqrt().masked_fill(~live, float("-inf"))


def _expand(tiles_kept: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    height, width = block
    return tiles_kept.repeat_interleave(height, dim=0).repeat_interleave(width, dim=1)


def prune_blocks(
    weights: Sequence[PrunableWeight],
    target_sparsity: float,
    params: MethodParams,
    generator: torch.Generator,
) -> Masks:
    assert isinstance(params, BlockParams)
    scores = [_tile_scores(w, params.block) for w in weights]
    if params.allocation == "layerwise":
        kept = [lowest_k_mask(s, prune_count(s.numel(), target_sparsity)) for s in scores]
    else:
        flat = torch.cat([s.reshape(-1) for s in scores])
        kept_flat = lowest_k_mask(flat, prune_count(flat.numel(), target_sparsity))
        kept = [
            k.reshape(s.shape)
            for k, s in zip(kept_flat.split([s.numel() for s in scores]), scores, strict=True)
        ]
    return {w.name: _expand(k, params.block) for w, k in zip(weights, kept, strict=True)}


def _divisor_up_to(size: int, limit: int) -> int:
    """The largest divisor of `size` not above `limit` (any, for a size 0 not known yet)."""
    return next(d for d in range(limit, 0, -1) if size % d == 0)


def check_blocks(
    weights: Sequence[PrunableWeight], target_sparsity: float, params: MethodParams
) -> list[tuple[str, str]]:
    """The block shape must divide every pool matrix (a size 0, not known yet, is divisible)."""
    assert isinstance(params, BlockParams)
    height, width = params.block
    misfits = [w for w in weights if w.weight.shape[0] % height or w.weight.shape[1] % width]
    misfits.sort(key=lambda w: 0 in w.weight.shape)  # name a matrix whose whole shape is known
    if not misfits:
        return []
    rows = math.gcd(*(w.weight.shape[0] for w in weights))
    cols = math.gcd(*(w.weight.shape[1] for w in weights))
    first = misfits[0]
    others = f" and {len(misfits) - 1} more" if len(misfits) > 1 else ""
    return [
        (
            "params.block",
            f"{list(params.block)} does not divide {first.name} "
            f"({first.weight.shape[0]} × {first.weight.shape[1]}){others}; tiles are not padded, so rows "
            f"must divide {rows} and cols {cols} here: use e.g. [{_divisor_up_to(rows, height)}, "
            f"{_divisor_up_to(cols, width)}], or take the misfitting matrices out of pruning.scope",
        )
    ]


BLOCK_MAGNITUDE = PruningMethod(
    name="block_magnitude",
    params=BlockParams,
    prune=prune_blocks,
    description="Prune whole rows × cols tiles (params.block) of every pool matrix, lowest tile L2 norm "
    "first, over the pool or per matrix, so block-sparse kernels can skip them; the block shape must "
    "divide every pool matrix.",
    check=check_blocks,
)
