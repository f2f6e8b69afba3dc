"""Any registered task and method sweep without sweep-specific code: a regression task with
the moduli method, on real Ray and MLflow (SQLite). Slow: Ray start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from rnnprune.sweep.runner import format_table, run_sweep

pytestmark = pytest.mark.slow


def test_adding_problem_sweep_with_moduli_tracks_its_own_quality(tmp_path: Path) -> None:
    trial = {
        "task": {
            "name": "adding",
            "params": {"sequence_length": 6, "train_examples": 96, "val_examples": 32, "test_examples": 32},
        },
        "model": {"cell": "rnn_relu", "hidden_size": 8},
        "training": {"epochs": 1, "batch_size": 16, "lr": 0.01},
        "pruning": {
            "method": "global_magnitude",
            "target_sparsity": 0.8,
            "scope": ["ih", "hh", "readout"],
            "schedule": {"kind": "linear", "prune_epochs": 2, "finetune_epochs": 0},
        },
        "device": "cpu",
        "cache_dir": str(tmp_path / "cache"),
    }
    (tmp_path / "trial.yaml").write_text(yaml.safe_dump(trial))
    spec = {
        "name": "adding-moduli",
        "base": "trial.yaml",
        "methods": {
            "moduli": {
                "pruning.params": [{"space": "torus", "coefficient": 0.01}],
                "pruning.lottery": [True],
            },
            "global_magnitude": {},
        },
        "storage_path": str(tmp_path / "storage"),
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))

    outcome = run_sweep(tmp_path / "spec.yaml", workdir=tmp_path, num_cpus=2)

    assert outcome.errors == 0
    client = MlflowClient(outcome.tracking_uri)
    children = client.search_runs(
        [outcome.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'"
    )
    by_method = {run.data.tags["method"]: run for run in children}
    assert set(by_method) == {"moduli", "global_magnitude"}
    for run in children:
        assert run.info.status == "FINISHED"
        assert {"val_mse", "test_mse", "dense_test_mse", "sparsity"} <= set(run.data.metrics)
        assert "val_accuracy" not in run.data.metrics
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_mse")]
        assert steps == sorted(set(steps))  # one value per epoch, none logged twice
        assert run.data.tags["pareto"] in ("true", "false")  # the front is over test_mse
    moduli = by_method["moduli"]
    # Penalty and lottery ticket went through the sweep: 2 pruning + 3 ticket epochs.
    assert moduli.data.metrics["train_penalty"] > 0
    assert len(client.get_metric_history(moduli.info.run_id, "val_mse")) == 5
    assert "sparse_test_mse" in moduli.data.metrics
    assert "val_mse" in format_table(outcome.rows) and all(r["test"] is not None for r in outcome.rows)
    parent = client.get_run(outcome.parent_run_id)
    assert "hypervolume.all" in parent.data.metrics  # reference point: the 1/6 MSE baseline
