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
