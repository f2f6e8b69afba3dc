"""ASHA within each sparsity level, never across levels.

A sparser trial is not a worse trial: one ASHA over mixed sparsity targets stops the
sparse trials first just for being sparse. Ray's schedulers rank every trial against every
other, so this thin router gives each target sparsity its own `AsyncHyperBandScheduler`;
all the early-stopping logic stays Ray's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler


class PerLevelASHA(FIFOScheduler):
    def __init__(
        self,
        level_of: Callable[[dict[str, Any]], float],
        metric: str,
        mode: str,
        grace_period: int,
        reduction_factor: float,
        max_t: int,
    ) -> None:
        super().__init__()
        self._level_of = level_of
        self._settings = dict(
            metric=metric,
            mode=mode,
            grace_period=grace_period,
            reduction_factor=reduction_factor,
            max_t=max_t,
            time_attr="training_iteration",
        )
        self.levels: dict[float, AsyncHyperBandScheduler] = {}
        # A trial's level never changes: it is looked up once, when Tune adds the trial (the
        # lookup builds and validates a trial config), not again for every reported epoch.
        self._trial_level: dict[str, float] = {}
        self._metric, self._mode = metric, mode

    def _for(self, trial: Trial) -> AsyncHyperBandScheduler:
        level = self._trial_level.get(trial.trial_id)
        if level is None:
            level = self._trial_level[trial.trial_id] = self._level_of(trial.config)
        if level not in self.levels:
            self.levels[level] = AsyncHyperBandScheduler(**self._settings)
        return self.levels[level]

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True  # metric and mode come from the sweep spec's scheduler block

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self._for(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        return self._for(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        self._for(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._for(trial).on_trial_remove(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self._for(trial).on_trial_error(tune_controller, trial)

    def debug_string(self) -> str:
        return "; ".join(f"sparsity {level}: {s.debug_string()}" for level, s in sorted(self.levels.items()))
