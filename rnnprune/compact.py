"""The compact form of a pruned classifier: the same outputs from a smaller dense model.

A hidden unit can be removed exactly when nothing reads it: its column in the layer's own
`weight_hh` (every gate, restricted to units that are kept) and its column in whatever reads
the layer (the next layer's `weight_ih`, or the readout) are all zero. Its own rows do not
matter then. The converse does not hold: a unit whose incoming rows are all zero still emits a
time-varying signal driven by its biases, so removing it would change the outputs. Removal
cascades (a unit read only by removed units is itself unread), so kept sets are computed from
the readout backwards until they stop shrinking.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rnnprune.models.recurrent import GATES, RecurrentNet


def compactable(model: nn.Module) -> bool:
    """Whether `compact` computes the same outputs: the built-in classifier (dense features in,
    zero initial state, a biased readout of the last step), not an embedding, initial-state
    encoder or every-step readout, and not a user's own network."""
    if not isinstance(model, RecurrentNet):
        return False
    architecture = model.architecture
    return (
        model.embedding is None
        and model.encoder is None
        and architecture.readout == "last"
        and architecture.bias
    )


def _gate_rows(units: torch.Tensor, hidden: int, gates: int) -> torch.Tensor:
    """Row indices of `units` in every gate block of a (gates * hidden, ·) matrix."""
    return (torch.arange(gates)[:, None] * hidden + units[None, :]).reshape(-1)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def kept_units(model: RecurrentNet) -> list[torch.Tensor]:
    """Per layer, the sorted indices of hidden units some kept consumer reads."""
    rnn, gates = model.rnn, len(GATES[model.cell])
    hidden = rnn.hidden_size
    kept: list[torch.Tensor] = [torch.arange(hidden)] * rnn.num_layers
    reader_rows = torch.arange(model.readout.out_features)
    reader = model.readout.weight
    for layer in reversed(range(rnn.num_layers)):
        weight_hh = getattr(rnn, f"weight_hh_l{layer}")
        read_downstream = (reader[reader_rows] != 0).any(dim=0)
        units = torch.arange(hidden)
        while True:
            read_recurrently = (weight_hh[_gate_rows(units, hidden, gates)] != 0).any(dim=0)
            alive = torch.nonzero(read_downstream | read_recurrently).flatten()
            if torch.equal(alive, units):
                break
            units = alive
        kept[layer] = units
        reader = getattr(rnn, f"weight_ih_l{layer}")
        reader_rows = _gate_rows(units, hidden, gates)
    return kept


class CompactClassifier(nn.Module):
    """The pruned classifier with dead units removed: one single-layer RNN per layer (widths may
    differ, which a fused multi-layer `nn.LSTM` cannot express) and the readout."""

    def __init__(
        self, cell: str, input_size: int, widths: list[int], num_classes: int, dropout: float
    ) -> None:
        super().__init__()
        self.cell = cell
        sizes = [input_size, *widths]
        self.layers = nn.ModuleList(_single_layer(cell, sizes[i], sizes[i + 1]) for i in range(len(widths)))
        # nn.LSTM applies dropout between layers, not after the last one.
        self.dropout = nn.Dropout(dropout if len(widths) > 1 else 0.0)
        self.readout = nn.Linear(widths[-1], num_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs = inputs
        for index, layer in enumerate(self.layers):
            if index:
                outputs = self.dropout(outputs)
            outputs, _ = layer(outputs)
        return self.readout(outputs[:, -1])


def _single_layer(cell: str, input_size: int, hidden_size: int) -> nn.RNNBase:
    common: dict[str, Any] = {"input_size": input_size, "hidden_size": hidden_size, "batch_first": True}
    if cell == "lstm":
        return nn.LSTM(**common)
    if cell == "gru":
        return nn.GRU(**common)
    return nn.RNN(nonlinearity=cell.removeprefix("rnn_"), **common)


@torch.no_grad()
def compact(model: RecurrentNet) -> CompactClassifier:
    """A smaller dense model computing the same outputs (masks are already folded into weights)."""
    rnn, gates = model.rnn, len(GATES[model.cell])
    hidden = rnn.hidden_size
    kept = kept_units(model)
    # A layer with no unit read is still given one unit: its (zero-weight) reader keeps outputs equal.
    kept = [units if len(units) else torch.zeros(1, dtype=torch.long) for units in kept]
    result = CompactClassifier(
        model.cell,
        rnn.input_size,
        [len(units) for units in kept],
        model.readout.out_features,
        rnn.dropout,
    )
    previous = torch.arange(rnn.input_size)
    for layer, units in enumerate(kept):
        rows = _gate_rows(units, hidden, gates)
        target = result.layers[layer]
        target.weight_ih_l0.copy_(getattr(rnn, f"weight_ih_l{layer}")[rows][:, previous])
        target.weight_hh_l0.copy_(getattr(rnn, f"weight_hh_l{layer}")[rows][:, units])
        target.bias_ih_l0.copy_(getattr(rnn, f"bias_ih_l{layer}")[rows])
        target.bias_hh_l0.copy_(getattr(rnn, f"bias_hh_l{layer}")[rows])
        previous = units
    result.readout.weight.copy_(model.readout.weight[:, previous])
    result.readout.bias.copy_(model.readout.bias)
    return result.eval()
