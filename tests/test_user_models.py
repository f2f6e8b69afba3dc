"""Pruning users' own recurrent models: discovery of their weights, every method on each, masks
that hold through training, and accounting that matches the zeros counted in the weights."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from rnnprune.config import validate_config
from rnnprune.data.base import Architecture
from rnnprune.errors import ConfigError
from rnnprune.models.base import ModelInputs
from rnnprune.models.masking import with_masks
from rnnprune.pruning import registry as method_registry
from rnnprune.training.runner import load_model, run_trial
from rnnprune.weights import ALL_KINDS
from tests import user_models

INPUTS = ModelInputs(input_size=3, num_outputs=4, architecture=Architecture())
USER_MODELS = ["bidirectional_gru", "attention_lstm", "two_lstms"]


def layout(model: nn.Module) -> list[tuple[str, str, int, int]]:
    return [(w.name, w.kind, w.layer, w.direction) for w in model.prunable_weights(ALL_KINDS)]  # type: ignore[attr-defined]


def test_a_bidirectional_two_layer_gru_has_both_directions_of_every_layer_with_gates() -> None:
    model = with_masks(user_models.bidirectional_gru(INPUTS))
    assert layout(model) == [
        ("gru.weight_ih_l0", "ih", 0, 0),
        ("gru.weight_hh_l0", "hh", 0, 0),
        ("gru.weight_ih_l0_reverse", "ih", 0, 1),
        ("gru.weight_hh_l0_reverse", "hh", 0, 1),
        ("gru.weight_ih_l1", "ih", 1, 0),
        ("gru.weight_hh_l1", "hh", 1, 0),
        ("gru.weight_ih_l1_reverse", "ih", 1, 1),
        ("gru.weight_hh_l1_reverse", "hh", 1, 1),
        ("classifier.weight", "readout", 2, 0),
    ]
    recurrent = model.prunable_weights(("hh",))  # type: ignore[operator]
    assert {w.gates for w in recurrent} == {("r", "z", "n")}
    assert {w.module for w in recurrent} == {"gru"}


def test_separate_recurrent_modules_continue_the_layer_count_and_other_linears_are_linear() -> None:
    assert layout(with_masks(user_models.two_lstms(INPUTS))) == [
        ("first.weight_ih_l0", "ih", 0, 0),
        ("first.weight_hh_l0", "hh", 0, 0),
        ("bridge.weight", "linear", 1, 0),
        ("second.weight_ih_l0", "ih", 1, 0),
        ("second.weight_hh_l0", "hh", 1, 0),
        ("out.weight", "readout", 2, 0),
    ]
    attention = layout(with_masks(user_models.attention_lstm(INPUTS)))
    assert [kind for _, kind, _, _ in attention] == ["ih", "hh", "linear", "linear", "readout"]


def test_masks_are_buffers_beside_the_users_weights_and_the_state_dict_keeps_its_keys() -> None:
    plain = user_models.attention_lstm(INPUTS)
    keys = set(plain.state_dict())
    model = with_masks(plain)
    assert model is plain and isinstance(model, user_models.AttentionLSTM)
    added = set(model.state_dict()) - keys
    assert added == {name + "_mask" for name, *_ in layout(model)}


def test_a_named_readout_overrides_the_last_linear_and_a_wrong_one_is_named() -> None:
    model = with_masks(user_models.two_lstms(INPUTS), readout="bridge")
    assert dict((name, kind) for name, kind, _, _ in layout(model))["bridge.weight"] == "readout"
    with pytest.raises(ConfigError, match=r"readout 'second' is not an nn.Linear.*bridge, out"):
        with_masks(user_models.two_lstms(INPUTS), readout="second")


def test_a_cell_loop_is_pruned_as_a_layer_and_a_custom_matrix_is_left_out_by_name() -> None:
    model = with_masks(user_models.cell_loop(INPUTS))
    assert layout(model) == [
        ("cell.weight_ih", "ih", 0, 0),
        ("cell.weight_hh", "hh", 0, 0),
        ("readout.weight", "readout", 1, 0),
    ]
    assert model.left_out == ("mixing (CellLoop)",)  # type: ignore[attr-defined]


def test_a_model_without_recurrent_layers_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"NoRecurrence has no nn.LSTM, nn.GRU or nn.RNN layer"):
        with_masks(user_models.no_recurrence(INPUTS))


def test_masked_weights_follow_a_move_and_a_state_dict_round_trip() -> None:
    model = with_masks(user_models.bidirectional_gru(INPUTS))
    weights = model.prunable_weights(("ih", "hh"))  # type: ignore[operator]
    masks = {
        w.name: torch.rand(w.weight.shape, generator=torch.Generator().manual_seed(1)) > 0.5 for w in weights
    }
    model.set_masks(masks)  # type: ignore[operator]
    copy = with_masks(user_models.bidirectional_gru(INPUTS))
    copy.load_state_dict(model.state_dict())
    copy.to(torch.float64)
    for weight in copy.prunable_weights(("ih", "hh")):  # type: ignore[operator]
        assert torch.equal(weight.weight == 0, ~masks[weight.name]) or bool(
            (weight.weight[~masks[weight.name]] == 0).all()
        )
    optimizer = torch.optim.SGD(copy.parameters(), lr=1.0)
    copy(torch.randn(2, 5, 3, dtype=torch.float64)).sum().backward()
    optimizer.step()
    copy.apply_masks(optimizer)  # type: ignore[operator]
    for weight in copy.prunable_weights(("ih", "hh")):  # type: ignore[operator]
        assert bool((weight.weight[~masks[weight.name]] == 0).all())


@pytest.fixture
def user_trial(trial_dict: dict[str, Any]) -> dict[str, Any]:
    trial_dict["training"]["epochs"] = 1
    trial_dict["pruning"]["schedule"] = {
        "kind": "gradual",
        "prune_epochs": 1,
        "frequency_steps": 2,
        "finetune_epochs": 1,
    }
    return trial_dict


@pytest.mark.parametrize("factory", USER_MODELS)
def test_every_method_prunes_a_users_model_and_its_masks_hold_through_training(
    user_trial: dict[str, Any], tmp_path: Path, factory: str
) -> None:
    for method in method_registry.names():
        trial = {
            **user_trial,
            "model": {"factory": f"tests.user_models:{factory}", "params": {"hidden_size": 8}},
        }
        trial["pruning"] = {**trial["pruning"], "method": method, "target_sparsity": 0.7}
        config = validate_config(trial)
        out = tmp_path / method
        result = run_trial(config, out)
        _, model, _ = load_model(out / "model.pt")
        pool = model.prunable_weights(config.pruning.scope)
        zeros = sum(int((w.weight == 0).sum()) for w in pool)
        assert result.metrics["sparsity"] == pytest.approx(zeros / sum(w.numel for w in pool)), method
        for weight in pool:  # pruned entries stayed zero through every optimizer step
            assert bool((weight.weight[~weight.mask] == 0).all()), (method, weight.name)
        assert result.metrics["sparsity"] > 0.2, method  # every method really pruned
        per_tensor = result.metrics["per_tensor"]
        for weight in model.prunable_weights(ALL_KINDS):
            assert per_tensor[weight.name]["nonzero"] == int((weight.weight != 0).sum()), (
                method,
                weight.name,
            )


def test_left_out_matrices_are_logged_before_training(
    user_trial: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    user_trial["model"] = {"factory": "tests.user_models:cell_loop"}
    with caplog.at_level(logging.WARNING):
        run_trial(validate_config(user_trial), tmp_path / "out")
    assert "mixing (CellLoop) is not pruned" in caplog.text


def test_a_plugin_models_compact_export_keeps_the_nonzeros_and_rebuilds_the_users_module(
    user_trial: dict[str, Any], tmp_path: Path
) -> None:
    from rnnprune.export import export_model, load_compact

    user_trial["model"] = {"factory": "tests.user_models:two_lstms", "params": {"hidden_size": 16}}
    user_trial["pruning"]["target_sparsity"] = 0.9
    run_trial(validate_config(user_trial), tmp_path / "trial")
    summary = export_model(tmp_path / "trial" / "model.pt", tmp_path / "compact.pt", "compact")
    dense = export_model(tmp_path / "trial" / "model.pt", tmp_path / "plain.pt", "state_dict")
    assert summary["max_abs_difference_on_example"] == 0.0
    assert summary["bytes"] < (tmp_path / "plain.pt").stat().st_size
    assert summary["compact_params"] < 0.5 * dense["dense_params"]
    restored = load_compact(tmp_path / "compact.pt")
    assert type(restored) is user_models.TwoLSTMs  # the user's own class, no masks
    assert not any(name.endswith("_mask") for name in restored.state_dict())
