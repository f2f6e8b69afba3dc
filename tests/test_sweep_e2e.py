"""Sweeps for real: local Ray, MLflow on SQLite and through a live `mlflow server`.

Slow (Ray and worker start-up); run in CI, skipped by `make test-fast`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import faults
import pytest
from conftest import write_spec
from mlflow import MlflowClient

from rnnprune.errors import RnnpruneError
from rnnprune.sweep import runner as sweep_runner
from rnnprune.sweep.runner import run_sweep
from rnnprune.tracking import TrackingError, check_tracking

pytestmark = pytest.mark.slow


def _children(client: MlflowClient, parent_run_id: str) -> list:
    return client.search_runs(
        [client.get_run(parent_run_id).info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
    )


def test_four_trial_sweep_with_a_killed_worker(sweep_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = sweep_dir / "killed-once"
    # Ray's local workers inherit this process's environment: the fault hook and its settings.
    monkeypatch.setenv(faults.KILL_AT_EPOCH_ENV, "2")
    monkeypatch.setenv(faults.MARKER_ENV, str(marker))
    importable = [str(Path(faults.__file__).parent), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, importable)))
    monkeypatch.setattr(sweep_runner, "WORKER_SETUP_HOOK", faults.HOOK)
    spec = write_spec(
        sweep_dir, "four", [0.5, 0.8], ["global_magnitude", "random"], max_concurrent_trials=2, max_failures=2
    )
    outcome = run_sweep(spec, workdir=sweep_dir, num_cpus=2)

    assert marker.exists(), "the fault hook never fired"
    assert outcome.errors == 0
    client = MlflowClient(outcome.tracking_uri)
    parents = client.search_runs([outcome.experiment_id], filter_string="tags.`rnnprune.role` = 'sweep'")
    assert [p.info.run_id for p in parents] == [outcome.parent_run_id]
    assert parents[0].info.status == "FINISHED"
    children = _children(client, outcome.parent_run_id)
    assert len(children) == 4
    seen = set()
    for run in children:
        assert run.info.status == "FINISHED"
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert {"method", "target_sparsity", "task", "arch", "seed", "ray_trial_id"} <= set(tags)
        assert params["pruning.method"] == tags["method"]
        assert float(params["pruning.target_sparsity"]) == float(tags["target_sparsity"])
        assert metrics["sparsity"] == pytest.approx(float(tags["target_sparsity"]), abs=1e-3)
        assert {
            "test_accuracy",
            "dense_test_accuracy",
            "compression_ratio",
            "theoretical_speedup",
            "tensor_sparsity.rnn.weight_hh_l0",
            "gate_sparsity.rnn.weight_hh_l0.f",
        } <= set(metrics)
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
        assert steps == [1, 2, 3], f"duplicated or missing steps: {steps}"
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"metrics.json", "model.pt", "masks.pt", "sparsity_table.json"} <= artifacts
        seen.add((tags["method"], tags["target_sparsity"]))
    assert seen == {(m, t) for m in ("global_magnitude", "random") for t in ("0.5", "0.8")}
    # The MLflow model loads and predicts.
    import mlflow
    import mlflow.pytorch
    import torch

    # MLflow 3 resolves runs:/.../model through the process's tracking URI (the model is a
    # LoggedModel, not a run artifact): point it at this sweep, then restore it.
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(outcome.tracking_uri)
    try:
        model = mlflow.pytorch.load_model(f"runs:/{children[0].info.run_id}/model")
    finally:
        mlflow.set_tracking_uri(previous)
    assert model(torch.zeros(2, 28, 28)).shape == (2, 10)
    # Dense models were shared: two trials per distinct dense config at most trained it.
    hits = [run.data.metrics["dense_cache_hit"] for run in children]
    assert sum(hits) >= 3


def test_interrupted_driver_resumes_to_exactly_n_child_runs(sweep_dir: Path) -> None:
    spec = write_spec(
        sweep_dir, "resumable", [0.3, 0.5, 0.7, 0.9], ["global_magnitude"], max_concurrent_trials=1
    )
    command = [sys.executable, "-m", "rnnprune.cli", "sweep", str(spec), "--num-cpus", "1"]
    # Create the SQLite store before two processes use it: concurrent first use races
    # MLflow's schema migration.
    client = MlflowClient(f"sqlite:///{sweep_dir / 'mlflow.db'}")  # the driver's default store
    client.search_experiments()
    log = sweep_dir / "driver.log"
    with log.open("w") as output:
        driver = subprocess.Popen(
            command, cwd=sweep_dir, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        finished = client.search_runs(
            ["1"], filter_string="attributes.status = 'FINISHED' and tags.method = 'global_magnitude'"
        )
        if finished:
            break
        time.sleep(2)
    else:
        driver.kill()
        pytest.fail("no trial finished within 300 s; driver log ends:\n" + log.read_text()[-3000:])
    os.killpg(driver.pid, signal.SIGINT)  # Ctrl-C on the driver
    driver.wait(timeout=120)

    resumed = subprocess.run(
        [*command, "--resume"], cwd=sweep_dir, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    parents = client.search_runs(["1"], filter_string="tags.`rnnprune.role` = 'sweep'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = _children(client, parents[0].info.run_id)
    assert sorted(float(r.data.tags["target_sparsity"]) for r in children) == [0.3, 0.5, 0.7, 0.9]
    assert all(r.info.status == "FINISHED" for r in children)
    for run in children:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
        assert steps == sorted(set(steps))

    again = subprocess.run(command, cwd=sweep_dir, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "pass --resume" in again.stderr  # never overwrites a sweep


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--serve-artifacts",
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                check_tracking(uri, timeout_s=2)
                break
            except TrackingError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(1)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a loaded machine: do not leave a server behind
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def test_sweep_logs_to_a_tracking_server(sweep_dir: Path, mlflow_server: str) -> None:
    spec = write_spec(sweep_dir, "served", [0.5, 0.9], ["global_magnitude"], max_concurrent_trials=2)
    outcome = run_sweep(spec, workdir=sweep_dir, num_cpus=2, tracking_uri=mlflow_server)
    assert outcome.errors == 0 and outcome.tracking_uri == mlflow_server
    assert not (sweep_dir / "mlflow.db").exists()  # nothing went to the embedded default
    client = MlflowClient(mlflow_server)
    children = _children(client, outcome.parent_run_id)
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    downloaded = client.download_artifacts(children[0].info.run_id, "metrics.json", str(sweep_dir))
    assert '"test_accuracy"' in Path(downloaded).read_text()


def test_unreachable_tracking_server_fails_before_ray(sweep_dir: Path) -> None:
    spec = write_spec(sweep_dir, "unreachable", [0.5], ["global_magnitude"])
    started = time.monotonic()
    with pytest.raises(RnnpruneError, match="unreachable"):
        run_sweep(spec, workdir=sweep_dir, tracking_uri=f"http://127.0.0.1:{_free_port()}")
    assert time.monotonic() - started < 30
    assert not (sweep_dir / "storage").exists()


def test_optuna_search_with_per_level_asha(sweep_dir: Path) -> None:
    spec = write_spec(
        sweep_dir,
        "optuna",
        [0.5, 0.9],
        ["global_magnitude", "random"],
        max_concurrent_trials=2,
        search={
            "algorithm": "optuna",
            "num_samples": 4,
            "seed": 0,
            "objectives": [{"metric": "val_accuracy", "mode": "max"}],
        },
        scheduler={"kind": "asha", "grace_period": 1, "reduction_factor": 2},
    )
    (sweep_dir / "optuna.yaml").write_text(
        (sweep_dir / "optuna.yaml").read_text() + "tracking: {log_models: false}\n"
    )
    outcome = run_sweep(spec, workdir=sweep_dir, num_cpus=2)
    assert outcome.errors == 0
    client = MlflowClient(outcome.tracking_uri)
    children = _children(client, outcome.parent_run_id)
    assert len(children) == 4
    for run in children:
        assert run.info.status == "FINISHED"  # early-stopped ones too, tagged as such
        assert run.data.tags["method"] in {"global_magnitude", "random"}
        assert float(run.data.tags["target_sparsity"]) in {0.5, 0.9}
        if run.data.tags.get("rnnprune.stopped_early") != "true":
            assert "test_accuracy" in run.data.metrics
