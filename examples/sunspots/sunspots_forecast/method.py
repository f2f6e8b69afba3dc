"""Gate-balanced magnitude pruning: magnitude pruning at the same rate inside every gate block.

Global magnitude pruning ranks all weights together, and an LSTM's gates differ in scale:
whichever gate learnt the smallest weights (often the input or cell gate of a layer fed by
one feature) loses them first, and at high sparsity a gate can be left with next to nothing.
This method prunes the smallest |w| of each gate block of each matrix (the rows of gate i,
f, g or o) to the target rate, so every gate keeps the same share of its weights;
`granularity: row` goes further and prunes every row, one unit's inputs to one gate, at that
rate. A block always keeps at least one weight. Matrices without gates (linear layers) are
one block.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field

from rnnprune.pruning.base import Masks, MethodParams, PrunableWeight, PruningMethod


class GateBalancedParams(MethodParams):
    granularity: Literal["gate", "row"] = Field(
        default="gate",
        description="gate: every gate block of a matrix at the target rate; row: every row "
        "(one unit's inputs to one gate) at the target rate.",
    )


def _blocks(weight: PrunableWeight, granularity: str) -> int:
    """How many equal blocks the matrix's rows fall into (PyTorch stacks gates by rows)."""
    return weight.weight.shape[0] if granularity == "row" else len(weight.gates)


def prune_gate_balanced(
    weights: Sequence[PrunableWeight],
    target_sparsity: float,
    params: MethodParams,
    generator: torch.Generator,
) -> Masks:
    assert isinstance(params, GateBalancedParams)
    masks: Masks = {}
    for weight in weights:
        blocks = _blocks(weight, params.granularity)
        scores = weight.weight.detach().abs().float().reshape(blocks, -1)
        # Weights already pruned score lowest, so they are counted first and stay pruned.
        scores = scores.masked_fill(~weight.mask.reshape(blocks, -1).bool(), float("-inf"))
        size = scores.shape[1]
        pruned = min(round(target_sparsity * size), size - 1)
        keep = torch.ones_like(scores, dtype=torch.bool)
        if pruned > 0:
            # A stable sort breaks ties by position, so the masks are the same on every run.
            lowest = torch.sort(scores, dim=1, stable=True).indices[:, :pruned]
            keep.scatter_(1, lowest, False)
        masks[weight.name] = keep.reshape(weight.weight.shape)
    return masks


GATE_BALANCED_MAGNITUDE = PruningMethod(
    name="gate_balanced_magnitude",
    params=GateBalancedParams,
    prune=prune_gate_balanced,
    description="Prune the smallest |w| of every gate block (or row) of every matrix at the target "
    "rate, so no gate is starved; each block keeps at least one weight.",
)
