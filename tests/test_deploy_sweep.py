"""A sweep whose trials measure their deployable speed and size, published as a front over
quality and measured speed-up, and picked by speed and by size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_spec
from mlflow import MlflowClient

from rnnprune.cli import main
from rnnprune.sweep.runner import run_sweep

pytestmark = pytest.mark.slow

MEASURED = ("latency_ms_b1", "latency_ms_b64", "speedup_b1", "speedup_b64", "model_bytes")


def test_a_sweep_logs_measured_speed_publishes_it_and_picks_by_it(
    sweep_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(
        sweep_dir,
        "speed",
        [0.5, 0.9],
        ["global_magnitude"],
        max_concurrent_trials=2,
        pareto={"objectives": ["test_accuracy", "speedup_b1"]},
    )
    outcome = run_sweep(spec, workdir=sweep_dir, num_cpus=2)
    assert outcome.errors == 0
    client = MlflowClient(outcome.tracking_uri)
    children = client.search_runs(
        [outcome.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'"
    )
    assert len(children) == 2
    for child in children:
        metrics = child.data.metrics
        assert all(metrics[name] > 0 for name in MEASURED)
        ratio = metrics["dense_latency_ms_b1"] / metrics["latency_ms_b1"]
        assert metrics["speedup_b1"] == pytest.approx(ratio)
        assert child.data.tags["pareto_objectives"] == "test_accuracy,speedup_b1"
    downloaded = client.download_artifacts(outcome.parent_run_id, "pareto/front.json", str(sweep_dir))
    assert json.loads(Path(downloaded).read_text())["objectives"] == ["test_accuracy", "speedup_b1"]

    uri = ["--tracking-uri", outcome.tracking_uri, "--dry-run"]
    assert main(["pick", "speed", "--min-speedup", "0.01", *uri]) == 0  # any measured model is faster
    assert "would register run" in capsys.readouterr().out
    assert main(["pick", "speed", "--max-bytes", "1e12", "--speedup-batch", "64", *uri]) == 0
    assert main(["pick", "speed", "--max-bytes", "1", *uri]) == 1  # no file is one byte
    assert "closest:" in capsys.readouterr().err
