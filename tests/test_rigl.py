"""Dynamic sparse training (`rigl`): what a drop-and-regrow update removes and regrows, the
drop-fraction schedule, exact sparsity at every optimizer step under every schedule, identical
results after a kill, and users' own models."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from rnnprune.config import validate_config
from rnnprune.errors import PluginError
from rnnprune.models.recurrent import RecurrentNet
from rnnprune.objectives import Classification
from rnnprune.pruning import registry as method_registry
from rnnprune.pruning.base import DynamicSparsity, NoParams, PrunableWeight, PruningMethod
from rnnprune.pruning.magnitude import prune_global_magnitude
from rnnprune.pruning.rigl import (
    RigLParams,
    allocate,
    drop_fraction_at,
    prune_rigl,
    update_due,
    update_rigl,
)
from rnnprune.pruning.schedules import PruningEvent
from rnnprune.pruning.selection import prune_count
from rnnprune.training import engine
from rnnprune.training.hooks import MaskEventsHook, MaskUpdateHook, TrainingHook
from rnnprune.training.loop import OptimizerSettings, make_optimizer, train_steps
from rnnprune.training.plan import MaskSchedule
from rnnprune.training.runner import EpochReport, load_model, run_trial


def _weight(
    values: torch.Tensor, mask: torch.Tensor, grad: torch.Tensor, gates: tuple[str, ...]
) -> PrunableWeight:
    parameter = nn.Parameter(values.clone())
    parameter.grad = grad.clone()
    return PrunableWeight("w", 0, "hh", gates, parameter, mask.clone())


# ----------------------------------------------------------------------------- one update


def test_an_update_drops_the_smallest_active_weights_and_regrows_the_largest_gradients() -> None:
    # One 2 x 4 block (an Elman layer: one gate). Active: the first row; magnitudes 4 3 1 2.
    values = torch.tensor([[4.0, -3.0, 1.0, -2.0], [0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, True], [False, False, False, False]])
    grad = torch.tensor([[9.0, 9.0, 0.3, -0.4], [0.1, -5.0, 0.2, 7.0]])
    params = RigLParams(drop_fraction=0.5, drop_schedule="constant")
    result = update_rigl([_weight(values, mask, grad, ("h",))], params, 10, 100, torch.Generator())
    # Dropped: |1| and |-2|, the two smallest active; regrown: the two largest |gradient| of
    # the rest (7 and -5, not the just-dropped 0.3 and -0.4 nor the small 0.1 and 0.2).
    assert result.masks["w"].tolist() == [[True, True, False, False], [False, True, False, True]]
    assert result.diagnostics == {"drop_fraction": 0.5, "dropped": 2.0, "regrown": 2.0}


def test_a_dropped_weight_with_a_large_gradient_may_come_straight_back() -> None:
    values = torch.tensor([[4.0, 1.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False, False]])
    grad = torch.tensor([[0.0, 8.0, 0.5, 0.1]])
    params = RigLParams(drop_fraction=0.5, drop_schedule="constant")
    result = update_rigl([_weight(values, mask, grad, ("h",))], params, 10, 100, torch.Generator())
    assert result.masks["w"].tolist() == [[True, True, False, False]]  # as in RigL: not a new weight
    assert result.diagnostics["regrown"] == 0.0


def test_gate_blocks_keep_their_counts_unless_gates_redistribute() -> None:
    # A GRU-like matrix: three gate blocks of 2 rows; all gradient sits in the last gate.
    torch.manual_seed(0)
    values = torch.randn(6, 4)
    mask = torch.rand(6, 4) > 0.5
    grad = torch.zeros(6, 4)
    grad[4:] = torch.rand(2, 4) + 1.0
    weight = _weight(values * mask, mask, grad, ("r", "z", "n"))
    params = RigLParams(drop_fraction=0.5, drop_schedule="constant")
    per_gate = update_rigl([weight], params, 10, 100, torch.Generator()).masks["w"]
    assert [int(per_gate[b : b + 2].sum()) for b in (0, 2, 4)] == [
        int(mask[b : b + 2].sum()) for b in (0, 2, 4)
    ]
    pooled = update_rigl(
        [weight], params.model_copy(update={"redistribution": "gate"}), 10, 100, torch.Generator()
    ).masks["w"]
    assert int(pooled.sum()) == int(mask.sum())
    assert int(pooled[4:].sum()) > int(mask[4:].sum())  # the gate with the gradient gained weights


def test_random_regrowth_is_drawn_from_the_generator() -> None:
    values, mask = torch.randn(8, 8), torch.rand(8, 8) > 0.5
    weight = _weight(values * mask, mask, torch.zeros(8, 8), ("h",))
    params = RigLParams(regrow="random", drop_fraction=0.5, drop_schedule="constant")
    draws = [
        update_rigl([weight], params, 10, 100, torch.Generator().manual_seed(s)).masks["w"] for s in (1, 1, 2)
    ]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    assert {int(d.sum()) for d in draws} == {int(mask.sum())}


def test_the_cosine_drop_fraction_decays_to_zero_at_t_end_and_updates_stop_there() -> None:
    params = RigLParams(drop_fraction=0.4, stop_fraction=0.5, update_every_steps=10)
    assert drop_fraction_at(params, 0, 200) == pytest.approx(0.4)
    assert drop_fraction_at(params, 50, 200) == pytest.approx(0.2)
    assert drop_fraction_at(params, 25, 200) == pytest.approx(0.2 * (1 + math.cos(math.pi / 4)))
    assert drop_fraction_at(params, 100, 200) == pytest.approx(0.0)
    constant = params.model_copy(update={"drop_schedule": "constant"})
    assert drop_fraction_at(constant, 90, 200) == 0.4
    assert [s for s in range(200) if update_due(params, s, 200)] == [10, 20, 30, 40, 50, 60, 70, 80, 90]


# ----------------------------------------------------------------------------- event masks


def test_allocation_adds_up_exactly_and_fills_what_cannot_take_its_share() -> None:
    assert allocate(10, [1.0, 1.0, 1.0], [100, 100, 100]) == [4, 3, 3]
    assert allocate(50, [10.0, 1.0], [20, 100]) == [20, 30]  # the first is full, the rest moves on
    assert sum(allocate(997, [3.0, 7.0, 11.0, 0.5], [400, 400, 400, 400])) == 997


@pytest.mark.parametrize("distribution", ["uniform", "erk", "global"])
def test_an_event_brings_the_pool_to_exactly_the_target(distribution: str) -> None:
    model = RecurrentNet("lstm", input_size=3, hidden_size=8, num_layers=2, num_classes=3)
    weights = model.prunable_weights(("ih", "hh", "readout"))
    numel = sum(w.numel for w in weights)
    for target in (0.5, 0.8, 0.93):
        params = RigLParams(distribution=distribution)  # type: ignore[arg-type]
        masks = method_registry.get("rigl")(weights, target, params, torch.Generator()).masks
        model.set_masks(masks)
        assert sum(int(m.sum()) for m in masks.values()) == numel - prune_count(numel, target)
        if distribution == "uniform":  # every matrix at the target, up to rounding
            assert all(abs(int(masks[w.name].sum()) - (1 - target) * w.numel) < 1 for w in weights)
        if distribution == "erk":  # kept ∝ rows + columns, where no matrix is full
            scale = (numel - prune_count(numel, target)) / sum(sum(w.weight.shape) for w in weights)
            if all(scale * sum(w.weight.shape) < w.numel for w in weights):
                assert all(abs(int(masks[w.name].sum()) - scale * sum(w.weight.shape)) < 1 for w in weights)
            else:  # the small readout (3 x 8) would need more than all its weights: it stays full
                assert bool(masks["readout.weight"].all())


def test_a_random_event_mask_ignores_magnitudes() -> None:
    small = PrunableWeight(
        "small", 0, "hh", ("h",), torch.full((10, 10), 1e-3), torch.ones(10, 10, dtype=torch.bool)
    )
    large = PrunableWeight(
        "large", 0, "hh", ("h",), torch.full((10, 10), 1.0), torch.ones(10, 10, dtype=torch.bool)
    )
    masks = prune_rigl(
        [small, large], 0.5, RigLParams(distribution="global", selection="random"), torch.Generator()
    )
    assert 20 < int(masks["small"].sum()) < 80


# ----------------------------------------------------------------------------- in training


def test_sparsity_is_exact_after_every_step_and_regrown_weights_start_from_zero() -> None:
    torch.manual_seed(0)
    model = RecurrentNet("lstm", 3, 8, 1, 4)
    scope = ("ih", "hh")
    params = RigLParams(update_every_steps=2, drop_fraction=0.5, drop_schedule="constant", stop_fraction=1.0)
    events = (PruningEvent(0, 0.5), PruningEvent(4, 0.7), PruningEvent(9, 0.8))
    schedule = MaskSchedule("rigl", params, scope, events)
    settings = OptimizerSettings("adam", 1e-2, 0.0, 0.0, "constant", 1.0)
    numel = sum(w.numel for w in model.prunable_weights(scope))
    kept_after: list[int] = []
    new_weights: list[tuple[float, float]] = []  # (|w|, |moment|) of regrown weights, before their step
    changes: list[int] = []

    class Observer(TrainingHook):
        def before_step(self, step: int, model: RecurrentNet, optimizer: torch.optim.Optimizer) -> None:
            self.masks = {n: m.clone() for n, m in model.masks().items()}

        def after_backward(self, model: RecurrentNet) -> None:
            for w in model.prunable_weights(scope):
                new = w.mask & ~self.masks[w.name]
                if new.any():
                    moment = optimizer.state[w.weight]["exp_avg"] if optimizer.state else torch.zeros(1)
                    value = w.weight.detach()[new].abs().max()
                    new_weights.append((float(value), float(moment[new].abs().max())))
            changes.append(
                sum(int((w.mask != self.masks[w.name]).sum()) for w in model.prunable_weights(scope))
            )

        def after_step(self, model: RecurrentNet, optimizer: torch.optim.Optimizer) -> None:
            weights = model.prunable_weights(scope)
            kept_after.append(sum(int(w.mask.sum()) for w in weights))
            assert all(bool((w.weight[~w.mask] == 0).all()) for w in weights)

    hooks = [MaskEventsHook(schedule, 0, lambda epoch: {}), MaskUpdateHook(schedule, 0, 14), Observer()]
    optimizer = make_optimizer(model, settings)
    batches = [(torch.randn(6, 5, 3), torch.randint(0, 4, (6,))) for _ in range(14)]
    train_steps(model, optimizer, iter(batches), settings, 0, lambda _: 1e-2, Classification(), hooks)
    target = [0.5] * 4 + [0.7] * 5 + [0.8] * 5
    assert kept_after == [numel - prune_count(numel, t) for t in target]
    # Updates every 2 steps, not at the event's step 4: each of them moved weights.
    assert [s for s, c in enumerate(changes) if c and s not in (0, 4, 9)] == [2, 6, 8, 10, 12]
    assert hooks[1].updates == 5 and new_weights
    assert all(value == 0.0 and moment == 0.0 for value, moment in new_weights)


def test_an_update_that_changes_the_pools_count_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def drop_only(
        weights: Any, params: Any, step: int, steps: int, generator: Any
    ) -> dict[str, torch.Tensor]:
        return {w.name: torch.zeros_like(w.mask) for w in weights}

    leaky = PruningMethod(
        "leaky",
        NoParams,
        prune_global_magnitude,
        "test double: an update that only drops",
        dynamic=DynamicSparsity(due=lambda p, step, steps: step == 1, update=drop_only),
    )
    monkeypatch.setitem(method_registry.registered_methods, "leaky", leaky)
    model = RecurrentNet("gru", 3, 4, 1, 2)
    schedule = MaskSchedule("leaky", NoParams(), ("hh",), (PruningEvent(0, 0.5),))
    settings = OptimizerSettings("sgd", 1e-2, 0.0, 0.0, "constant", None)
    hooks = [MaskEventsHook(schedule, 0, lambda epoch: {}), MaskUpdateHook(schedule, 0, 4)]
    batches = [(torch.randn(2, 3, 3), torch.randint(0, 2, (2,)))] * 2
    with pytest.raises(
        PluginError, match=r"leaky updated the masks at step 1 to keep 0 weights of the pool instead of 24"
    ):
        train_steps(
            model,
            make_optimizer(model, settings),
            iter(batches),
            settings,
            0,
            lambda _: 1e-2,
            Classification(),
            hooks,
        )


# ----------------------------------------------------------------------------- trials

SCHEDULES = {
    "one_shot": {"kind": "one_shot", "finetune_epochs": 2},
    "iterative": {"kind": "iterative", "rounds": 2, "retrain_epochs": 1, "rewind_epoch": 1},
    "gradual": {"kind": "gradual", "prune_epochs": 1, "frequency_steps": 5, "finetune_epochs": 1},
    "linear": {"kind": "linear", "prune_epochs": 2, "finetune_epochs": 0},
}


class Watched:
    """What the pruning phases of trials did: (kept, expected kept) of the pool after every
    optimizer step, and how many mask entries each update changed."""

    def __init__(self) -> None:
        self.kept: list[tuple[int, int]] = []
        self.moved: list[int] = []


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> Watched:
    seen = Watched()

    class Checked(MaskUpdateHook):
        def after_backward(self, model: Any) -> None:
            before = {name: mask.clone() for name, mask in model.masks().items()}
            updates = self.updates
            super().after_backward(model)
            if self.updates > updates:
                seen.moved.append(sum(int((m != before[n]).sum()) for n, m in model.masks().items()))

        def after_step(self, model: Any, optimizer: torch.optim.Optimizer) -> None:
            weights = model.prunable_weights(self.schedule.scope)
            numel = sum(w.numel for w in weights)
            target = [e.target_sparsity for e in self.schedule.events if e.step <= self.step][-1]
            seen.kept.append((sum(int(w.mask.sum()) for w in weights), numel - prune_count(numel, target)))

    monkeypatch.setattr(engine, "MaskUpdateHook", Checked)
    return seen


def _rigl_trial(trial: dict[str, Any], **params: Any) -> dict[str, Any]:
    trial["training"]["epochs"] = 2
    trial["pruning"].update(method="rigl", params={"update_every_steps": 2, **params})
    return trial


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule_keeps_the_target_at_every_step_while_weights_move(
    trial_dict: dict[str, Any], tmp_path: Path, schedule: str, watched: Watched
) -> None:
    trial = _rigl_trial(trial_dict, distribution="erk", redistribution="gate")
    trial["pruning"]["schedule"] = SCHEDULES[schedule]
    config = validate_config(trial)
    metrics = run_trial(config, tmp_path / "out").metrics
    assert len(watched.kept) == 24  # 12 steps per epoch, 2 epochs
    assert all(kept == expected for kept, expected in watched.kept)
    # Every 2 steps before T_end (step 18), but not at an event's step (one-shot: only step 0).
    updates = 8 if schedule == "one_shot" else 7
    assert metrics["mask_updates"] == len(watched.moved) == updates and sum(watched.moved) > 0
    _, model, _ = load_model(tmp_path / "out" / "model.pt")
    pool = model.prunable_weights(config.pruning.scope)
    numel = sum(w.numel for w in pool)
    assert sum(int(w.mask.sum()) for w in pool) == numel - prune_count(numel, 0.8)


class _Interrupt(Exception):
    pass


def test_a_trial_killed_mid_phase_resumes_to_identical_metrics(
    trial_dict: dict[str, Any], tmp_path: Path
) -> None:
    # Random regrowth: the update's draws must come from its position, not a running generator.
    trial = _rigl_trial(trial_dict, regrow="random", drop_schedule="constant")
    trial["pruning"]["schedule"] = {
        "kind": "gradual",
        "prune_epochs": 2,
        "frequency_steps": 5,
        "finetune_epochs": 1,
    }
    config = validate_config(trial)
    straight = run_trial(config, tmp_path / "straight").metrics

    def stop(report: EpochReport) -> None:
        if report.epoch == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        run_trial(config, tmp_path / "resumed", callback=stop)
    resumed = run_trial(config, tmp_path / "resumed").metrics
    skip = {"wall_time_s", "dense_train_seconds", "dense_cache_hit"}
    assert straight["mask_updates"] > 0
    assert {k: v for k, v in resumed.items() if k not in skip} == {
        k: v for k, v in straight.items() if k not in skip
    }


@pytest.mark.parametrize("factory", ["bidirectional_gru", "attention_lstm", "two_lstms"])
def test_dynamic_sparse_training_runs_on_a_users_model(
    trial_dict: dict[str, Any], tmp_path: Path, factory: str, watched: Watched
) -> None:
    trial = _rigl_trial(trial_dict)
    trial["training"]["epochs"] = 1
    trial["model"] = {"factory": f"tests.user_models:{factory}", "params": {"hidden_size": 8}}
    trial["pruning"]["schedule"] = SCHEDULES["one_shot"]
    trial["pruning"].update(
        scope=["ih", "hh", "linear", "readout"] if factory == "attention_lstm" else ["ih", "hh"]
    )
    metrics = run_trial(validate_config(trial), tmp_path / "out").metrics
    assert metrics["mask_updates"] > 0 and sum(watched.moved) > 0
    assert watched.kept and all(kept == expected for kept, expected in watched.kept)
    _, model, _ = load_model(tmp_path / "out" / "model.pt")
    for weight in model.prunable_weights(("ih", "hh")):
        assert bool((weight.weight[~weight.mask] == 0).all()), weight.name
