"""The weights a pruning method sees: a small leaf type shared by models and methods.

Models describe their prunable matrices with it and methods read it, so neither imports the
other (imports point one way: weights <- models, weights <- pruning).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

WeightKind = Literal["ih", "hh", "readout", "encoder", "linear"]
"""ih/hh: a recurrent layer's input and recurrent matrices; readout: the linear layer that
produces the outputs; encoder: an embedding or initial-state encoder before the recurrent
layers; linear: any other linear layer of a user's model (an attention projection)."""

ALL_KINDS: tuple[WeightKind, ...] = ("encoder", "ih", "hh", "readout", "linear")


@dataclass(frozen=True)
class PrunableWeight:
    """One prunable weight matrix with the structure a method may need.

    `gates` names the row blocks of a recurrent matrix in PyTorch's layout (LSTM: i, f, g, o;
    GRU: r, z, n; Elman RNN: a single block), so structural methods can aggregate gate rows
    per hidden unit. `weight` and `mask` are the live tensors: methods must not modify them.

    `layer` numbers the recurrent layers of the whole model in the order they are registered
    (a second `nn.LSTM` continues the count); both directions of a bidirectional layer share
    it and `direction` tells them apart (0 forward, 1 reverse). `module` is the path of the
    owning module (`rnn`, `encoder.lstm`), so weights of separate recurrent modules are never
    mistaken for one stack.
    """

    name: str
    layer: int
    kind: WeightKind
    gates: tuple[str, ...]
    weight: torch.Tensor
    mask: torch.Tensor
    module: str = ""
    direction: int = 0

    @property
    def numel(self) -> int:
        return self.weight.numel()
