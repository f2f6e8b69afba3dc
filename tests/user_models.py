"""Third-party-style recurrent models, written the way users write theirs (no rnnprune types),
and their factories as plain functions: what the plugin tests prune."""

from __future__ import annotations

import torch
from torch import nn

from rnnprune.models.base import ModelInputs


class BidirectionalGRUClassifier(nn.Module):
    """A 2-layer bidirectional GRU reading out its last step's two directions."""

    def __init__(self, input_size: int, hidden_size: int, num_classes: int) -> None:
        super().__init__()
        self.gru = nn.GRU(input_size, hidden_size, num_layers=2, bidirectional=True, batch_first=True)
        self.classifier = nn.Linear(2 * hidden_size, num_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.gru(inputs)
        return self.classifier(outputs[:, -1])


class AttentionLSTM(nn.Module):
    """An LSTM encoder whose steps are pooled by learnt attention, then a linear head."""

    def __init__(self, input_size: int, hidden_size: int, num_classes: int) -> None:
        super().__init__()
        self.encoder = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.attention = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.Tanh(), nn.Linear(hidden_size, 1)
        )
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        states, _ = self.encoder(inputs)
        weights = torch.softmax(self.attention(states), dim=1)
        return self.head((weights * states).sum(dim=1))


class TwoLSTMs(nn.Module):
    """Two separate LSTM layers of different widths with a projection between them."""

    def __init__(self, input_size: int, hidden_size: int, num_classes: int) -> None:
        super().__init__()
        self.first = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.bridge = nn.Linear(hidden_size, hidden_size // 2)
        self.second = nn.LSTM(hidden_size // 2, hidden_size // 2, batch_first=True)
        self.out = nn.Linear(hidden_size // 2, num_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.first(inputs)
        outputs, _ = self.second(torch.relu(self.bridge(outputs)))
        return self.out(outputs[:, -1])


class CellLoop(nn.Module):
    """A hand-written loop over an LSTMCell, with a custom parameter matrix beside it."""

    def __init__(self, input_size: int, hidden_size: int, num_classes: int) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(input_size, hidden_size)
        self.mixing = nn.Parameter(torch.eye(hidden_size))
        self.readout = nn.Linear(hidden_size, num_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        h = inputs.new_zeros(len(inputs), self.cell.hidden_size)
        c = torch.zeros_like(h)
        for step in range(inputs.shape[1]):
            h, c = self.cell(inputs[:, step], (h, c))
            h = h @ self.mixing
        return self.readout(h)


class NoRecurrence(nn.Module):
    def __init__(self, input_size: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(input_size, num_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.linear(inputs[:, -1])


def bidirectional_gru(inputs: ModelInputs, hidden_size: int = 8) -> nn.Module:
    """2-layer bidirectional GRU classifier."""
    return BidirectionalGRUClassifier(inputs.input_size, hidden_size, inputs.num_outputs)


def attention_lstm(inputs: ModelInputs, hidden_size: int = 8) -> nn.Module:
    """LSTM encoder with an attention readout."""
    return AttentionLSTM(inputs.input_size, hidden_size, inputs.num_outputs)


def two_lstms(inputs: ModelInputs, hidden_size: int = 8) -> nn.Module:
    """Two separate LSTM layers."""
    return TwoLSTMs(inputs.input_size, hidden_size, inputs.num_outputs)


def cell_loop(inputs: ModelInputs, hidden_size: int = 8) -> nn.Module:
    return CellLoop(inputs.input_size, hidden_size, inputs.num_outputs)


def no_recurrence(inputs: ModelInputs) -> nn.Module:
    return NoRecurrence(inputs.input_size, inputs.num_outputs)


def untyped(inputs: ModelInputs, width=8):  # type: ignore[no-untyped-def]
    """No annotation: the default's type (int) is the parameter's type."""
    return AttentionLSTM(inputs.input_size, width, inputs.num_outputs)


def needs_a_default(inputs: ModelInputs, hidden_size: int) -> nn.Module:
    return AttentionLSTM(inputs.input_size, hidden_size, inputs.num_outputs)


def returns_no_module(inputs: ModelInputs) -> int:
    return 3


NOT_A_FACTORY = 42


def wrong_input_size(inputs: ModelInputs) -> nn.Module:
    """Built for inputs of another width than the task's."""
    return AttentionLSTM(inputs.input_size + 5, 4, inputs.num_outputs)
