"""Fail fast: a dead Ray address or tracking server stops the sweep before Ray or any trial starts.

Without the pre-check, `ray.init(address=DEAD)` retries for minutes (measured: still retrying
after 2 minutes on Ray 2.60). Wrong credentials against a live basic-auth server are checked
in tests/test_cluster_rehearsal.py, which runs that server.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import yaml

from rnnprune.cli import main
from rnnprune.sweep.cluster import ClusterError, check_ray_address
from rnnprune.sweep.runner import run_sweep
from rnnprune.tracking import TrackingError


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def spec_path(tmp_path: Path, trial_dict: dict) -> Path:
    (tmp_path / "trial.yaml").write_text(yaml.safe_dump(trial_dict))
    spec = {
        "name": "failfast",
        "base": "trial.yaml",
        "methods": {"global_magnitude": {}},
        "storage_path": str(tmp_path / "storage"),
    }
    path = tmp_path / "failfast.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("address", ["127.0.0.1:{port}", "ray://127.0.0.1:{port}"])
def test_dead_ray_address_fails_within_seconds(address: str) -> None:
    address = address.format(port=_closed_port())
    started = time.monotonic()
    with pytest.raises(ClusterError, match=r"unreachable.*RAY_ADDRESS"):
        check_ray_address(address, timeout_s=5)
    assert time.monotonic() - started < 5


def test_live_address_passes() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_ray_address(f"127.0.0.1:{server.getsockname()[1]}")


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("http://127.0.0.1:8265", "ray job submit --address http://127.0.0.1:8265"),
        ("127.0.0.1:notaport", "port is not a number"),
        (":6379", "expected HOST:PORT"),
    ],
)
def test_malformed_addresses_are_explained(address: str, message: str) -> None:
    with pytest.raises(ClusterError, match=message):
        check_ray_address(address)


@pytest.mark.parametrize("address", [None, "local", "auto"])
def test_local_and_auto_are_left_to_ray(address: str | None) -> None:
    check_ray_address(address)


def test_run_sweep_with_dead_address_starts_nothing(spec_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{_closed_port()}")  # the environment is checked too
    workdir = spec_path.parent
    with pytest.raises(ClusterError, match="unreachable"):
        run_sweep(spec_path, workdir=workdir)
    assert not (workdir / "storage").exists()
    assert not (workdir / "mlflow.db").exists()  # no parent run was opened


def test_cli_reports_dead_address_and_exits_2(spec_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = _closed_port()
    code = main(["sweep", str(spec_path), "--address", f"127.0.0.1:{port}"])
    assert code == 2
    assert f"Ray cluster at 127.0.0.1:{port} is unreachable" in capsys.readouterr().err


def test_dead_tracking_server_is_reported_before_the_ray_address(spec_path: Path) -> None:
    with pytest.raises(TrackingError, match="unreachable"):
        run_sweep(
            spec_path,
            workdir=spec_path.parent,
            address=f"127.0.0.1:{_closed_port()}",
            tracking_uri=f"http://127.0.0.1:{_closed_port()}",
        )
