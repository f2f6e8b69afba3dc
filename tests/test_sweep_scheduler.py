"""ASHA stops trials by comparing them only with trials of the same target sparsity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from rnnprune.sweep.scheduler import PerLevelASHA


@dataclass(eq=False)
class FakeTrial:
    trial_id: str
    config: dict[str, Any] = field(default_factory=dict)


def _race(scheduler: TrialScheduler) -> dict[str, str]:
    """Dense-ish trials reach 0.98, very sparse ones 0.70; within each level one is worse."""
    accuracy = {"a50": 0.98, "b50": 0.97, "a95": 0.70, "b95": 0.69}
    trials = {name: FakeTrial(name, {"level": 0.5 if name.endswith("50") else 0.95}) for name in accuracy}
    for trial in trials.values():
        scheduler.on_trial_add(None, trial)  # type: ignore[arg-type]
    decisions = {}
    for step in (1, 2, 3, 4):
        for name in ("a50", "b50", "a95", "b95"):
            if decisions.get(name) == TrialScheduler.STOP:
                continue
            result = {"training_iteration": step, "val_accuracy": accuracy[name]}
            decisions[name] = scheduler.on_trial_result(None, trials[name], result)  # type: ignore[arg-type]
    return decisions


def test_one_asha_over_all_levels_stops_sparse_trials_for_being_sparse() -> None:
    single = AsyncHyperBandScheduler(
        metric="val_accuracy",
        mode="max",
        grace_period=1,
        reduction_factor=2,
        max_t=10,
        time_attr="training_iteration",
    )
    decisions = _race(single)
    assert decisions["a95"] == TrialScheduler.STOP  # the best 95% trial, stopped by 50% trials


def test_per_level_asha_ranks_within_each_level() -> None:
    router = PerLevelASHA(
        lambda config: config["level"], "val_accuracy", "max", grace_period=1, reduction_factor=2, max_t=10
    )
    decisions = _race(router)
    assert set(router.levels) == {0.5, 0.95}
    assert decisions["a95"] == TrialScheduler.CONTINUE and decisions["a50"] == TrialScheduler.CONTINUE
    assert decisions["b95"] == TrialScheduler.STOP and decisions["b50"] == TrialScheduler.STOP


def test_a_trials_level_is_looked_up_once_not_per_result() -> None:
    lookups: list[float] = []

    def level_of(config: dict[str, Any]) -> float:
        lookups.append(config["level"])
        return config["level"]

    router = PerLevelASHA(level_of, "val_accuracy", "max", grace_period=1, reduction_factor=2, max_t=10)
    _race(router)
    assert sorted(lookups) == [0.5, 0.5, 0.95, 0.95]  # one per trial, over 4 trials x 4 results
