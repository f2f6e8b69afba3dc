"""The trial runner end to end on tiny data: metrics, resume, cache, determinism, CLI."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from rnnprune.cli import main
from rnnprune.config import validate_config
from rnnprune.errors import ConfigError
from rnnprune.pruning import registry as method_registry
from rnnprune.pruning.base import NoParams, PruningMethod, PruningResult
from rnnprune.training.runner import EpochReport, run_trial

REQUIRED_METRICS = {
    "val_accuracy",
    "test_accuracy",
    "dense_test_accuracy",
    "sparsity",
    "sparsity_total",
    "nonzero_params",
    "compression_ratio",
    "theoretical_speedup",
    "per_tensor",
    "per_gate",
    "wall_time_s",
}


def _comparable(metrics: dict[str, Any]) -> dict[str, Any]:
    skip = {"wall_time_s", "dense_train_seconds", "dense_cache_hit", "history"}
    return {k: v for k, v in metrics.items() if k not in skip}


def test_trial_reaches_the_target_and_writes_its_results(trial_dict: dict[str, Any], tmp_path: Path) -> None:
    reports: list[EpochReport] = []
    result = run_trial(validate_config(trial_dict), tmp_path / "out", callback=reports.append)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(metrics) >= REQUIRED_METRICS
    assert metrics["sparsity"] == pytest.approx(0.8, abs=1e-3)
    assert metrics["per_tensor"]["readout.weight"]["sparsity"] == 0.0  # not in the default scope
    assert [r.epoch for r in reports] == [1, 2, 3]
    assert reports[-1].metrics["sparsity"] == pytest.approx(0.8, abs=1e-3)
    assert [r.final is None for r in reports] == [True, True, False]
    assert reports[-1].final == metrics and reports[-1].checkpoint is None
    assert reports[0].checkpoint is not None
    assert metrics["test_accuracy"] > 0.3  # the tiny task is learnable; chance is 0.1
    saved = torch.load(tmp_path / "out" / "model.pt", weights_only=False)
    assert "rnn.weight_hh_l0_mask" in saved["state_dict"]
    assert (
        not (~saved["state_dict"]["rnn.weight_hh_l0_mask"])
        .logical_and(saved["state_dict"]["rnn.weight_hh_l0"] != 0)
        .any()
    )
    assert result.metrics["trial"] == validate_config(trial_dict).name()


@pytest.mark.parametrize(
    "schedule",
    [
        {"kind": "one_shot", "finetune_epochs": 2},
        {"kind": "iterative", "rounds": 3, "retrain_epochs": 1, "rewind_epoch": 1},
        {"kind": "gradual", "prune_epochs": 2, "frequency_steps": 3, "finetune_epochs": 1},
    ],
)
@pytest.mark.parametrize("method", ["global_magnitude", "layerwise_magnitude", "random"])
def test_every_method_under_every_schedule(
    trial_dict: dict[str, Any], tmp_path: Path, schedule: dict[str, Any], method: str
) -> None:
    trial_dict["pruning"].update(method=method, schedule=schedule, target_sparsity=0.6)
    metrics = run_trial(validate_config(trial_dict), tmp_path / "out").metrics
    assert metrics["sparsity"] == pytest.approx(0.6, abs=1e-3)
    if method == "layerwise_magnitude":
        for name in ("rnn.weight_ih_l0", "rnn.weight_hh_l0"):
            assert metrics["per_tensor"][name]["sparsity"] == pytest.approx(0.6, abs=1e-3)


def test_method_diagnostics_reach_the_metrics(
    trial_dict: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def keep_all_and_count(weights, target_sparsity, params, generator) -> PruningResult:
        masks = {w.name: torch.ones_like(w.mask) for w in weights}
        return PruningResult(masks, {"calls": float(target_sparsity), "layer0.kept": 1.0})

    method = PruningMethod("keep_all", NoParams, keep_all_and_count, "test double")
    monkeypatch.setitem(method_registry.registered_methods, "keep_all", method)
    trial_dict["pruning"].update(method="keep_all", target_sparsity=0.5)
    metrics = run_trial(validate_config(trial_dict), tmp_path / "out").metrics
    assert metrics["prune.calls"] == pytest.approx(0.5)  # the last event's target
    assert metrics["history"][0]["prune.layer0.kept"] == 1.0
    assert metrics["sparsity"] == 0.0  # measured, not taken from the target


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("lr_schedule", ["cosine", "plateau"])
def test_resume_after_interruption_gives_the_same_final_metrics(
    trial_dict: dict[str, Any], tmp_path: Path, lr_schedule: str
) -> None:
    trial_dict["training"]["lr_schedule"] = lr_schedule
    trial_dict["pruning"]["schedule"] = {
        "kind": "gradual",
        "prune_epochs": 2,
        "frequency_steps": 2,
        "finetune_epochs": 2,
    }
    config = validate_config(trial_dict)
    uninterrupted = run_trial(config, tmp_path / "straight").metrics

    def stop_after_second_epoch(report: EpochReport) -> None:
        if report.epoch == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        run_trial(config, tmp_path / "resumed", callback=stop_after_second_epoch)
    assert (tmp_path / "resumed" / "checkpoint.pt").is_file()
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    seen: list[int] = []
    resumed = run_trial(config, tmp_path / "resumed", callback=lambda r: seen.append(r.epoch)).metrics
    assert seen == [3, 4]  # only the epochs that had not run
    assert _comparable(resumed) == _comparable(uninterrupted)
    assert [h["val_loss"] for h in resumed["history"]] == [h["val_loss"] for h in uninterrupted["history"]]


def test_a_checkpoint_from_before_the_phase_engine_starts_the_trial_again(
    trial_dict: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = validate_config(trial_dict)
    uninterrupted = run_trial(config, tmp_path / "straight").metrics
    output = tmp_path / "upgraded"
    output.mkdir()
    # The old format: one flat dict without the phase engine's hook states.
    old = {"config_hash": config.hash(), "model": {}, "epoch": 2, "next_event": 3}
    torch.save(old, output / "checkpoint.pt")
    seen: list[int] = []
    with caplog.at_level("WARNING", logger="rnnprune.training.runner"):
        resumed = run_trial(config, output, callback=lambda r: seen.append(r.epoch)).metrics
    assert "predates this rnnprune's checkpoint format" in caplog.text
    assert seen == [1, 2, 3]
    assert _comparable(resumed) == _comparable(uninterrupted)


def test_same_seed_same_result_and_finished_trials_are_not_rerun(
    trial_dict: dict[str, Any], tmp_path: Path
) -> None:
    config = validate_config(trial_dict)
    first = run_trial(config, tmp_path / "a").metrics
    second = run_trial(config, tmp_path / "b").metrics
    assert _comparable(first) == _comparable(second)
    assert second["dense_cache_hit"] is True and first["dense_cache_hit"] is False
    again = run_trial(config, tmp_path / "a", callback=lambda r: pytest.fail("re-ran a finished trial"))
    assert again.metrics == first


def test_output_of_another_trial_is_never_overwritten(trial_dict: dict[str, Any], tmp_path: Path) -> None:
    run_trial(validate_config(trial_dict), tmp_path / "out")
    before = (tmp_path / "out" / "metrics.json").read_text()
    trial_dict["pruning"]["target_sparsity"] = 0.5
    with pytest.raises(ConfigError, match=r"output: .* different trial"):
        run_trial(validate_config(trial_dict), tmp_path / "out")
    assert (tmp_path / "out" / "metrics.json").read_text() == before


def _train_dense_in_subprocess(trial: dict[str, Any], output: str, queue: multiprocessing.Queue) -> None:
    result = run_trial(validate_config(trial), Path(output))
    queue.put(result.metrics["dense_cache_hit"])


def test_concurrent_trials_train_the_dense_model_once(trial_dict: dict[str, Any], tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    trials = []
    for index, target in enumerate((0.5, 0.7)):
        trial = json.loads(json.dumps(trial_dict))
        trial["pruning"]["target_sparsity"] = target
        trials.append(
            context.Process(
                target=_train_dense_in_subprocess,
                args=(trial, str(tmp_path / f"out{index}"), queue),
            )
        )
    for process in trials:
        process.start()
    for process in trials:
        process.join(timeout=300)
        assert process.exitcode == 0
    hits = sorted(queue.get(timeout=5) for _ in trials)
    assert hits == [False, True]  # one trained it, the other waited on the lock and reused it
    assert len(list((tmp_path / "cache").glob("*/dense.json"))) == 1


def test_cli_train_and_methods(
    trial_dict: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(trial_dict))
    assert (
        main(
            [
                "train",
                str(path),
                "--set",
                "pruning.target_sparsity=0.5",
                "--output",
                str(tmp_path / "cli"),
                "--quiet",
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert (tmp_path / "cli" / "metrics.json").is_file()

    assert main(["train", str(path), "--set", "pruning.method=magic", "--quiet"]) == 2
    assert "pruning.method: unknown pruning method 'magic'" in capsys.readouterr().err

    assert main(["methods"]) == 0
    listing = capsys.readouterr().out
    assert "global_magnitude [built-in]:" in listing and "layerwise (bool" in listing

    assert main(["tasks"]) == 0
    listing = capsys.readouterr().out
    assert "navigation [built-in]:" in listing and "Quality: error_cm (lower is better)" in listing
    assert "seq_mnist [built-in]:" in listing and "variant (Literal" in listing
