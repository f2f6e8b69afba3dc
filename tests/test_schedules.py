import itertools

import pytest

from rnnprune.pruning.schedules import (
    GradualSchedule,
    IterativeSchedule,
    OneShotSchedule,
    cubic_sparsity,
)
from rnnprune.training.loop import OptimizerSettings, Plateau, learning_rate


@pytest.mark.parametrize("initial, final", [(0.0, 0.9), (0.2, 0.95), (0.5, 0.5)])
def test_cubic_values_match_zhu_gupta(initial: float, final: float) -> None:
    start, events, frequency = 100, 8, 25
    for t in range(start, start + events * frequency + 1, frequency):
        expected = final + (initial - final) * (1 - (t - start) / (events * frequency)) ** 3
        assert cubic_sparsity(t, start, events, frequency, initial, final) == pytest.approx(expected)
    # Clamped outside the ramp.
    assert cubic_sparsity(0, start, events, frequency, initial, final) == pytest.approx(initial)
    assert cubic_sparsity(10_000, start, events, frequency, initial, final) == pytest.approx(final)


def test_cubic_prunes_fast_early_and_slowly_late() -> None:
    values = [cubic_sparsity(t, 0, 10, 1, 0.0, 0.9) for t in range(11)]
    increments = [b - a for a, b in itertools.pairwise(values)]
    assert all(x > y for x, y in itertools.pairwise(increments))


def test_gradual_plan_reaches_the_target_at_its_last_event() -> None:
    plan = GradualSchedule(prune_epochs=3, frequency_steps=7, finetune_epochs=2).plan(0.9, 20)
    steps = [e.step for e in plan.events]
    assert plan.epochs == 5
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] < 60
    assert all(b - a == 7 for a, b in itertools.pairwise(steps))
    assert plan.events[-1].target_sparsity == pytest.approx(0.9)
    assert plan.events[0].target_sparsity == pytest.approx(0.0)
    targets = [e.target_sparsity for e in plan.events]
    assert targets == sorted(targets)


def test_gradual_plan_shortens_dt_for_a_short_ramp() -> None:
    plan = GradualSchedule(prune_epochs=1, frequency_steps=1000).plan(0.8, 10)
    assert plan.events[-1].step < 10 and plan.events[-1].target_sparsity == pytest.approx(0.8)


def test_iterative_prunes_the_same_fraction_of_remaining_weights_each_round() -> None:
    schedule = IterativeSchedule(rounds=4, retrain_epochs=2, rewind_epoch=1)
    plan = schedule.plan(0.9, 10)
    fraction = schedule.round_fraction(0.9)
    assert (1 - fraction) ** 4 == pytest.approx(0.1)
    densities = [1 - e.target_sparsity for e in plan.events]
    for before, after in zip([1.0, *densities], densities, strict=False):
        assert after / before == pytest.approx(1 - fraction)
    assert [e.step for e in plan.events] == [0, 20, 40, 60]
    assert all(e.restart for e in plan.events) and plan.rewind_epoch == 1
    assert plan.epochs == 8 and plan.events[-1].target_sparsity == 0.9


def test_one_shot_prunes_once_at_the_start() -> None:
    plan = OneShotSchedule(finetune_epochs=3).plan(0.75, 10)
    assert plan.epochs == 3 and len(plan.events) == 1
    assert plan.events[0].step == 0 and plan.events[0].target_sparsity == 0.75


def test_learning_rate_cycles_restart_with_each_round() -> None:
    plan = IterativeSchedule(rounds=3, retrain_epochs=1).plan(0.5, 10)
    assert plan.segment_bounds(0, 30) == (0, 10)
    assert plan.segment_bounds(15, 30) == (10, 20)
    assert plan.segment_bounds(29, 30) == (20, 30)
    gradual = GradualSchedule(prune_epochs=2, frequency_steps=3, finetune_epochs=1).plan(0.5, 10)
    assert gradual.segment_bounds(25, 30) == (0, 30)


def test_plateau_quarters_the_lr_after_each_epoch_that_does_not_beat_the_best() -> None:
    settings = OptimizerSettings("sgd", 20.0, 0.0, 0.0, "plateau", None, plateau_factor=0.25)
    plateau = Plateau(settings.plateau_factor)
    scales = []
    for val_loss in (5.0, 4.0, 4.5, 4.2, 3.9, 3.9):
        plateau.update(settings, val_loss)
        scales.append(plateau.scale)
    assert scales == [1.0, 1.0, 0.25, 0.0625, 0.0625, 0.015625]
    assert plateau.best == 3.9
    assert learning_rate(settings, step=7, start=0, end=10) == 20.0  # the phase applies the scale
    cosine = OptimizerSettings("sgd", 20.0, 0.0, 0.0, "cosine", None)
    untouched = Plateau(0.25)
    untouched.update(cosine, 9.0)
    untouched.update(cosine, 10.0)
    assert untouched.scale == 1.0  # other schedules never anneal on plateaus
