"""The forecaster: a plain PyTorch LSTM with a small MLP head, and its rnnprune factory.

`SunspotForecaster` knows nothing of rnnprune; rnnprune finds its LSTM's matrices and the
head's linear layers itself (the last `nn.Linear` is the readout). `build` is the factory a
trial config names (`model.factory: sunspots_lstm`, or `sunspots_forecast.model:build`):
its keyword parameters are the typed `model.params` block.
"""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from rnnprune.models.base import ModelInputs


class SunspotForecaster(nn.Module):
    """A stacked LSTM over the past years; an MLP on the last step's state forecasts the next."""

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int, head_size: int, dropout: float, outputs: int
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            input_size, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.head = nn.Sequential(nn.Linear(hidden_size, head_size), nn.ReLU(), nn.Linear(head_size, outputs))

    def forward(self, years: torch.Tensor) -> torch.Tensor:
        """(batch, years, features) -> (batch, outputs)."""
        states, _ = self.lstm(years)
        return self.head(states[:, -1])


def build(
    inputs: ModelInputs,
    hidden_size: Annotated[int, Field(ge=1, description="LSTM units per layer.")] = 32,
    num_layers: Annotated[int, Field(ge=1, description="Stacked LSTM layers.")] = 2,
    head_size: Annotated[int, Field(ge=1, description="Hidden units of the MLP head.")] = 16,
    dropout: Annotated[float, Field(ge=0.0, lt=1.0, description="Dropout between LSTM layers.")] = 0.0,
) -> nn.Module:
    """Stacked LSTM forecaster with an MLP head (reads the last year's state)."""
    return SunspotForecaster(
        inputs.input_size, hidden_size, num_layers, head_size, dropout, inputs.num_outputs
    )
