"""Per-epoch curves (`track.graphs` / `track.test`): what each pruning epoch records, the pure
reading of where quality falls and where the margins cross zero, and the report's section of
it from a small SQLite store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from rnnprune import catalogue
from rnnprune.cli import main
from rnnprune.config import validate_config
from rnnprune.curves import build_curves
from rnnprune.pareto import RunRecord
from rnnprune.report import Axes
from rnnprune.tracking import ChildRun, ensure_experiment, start_parent_run
from rnnprune.training.runner import run_trial

QUALITY = catalogue.metric("test_accuracy", "seq_mnist")

# Per epoch: sparsity, val accuracy, Δ_R of G_ih and of G_hh (seed 0); the dense model: 0.95.
SEED0 = [(0.2, 0.95, 3.0, 2.0), (0.36, 0.948, 1.0, -0.5), (0.488, 0.93, 0.4, -1.0)]
# Seed 1 never falls by more than a point, and its margins stay positive.
SEED1 = [(0.2, 0.951, 3.0, 2.0), (0.36, 0.949, 1.5, 0.5), (0.488, 0.945, 0.8, 0.2)]


def history(rows: list[tuple[float, float, float, float]]) -> dict[str, list[tuple[int, float]]]:
    return {
        "sparsity": [(e, r[0]) for e, r in enumerate(rows, 11)],
        "val_accuracy": [(e, r[1]) for e, r in enumerate(rows, 11)],
        "graph.G_ih_l0.delta_r": [(e, r[2]) for e, r in enumerate(rows, 11)],
        "graph.G_hh_l0.delta_r": [(e, r[3]) for e, r in enumerate(rows, 11)],
    }


def run(seed: int, method: str = "expander", cell: str = "lstm") -> RunRecord:
    params = {"pruning.method": method, "seed": str(seed), "model.cell": cell, "track.graphs": "True"}
    return RunRecord(
        f"r{seed}{method}{cell}", "1", "n", params, {"dense_val_accuracy": 0.95}, {"method": method}
    )


def test_crossings_are_read_per_seed_from_the_histories() -> None:
    runs = [run(0), run(1)]
    report = build_curves(
        runs, {"r0expanderlstm": history(SEED0), "r1expanderlstm": history(SEED1)}, Axes((), {}), QUALITY
    )
    assert report is not None and report.graphs == ("G_hh_l0", "G_ih_l0")
    first, second = report.crossings
    assert first.seed == "0" and first.dense == 0.95
    # Epoch 13 is the first more than 0.01 below 0.95 (0.948 is not): 51.2% remaining.
    assert first.falls_at == pytest.approx(51.2)
    # G_hh's Δ_R turns negative at epoch 12 (64% remaining); G_ih's never does.
    assert first.margins["delta_r"] == (pytest.approx(64.0), "G_hh_l0")
    assert first.margins["delta_s"] is None  # not tracked: never, not zero
    assert second.falls_at is None and second.margins["delta_r"] is None
    (curve,) = report.curves
    assert curve.seeds == 2 and [e.epoch for e in curve.epochs] == [11, 12, 13]
    last = curve.epochs[-1]
    assert last.remaining.mean == pytest.approx(51.2)
    assert last.values["val_accuracy"].mean == pytest.approx((0.93 + 0.945) / 2)
    assert last.values["val_accuracy"].n == 2


def test_test_metrics_are_a_curve_only_where_the_runs_tracked_them() -> None:
    rows = {**history(SEED0), "test_accuracy": [(13, 0.93)]}  # the final model's, at the last step
    untracked = build_curves([run(0)], {"r0expanderlstm": rows}, Axes((), {}), QUALITY)
    assert untracked is not None
    assert not any("test_accuracy" in e.values for e in untracked.curves[0].epochs)
    tracked_run = run(0)
    tracked_run.params["track.test"] = "True"  # type: ignore[index]
    tracked = build_curves([tracked_run], {"r0expanderlstm": rows}, Axes((), {}), QUALITY)
    assert tracked is not None and tracked.curves[0].epochs[-1].values["test_accuracy"].mean == 0.93


def test_a_lower_is_better_quality_falls_upwards() -> None:
    rmse = catalogue.Metric("test_rmse", "minimize", "test RMSE")
    rows = {
        "sparsity": [(1, 0.2), (2, 0.5)],
        "val_rmse": [(1, 10.3), (2, 11.5)],
        "graph.G_hh_l0.delta_r": [(1, 1.0), (2, 1.0)],
    }
    record = RunRecord("a", "1", "n", {"pruning.method": "m", "seed": "0"}, {"dense_val_rmse": 10.0}, {})
    report = build_curves([record], {"a": rows}, Axes((), {}), rmse, drop=1.0)
    assert report is not None and report.crossings[0].falls_at == pytest.approx(50.0)


def test_runs_without_graph_histories_have_no_curves() -> None:
    assert build_curves([run(0)], {"r0expanderlstm": {"sparsity": [(1, 0.5)]}}, Axes((), {}), QUALITY) is None


def test_each_pruning_epoch_records_the_tracked_readings_and_the_hash_ignores_them(
    trial_dict: dict[str, Any], tmp_path: Path
) -> None:
    trial_dict["pruning"] = {
        "method": "expander",
        "params": {"stop": "none"},
        "target_sparsity": 0.5,
        "schedule": {"kind": "iterative", "rounds": 2, "retrain_epochs": 1},
    }
    plain = validate_config(trial_dict)
    tracked = validate_config({**trial_dict, "track": {"graphs": True, "test": True}})
    assert tracked.hash() == plain.hash() and tracked.dense_hash() == plain.dense_hash()
    result = run_trial(tracked, tmp_path / "trial")
    pruning_epochs = [e for e in result.history if "sparsity" in e]
    assert len(pruning_epochs) == 2
    for epoch in pruning_epochs:
        assert {"graph.G_ih_l0.delta_r", "graph.G_hh_l0.delta_s_w", "test_accuracy"} <= set(epoch)
    # The last epoch's readings are the final model's.
    assert pruning_epochs[-1]["test_accuracy"] == result.metrics["test_accuracy"]
    assert pruning_epochs[-1]["graph.G_hh_l0.delta_r"] == result.metrics["graph.G_hh_l0.delta_r"]
    untracked = run_trial(plain, tmp_path / "plain")
    assert not any(k.startswith("graph.") or k.startswith("test_") for e in untracked.history for k in e)


def test_report_adds_the_curves_section_for_runs_that_tracked_graphs(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = ensure_experiment(client, "curves-test", uri, tmp_path)
    parent = start_parent_run(client, experiment_id, "c1", {"sweep": "c1"}, None)
    for index, (method, seed, rows) in enumerate(
        [
            ("expander", 0, SEED0),
            ("expander", 1, SEED1),
            ("global_magnitude", 0, SEED1),
            ("global_magnitude", 1, SEED1),
        ]
    ):
        config = {
            "task": {"name": "seq_mnist"},
            "pruning": {"method": method, "target_sparsity": 0.488},
            "track": {"graphs": True},
            "seed": seed,
        }
        child = ChildRun(
            uri,
            experiment_id,
            parent,
            f"t{index}",
            f"{method}-{seed}",
            params={**config, "trial_hash": f"h{index}"},
            tags={"method": method, "task": "seq_mnist", "seed": str(seed), "sweep": "c1"},
        )
        for step, (sparsity, val, ih, hh) in enumerate(rows, 11):
            child.log_metrics(
                {
                    "sparsity": sparsity,
                    "val_accuracy": val,
                    "graph.G_ih_l0.delta_r": ih,
                    "graph.G_hh_l0.delta_r": hh,
                },
                step=step,
            )
        child.log_metrics({"test_accuracy": rows[-1][1], "dense_val_accuracy": 0.95}, step=13, force=True)
        child.finish()
    output = tmp_path / "results" / "c1.md"
    assert main(["report", "c1", "--tracking-uri", uri, "--output", str(output)]) == 0
    text = output.read_text()
    assert "## Curves per epoch" in text and "](c1_curves_0.png)" in text
    assert (tmp_path / "results" / "c1_curves_0.png").read_bytes().startswith(b"\x89PNG")
    lines = text.splitlines()
    crossing = [line for line in lines if line.startswith("| expander | 0 |")]
    assert crossing == ["| expander | 0 | 0.9500 | 51.2 | 64.0 (G_hh_l0) | never | never | never |"]
    # A stricter drop finds seed 1's fall too.
    assert (
        main(["report", "c1", "--tracking-uri", uri, "--output", str(output), "--quality-drop", "0.004"]) == 0
    )
    assert "| expander | 1 | 0.9500 | 51.2 |" in output.read_text()
    assert main(["report", "c1", "--tracking-uri", uri, "--output", str(output), "--quality-drop", "-1"]) == 2
