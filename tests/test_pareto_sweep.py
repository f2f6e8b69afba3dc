"""A sweep ends with its Pareto front: printed, tagged on the trials, logged to the parent run."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from rnnprune.sweep.runner import print_outcome, run_sweep

pytestmark = pytest.mark.slow


def test_sweep_publishes_its_front(tmp_path: Path, mnist_root: Path) -> None:
    trial = {
        "task": {
            "name": "seq_mnist",
            "data_dir": str(mnist_root),
            "download": False,
            "params": {"val_fraction": 0.25},
        },
        "model": {"cell": "lstm", "hidden_size": 12},
        "training": {"epochs": 1, "batch_size": 16, "lr": 0.02},
        "pruning": {
            "method": "global_magnitude",
            "target_sparsity": 0.5,
            "schedule": {"kind": "one_shot", "finetune_epochs": 1},
        },
        "device": "cpu",
        "cache_dir": str(tmp_path / "cache"),
    }
    (tmp_path / "trial.yaml").write_text(yaml.safe_dump(trial))
    spec = {
        "name": "front",
        "base": "trial.yaml",
        "axes": {"pruning.target_sparsity": [0.5, 0.9]},
        "methods": {"global_magnitude": {}, "random": {}},
        "storage_path": str(tmp_path / "storage"),
        "max_concurrent_trials": 2,
    }
    (tmp_path / "front.yaml").write_text(yaml.safe_dump(spec))
    outcome = run_sweep(tmp_path / "front.yaml", workdir=tmp_path, num_cpus=2)
    assert outcome.errors == 0

    printed = io.StringIO()
    print_outcome(outcome, printed)
    assert "Pareto front" in printed.getvalue() and "hypervolume" in printed.getvalue()
    client = MlflowClient(outcome.tracking_uri)
    parent = client.get_run(outcome.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert {"hypervolume.all", "hypervolume.random", "hypervolume.global_magnitude"} <= set(
        parent.data.metrics
    )
    artifacts = {a.path for a in client.list_artifacts(outcome.parent_run_id, "pareto")}
    assert {"pareto/pareto.html", "pareto/pareto.png"} <= artifacts
    children = client.search_runs(
        [outcome.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'"
    )
    assert len(children) == 4
    assert {r.data.tags["pareto"] for r in children} <= {"true", "false"}
    assert any(r.data.tags["pareto"] == "true" for r in children)
    assert all(int(r.data.tags["pareto_rank"]) >= 1 for r in children)
