"""A task from outside the package with a quality metric of its own (F1, tests/plugin_tasks.py)
sweeps to a published front and a registered pick, with no edit anywhere in rnnprune."""

from __future__ import annotations

import json
import os
from pathlib import Path

import plugin_tasks
import pytest
import yaml
from mlflow import MlflowClient

from rnnprune.pareto import Constraint
from rnnprune.publish import pick_and_register
from rnnprune.sweep.runner import run_sweep

pytestmark = pytest.mark.slow


def test_a_plugin_task_with_its_own_quality_metric_sweeps_to_a_front_and_a_pick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ray's local workers inherit this environment: they import the plugin from here.
    importable = [str(Path(plugin_tasks.__file__).parent), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, importable)))
    trial = {
        "task": {"name": "plugin_tasks:TASK", "params": {"examples": 64}},
        "model": {"cell": "gru", "hidden_size": 8},
        "training": {"epochs": 2, "batch_size": 16, "lr": 0.02},
        "pruning": {"schedule": {"kind": "one_shot", "finetune_epochs": 2}},
        "device": "cpu",
        "cache_dir": str(tmp_path / "cache"),
    }
    (tmp_path / "trial.yaml").write_text(yaml.safe_dump(trial))
    spec = {
        "name": "f1-sweep",
        "base": "trial.yaml",
        "axes": {"pruning.target_sparsity": [0.5, 0.9]},
        "methods": {"global_magnitude": {}, "random": {}},
        "scheduler": {"kind": "asha", "grace_period": 1},
        "max_concurrent_trials": 2,
        "storage_path": str(tmp_path / "storage"),
    }
    (tmp_path / "f1.yaml").write_text(yaml.safe_dump(spec))

    outcome = run_sweep(tmp_path / "f1.yaml", workdir=tmp_path, num_cpus=2)

    assert outcome.errors == 0
    assert {row["quality"] for row in outcome.rows} == {"f1"}
    # ASHA ranks trials by the task's own validation F1 and may stop some before their test.
    finished = [row["test"] for row in outcome.rows if row["test"] is not None]
    assert finished and all(0.0 <= f1 <= 1.0 for f1 in finished)
    front = json.loads((outcome.experiment_dir / "pareto" / "front.json").read_text())
    assert front["objectives"] == ["test_f1", "sparsity"]
    assert front["reference"] == [0.5, 0.0]  # the task's own chance F1
    client = MlflowClient(outcome.tracking_uri)
    assert "hypervolume.all" in client.get_run(outcome.parent_run_id).data.metrics
    children = client.search_runs(
        [outcome.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'"
    )
    assert len(children) == 4
    tagged = [r for r in children if "pareto" in r.data.tags]
    assert len(tagged) == len(finished)
    assert all(r.data.tags["pareto_objectives"] == "test_f1,sparsity" for r in tagged)

    registered = pick_and_register(
        outcome.tracking_uri, "f1-sweep", Constraint("min_quality", 0.0), "f1-sweep-pruned"
    )
    assert registered.pick.run is not None and registered.version == "1"
    assert registered.pick.constraint.quality_metric == "test_f1"
    version = client.get_model_version("f1-sweep-pruned", registered.version)
    assert version.tags["quality_metric"] == "test_f1"
    assert float(version.tags["quality"]) == pytest.approx(registered.pick.run.metrics["test_f1"])
