"""The trial plan, the phase engine and its hooks: what each schedule compiles to, when
hooks are called, what the checkpoint carries, and resume mid-phase in every phase."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import Field
from torch import nn

from rnnprune.config import validate_config
from rnnprune.models.recurrent import RecurrentNet
from rnnprune.objectives import Classification
from rnnprune.pruning import registry as method_registry
from rnnprune.pruning.base import MethodParams, PruningMethod
from rnnprune.pruning.magnitude import prune_global_magnitude
from rnnprune.pruning.schedules import PruningEvent
from rnnprune.regularization import Regularizer, RegularizerHook
from rnnprune.training.engine import PhaseRun, load_checkpoint, save_checkpoint
from rnnprune.training.hooks import MaskEventsHook, TrainingHook
from rnnprune.training.loop import OptimizerSettings, make_optimizer, train_steps
from rnnprune.training.plan import DenseWeights, FreshInit, MaskSchedule, compile_plan
from rnnprune.training.runner import EpochReport, run_trial


class ScaleParams(MethodParams):
    coefficient: float = Field(default=1e-3, ge=0.0)


class LearntScale(Regularizer):
    """coefficient · scale² · Σ W_hh², with a learnable scale: state the checkpoint must carry."""

    def __init__(self, coefficient: float) -> None:
        super().__init__()
        self.coefficient = coefficient
        self.scale = nn.Parameter(torch.ones(()))

    def penalty(self, model: nn.Module) -> torch.Tensor:
        return self.coefficient * self.scale.square() * model.rnn.weight_hh_l0.square().sum()  # type: ignore[union-attr]


SCALED = PruningMethod(
    "scaled_l2",
    ScaleParams,
    prune_global_magnitude,
    "test double: global magnitude with a learnt L2 penalty",
    regularizer=RegularizerHook(
        active=lambda p: p.coefficient > 0, build=lambda p, m, g: LearntScale(p.coefficient)
    ),
)


@pytest.fixture
def scaled_method(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(method_registry.registered_methods, "scaled_l2", SCALED)


# ----------------------------------------------------------------------------- the plan


@pytest.mark.parametrize(
    "schedule, epochs, steps, restarts",
    [
        ({"kind": "one_shot", "finetune_epochs": 2}, 2, [0], [False]),
        (
            {"kind": "iterative", "rounds": 3, "retrain_epochs": 2, "rewind_epoch": 1},
            6,
            [0, 20, 40],
            [True] * 3,
        ),
        (
            {"kind": "gradual", "prune_epochs": 2, "frequency_steps": 5, "finetune_epochs": 1},
            3,
            [0, 5, 10, 15],
            [False] * 4,
        ),
        ({"kind": "linear", "prune_epochs": 3, "finetune_epochs": 1}, 4, [0, 10, 20], [False] * 3),
    ],
)
def test_each_schedule_compiles_to_dense_then_prune(
    trial_dict: dict[str, Any], schedule: dict[str, Any], epochs: int, steps: list[int], restarts: list[bool]
) -> None:
    trial_dict["pruning"]["schedule"] = schedule
    trial_dict["pruning"]["lr"] = 0.005
    plan = compile_plan(validate_config(trial_dict), steps_per_epoch=10)
    assert [p.name for p in plan.phases] == ["dense", "prune"]
    dense, prune = plan.phases
    assert (dense.epochs, dense.draw, dense.start, dense.masks, dense.pool) == (
        3,
        "dense",
        FreshInit("init"),
        None,
        None,
    )
    assert dense.cycle_starts == (0,) and dense.steps == 30
    assert dense.optimizer.lr == 0.02 and prune.optimizer.lr == 0.005  # pruning.lr is the prune phase's own
    assert (prune.epochs, prune.draw, prune.epoch_offset) == (epochs, "prune", 0)
    assert prune.start == DenseWeights() and prune.regularizer is None and prune.final_prefix is None
    assert isinstance(prune.masks, MaskSchedule) and prune.masks.scope == ("ih", "hh")
    assert [e.step for e in prune.masks.events] == steps
    assert [e.restart for e in prune.masks.events] == restarts
    assert prune.masks.events[-1].target_sparsity == pytest.approx(0.8)
    assert prune.masks.rewind_epoch == schedule.get("rewind_epoch")
    # Cosine restarts with each iterative round, runs once over the phase otherwise.
    assert prune.cycle_starts == (tuple(steps) if all(restarts) else (0,))
    assert prune.steps == epochs * 10 and plan.trial_epochs == epochs


def test_lottery_and_regularizer_phases(trial_dict: dict[str, Any], scaled_method: None) -> None:
    trial_dict["pruning"].update(method="scaled_l2", lottery=True, lr=0.005)
    plan = compile_plan(validate_config(trial_dict), steps_per_epoch=10)
    _, prune, lottery = plan.phases
    assert [p.name for p in plan.phases] == ["dense", "prune", "lottery"]
    assert [p.regularizer.draw for p in plan.phases if p.regularizer] == [
        "regularizer",
        "regularizer",
        "lottery-regularizer",
    ]
    assert [p.regularizer.from_dense for p in plan.phases if p.regularizer] == [False, True, False]
    assert prune.final_prefix == "sparse_"
    # The ticket: fresh weights under the final masks, dense + pruning epochs, training.lr,
    # numbered (and seeded) after the pruning epochs.
    assert lottery.start == FreshInit("lottery-init", keep_masks=True) and lottery.masks is None
    assert (lottery.epochs, lottery.draw, lottery.epoch_offset) == (3 + 3, "prune", 3)
    assert lottery.optimizer.lr == 0.02 and lottery.cycle_starts == (0,) and lottery.steps == 60
    assert plan.trial_epochs == 9 and plan.epochs_of("lottery") == 6 and plan.epochs_of("prune") == 3


# ----------------------------------------------------------------------------- hooks


class Recorder(TrainingHook):
    """Counts its calls and checks what it sees at each point."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.dense_grads: list[bool] = []

    def before_step(self, step: int, model: RecurrentNet, optimizer: torch.optim.Optimizer) -> None:
        self.calls.append(f"before_step {step}")

    def penalty(self, model: RecurrentNet) -> torch.Tensor:
        self.calls.append("penalty")
        return 0.5 * model.readout.weight.abs().sum()

    def after_backward(self, model: RecurrentNet) -> None:
        self.calls.append("after_backward")
        grad, mask = model.rnn.weight_hh_l0.grad, model.rnn.weight_hh_l0_mask
        assert grad is not None
        self.dense_grads.append(bool(grad[~mask].abs().sum() > 0))  # pruned weights have gradients too

    def after_step(self, model: RecurrentNet, optimizer: torch.optim.Optimizer) -> None:
        self.calls.append("after_step")
        assert not model.rnn.weight_hh_l0[~model.rnn.weight_hh_l0_mask].any()  # masks already applied

    def state_dict(self) -> dict[str, Any]:
        return {"calls": list(self.calls)}

    def load_state_dict(self, state: Any) -> None:
        self.calls = list(state["calls"])


