"""Exporting a pruned model: a plain state dict, or a compact model.

The built-in network's compact form is a smaller dense model without dead units. A plugin
model's wiring is the user's own code, so rnnprune cannot remove its units; its compact form
keeps the pruned matrices as sparse (CSR) tensors, the nonzeros only, and `load_compact`
rebuilds the user's module from its factory.

A hidden unit can be removed exactly when nothing reads it: its column in the layer's own
`weight_hh` (every gate, restricted to units that are kept) and its column in whatever reads
the layer (the next layer's `weight_ih`, or the readout) are all zero. Its own rows do not
matter then. The converse does not hold: a unit whose incoming rows are all zero still emits a
time-varying signal driven by its biases, so removing it would change the outputs. Removal
cascades (a unit read only by removed units is itself unread), so kept sets are computed from
the readout backwards until they stop shrinking.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnprune.data.base import Architecture
from rnnprune.models import registry as model_registry
from rnnprune.models.base import ModelInputs
from rnnprune.models.recurrent import GATES, MASK_SUFFIX, RecurrentNet
from rnnprune.weights import ALL_KINDS


def _gate_rows(units: torch.Tensor, hidden: int, gates: int) -> torch.Tensor:
    """Row indices of `units` in every gate block of a (gates * hidden, ·) matrix."""
    return (torch.arange(gates)[:, None] * hidden + units[None, :]).reshape(-1)


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


def plain_state_dict(model: RecurrentNet) -> dict[str, torch.Tensor]:
    """The weights with masks folded in and the mask buffers dropped (loads into a plain model)."""
    return {
        name: tensor.clone() for name, tensor in model.state_dict().items() if not name.endswith(MASK_SUFFIX)
    }


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def export_model(model_pt: Path, destination: Path, fmt: str) -> dict[str, Any]:
    """Write `fmt` ("state-dict" or "compact") of a trial's model.pt; returns a summary."""
    from rnnprune.training.runner import load_model

    config, model, example = load_model(model_pt)
    summary: dict[str, Any] = {
        "format": fmt,
        "path": str(destination),
        "dense_params": parameter_count(model),
    }
    if fmt == "state-dict":
        torch.save(
            {"config": config.model_dump(mode="json"), "state_dict": plain_state_dict(model)}, destination
        )
        return summary
    if not isinstance(model, RecurrentNet):
        torch.save(
            {
                "config": config.model_dump(mode="json"),
                "inputs": vars(model_inputs_of(model_pt)),
                "state_dict": sparse_state_dict(model),
            },
            destination,
        )
        restored = load_compact(destination)
        with torch.no_grad():
            difference = (restored(example) - model(example)).abs().max().item()
        summary.update(
            compact_params=sum(int((p != 0).sum()) for p in model.parameters()),
            bytes=destination.stat().st_size,
            max_abs_difference_on_example=difference,
        )
        return summary
    small = compact(model)
    with torch.no_grad():
        difference = (small(example) - model(example)).abs().max().item()
    # The whole module is pickled: its widths differ per layer, so a state dict alone cannot rebuild it.
    torch.save(small, destination)
    summary.update(
        compact_params=parameter_count(small),
        widths=[layer.hidden_size for layer in small.layers],
        max_abs_difference_on_example=difference,
    )
    return summary


def sparse_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The plain state dict with every pruned matrix as a sparse CSR tensor of its nonzeros."""
    pruned = {w.name for w in model.prunable_weights(ALL_KINDS) if not bool(w.mask.all())}  # type: ignore[operator]
    with warnings.catch_warnings():  # CSR storage is stable; PyTorch flags the layout as beta
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        return {
            name: tensor.to_sparse_csr() if name in pruned else tensor
            for name, tensor in plain_state_dict(model).items()
        }


def model_inputs_of(model_pt: Path) -> ModelInputs:
    """What the task fixed about a trial's model, as its model.pt recorded it."""
    saved = torch.load(Path(model_pt), weights_only=False, map_location="cpu")
    return ModelInputs(saved["input_size"], saved["num_outputs"], saved.get("architecture") or Architecture())


def load_compact(path: Path) -> nn.Module:
    """A plugin model's compact export as the user's own module (dense weights, no masks)."""
    from rnnprune.config import TrialConfig

    # Invariant checks on: a damaged file fails here instead of reading out of bounds.
    with torch.sparse.check_sparse_tensor_invariants(enable=True):
        saved = torch.load(Path(path), weights_only=False, map_location="cpu")
    config = TrialConfig.model_validate(saved["config"])
    inputs = ModelInputs(**saved["inputs"])
    module = model_registry.get(config.model.factory).build(config.model.typed_params, inputs)
    dense = {
        name: t.to_dense() if t.layout != torch.strided else t for name, t in saved["state_dict"].items()
    }
    module.load_state_dict(dense)
    return module.eval()
