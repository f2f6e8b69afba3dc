"""Unit pruning: whole hidden units go (rows, recurrent column, readers' columns), the compact
export then drops them with outputs unchanged, and the accounting counts what is zero."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from rnnprune.compact import compact
from rnnprune.config import validate_config
from rnnprune.data.base import Architecture
from rnnprune.errors import ConfigError
from rnnprune.metrics import sparsity_report
from rnnprune.models.masking import with_masks
from rnnprune.models.recurrent import GATES, RecurrentNet
from rnnprune.pruning import registry
from rnnprune.pruning.schedules import GradualSchedule, IterativeSchedule
from rnnprune.pruning.unit_groups import unit_layers
from rnnprune.pruning.units import GroupLasso, UnitParams
from rnnprune.training.runner import load_model, run_trial
from rnnprune.weights import ALL_KINDS

CELLS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]
INPUT, HIDDEN, CLASSES = 5, 12, 3
FULL_SCOPE = ("ih", "hh", "readout")
UNITS = registry.get("units")


def _model(cell: str, layers: int, seed: int = 0) -> RecurrentNet:
    torch.manual_seed(seed)
    return RecurrentNet(cell, INPUT, HIDDEN, layers, CLASSES).eval()


def _prune(
    model: RecurrentNet, target: float, scope: tuple[str, ...] = FULL_SCOPE, **params: Any
) -> dict[str, float]:
    weights = model.prunable_weights(scope)  # type: ignore[arg-type]
    result = UNITS(weights, target, UnitParams(**params), torch.Generator())
    model.set_masks(result.masks)
    return result.diagnostics


def _removed_units(model: RecurrentNet, layer: int) -> list[int]:
    """Units whose recurrent column is all pruned: read off the masks, not the method."""
    hh_mask = model.masks()[f"rnn.weight_hh_l{layer}"]
    return [j for j in range(HIDDEN) if not hh_mask[:, j].any()]


def _gate_rows(units: list[int], gates: int) -> list[int]:
    return [g * HIDDEN + j for g in range(gates) for j in units]


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_unit_pruning_removes_whole_groups_and_nothing_else(cell: str, layers: int) -> None:
    model = _model(cell, layers)
    _prune(model, 0.25)
    gates = len(GATES[cell])
    removed = [_removed_units(model, layer) for layer in range(layers)]
    assert [len(units) for units in removed] == [3] * layers  # round(0.25 * 12) in every layer
    # The masks written out from the removed units alone: their gate rows, their recurrent
    # column, their column in what reads them.
    expected = {name: torch.ones_like(mask) for name, mask in model.masks().items()}
    for layer, units in enumerate(removed):
        expected[f"rnn.weight_ih_l{layer}"][_gate_rows(units, gates)] = False
        expected[f"rnn.weight_hh_l{layer}"][_gate_rows(units, gates)] = False
        expected[f"rnn.weight_hh_l{layer}"][:, units] = False
        reader = f"rnn.weight_ih_l{layer + 1}" if layer + 1 < layers else "readout.weight"
        expected[reader][:, units] = False
    for name, mask in model.masks().items():
        assert torch.equal(mask, expected[name]), name


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(
    "params",
    [{}, {"allocation": "global"}, {"unit_target": "parameters"}],
    ids=["units", "global", "parameters"],
)
def test_compact_export_of_a_unit_pruned_model_gives_the_masked_outputs(
    cell: str, layers: int, params: dict[str, str]
) -> None:
    model = _model(cell, layers)
    _prune(model, 0.4, **params)
    small = compact(model)
    widths = [layer.hidden_size for layer in small.layers]
    assert widths == [HIDDEN - len(_removed_units(model, layer)) for layer in range(layers)]
    assert sum(widths) < HIDDEN * layers
    inputs = torch.randn(6, 9, INPUT, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(small(inputs), model(inputs), atol=1e-6, rtol=0)


def test_without_the_readout_in_scope_the_last_layer_stays_read() -> None:
    model = _model("lstm", 2)
    _prune(model, 0.5, scope=("ih", "hh"))
    # Layer 0's units are unread (layer 1's ih is in the pool); the readout still reads layer 1's.
    assert len(_removed_units(model, 0)) == 6 and len(_removed_units(model, 1)) == 6
    small = compact(model)
    assert [layer.hidden_size for layer in small.layers] == [6, HIDDEN]
    inputs = torch.randn(4, 7, INPUT)
    with torch.no_grad():
        torch.testing.assert_close(small(inputs), model(inputs), atol=1e-6, rtol=0)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_accounting_counts_the_zeros_of_removed_groups(cell: str, layers: int) -> None:
    model = _model(cell, layers)
    weights = model.prunable_weights(FULL_SCOPE)
    _prune(model, 0.25)
    report = sparsity_report(model, [w.name for w in weights])
    gates, kept = len(GATES[cell]), HIDDEN - 3
    # Kept rows times kept inputs: the first ih reads all inputs, the readout all classes.
    expected = gates * kept * INPUT + (2 * layers - 1) * gates * kept * kept + CLASSES * kept
    counted = sum(int(torch.count_nonzero(w.weight)) for w in model.prunable_weights(FULL_SCOPE))
    assert report.pool.nonzero == counted == expected
    assert report.pool.total == sum(w.numel for w in weights)
    assert report.total.nonzero == sum(int(torch.count_nonzero(p)) for p in model.parameters())


@pytest.mark.parametrize("allocation", ["layerwise", "global"])
def test_a_parameter_target_is_reached_with_the_fewest_units(allocation: str) -> None:
    model = _model("lstm", 2)
    weights = model.prunable_weights(FULL_SCOPE)
    pool = sum(w.numel for w in weights)
    for target in (0.1, 0.3, 0.6, 0.9):
        params = UnitParams(unit_target="parameters", allocation=allocation)
        masks = UNITS(weights, target, params, torch.Generator()).masks
        pruned = sum(int((~m).sum()) for m in masks.values())
        # Reached, and overshot by less than what one more step (one unit, or one unit per
        # layer when layers go together) removes.
        largest_step = (2 if allocation == "layerwise" else 1) * 4 * (INPUT + 2 * HIDDEN) + 4 * HIDDEN * 2
        assert round(target * pool) <= pruned < round(target * pool) + largest_step


def test_global_allocation_ranks_all_units_together() -> None:
    model = _model("gru", 2)
    with torch.no_grad():
        for name in ("weight_ih_l1", "weight_hh_l1"):
            getattr(model.rnn, name).mul_(1e-3)  # layer 1's groups are all small...
        model.readout.weight.mul_(1e-3)
    _prune(model, 0.25, allocation="global")
    assert len(_removed_units(model, 0)) == 0 and len(_removed_units(model, 1)) == 6
    fresh = _model("gru", 2)
    _prune(fresh, 0.25)
    assert len(_removed_units(fresh, 0)) == len(_removed_units(fresh, 1)) == 3  # ...layerwise: 3 each


def test_units_ranked_by_the_group_l2_norm() -> None:
    model = _model("lstm", 1)
    with torch.no_grad():
        model.rnn.weight_hh_l0[:, 7] *= 1e-3  # unit 7 feeds back little...
        model.readout.weight[:, 7] *= 1e-3  # ...and is read little: its rows are its larger part
        unit_4_rows = _gate_rows([4], 4)
        model.rnn.weight_ih_l0[unit_4_rows] *= 1e-3  # unit 4 hears little: its column is its larger part
        model.rnn.weight_hh_l0[unit_4_rows] *= 1e-3
    _prune(model, 2 / HIDDEN)
    assert _removed_units(model, 0) == [4, 7]


@pytest.mark.parametrize(
    "events",
    [
        [e.target_sparsity for e in GradualSchedule(prune_epochs=2, frequency_steps=3).plan(0.75, 10).events],
        [e.target_sparsity for e in IterativeSchedule(rounds=3).plan(0.75, 10).events],
    ],
    ids=["gradual", "iterative"],
)
@pytest.mark.parametrize("unit_target", ["units", "parameters"])
def test_rising_targets_keep_removed_units_removed(events: list[float], unit_target: str) -> None:
    model = _model("lstm", 2)
    noise = torch.Generator().manual_seed(5)
    before: list[set[int]] = [set(), set()]
    for target in events:
        diagnostics = _prune(model, target, unit_target=unit_target)
        now = [set(_removed_units(model, layer)) for layer in range(2)]
        assert all(old <= new for old, new in zip(before, now, strict=True))
        # What is reported is what the masks hold, earlier removals included.
        assert diagnostics["units_removed"] == sum(map(len, now)) / (2 * HIDDEN)
        assert [diagnostics[f"layer{layer}.units_kept"] for layer in range(2)] == [
            HIDDEN - len(u) for u in now
        ]
        before = now
        with torch.no_grad():  # training moves the surviving weights between events
            for parameter in model.parameters():
                parameter.add_(0.3 * torch.randn(parameter.shape, generator=noise))
        model.apply_masks()
    if unit_target == "units":
        assert [len(units) for units in before] == [9, 9]  # round(0.75 * 12)
    inputs = torch.randn(3, 5, INPUT)
    with torch.no_grad():
        torch.testing.assert_close(compact(model)(inputs), model(inputs), atol=1e-6, rtol=0)


class TwoRecurrentModules(nn.Module):
    """A user's model: a 2-layer bidirectional LSTM feeding a GRU, and a linear readout."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.LSTM(INPUT, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.second = nn.GRU(12, 4, batch_first=True)
        self.head = nn.Linear(4, CLASSES)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.first(inputs)
        outputs, _ = self.second(outputs)
        return self.head(outputs[:, -1])


