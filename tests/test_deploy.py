"""Deployable forms: sparse execution computes what the fused layers do, the form is chosen by
measured times only, and a trial logs its measured speed and size."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from rnnprune import deploy
from rnnprune.config import validate_config
from rnnprune.data.base import Architecture
from rnnprune.deploy import deployable, plain, trial_metrics
from rnnprune.latency import Repeats, median_ms
from rnnprune.models.base import ModelInputs
from rnnprune.models.masking import with_masks
from rnnprune.models.recurrent import RecurrentNet
from rnnprune.sparse import SparseLinear, SparseRecurrent, sparse_matrices, with_formats
from rnnprune.training.runner import run_trial
from tests import user_models

FAST = Repeats(blocks=2, calls=2, warmup=1)
INPUTS = ModelInputs(input_size=3, num_outputs=4, architecture=Architecture())
LAYERS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN, "rnn_relu": nn.RNN}


def sparse_weights(module: nn.Module, sparsity: float = 0.8, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for weight in sparse_matrices(module).values():
            weight.mul_(torch.rand(weight.shape) > sparsity)
    return module.eval()


def pruned_net(cell: str = "lstm", hidden: int = 16, sparsity: float = 0.8) -> RecurrentNet:
    torch.manual_seed(0)
    model = RecurrentNet(cell, 5, hidden, 2, 3).eval()  # type: ignore[arg-type]
    model.set_masks({name: torch.rand(mask.shape) > sparsity for name, mask in model.masks().items()})
    return model


@pytest.mark.parametrize("cell", list(LAYERS))
@pytest.mark.parametrize("batch_first", [True, False])
def test_the_unrolled_sparse_layer_computes_what_the_fused_one_does(cell: str, batch_first: bool) -> None:
    options: dict[str, Any] = {"nonlinearity": cell.removeprefix("rnn_")} if cell.startswith("rnn") else {}
    layer = sparse_weights(LAYERS[cell](6, 8, num_layers=2, batch_first=batch_first, **options))
    # Every kind of storage at once: CSR, 4x4 blocks, dense.
    formats = {"weight_ih_l0": "csr", "weight_hh_l0": "bsr4x4", "weight_hh_l1": "csr"}
    unrolled = SparseRecurrent(layer, formats)
    assert unrolled.weight_ih_l0.layout == torch.sparse_csr
    assert unrolled.weight_hh_l0.layout == torch.sparse_bsr
    assert unrolled.weight_ih_l1.layout == torch.strided
    inputs = torch.randn(3, 7, 6) if batch_first else torch.randn(7, 3, 6)
    h0 = torch.randn(2, 3, 8)
    initial = (h0, torch.randn(2, 3, 8)) if cell == "lstm" else h0
    with torch.no_grad():
        for state in (None, initial):
            expected, expected_final = layer(inputs, state)
            output, final = unrolled(inputs, state)
            torch.testing.assert_close(output, expected, atol=1e-5, rtol=0)
            for got, want in zip(
                final if isinstance(final, tuple) else (final,),
                expected_final if isinstance(expected_final, tuple) else (expected_final,),
                strict=True,
            ):
                torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_a_layer_without_biases_and_a_sparse_linear_layer() -> None:
    layer = sparse_weights(nn.GRU(4, 8, bias=False, batch_first=True))
    linear = sparse_weights(nn.Linear(8, 3))
    inputs = torch.randn(2, 5, 4)
    with torch.no_grad():
        hidden = layer(inputs)[0]
        torch.testing.assert_close(SparseRecurrent(layer, {"weight_hh_l0": "csr"})(inputs)[0], hidden)
        torch.testing.assert_close(SparseLinear(linear, "csr")(hidden), linear(hidden), atol=1e-6, rtol=0)


def test_with_formats_swaps_only_the_layers_it_names_and_keeps_the_outputs() -> None:
    model = pruned_net()
    base = plain(model)
    swapped = with_formats(base, {"rnn.weight_hh_l1": "csr", "readout.weight": "csr"})
    assert isinstance(swapped.rnn, SparseRecurrent) and isinstance(swapped.readout, SparseLinear)
    assert isinstance(base.rnn, nn.LSTM)  # the original is left as it was
    assert swapped.rnn.formats == {
        "weight_ih_l0": "dense",
        "weight_hh_l0": "dense",
        "weight_ih_l1": "dense",
        "weight_hh_l1": "csr",
    }
    inputs = torch.randn(4, 9, 5)
    with torch.no_grad():
        torch.testing.assert_close(swapped(inputs), model(inputs), atol=1e-5, rtol=0)


def test_median_ms_times_each_candidate_and_restores_the_thread_count() -> None:
    threads = torch.get_num_threads()
    seen: list[int] = []

    def slow() -> None:
        seen.append(torch.get_num_threads())
        time.sleep(0.004)

    times = median_ms({"slow": slow, "fast": lambda: None}, Repeats(blocks=3, calls=2, warmup=1))
    assert set(seen) == {1}  # measured on one thread
    assert torch.get_num_threads() == threads
    assert times["slow"] >= 4.0 > times["fast"]
    with pytest.raises(ZeroDivisionError):
        median_ms({"fails": lambda: 1 / 0})
    assert torch.get_num_threads() == threads  # restored after a failing call too


def fake_times(sparse_model: float, csr_matrix: float) -> Any:
    """A stand-in for `median_ms` with fixed times: dense products and the base model take 1 ms."""

    def median(calls: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, float]:
        for call in calls.values():
            call()  # the candidates must run
        fixed = {"sparse": sparse_model, "csr": csr_matrix, "dense": 1.0, "base": 1.0}
        return {name: fixed.get(name, 9.0) for name in calls}  # other formats: slower still

    return median


def test_the_form_is_sparse_only_where_measured_faster(monkeypatch: pytest.MonkeyPatch) -> None:
    model = pruned_net()
    example = torch.randn(1, 9, 5)
    # CSR products faster, and the whole model with them faster: compact + sparse.
    monkeypatch.setattr(deploy, "median_ms", fake_times(sparse_model=0.5, csr_matrix=0.5))
    chosen = deployable(model, example)
    assert chosen.form == "compact+sparse"
    assert set(chosen.formats.values()) == {"csr"} and "layers.0.weight_hh_l0" in chosen.formats
    with torch.no_grad():
        torch.testing.assert_close(chosen.module(example), model(example), atol=1e-5, rtol=0)
    # Faster products, but the unrolled model is slower than the fused one: compact alone.
    monkeypatch.setattr(deploy, "median_ms", fake_times(sparse_model=2.0, csr_matrix=0.5))
    assert deployable(model, example).form == "compact"
    # No product faster sparse: the whole model is not even tried.
    monkeypatch.setattr(deploy, "median_ms", fake_times(sparse_model=0.1, csr_matrix=3.0))
    assert deployable(model, example).formats == {}


def test_a_dense_model_is_never_timed_sparse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deploy, "median_ms", fake_times(sparse_model=0.1, csr_matrix=0.1))
    dense = RecurrentNet("gru", 5, 8, 1, 3).eval()
    assert deployable(dense, torch.randn(1, 4, 5)).form == "compact"  # below MIN_SPARSITY everywhere


def test_a_network_without_a_compact_form_deploys_as_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = RecurrentNet("lstm", 6, 8, 1, 11, architecture=Architecture(readout="all", vocab_size=11)).eval()
    model.set_masks({name: torch.rand(mask.shape) > 0.5 for name, mask in model.masks().items()})
    tokens = torch.randint(0, 11, (1, 7))
    chosen = deployable(model, tokens, FAST)
    assert chosen.form.startswith("dense") and type(chosen.module) is RecurrentNet
    with torch.no_grad():
        torch.testing.assert_close(chosen.module(tokens), model(tokens), atol=1e-5, rtol=0)
    # A user's model, made maskable: deployed as the user's own class, no mask buffers, and
    # picklable (the masked class is made at run time); its sparse form keeps its outputs.
    user = sparse_weights(with_masks(user_models.two_lstms(INPUTS)))
    inputs = torch.randn(1, 5, 3)
    monkeypatch.setattr(deploy, "median_ms", fake_times(sparse_model=0.5, csr_matrix=0.5))
    chosen = deployable(user, inputs)
    assert chosen.form == "dense+sparse" and "second.weight_hh_l0" in chosen.formats
    assert type(chosen.module) is user_models.TwoLSTMs
    assert not any(name.endswith("_mask") for name, _ in chosen.module.named_buffers())
    buffer = io.BytesIO()
    torch.save(chosen.module, buffer)
    buffer.seek(0)
    with torch.no_grad():
        torch.testing.assert_close(
            torch.load(buffer, weights_only=False)(inputs), user(inputs), atol=1e-5, rtol=0
        )


def test_trial_metrics_time_the_deployable_form_against_the_dense_model() -> None:
    model = pruned_net()
    dense = RecurrentNet("lstm", 5, 16, 2, 3)
    metrics = trial_metrics(model, dense.state_dict(), torch.randn(1, 9, 5), FAST)
    for size in (1, 64):
        assert metrics[f"latency_ms_b{size}"] > 0 and metrics[f"dense_latency_ms_b{size}"] > 0
        assert metrics[f"speedup_b{size}"] == pytest.approx(
            metrics[f"dense_latency_ms_b{size}"] / metrics[f"latency_ms_b{size}"]
        )
    chosen = deployable(model, torch.randn(1, 9, 5))
    buffer = io.BytesIO()
    torch.save(chosen.module, buffer)
    assert metrics["model_bytes"] == pytest.approx(len(buffer.getvalue()), rel=0.05)
    assert metrics["deployable_form"] in ("compact", "compact+sparse")
    assert 0 < metrics["latency_measurement_s"] < 60


def test_a_trial_logs_its_measured_speed_and_size(trial_dict: dict[str, Any], tmp_path: Path) -> None:
    trial_dict["latency"] = {"measure": True, "blocks": 2, "calls": 2}
    config = validate_config(trial_dict)
    metrics = run_trial(config, tmp_path / "out").metrics
    for name in ("latency_ms_b1", "latency_ms_b64", "speedup_b1", "speedup_b64", "model_bytes"):
        assert metrics[name] > 0
    assert metrics["deployable_form"].startswith("compact")
    # How the finished model is timed is not what the trial is: the hash stays.
    trial_dict["latency"] = {"measure": False}
    assert validate_config(trial_dict).hash() == config.hash()
