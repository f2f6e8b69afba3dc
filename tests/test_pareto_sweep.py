"""A sweep ends with its Pareto front: printed, tagged on the trials, logged to the parent run."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import write_spec
from mlflow import MlflowClient

from rnnprune.sweep.runner import print_outcome, run_sweep

pytestmark = pytest.mark.slow


def test_sweep_publishes_its_front(sweep_dir: Path) -> None:
    spec = write_spec(sweep_dir, "front", [0.5, 0.9], ["global_magnitude", "random"], max_concurrent_trials=2)
    outcome = run_sweep(spec, workdir=sweep_dir, num_cpus=2)
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