def _user_model() -> nn.Module:
    """The user's model with the masks rnnprune gives any module (its weights discovered)."""
    torch.manual_seed(0)
    return with_masks(TwoRecurrentModules()).eval()


def test_groups_of_a_bidirectional_stack_and_separate_modules() -> None:
    weights = _user_model().prunable_weights(ALL_KINDS)  # type: ignore[operator]
    layers = {layer.label: layer for layer in unit_layers(weights)}
    assert list(layers) == ["layer0", "layer0r", "layer1", "layer1r", "layer2"]
    readers = {label: [(r.weight.name, r.offset) for r in layer.readers] for label, layer in layers.items()}
    assert readers["layer0"] == [("first.weight_ih_l1", 0), ("first.weight_ih_l1_reverse", 0)]
    assert readers["layer0r"] == [("first.weight_ih_l1", 6), ("first.weight_ih_l1_reverse", 6)]
    # The GRU reads the LSTM's top layer, but that is another module: no reader is assumed.
    assert readers["layer1"] == readers["layer1r"] == []
    assert readers["layer2"] == [("head.weight", 0)]


def test_removed_units_of_a_user_model_are_read_by_nothing() -> None:
    model = _user_model()
    weights = model.prunable_weights(ALL_KINDS)  # type: ignore[operator]
    masks = UNITS(weights, 0.5, UnitParams(), torch.Generator()).masks
    model.set_masks(masks)  # type: ignore[operator]
    inputs = torch.randn(4, 6, INPUT)

    def output_after_shifting_the_biases(module: str, suffix: str, unit: int, hidden: int) -> torch.Tensor:
        shifted = copy.deepcopy(model)
        target = getattr(shifted, module)
        gates = getattr(target, f"bias_ih{suffix}").shape[0] // hidden
        with torch.no_grad():
            for name in (f"bias_ih{suffix}", f"bias_hh{suffix}"):
                getattr(target, name)[[g * hidden + unit for g in range(gates)]] += 1.0
            return shifted(inputs)

    with torch.no_grad():
        reference = model(inputs)
    for module, suffix, hidden in (("first", "_l0", 6), ("first", "_l0_reverse", 6), ("second", "_l0", 4)):
        removed = [j for j in range(hidden) if not masks[f"{module}.weight_hh{suffix}"][:, j].any()]
        kept = [j for j in range(hidden) if j not in removed]
        assert len(removed) == hidden // 2
        for unit in removed:  # its own signal changes, and nothing reads it
            torch.testing.assert_close(
                output_after_shifting_the_biases(module, suffix, unit, hidden), reference, atol=1e-6, rtol=0
            )
        assert not torch.allclose(
            output_after_shifting_the_biases(module, suffix, kept[0], hidden), reference, atol=1e-4
        )
    # The LSTM's top layer is read by the GRU, outside its module: its units' rows go, yet they are read.
    removed_top = [j for j in range(6) if not masks["first.weight_hh_l1"][:, j].any()]
    assert not torch.allclose(
        output_after_shifting_the_biases("first", "_l1", removed_top[0], 6), reference, atol=1e-4
    )


