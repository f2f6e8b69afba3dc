"""The sweep worker's start-up hook: MLflow warmed once per process, nothing written."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from rnnprune.sweep.trainable import (
    WORKER_LOG_MODELS_ENV,
    WORKER_SETUP_HOOK,
    WORKER_TRACKING_URI_ENV,
    worker_setup,
)
from rnnprune.tracking import warm_up


def test_warm_up_loads_the_store_and_writes_nothing(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # the driver creates the store before workers start
    files_before = sorted(p.name for p in tmp_path.iterdir())

    warm_up(uri, log_models=True)

    assert "mlflow.store.tracking.sqlalchemy_store" in sys.modules
    client = MlflowClient(uri)
    assert [e.name for e in client.search_experiments()] == ["Default"]
    assert client.search_runs(["0"]) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == files_before  # no artifacts, no mlruns/


def test_worker_setup_is_best_effort(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A store that cannot be opened must not stop the worker from starting (Ray would drain
    # it); the trial then reports the real error itself.
    monkeypatch.setenv(WORKER_TRACKING_URI_ENV, "nosuchstore://nowhere")
    monkeypatch.setenv(WORKER_LOG_MODELS_ENV, "0")
    with caplog.at_level(logging.WARNING, logger="rnnprune.sweep.trainable"):
        worker_setup()
    assert "warming MLflow up" in caplog.text


def test_hook_names_an_importable_function() -> None:
    module, _, name = WORKER_SETUP_HOOK.rpartition(".")
    assert getattr(sys.modules[module], name) is worker_setup


class _StopAtRayInit(Exception):
    pass


def test_workers_start_with_the_hook_and_the_trial_thread_count(
    sweep_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ray sets OMP_NUM_THREADS only when a trial's actor starts, after the hook has loaded
    # torch: the driver must pass it from the worker's start (else 1-CPU trials get a pool of
    # one thread per core).
    from conftest import write_spec

    from rnnprune.sweep import runner

    seen: dict[str, object] = {}

    def fake_init(**kwargs: object) -> None:
        seen.update(kwargs)
        raise _StopAtRayInit

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runner.ray, "init", fake_init)
    spec = write_spec(sweep_dir, "hooked", [0.5], ["global_magnitude"], resources={"cpu": 1.5})
    with pytest.raises(_StopAtRayInit):
        runner.run_sweep(spec, workdir=sweep_dir, num_cpus=2)
    runtime_env = seen["runtime_env"]
    assert isinstance(runtime_env, dict)
    assert runtime_env["worker_process_setup_hook"] == WORKER_SETUP_HOOK
    env = runtime_env["env_vars"]
    assert env["OMP_NUM_THREADS"] == "1"
    assert env[WORKER_TRACKING_URI_ENV] == f"sqlite:///{(sweep_dir / 'mlflow.db').resolve()}"
    assert env[WORKER_LOG_MODELS_ENV] == "1"
