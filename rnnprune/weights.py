"""The weights a pruning method sees: a small leaf type shared by models and methods.

Models describe their prunable matrices with it and methods read it, so neither imports the
other (imports point one way: weights <- models, weights <- pruning).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

WeightKind = Literal["ih", "hh", "readout", "encoder"]


@dataclass(frozen=True)
class PrunableWeight:
    """One prunable weight matrix with the structure a method may need.

    `gates` names the row blocks of a recurrent matrix in PyTorch's layout (LSTM: i, f, g, o;
    GRU: r, z, n; Elman RNN: a single block), so structural methods can aggregate gate rows
    per hidden unit. `weight` and `mask` are the live tensors: methods must not modify them.
    """

    name: str
    layer: int
    kind: WeightKind
    gates: tuple[str, ...]
    weight: torch.Tensor
    mask: torch.Tensor

    @property
    def numel(self) -> int:
        return self.weight.numel()
