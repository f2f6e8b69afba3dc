"""The `sunspots` task: forecast next year's sunspot number from the previous `window` years.

Data: the yearly mean sunspot numbers 1700-2008 that statsmodels ships
(`statsmodels.datasets.sunspots`, read from the installed package, never downloaded).
The split is chronological by the year forecast: the last `test_years` are the test set, the
`val_years` before them the validation set, the earlier years training. A window may reach
back into an earlier split (when forecasting, the past is known); no forecast year is in two
splits. Inputs and targets are normalised by the mean and standard deviation of the training
years alone, so nothing about later years leaks into training.

The model minimises the MSE of the normalised forecast; its quality is the RMSE in sunspot
numbers (the original scale), lower is better, and the MAE is reported beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from pydantic import Field
from torch.nn import functional as F

from rnnprune.data.base import Split, Task, TaskData, TaskParams
from rnnprune.errors import DataError
from rnnprune.metric_declarations import Metric
from rnnprune.objectives import LOSS, DeclaredMetrics

RMSE = Metric("rmse", "minimize", "RMSE (sunspot number)")
MAE = Metric("mae", "minimize", "MAE (sunspot number)")

MIN_TRAINING_FORECASTS = 50  # fewer, and an LSTM has next to nothing to learn from


@dataclass(frozen=True)
class ForecastError(DeclaredMetrics):
    """MSE of normalised forecasts as the loss; RMSE and MAE on the original scale.

    `scale` is the training years' standard deviation: an error of e in normalised units is
    e * scale sunspots (the mean shifts forecast and target alike, so only the scale matters).
    """

    declares: ClassVar[tuple[Metric, ...]] = (LOSS, RMSE, MAE)
    quality_metric: ClassVar[Metric] = RMSE
    scale: float = 1.0

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs.reshape(targets.shape), targets)

    def totals(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        errors = outputs.reshape(targets.shape) - targets
        return {
            "squared_error": float(errors.square().sum()),
            "absolute_error": float(errors.abs().sum()),
            "count": float(targets.numel()),
        }

    def summarise(self, totals: dict[str, float]) -> dict[str, float]:
        count = max(totals["count"], 1.0)
        mse = totals["squared_error"] / count
        return {
            "loss": mse,
            "rmse": math.sqrt(mse) * self.scale,
            "mae": totals["absolute_error"] / count * self.scale,
        }


class SunspotsParams(TaskParams):
    window: int = Field(default=20, ge=1, le=100, description="Past years the model reads per forecast.")
    val_years: int = Field(
        default=40, ge=1, description="Years forecast for validation (the ones before the test years)."
    )
    test_years: int = Field(default=40, ge=1, description="Last years of the series, forecast for the test.")


def yearly_series() -> np.ndarray:
    """Sunspot numbers of 1700-2008, one per year, as statsmodels ships them."""
    try:
        from statsmodels.datasets import sunspots
    except ImportError:
        raise DataError(
            "task sunspots reads its data from statsmodels, which is not installed.\n"
            "Fix: pip install statsmodels (or pip install -e examples/sunspots, which depends on it)."
        ) from None
    return sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=np.float64)


def forecast_years(params: SunspotsParams, years: int) -> dict[str, np.ndarray]:
    """Indices into the series of the years each split forecasts (every year after the first
    window can be forecast)."""
    targets = np.arange(params.window, years)
    test_start = years - params.test_years
    val_start = test_start - params.val_years
    return {
        "train": targets[targets < val_start],
        "val": targets[(targets >= val_start) & (targets < test_start)],
        "test": targets[targets >= test_start],
    }


def _check_sizes(params: SunspotsParams, years: int) -> None:
    training = years - params.window - params.val_years - params.test_years
    if training < MIN_TRAINING_FORECASTS:
        raise DataError(
            f"task.params: window={params.window}, val_years={params.val_years} and "
            f"test_years={params.test_years} leave {max(training, 0)} training forecasts of the "
            f"{years} years in the series; at least {MIN_TRAINING_FORECASTS} are needed.\n"
            "Fix: lower task.params.val_years, test_years or window."
        )


def persistence_errors(params: SunspotsParams, split: str = "test") -> dict[str, float]:
    """RMSE and MAE of the persistence forecast (next year = this year) on one split: the
    trivial forecaster a model has to beat."""
    series = yearly_series()
    index = forecast_years(params, len(series))[split]
    errors = series[index] - series[index - 1]
    return {"rmse": float(np.sqrt(np.mean(errors**2))), "mae": float(np.mean(np.abs(errors)))}


def check(params: SunspotsParams, root: Path, download: bool) -> None:
    """The series ships with statsmodels: only the split sizes can be wrong."""
    _check_sizes(params, len(yearly_series()))


def load(params: SunspotsParams, root: Path, download: bool) -> TaskData:
    series = yearly_series()
    _check_sizes(params, len(series))
    index = forecast_years(params, len(series))
    training_years = series[: index["train"][-1] + 1]
    mean, std = training_years.mean(), training_years.std()
    normalised = torch.from_numpy((series - mean) / std).float()

    def split(targets: np.ndarray) -> Split:
        windows = torch.stack([normalised[t - params.window : t] for t in targets])
        return Split(windows.unsqueeze(-1), normalised[torch.from_numpy(targets)])

    return TaskData(
        split(index["train"]),
        split(index["val"]),
        split(index["test"]),
        input_size=1,
        num_classes=1,  # one forecast per sequence
        objective=ForecastError(scale=float(std)),
    )


TASK = Task(
    name="sunspots",
    params=SunspotsParams,
    check=check,  # type: ignore[arg-type]
    load=load,  # type: ignore[arg-type]
    description="Forecast next year's sunspot number from the past years' (statsmodels' yearly "
    "series 1700-2008; RMSE in sunspots, persistence 29.89 on the default test years).",
    objective=ForecastError,
    # The hypervolume's reference: persistence (next year = this year) on the default test
    # years, 1969-2008 (`persistence_errors(SunspotsParams())`; a test checks these values).
    # A forecaster worse than that adds nothing to a front. Other split sizes change the
    # persistence errors but not this reference.
    chance={"rmse": 29.89, "mae": 22.74},
)