def _tiny_model() -> RecurrentNet:
    torch.manual_seed(0)
    model = RecurrentNet("lstm", 3, 4, 1, 5)
    mask = torch.ones_like(model.rnn.weight_hh_l0_mask)
    mask[:, :2] = False
    model.set_masks({"rnn.weight_hh_l0": mask})
    return model


def test_hook_points_are_called_in_order_and_the_penalty_is_trained() -> None:
    model, hook = _tiny_model(), Recorder()
    settings = OptimizerSettings("adam", 1e-2, 0.0, 0.0, "constant", 1.0)
    optimizer = make_optimizer(model, settings, [hook])
    batches = [(torch.randn(6, 7, 3), torch.randint(0, 5, (6,))) for _ in range(2)]
    losses = train_steps(
        model, optimizer, iter(batches), settings, 10, lambda _: 1e-2, Classification(), [hook]
    )
    step = ["penalty", "after_backward", "after_step"]
    assert hook.calls == ["before_step 10", *step, "before_step 11", *step]
    assert hook.dense_grads == [True, True]
    assert losses["train_penalty"] > 0
    assert losses["train_loss"] == pytest.approx(losses["train_task_loss"] + losses["train_penalty"])


def test_hook_state_travels_in_the_phase_checkpoint(trial_dict: dict[str, Any], tmp_path: Path) -> None:
    plan = compile_plan(validate_config(trial_dict), steps_per_epoch=10)
    hook = Recorder()
    hook.calls = ["before_step 3", "penalty"]
    run = PhaseRun(plan.dense, _tiny_model(), [hook], carried={})
    run.epoch, run.seconds, run.history = 2, 1.5, [{"val_loss": 1.0}]
    run.plateau.scale = 0.25
    saved = load_checkpoint(save_checkpoint(run, tmp_path / "phase.pt", note="header"))
    assert saved["note"] == "header"
    restored_hook = Recorder()
    restored = PhaseRun(plan.dense, RecurrentNet("lstm", 3, 4, 1, 5), [restored_hook], carried={})
    restored.load_state_dict(saved)
    assert restored_hook.calls == hook.calls
    assert (restored.epoch, restored.seconds, restored.history) == (2, 1.5, [{"val_loss": 1.0}])
    assert restored.plateau.scale == 0.25
    assert torch.equal(restored.model.rnn.weight_hh_l0_mask, run.model.rnn.weight_hh_l0_mask)