def _manual_group_lasso(model: RecurrentNet) -> torch.Tensor:
    """Σ over units of the L2 norm of the unit's group, written out entry set by entry set."""
    rnn, gates = model.rnn, len(GATES[model.cell])
    total = torch.zeros(())
    for layer in range(rnn.num_layers):
        ih, hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
        reader = (
            getattr(rnn, f"weight_ih_l{layer + 1}") if layer + 1 < rnn.num_layers else model.readout.weight
        )
        for unit in range(rnn.hidden_size):
            rows = _gate_rows([unit], gates)
            other_rows = [r for r in range(hh.shape[0]) if r not in rows]
            members = [ih[rows].flatten(), hh[rows].flatten(), hh[other_rows, unit], reader[:, unit]]
            total = total + torch.cat(members).norm()
    return total


@pytest.mark.parametrize("cell", ["lstm", "rnn_tanh"])
def test_group_lasso_is_the_sum_of_the_group_norms(cell: str) -> None:
    model = _model(cell, 2)
    with torch.no_grad():
        torch.testing.assert_close(GroupLasso(0.3).penalty(model), 0.3 * _manual_group_lasso(model))


def test_group_lasso_gradient_is_finite_at_a_removed_unit() -> None:
    model = _model("lstm", 1)
    _prune(model, 0.5)
    GroupLasso(1.0).penalty(model).backward()
    for parameter in model.parameters():
        if parameter.grad is not None:
            assert torch.isfinite(parameter.grad).all()


