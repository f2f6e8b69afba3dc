"""Accounting is checked on hand-built weights whose counts are known by construction."""

import pytest
import torch

from rnnprune.metrics import sparsity_report
from rnnprune.models import RecurrentNet


@torch.no_grad()
def _hand_built_lstm() -> RecurrentNet:
    # LSTM: input 3, hidden 2 -> weight_ih (8, 3), weight_hh (8, 2), biases 2 x 8; readout (4, 2) + 4.
    model = RecurrentNet("lstm", input_size=3, hidden_size=2, num_layers=1, num_classes=4)
    for parameter in model.parameters():
        parameter.fill_(1.0)
    ih, hh = model.rnn.weight_ih_l0, model.rnn.weight_hh_l0
    ih[0:2, :] = 0.0  # gate i: all 6 entries zero
    ih[2, 0] = 0.0  # gate f: 1 of 6 zero
    hh[6:8, :] = 0.0  # gate o: all 4 entries zero
    hh[4, 1] = 0.0  # gate g: 1 of 4 zero
    model.readout.weight[0, :] = 0.0  # 2 of 8 zero
    model.rnn.bias_ih_l0[0] = 0.0  # a zero bias counts in the totals only
    return model


def test_per_tensor_and_per_gate_counts_are_exact() -> None:
    report = sparsity_report(_hand_built_lstm(), ["rnn.weight_ih_l0", "rnn.weight_hh_l0"])
    assert report.per_tensor["rnn.weight_ih_l0"].total == 24
    assert report.per_tensor["rnn.weight_ih_l0"].nonzero == 24 - 7
    assert report.per_tensor["rnn.weight_hh_l0"].nonzero == 16 - 5
    assert report.per_tensor["readout.weight"].nonzero == 6
    ih_gates = report.per_gate["rnn.weight_ih_l0"]
    assert [ih_gates[g].nonzero for g in "ifgo"] == [0, 5, 6, 6]
    hh_gates = report.per_gate["rnn.weight_hh_l0"]
    assert [hh_gates[g].nonzero for g in "ifgo"] == [4, 4, 3, 0]
    assert hh_gates["o"].sparsity == 1.0
    assert ih_gates["f"].sparsity == pytest.approx(1 / 6)


def test_pool_total_compression_and_speedup_are_exact() -> None:
    report = sparsity_report(_hand_built_lstm(), ["rnn.weight_ih_l0", "rnn.weight_hh_l0"])
    summary = report.summary()
    assert report.pool.total == 40 and report.pool.nonzero == 28
    assert summary["sparsity"] == pytest.approx(12 / 40)
    total = 24 + 16 + 8 + 8 + 8 + 4  # weights, two biases, readout weight and bias
    nonzero = total - 12 - 2 - 1
    assert summary["total_params"] == total
    assert summary["nonzero_params"] == nonzero
    assert summary["sparsity_total"] == pytest.approx(1 - nonzero / total)
    assert summary["compression_ratio"] == pytest.approx(total / nonzero)
    # Per time step: 40 multiply-adds dense (ih + hh), 28 non-zero.
    assert summary["theoretical_speedup"] == pytest.approx(40 / 28)


def test_accounting_reads_weights_not_masks() -> None:
    model = RecurrentNet("gru", input_size=3, hidden_size=4, num_layers=2, num_classes=2)
    with torch.no_grad():
        model.rnn.weight_hh_l1.zero_()  # zero without touching any mask
    report = sparsity_report(model, ["rnn.weight_hh_l1"])
    assert report.pool.sparsity == 1.0
    assert set(report.per_gate["rnn.weight_hh_l1"]) == {"r", "z", "n"}
    assert report.tables()["per_tensor"]["rnn.weight_hh_l1"]["sparsity"] == 1.0


def test_dense_model_has_unit_ratios() -> None:
    model = RecurrentNet("rnn_tanh", input_size=3, hidden_size=4, num_layers=1, num_classes=2)
    summary = sparsity_report(model, ["rnn.weight_ih_l0", "rnn.weight_hh_l0"]).summary()
    assert summary["sparsity"] == 0.0
    assert summary["compression_ratio"] == 1.0
    assert summary["theoretical_speedup"] == 1.0