def test_a_restarting_event_gives_the_round_fresh_optimizer_moments() -> None:
    model = _tiny_model()
    schedule = MaskSchedule(
        "global_magnitude",
        method_registry.get("global_magnitude").params(),
        ("hh",),
        (PruningEvent(2, 0.6, restart=True),),
    )
    hook = MaskEventsHook(schedule, seed=0, rewind_state=lambda epoch: pytest.fail("no rewind asked"))
    settings = OptimizerSettings("adam", 1e-2, 0.0, 0.0, "constant", None)
    optimizer = make_optimizer(model, settings)
    batches = [(torch.randn(6, 7, 3), torch.randint(0, 5, (6,)))] * 3
    moments: list[int] = []

    class Watch(TrainingHook):
        def before_step(self, step: int, model: RecurrentNet, optimizer: torch.optim.Optimizer) -> None:
            moments.append(len(optimizer.state))

    train_steps(
        model, optimizer, iter(batches), settings, 0, lambda _: 1e-2, Classification(), [hook, Watch()]
    )
    assert moments == [0, len(list(model.parameters())), 0]  # cleared at the event's step itself
    assert hook.next_event == 1 and model.rnn.weight_hh_l0_mask.float().mean() == pytest.approx(0.4, abs=0.02)


# ----------------------------------------------------------------------------- trials


def test_a_ticket_after_a_pruning_phase_without_epochs_is_pruned(
    trial_dict: dict[str, Any], tmp_path: Path
) -> None:
    trial_dict["pruning"].update(lottery=True, schedule={"kind": "one_shot", "finetune_epochs": 0})
    metrics = run_trial(validate_config(trial_dict), tmp_path / "out").metrics
    assert metrics["pruning_epochs"] == 0 and metrics["lottery_epochs"] == 3
    assert metrics["sparsity"] == pytest.approx(0.8, abs=1e-3)
    assert "sparse_test_accuracy" in metrics


class _Interrupt(Exception):
    pass


def _comparable(metrics: dict[str, Any]) -> dict[str, Any]:
    skip = {"wall_time_s", "dense_train_seconds", "dense_cache_hit"}
    return {k: v for k, v in metrics.items() if k not in skip}


@pytest.mark.parametrize("phase, stop_at", [("dense", 2), ("prune", 2), ("lottery", 5)])
def test_resume_after_a_kill_mid_phase_gives_identical_metrics(
    trial_dict: dict[str, Any], tmp_path: Path, scaled_method: None, phase: str, stop_at: int
) -> None:
    # A learnt regularizer and plateau lr: every piece of phase state must come back.
    trial_dict["training"]["lr_schedule"] = "plateau"
    trial_dict["pruning"].update(
        method="scaled_l2", lottery=True, schedule={"kind": "iterative", "rounds": 2, "retrain_epochs": 2}
    )
    straight = run_trial(validate_config(trial_dict), tmp_path / "straight").metrics

    trial_dict["cache_dir"] = str(tmp_path / "resumed-cache")  # the dense phase must train again
    config = validate_config(trial_dict)

    def stop_dense(epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        if phase == "dense" and epoch == stop_at:
            raise _Interrupt

    def stop_trial(report: EpochReport) -> None:
        if phase != "dense" and report.epoch == stop_at:  # pruning epochs 1-4, ticket epochs 5-11
            raise _Interrupt

    with pytest.raises(_Interrupt):
        run_trial(config, tmp_path / "resumed", callback=stop_trial, on_dense_epoch=stop_dense)
    left = tmp_path / "resumed-cache" / config.dense_hash()[:20] / "progress.pt"
    assert left.is_file() == (phase == "dense")
    assert (tmp_path / "resumed" / "checkpoint.pt").is_file() == (phase != "dense")
    seen: list[int] = []
    resumed = run_trial(config, tmp_path / "resumed", callback=lambda r: seen.append(r.epoch)).metrics
    assert seen == list(range(1 if phase == "dense" else stop_at + 1, 12))
    assert _comparable(resumed) == _comparable(straight)
