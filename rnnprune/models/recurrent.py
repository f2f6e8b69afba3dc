"""Recurrent networks over PyTorch's fused recurrent layers, with pruning masks.

The recurrent stack is surrounded by what the task asks for (`Architecture`): an optional
token embedding or initial-state encoder before it, a readout of the last step or of every
step after it.

Masks are boolean buffers registered next to the weights they mask (`weight_hh_l0_mask`
beside `weight_hh_l0`), so they travel in the state dict. They are applied in place to the
plain `nn.Parameter`s (and to the optimizer's state) after every optimizer step, which keeps
cuDNN's packed-weight fast path; `torch.nn.utils.prune` would re-parametrise the weights and
break it (pytorch#33618).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import torch
from torch import nn

from rnnprune.data.base import Architecture
from rnnprune.weights import PrunableWeight, WeightKind

Cell = Literal["lstm", "gru", "rnn_tanh", "rnn_relu"]

GATES: dict[str, tuple[str, ...]] = {
    "lstm": ("i", "f", "g", "o"),
    "gru": ("r", "z", "n"),
    "rnn_tanh": ("h",),
    "rnn_relu": ("h",),
}

MASK_SUFFIX = "_mask"


def _recurrent_layer(
    cell: Cell, input_size: int, hidden_size: int, num_layers: int, dropout: float, bias: bool = True
) -> nn.RNNBase:
    common = dict(
        input_size=input_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        bias=bias,
        dropout=dropout if num_layers > 1 else 0.0,
        batch_first=True,
    )
    if cell == "lstm":
        return nn.LSTM(**common)
    if cell == "gru":
        return nn.GRU(**common)
    return nn.RNN(nonlinearity=cell.removeprefix("rnn_"), **common)


class RecurrentNet(nn.Module):
    """x (batch, time, features) -> recurrent stack -> linear readout of the last step.

    With an `Architecture` from the task: token ids through an embedding, an initial state
    encoded from the first input step, a readout at every step, no biases.
    """

    def __init__(
        self,
        cell: Cell,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        num_classes: int,
        dropout: float = 0.0,
        architecture: Architecture | None = None,
    ) -> None:
        super().__init__()
        self.cell = cell
        self.architecture = architecture = architecture or Architecture()
        self.embedding = (
            nn.Embedding(architecture.vocab_size, input_size) if architecture.vocab_size is not None else None
        )
        self.initial_code = architecture.initial_code
        self.encoder = (
            nn.Linear(architecture.initial_code_size, num_layers * hidden_size, bias=False)
            if architecture.initial_code is not None
            else None
        )
        self.rnn = _recurrent_layer(cell, input_size, hidden_size, num_layers, dropout, architecture.bias)
        self.readout = nn.Linear(hidden_size, num_classes, bias=architecture.bias)
        if architecture.init_range is not None:
            self._init_uniform(architecture.init_range)
        for _, module, attr, _, _ in self._weight_matrices():
            weight = getattr(module, attr)
            module.register_buffer(attr + MASK_SUFFIX, torch.ones_like(weight, dtype=torch.bool))
        # Only masks with zeros are applied after each step; all-ones masks cost nothing.
        self._active: list[tuple[nn.Parameter, torch.Tensor]] = []

    @torch.no_grad()
    def _init_uniform(self, init_range: float) -> None:
        for module in (self.embedding, self.readout):
            if module is not None:
                module.weight.uniform_(-init_range, init_range)
        if self.readout.bias is not None:
            self.readout.bias.zero_()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        initial = None
        if self.encoder is not None:
            code = self.initial_code(inputs[:, 0])  # type: ignore[misc]
            inputs = inputs[:, 1:]
            batch, layers, hidden = len(code), self.rnn.num_layers, self.rnn.hidden_size
            initial = self.encoder(code).reshape(batch, layers, hidden).transpose(0, 1).contiguous()
            if self.cell == "lstm":  # the code sets h0; the cell state starts at zero
                initial = (initial, torch.zeros_like(initial))
        if self.embedding is not None:
            inputs = self.embedding(inputs)
        outputs, _ = self.rnn(inputs, initial)
        if self.architecture.readout == "all":
            return self.readout(outputs)
        return self.readout(outputs[:, -1])

    def _weight_matrices(self) -> Iterable[tuple[str, nn.Module, str, int, WeightKind]]:
        """(full name, owning module, attribute, layer, kind) of every maskable matrix."""
        if self.embedding is not None:
            yield "embedding.weight", self.embedding, "weight", -1, "encoder"
        if self.encoder is not None:
            yield "encoder.weight", self.encoder, "weight", -1, "encoder"
        for layer in range(self.rnn.num_layers):
            for kind in ("ih", "hh"):
                attr = f"weight_{kind}_l{layer}"
                yield f"rnn.{attr}", self.rnn, attr, layer, kind  # type: ignore[misc]
        yield "readout.weight", self.readout, "weight", self.rnn.num_layers, "readout"

    def prunable_weights(self, scope: Iterable[WeightKind] = ("ih", "hh")) -> list[PrunableWeight]:
        """The weight matrices in `scope` with their masks, in a fixed order."""
        wanted = set(scope)
        return [
            PrunableWeight(
                name=name,
                layer=layer,
                kind=kind,
                gates=GATES[self.cell] if kind in ("ih", "hh") else ("out",),
                weight=getattr(module, attr),
                mask=getattr(module, attr + MASK_SUFFIX),
            )
            for name, module, attr, layer, kind in self._weight_matrices()
            if kind in wanted
        ]

    def masks(self) -> dict[str, torch.Tensor]:
        return {
            name: getattr(module, attr + MASK_SUFFIX) for name, module, attr, _, _ in self._weight_matrices()
        }

    @torch.no_grad()
    def set_masks(self, masks: Mapping[str, torch.Tensor]) -> None:
        """Replace the named masks, zero the pruned weights, and re-pack cuDNN's weights."""
        for name, module, attr, _, _ in self._weight_matrices():
            if name in masks:
                getattr(module, attr + MASK_SUFFIX).copy_(masks[name])
        self.refresh_masks()

    @torch.no_grad()
    def refresh_masks(self) -> None:
        """Re-read the mask buffers (after `set_masks` or `load_state_dict`) and apply them."""
        self._active = []
        for _, module, attr, _, _ in self._weight_matrices():
            mask = getattr(module, attr + MASK_SUFFIX)
            if not bool(mask.all()):
                weight = getattr(module, attr)
                # A copy in the weight's dtype: multiplying by a bool mask converts it every step.
                multiplier = mask.to(weight.dtype)
                weight.mul_(multiplier)
                self._active.append((weight, multiplier))
        self.rnn.flatten_parameters()

    @torch.no_grad()
    def apply_masks(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Zero pruned weights in place, and the optimizer's per-weight state with them.

        Called after every optimizer step. Zeroing the moment estimates too keeps a pruned
        weight's history from leaking back if a method ever lets it regrow.
        """
        for weight, mask in self._active:
            weight.mul_(mask)
            if optimizer is not None:
                for state in optimizer.state.get(weight, {}).values():
                    if isinstance(state, torch.Tensor) and state.shape == weight.shape:
                        state.mul_(mask)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.refresh_masks()
        return result
