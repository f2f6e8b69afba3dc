"""The built-in recurrent network over PyTorch's fused recurrent layers, with pruning masks.

The recurrent stack is surrounded by what the task asks for (`Architecture`): an optional
token embedding or initial-state encoder before it, a readout of the last step or of every
step after it. Masks work as for any masked module (`rnnprune.models.masking`); this network
lists its matrices itself, with the names and kinds its checkpoints have always had.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from rnnprune.data.base import Architecture
from rnnprune.models.base import ModelFactory, ModelInputs, ModelParams
from rnnprune.models.masking import MASK_SUFFIX, MaskedWeights, WeightSlot

Cell = Literal["lstm", "gru", "rnn_tanh", "rnn_relu"]

GATES: dict[str, tuple[str, ...]] = {
    "lstm": ("i", "f", "g", "o"),
    "gru": ("r", "z", "n"),
    "rnn_tanh": ("h",),
    "rnn_relu": ("h",),
}

__all__ = ["GATES", "MASK_SUFFIX", "RECURRENT", "Cell", "RecurrentNet", "RecurrentParams"]


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


class RecurrentNet(MaskedWeights, nn.Module):
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
        self._init_masks(list(self._weight_slots()))

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

    def _weight_slots(self) -> Iterator[WeightSlot]:
        """Every maskable matrix, in the order and with the names checkpoints use."""
        if self.embedding is not None:
            yield WeightSlot(
                "embedding.weight", self.embedding, "weight", -1, "encoder", ("out",), "embedding"
            )
        if self.encoder is not None:
            yield WeightSlot("encoder.weight", self.encoder, "weight", -1, "encoder", ("out",), "encoder")
        for layer in range(self.rnn.num_layers):
            for kind in ("ih", "hh"):
                attr = f"weight_{kind}_l{layer}"
                yield WeightSlot(f"rnn.{attr}", self.rnn, attr, layer, kind, GATES[self.cell], "rnn")  # type: ignore[arg-type]
        yield WeightSlot(
            "readout.weight", self.readout, "weight", self.rnn.num_layers, "readout", ("out",), "readout"
        )


class RecurrentParams(ModelParams):
    """The built-in network's parameters (a config gives them directly under `model`)."""

    cell: Cell = Field(default="lstm", description="lstm, gru, rnn_tanh or rnn_relu.")
    hidden_size: int = Field(default=128, ge=1, description="Hidden units per layer.")
    num_layers: int = Field(default=1, ge=1, description="Stacked recurrent layers.")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout between layers.")


def build_recurrent(params: RecurrentParams, inputs: ModelInputs) -> RecurrentNet:
    return RecurrentNet(
        cell=params.cell,
        input_size=inputs.input_size,
        hidden_size=params.hidden_size,
        num_layers=params.num_layers,
        num_classes=inputs.num_outputs,
        dropout=params.dropout,
        architecture=inputs.architecture,
    )


RECURRENT = ModelFactory(
    name="recurrent",
    params=RecurrentParams,
    build=build_recurrent,
    description="The built-in network: a fused nn.LSTM/GRU/RNN stack with the task's embedding or "
    "initial-state encoder and a linear readout.",
    readout="readout",
)
