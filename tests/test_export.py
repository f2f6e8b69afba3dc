"""Compact export: dead hidden units removed, outputs unchanged to 1e-6."""

from __future__ import annotations

import pytest
import torch

from rnnprune.compact import compact, kept_units, parameter_count
from rnnprune.export import plain_state_dict
from rnnprune.models.recurrent import RecurrentNet

HIDDEN, LAYERS, INPUT, CLASSES = 12, 3, 7, 5


def pruned_model(cell: str, dead: dict[int, list[int]], seed: int = 0) -> RecurrentNet:
    """Random unstructured masks (70% kept), plus `dead[layer]` units that nothing reads."""
    torch.manual_seed(seed)
    model = RecurrentNet(cell, INPUT, HIDDEN, LAYERS, CLASSES).eval()
    masks = {name: torch.rand(mask.shape) > 0.3 for name, mask in model.masks().items()}
    for layer, units in dead.items():
        masks[f"rnn.weight_hh_l{layer}"][:, units] = False
        reader = f"rnn.weight_ih_l{layer + 1}" if layer + 1 < LAYERS else "readout.weight"
        masks[reader][:, units] = False
    model.set_masks(masks)
    return model


def assert_same_outputs(model: RecurrentNet, small: torch.nn.Module) -> None:
    inputs = torch.randn(6, 11, INPUT)
    with torch.no_grad():
        torch.testing.assert_close(small(inputs), model(inputs), atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_compact_removes_unread_units_and_keeps_outputs(cell: str) -> None:
    dead = {0: [1, 4, 5], 1: [0, 11], 2: [3, 7, 8, 9]}
    model = pruned_model(cell, dead)
    small = compact(model)
    assert [layer.hidden_size for layer in small.layers] == [HIDDEN - len(dead[i]) for i in range(LAYERS)]
    assert parameter_count(small) < parameter_count(model)
    assert_same_outputs(model, small)


def test_removal_cascades_to_units_only_removed_units_read() -> None:
    model = pruned_model("lstm", {1: [2, 3]})
    with torch.no_grad():
        # Unit 6 of layer 1 is read only by unit 2 of its own layer, which nothing reads: once
        # unit 2 goes, nothing reads unit 6 either.
        hh, next_layer = model.rnn.weight_hh_l1, model.rnn.weight_ih_l2
        column = hh[:, 6].clone()
        hh[:, 6] = 0
        gate_rows_of_unit_2 = torch.arange(4) * HIDDEN + 2
        hh[gate_rows_of_unit_2, 6] = column[gate_rows_of_unit_2] + 1.0
        next_layer[:, 6] = 0
    model.rnn.flatten_parameters()
    assert kept_units(model)[1].tolist() == [u for u in range(HIDDEN) if u not in (2, 3, 6)]
    assert_same_outputs(model, compact(model))


def test_units_with_zero_inputs_but_read_are_kept() -> None:
    """A unit with all-zero rows still outputs a bias-driven signal: removing it would be wrong."""
    model = pruned_model("gru", {})
    with torch.no_grad():
        rows = torch.arange(3) * HIDDEN + 4
        model.rnn.weight_ih_l2[rows] = 0
        model.rnn.weight_hh_l2[rows] = 0
    assert 4 in kept_units(model)[2].tolist()
    assert_same_outputs(model, compact(model))


def test_a_layer_nothing_reads_keeps_one_silent_unit() -> None:
    model = pruned_model("lstm", {2: list(range(HIDDEN))})
    small = compact(model)
    assert small.layers[2].hidden_size == 1
    assert_same_outputs(model, small)


def test_plain_state_dict_folds_masks_in() -> None:
    model = pruned_model("gru", {0: [1]})
    state = plain_state_dict(model)
    assert not any(name.endswith("_mask") for name in state)
    assert (state["rnn.weight_hh_l0"][:, 1] == 0).all()
    plain = torch.nn.GRU(INPUT, HIDDEN, LAYERS, batch_first=True)
    plain.load_state_dict({k.removeprefix("rnn."): v for k, v in state.items() if k.startswith("rnn.")})
