"""The core hooks behind moduli regularisation: a method's penalty in every training phase
(and in the dense hash), the linear schedule, and the lottery-ticket control."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import Field
from torch import nn

from rnnprune.config import validate_config
from rnnprune.data.base import Architecture, Split
from rnnprune.errors import ConfigError
from rnnprune.models.recurrent import RecurrentNet
from rnnprune.pruning import registry as method_registry
from rnnprune.pruning.base import MethodParams, PruningMethod
from rnnprune.pruning.magnitude import prune_global_magnitude
from rnnprune.pruning.schedules import LinearSchedule
from rnnprune.regularization import Regularizer, RegularizerHook
from rnnprune.training.loop import EVAL_OUTPUTS, eval_batch_size
from rnnprune.training.runner import EpochReport, run_trial


class ToyParams(MethodParams):
    coefficient: float = Field(default=1e-2, ge=0.0)


class ToyL2(Regularizer):
    """coefficient · Σ W_hh² with a random per-row weight, so draws can be told apart."""

    def __init__(self, coefficient: float, rows: int, generator: torch.Generator) -> None:
        super().__init__()
        self.coefficient = coefficient
        self.register_buffer("row_weights", torch.rand(rows, 1, generator=generator), persistent=False)

    def penalty(self, model: nn.Module) -> torch.Tensor:
        weight = model.rnn.weight_hh_l0  # type: ignore[union-attr]
        return self.coefficient * (self.row_weights * weight.square()).sum()


BUILT: list[ToyL2] = []


def _build(params: ToyParams, model: nn.Module, generator: torch.Generator) -> ToyL2:
    built = ToyL2(params.coefficient, model.rnn.weight_hh_l0.shape[0], generator)  # type: ignore[union-attr]
    BUILT.append(built)
    return built


TOY = PruningMethod(
    "toy_l2",
    ToyParams,
    prune_global_magnitude,
    "test double: global magnitude with an L2 penalty",
    regularizer=RegularizerHook(active=lambda p: p.coefficient > 0, build=_build),
)


@pytest.fixture
def toy_method(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(method_registry.registered_methods, "toy_l2", TOY)
    BUILT.clear()


def test_linear_schedule_ramps_in_equal_steps_at_epoch_starts() -> None:
    plan = LinearSchedule(prune_epochs=4, finetune_epochs=1).plan(0.9, steps_per_epoch=10)
    assert plan.epochs == 5
    assert [e.step for e in plan.events] == [0, 10, 20, 30]
    assert [e.target_sparsity for e in plan.events] == pytest.approx([0.225, 0.45, 0.675, 0.9])
    assert plan.events[-1].target_sparsity == 0.9  # exactly the target at the last event


def test_penalty_enters_the_dense_hash_only_when_it_penalises(
    trial_dict: dict[str, Any], toy_method: None
) -> None:
    plain = validate_config(trial_dict)
    trial_dict["pruning"].update(method="toy_l2", params={"coefficient": 0.0})
    inactive = validate_config(trial_dict)
    trial_dict["pruning"]["params"] = {"coefficient": 0.01}
    active = validate_config(trial_dict)
    trial_dict["pruning"]["params"] = {"coefficient": 0.02}
    stronger = validate_config(trial_dict)
    assert inactive.dense_hash() == plain.dense_hash()  # trains exactly like the plain method
    assert len({plain.dense_hash(), active.dense_hash(), stronger.dense_hash()}) == 3
    assert active.regularizes and not inactive.regularizes


def test_penalty_is_trained_in_every_phase_and_reported(
    trial_dict: dict[str, Any], tmp_path: Path, toy_method: None
) -> None:
    trial_dict["pruning"].update(method="toy_l2", params={"coefficient": 0.01})
    metrics = run_trial(validate_config(trial_dict), tmp_path / "out").metrics
    # Built for the dense phase and the pruning phase, from the same draw.
    assert len(BUILT) == 2
    assert torch.equal(BUILT[0].row_weights, BUILT[1].row_weights)
    for epoch in metrics["history"]:
        assert epoch["train_penalty"] > 0
        assert epoch["train_loss"] == pytest.approx(epoch["train_task_loss"] + epoch["train_penalty"])
    assert metrics["sparsity"] == pytest.approx(0.8, abs=1e-3)


def test_penalty_shrinks_the_recurrent_weights(
    trial_dict: dict[str, Any], tmp_path: Path, toy_method: None
) -> None:
    trial_dict["pruning"].update(target_sparsity=0.0)
    plain = run_trial(validate_config(trial_dict), tmp_path / "plain")
    trial_dict["pruning"].update(method="toy_l2", params={"coefficient": 1.0})
    penalised = run_trial(validate_config(trial_dict), tmp_path / "penalised")

    def hh_norm(output: Path) -> float:
        state = torch.load(output / "model.pt", weights_only=False)["state_dict"]
        return float(state["rnn.weight_hh_l0"].norm())

    assert hh_norm(penalised.output_dir) < 0.5 * hh_norm(plain.output_dir)


def _lottery_dict(trial_dict: dict[str, Any]) -> dict[str, Any]:
    trial_dict["pruning"].update(
        method="toy_l2",
        params={"coefficient": 0.001},
        schedule={"kind": "linear", "prune_epochs": 2, "finetune_epochs": 0},
    )
    return trial_dict


def test_lottery_ticket_keeps_the_masks_and_retrains_from_fresh_weights(
    trial_dict: dict[str, Any], tmp_path: Path, toy_method: None
) -> None:
    trial_dict = _lottery_dict(trial_dict)
    trained = run_trial(validate_config(trial_dict), tmp_path / "trained")
    trial_dict["pruning"]["lottery"] = True
    reports: list[EpochReport] = []
    ticket = run_trial(validate_config(trial_dict), tmp_path / "ticket", callback=reports.append)

    dense_epochs, pruning_epochs = trial_dict["training"]["epochs"], 2
    assert ticket.metrics["lottery_epochs"] == dense_epochs + pruning_epochs
    assert [r.epoch for r in reports] == list(range(1, 2 * pruning_epochs + dense_epochs + 1))
    # The trained sparse model is the plain run's, reported under sparse_.
    assert ticket.metrics["sparse_test_accuracy"] == trained.metrics["test_accuracy"]
    assert ticket.metrics["sparse_val_loss"] == trained.metrics["val_loss"]

    def state(result: Any) -> dict[str, torch.Tensor]:
        return torch.load(result.output_dir / "model.pt", weights_only=False)["state_dict"]

    trained_state, ticket_state = state(trained), state(ticket)
    for name in ("rnn.weight_ih_l0", "rnn.weight_hh_l0"):
        assert torch.equal(trained_state[name + "_mask"], ticket_state[name + "_mask"])
        assert not torch.equal(trained_state[name], ticket_state[name])
        assert not ticket_state[name][~ticket_state[name + "_mask"]].any()
    assert ticket.metrics["sparsity"] == pytest.approx(trained.metrics["sparsity"])
    # A fresh regularizer draw for the ticket, unrelated to the trained model's.
    assert not torch.equal(BUILT[-1].row_weights, BUILT[0].row_weights)


class _Interrupt(Exception):
    pass


def test_lottery_resumes_mid_ticket_with_the_same_result(
    trial_dict: dict[str, Any], tmp_path: Path, toy_method: None
) -> None:
    trial_dict = _lottery_dict(trial_dict)
    trial_dict["pruning"]["lottery"] = True
    config = validate_config(trial_dict)
    straight = run_trial(config, tmp_path / "straight").metrics

    def stop_in_the_ticket(report: EpochReport) -> None:
        if report.epoch == 4:  # pruning epochs 1-2, ticket epochs 3-7
            raise _Interrupt

    with pytest.raises(_Interrupt):
        run_trial(config, tmp_path / "resumed", callback=stop_in_the_ticket)
    resumed = run_trial(config, tmp_path / "resumed").metrics
    for key in ("test_accuracy", "val_loss", "sparse_test_accuracy", "sparsity"):
        assert resumed[key] == straight[key]
    assert [h["val_loss"] for h in resumed["history"]] == [h["val_loss"] for h in straight["history"]]


def test_a_scope_naming_weights_the_task_lacks_fails_before_training(
    trial_dict: dict[str, Any], tmp_path: Path
) -> None:
    trial_dict["pruning"]["scope"] = ["hh", "encoder"]  # sequential MNIST has no encoder
    with pytest.raises(ConfigError, match=r"pruning.scope: task 'seq_mnist' has no encoder weights"):
        run_trial(validate_config(trial_dict), tmp_path / "out")
    assert not (tmp_path / "cache").exists()  # nothing was trained


def test_evaluation_batches_bound_the_outputs_held_at_once() -> None:
    classifier = RecurrentNet("lstm", 4, 8, 1, 10)
    tokens = Split(torch.zeros(5, 35, dtype=torch.long), torch.zeros(5, 35, dtype=torch.long))
    assert eval_batch_size(classifier, Split(torch.zeros(5, 28, 4), torch.zeros(5))) == 1024
    language_model = RecurrentNet(
        "rnn_tanh", 4, 8, 1, 33278, architecture=Architecture("all", vocab_size=33278)
    )
    batch = eval_batch_size(language_model, tokens)
    assert batch * 35 * 33278 <= EVAL_OUTPUTS < (batch + 1) * 35 * 33278