def test_group_lasso_names_the_dense_model_by_its_coefficient_only(trial_dict: dict[str, Any]) -> None:
    plain = validate_config(trial_dict)

    def dense_hash(**params: Any) -> str:
        trial_dict["pruning"].update(method="units", params=params)
        return validate_config(trial_dict).dense_hash()

    assert dense_hash() == dense_hash(unit_target="parameters") == plain.dense_hash()
    penalised = dense_hash(group_lasso=0.01)
    assert penalised != plain.dense_hash() and penalised != dense_hash(group_lasso=0.02)
    assert penalised == dense_hash(group_lasso=0.01, unit_target="parameters", allocation="global")


def test_a_unit_pruning_trial_with_group_lasso_trains_and_exports(
    trial_dict: dict[str, Any], tmp_path: Path
) -> None:
    trial_dict["pruning"].update(
        method="units", target_sparsity=0.5, scope=list(FULL_SCOPE), params={"group_lasso": 1e-3}
    )
    metrics = run_trial(validate_config(trial_dict), tmp_path / "out").metrics
    assert all(epoch["train_penalty"] > 0 for epoch in metrics["history"])
    assert metrics["prune.units_removed"] == 0.5 and metrics["prune.layer0.units_kept"] == 8
    _, model, example = load_model(tmp_path / "out" / "model.pt")
    small = compact(model)
    assert [layer.hidden_size for layer in small.layers] == [8]
    with torch.no_grad():
        torch.testing.assert_close(small(example), model(example), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "pruning, expected",
    [
        (
            {"target_sparsity": 0.97},
            r"pruning\.target_sparsity: 0\.97 of the units removes all 16 hidden units of layer0 "
            r".*below 0\.9688",
        ),
        (
            {"target_sparsity": 0.99, "params": {"allocation": "global"}},
            r"pruning\.target_sparsity: .*removes all 16 hidden units of all recurrent layers",
        ),
        (
            {"scope": ["readout"]},
            r"pruning\.scope: unit pruning removes hidden units of recurrent layers; add ih and hh",
        ),
        (
            {"params": {"unit_target": "neurons"}},
            r"pruning\.params\.unit_target: Input should be 'units' or 'parameters'",
        ),
        (
            {"params": {"group_lasso": -1}},
            r"pruning\.params\.group_lasso: Input should be greater than or equal to 0",
        ),
    ],
)
def test_bad_unit_targets_fail_at_config_validation(
    trial_dict: dict[str, Any], pruning: dict[str, Any], expected: str
) -> None:
    trial_dict["pruning"].update(method="units", **pruning)
    with pytest.raises(ConfigError, match=expected):
        validate_config(trial_dict)


def test_a_parameter_target_beyond_the_groups_is_a_problem_naming_the_weights_outside() -> None:
    architecture = Architecture(initial_code=nn.Identity(), initial_code_size=40)
    model = RecurrentNet("gru", INPUT, HIDDEN, 1, CLASSES, architecture=architecture)
    weights = model.prunable_weights(("hh", "encoder"))  # the encoder's 480 entries are no unit's
    params = UnitParams(unit_target="parameters")
    assert UNITS.problems(weights, 0.4, params) == []
    [(field, message)] = UNITS.problems(weights, 0.6, params)
    assert field == "target_sparsity"
    assert "needs every hidden unit removed: the units' groups hold 0.4737 of it" in message
    assert "outside them: encoder.weight" in message
