"""Compact export: dead hidden units removed, outputs unchanged to 1e-6; its files (pickled,
TorchScript, ONNX run in onnxruntime) compute the same outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rnnprune.cli import DEPRECATED_STATE_DICT, build_parser
from rnnprune.compact import compact, kept_units, parameter_count
from rnnprune.data.base import Architecture
from rnnprune.deploy_files import FILE_FORMATS, ExportError, export_compact
from rnnprune.export import STATE_DICT, plain_state_dict
from rnnprune.latency import Repeats
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


FAST = Repeats(blocks=2, calls=2, warmup=1)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_onnx_file_computes_the_masked_models_outputs_in_onnxruntime(cell: str, tmp_path: Path) -> None:
    import onnxruntime

    model = pruned_model(cell, {0: [1, 4], 2: [3, 7]})
    path = tmp_path / "model.onnx"
    summary = export_compact(model, torch.randn(1, 11, INPUT), path, "onnx", FAST)
    assert summary["widths"] == [10, 12, 10] and summary["bytes"] == path.stat().st_size
    assert summary["max_abs_difference_on_example"] <= 1e-5
    assert {"latency_ms_b1", "latency_ms_b64", "speedup_b1", "masked_latency_ms_b64"} <= set(summary)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, steps in ((1, 11), (6, 4), (64, 28)):  # batch and number of steps are free
        inputs = torch.randn(batch, steps, INPUT)
        (outputs,) = session.run(None, {"inputs": inputs.numpy()})
        with torch.no_grad():
            expected = model(inputs)
        assert (torch.from_numpy(outputs) - expected).abs().max().item() <= 1e-5


def test_the_torchscript_file_computes_the_same_outputs(tmp_path: Path) -> None:
    model = pruned_model("rnn_tanh", {1: [0, 5]})
    path = tmp_path / "model.ts.pt"
    summary = export_compact(model, torch.randn(1, 11, INPUT), path, "torchscript", FAST)
    assert summary["widths"] == [HIDDEN, HIDDEN - 2, HIDDEN]
    scripted = torch.jit.load(str(path))
    assert isinstance(scripted, torch.jit.ScriptModule)
    assert_same_outputs(model, scripted)


def test_a_network_without_a_compact_form_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    model = RecurrentNet("lstm", INPUT, HIDDEN, 1, CLASSES, architecture=Architecture(readout="all"))
    refusal = r"^--format onnx: only the built-in classifier .* use --format state_dict$"
    with pytest.raises(ExportError, match=refusal):
        export_compact(model, torch.randn(1, 3, INPUT), tmp_path / "m.onnx", "onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_the_cli_offers_every_file_format_and_the_old_state_dict_spelling() -> None:
    for fmt in (STATE_DICT, *FILE_FORMATS, DEPRECATED_STATE_DICT):
        assert build_parser().parse_args(["export", "run", "--format", fmt]).format == fmt
    with pytest.raises(SystemExit):
        build_parser().parse_args(["export", "run", "--format", "pt2"])
