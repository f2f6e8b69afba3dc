"""The MLflow UI as users open it, in headless Chromium, from the links rnnprune prints: a
finished sweep's experiment opens on its training runs (not MLflow 3's GenAI overview), the
parent run's description states the front and links the Pareto dashboard, and its child runs
are named by method, target and seed."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import headless_chromium
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from rnnprune.publish import publish
from rnnprune.tracking import SweepTracking, experiment_url, run_url

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _finished_sweep(uri: str, workdir: Path) -> tuple[str, str]:
    """A sweep as `rnnprune sweep` leaves it: parent, six child runs, the front published."""
    tracking = SweepTracking.open(uri, "ui-sweep", workdir, "ui", {"sweep": "ui"}, None)
    client = MlflowClient(uri)
    for method, quality in (("global_magnitude", 0.97), ("random", 0.93)):
        for target in (0.5, 0.8, 0.9):
            run = client.create_run(
                tracking.experiment_id,
                run_name=f"{method}@{target:g}-seed0-abc123",
                tags={"mlflow.parentRunId": tracking.parent_run_id, "method": method, "task": "seq_mnist"},
            )
            client.log_batch(
                run.info.run_id,
                metrics=[
                    Metric("test_accuracy", quality - target / 10, 0, 1),
                    Metric("sparsity", target, 0, 1),
                ],
                params=[Param("pruning.method", method), Param("pruning.target_sparsity", str(target))],
                tags=[RunTag("target_sparsity", str(target)), RunTag("seed", "0")],
            )
            client.set_terminated(run.info.run_id, "FINISHED")
    publish(uri, "ui", workdir / "pareto")
    tracking.finish("FINISHED")
    return tracking.experiment_id, tracking.parent_run_id


@pytest.fixture
def mlflow_ui(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id, parent_run_id = _finished_sweep(uri, tmp_path)
    port = _free_port()
    log = (tmp_path / "ui.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("mlflow ui did not start:\n" + (tmp_path / "ui.log").read_text()[-3000:])
                time.sleep(0.5)
        yield base, experiment_id, parent_run_id
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _text_appears(driver, text: str, seconds: float = 90) -> bool:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, seconds).until(lambda d: text in d.find_element(By.TAG_NAME, "body").text)
    except Exception:  # selenium's TimeoutException: the assertion below says what was missing
        return False
    return True


def test_a_sweeps_experiment_opens_on_its_training_runs_with_the_front_linked(
    mlflow_ui: tuple[str, str, str], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    base, experiment_id, parent_run_id = mlflow_ui
    driver = headless_chromium("1400,1000")
    try:
        driver.get(experiment_url(base, experiment_id))
        assert _text_appears(driver, "7 matching runs"), driver.find_element(By.TAG_NAME, "body").text[:2000]
        assert "/runs?" in driver.current_url  # the runs table, not the GenAI overview
        assert "Token Usage" not in driver.find_element(By.TAG_NAME, "body").text
        driver.get(run_url(base, experiment_id, parent_run_id))
        assert _text_appears(driver, "Pareto dashboard"), driver.find_element(By.TAG_NAME, "body").text[:3000]
        # The child runs load by a request of their own: wait for them as for the description.
        assert _text_appears(driver, "global_magnitude@0.5-seed0-abc123")  # by method, target, seed
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "the Pareto front over test_accuracy and sparsity holds 3" in body
        link = driver.find_element(By.PARTIAL_LINK_TEXT, "Pareto dashboard")
        assert f"/runs/{parent_run_id}/artifacts/pareto/pareto.html" in link.get_attribute("href")
        driver.save_screenshot(str(tmp_path / "parent_run.png"))
    finally:
        driver.quit()
