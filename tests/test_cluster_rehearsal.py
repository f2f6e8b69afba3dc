"""Local multi-node rehearsal of the cluster deployment (issue 8), for real on one machine.

Two Ray nodes (`ray start --head` and `ray start --address`, each with its own temp dir, ports
and resources, token auth on), an `mlflow server` on a throwaway PostgreSQL database with the
basic-auth app and proxied artifacts, and a sweep submitted with `ray job submit`, the way
docs/cluster.md tells an operator to. Mid-sweep the worker node is killed (all its
processes, as a lost machine would be); Tune must retry the trial it held on the head.

Everything listens on 127.0.0.1 and is torn down by process session, never by name, so Ray
instances of other users of the machine are left alone. Needs PostgreSQL on 127.0.0.1:5432
with trust auth for `postgres` (CI and this project's machines have it); skipped otherwise.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faults
import pytest
import yaml
from conftest import tiny_mnist

from rnnprune.tracking import TrackingError, check_tracking

pytestmark = pytest.mark.slow

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
RAY = str(Path(sys.executable).with_name("ray"))
TRIALS = 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _session_pids(session_ids: set[int]) -> list[int]:
    """Processes whose session is one of ours (Ray daemons and workers keep their session)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        if int(fields[3]) in session_ids and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def _pgrep(pattern: str) -> list[str]:
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()


def _kill_sessions(session_ids: set[int], grace_s: float = 10.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _session_pids(session_ids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while _session_pids(session_ids) and time.monotonic() < deadline:
            time.sleep(0.2)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _post(url: str, body: dict[str, Any], auth: str | None = None) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if auth:
        request.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@dataclass(frozen=True)
class TrackingServer:
    uri: str
    database: str
    user: str
    password: str


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin_db = psycopg2.connect(PG_DSN, connect_timeout=5)
    except psycopg2.OperationalError as error:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 with trust auth for postgres: {error}")
    admin_db.autocommit = True
    database = f"rnnprune_rehearsal_{secrets.token_hex(4)}"
    with admin_db.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {database}")
    root = tmp_path_factory.mktemp("mlflow-server")
    # The ini holds no secret: the admin password comes from the environment, as in cluster/.
    ini = root / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 60\n"  # as shipped: uncached PBKDF2 checks starve a small server
    )
    admin_password = secrets.token_urlsafe(18)
    port = _free_port()
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
    }
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)),
        *("--backend-store-uri", f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"),
        *("--artifacts-destination", str(root / "artifacts"), "--serve-artifacts"),
        *("--app-name", "basic-auth", "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}"),
        *("--workers", "1"),
    ]
    log = root / "server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
            patch.setenv("MLFLOW_TRACKING_PASSWORD", admin_password)
            while True:
                try:
                    check_tracking(uri, timeout_s=3)
                    break
                except TrackingError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        pytest.fail("mlflow server did not start:\n" + log.read_text()[-3000:])
                    time.sleep(1)
        # The sweep runs as an ordinary user, not the admin: it creates its experiment and so
        # manages it; everyone else has NO_PERMISSIONS on it.
        user, password = "sweeper", secrets.token_urlsafe(18)
        status = _post(
            f"{uri}/api/2.0/mlflow/users/create",
            {"username": user, "password": password},
            _basic("admin", admin_password),
        )
        assert status == 200, f"creating the sweep user answered HTTP {status}"
        yield TrackingServer(uri, database, user, password)
    finally:
        _kill_sessions({server.pid})
        server.wait(timeout=30)
        left = _session_pids({server.pid}) + [int(pid) for pid in _pgrep(f"mlflow server .*--port {port}")]
        with admin_db.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin_db.close()
        assert not left, f"MLflow server processes left behind: {left}"


@dataclass(frozen=True)
class RayNodes:
    dashboard: str
    env: dict[str, str]
    worker_session: int
    temp_dirs: tuple[Path, Path]


def _ray_start(args: list[str], env: dict[str, str], log: Path) -> int:
    with log.open("a") as output:
        process = subprocess.Popen(
            [RAY, "start", *args], env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    if process.wait(timeout=180) != 0:
        raise RuntimeError(f"ray start {' '.join(args)} failed:\n{log.read_text()[-3000:]}")
    return process.pid  # the session id of every daemon it left behind


@pytest.fixture
def ray_nodes(tmp_path: Path) -> Iterator[RayNodes]:
    # Short temp dirs: Ray's Unix sockets live under them and socket paths are limited to 107 bytes.
    head_dir = Path(tempfile.mkdtemp(prefix="rnnprune-head-", dir="/tmp"))
    worker_dir = Path(tempfile.mkdtemp(prefix="rnnprune-worker-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_TRACKING_"))}
    env.update(
        RAY_AUTH_MODE="token",  # every node, the job client and the state API present this token
        RAY_AUTH_TOKEN=secrets.token_hex(32),
        RAY_USAGE_STATS_ENABLED="0",
        # Health checks that notice a lost node sooner than the defaults do, so the retry comes quickly.
        RAY_health_check_period_ms="1000",
        RAY_health_check_failure_threshold="3",
    )
    gcs_port, dashboard_port = _free_port(), _free_port()
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory", str(80 * 2**20)]
    sessions: set[int] = set()
    log = tmp_path / "ray-start.log"
    try:
        head = _ray_start(
            [
                "--head",
                *("--port", str(gcs_port), "--temp-dir", str(head_dir)),
                *("--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard_port)),
                *("--dashboard-agent-listen-port", str(_free_port())),
                *("--ray-client-server-port", str(_free_port()), *common),
            ],
            env,
            log,
        )
        sessions.add(head)
        worker = _ray_start(
            [
                *("--address", f"127.0.0.1:{gcs_port}", "--temp-dir", str(worker_dir)),
                *("--resources", json.dumps({"worker_node": 1})),
                *("--dashboard-agent-listen-port", str(_free_port()), *common),
            ],
            env,
            log,
        )
        sessions.add(worker)
        yield RayNodes(f"http://127.0.0.1:{dashboard_port}", env, worker, (head_dir, worker_dir))
    finally:
        _kill_sessions(sessions)
        left = _session_pids(sessions)
        # Daemons name their temp dir on the command line: a second look, by what pgrep sees.
        left += [int(pid) for d in (head_dir, worker_dir) for pid in _pgrep(str(d))]
        for directory in (head_dir, worker_dir):
            shutil.rmtree(directory, ignore_errors=True)
        assert not left, f"Ray processes left behind: {left}"


PLUGIN_PACKAGE = "rehearsal_user_models"


def _plugin_package(parent: Path) -> Path:
    """A user's package with their own recurrent classifier, outside the job's working dir and
    installed nowhere: only the spec's `runtime_env.py_modules` brings it to the workers."""
    package = parent / PLUGIN_PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(
        "from torch import nn\n\n\n"
        "class Classifier(nn.Module):\n"
        "    def __init__(self, features: int, hidden: int, classes: int) -> None:\n"
        "        super().__init__()\n"
        "        self.lstm = nn.LSTM(features, hidden, batch_first=True)\n"
        "        self.head = nn.Linear(hidden, classes)\n\n"
        "    def forward(self, x):\n"
        "        return self.head(self.lstm(x)[0][:, -1])\n\n\n"
        "def build(inputs, hidden_size: int = 8) -> nn.Module:\n"
        "    return Classifier(inputs.input_size, hidden_size, inputs.num_outputs)\n"
    )
    return package


def _write_job(
    directory: Path, data: Path, storage: Path, cache: Path, experiment: str, held_marker: Path
) -> Path:
    """The job's working directory: a spec and its trial config, nothing else (it is uploaded)."""
    directory.mkdir()
    trial = {
        "task": {"name": "seq_mnist", "data_dir": str(data), "download": False},
        # The user's own network, from a package no Ray node has: the spec ships it.
        "model": {"factory": f"{PLUGIN_PACKAGE}.models:build", "params": {"hidden_size": 8}},
        "training": {"epochs": 2, "batch_size": 16, "lr": 0.02},
        "pruning": {
            "method": "global_magnitude",
            "target_sparsity": 0.5,
            "schedule": {"kind": "gradual", "prune_epochs": 3, "frequency_steps": 20, "finetune_epochs": 6},
        },
        "device": "cpu",
        "cache_dir": str(cache),
    }
    spec = {
        "name": "rehearsal",
        "base": "trial.yaml",
        "axes": {"pruning.target_sparsity": [0.5, 0.8]},
        "methods": {"global_magnitude": {}, "random": {}},
        "max_concurrent_trials": 2,
        "max_failures": 3,
        # One host stands in for a shared file system (NFS/EFS/S3 on a real cluster).
        "storage_path": str(storage),
        "tracking": {"experiment": experiment},
        "runtime_env": {"py_modules": [str(_plugin_package(directory.parent / "user-code"))]},
    }
    (directory / "trial.yaml").write_text(yaml.safe_dump(trial))
    (directory / "rehearsal.yaml").write_text(yaml.safe_dump(spec))
    # `rnnprune sweep` with the test-only hook that holds the worker node's first trial.
    shutil.copy(faults.__file__, directory / "faults.py")
    settings = {"marker": str(held_marker), "hold_on_resource": "worker_node"}
    (directory / faults.HOLD_SETTINGS).write_text(json.dumps(settings))
    (directory / "sweep_with_fault_hook.py").write_text(
        "import sys\n"
        "from rnnprune import cli\n"
        "from rnnprune.sweep import runner\n"
        f"runner.WORKER_SETUP_HOOK = {faults.HOLD_HOOK!r}\n"
        "sys.exit(cli.main(['sweep', *sys.argv[1:]]))\n"
    )
    return directory


def test_unauthenticated_and_wrong_credentials_are_refused(
    tracking_server: TrackingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    create = f"{tracking_server.uri}/api/2.0/mlflow/experiments/create"
    assert _post(create, {"name": "anonymous"}) == 401
    assert _post(create, {"name": "wrong"}, _basic(tracking_server.user, "not-the-password")) == 401
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", tracking_server.user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    with pytest.raises(TrackingError, match=r"refused the credentials \(HTTP 401\)"):
        check_tracking(tracking_server.uri)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    with pytest.raises(TrackingError, match="refused the credentials"):
        check_tracking(tracking_server.uri)


def test_sweep_on_two_nodes_survives_losing_one(
    ray_nodes: RayNodes,
    tracking_server: TrackingServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow import MlflowClient
    from ray.job_submission import JobStatus, JobSubmissionClient
    from ray.tune import ExperimentAnalysis
    from ray.util.state.api import StateApiClient
    from ray.util.state.common import ListApiOptions, StateResource

    # Ray reads RAY_AUTH_MODE once per process, so this process sends the token itself.
    headers = {"Authorization": f"Bearer {ray_nodes.env['RAY_AUTH_TOKEN']}"}
    state = StateApiClient(ray_nodes.dashboard, headers=headers)

    def listed(resource: StateResource, *filters: tuple[str, str, str]) -> list[Any]:
        options = ListApiOptions(filters=list(filters), detail=True, limit=1000)
        return state.list(resource, options, raise_on_missing_output=True)

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", tracking_server.user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", tracking_server.password)
    experiment = f"rehearsal-{secrets.token_hex(3)}"
    storage = tmp_path / "shared-storage"
    data = tiny_mnist(tmp_path / "mnist")
    held_marker = tmp_path / "worker-node-trial-held"  # written by the trial the worker node holds
    job_dir = _write_job(tmp_path / "job", data, storage, tmp_path / "dense-cache", experiment, held_marker)

    nodes = listed(StateResource.NODES)
    assert len(nodes) == 2 and sum(n.is_head_node for n in nodes) == 1

    runtime_env = {
        "env_vars": {
            # rnnprune's driver re-sends the credentials to its workers (FORWARDED_ENV); Ray refuses
            # a driver runtime env that repeats a job env key unless told to combine them.
            "RAY_OVERRIDE_JOB_RUNTIME_ENV": "1",
            "MLFLOW_TRACKING_URI": tracking_server.uri,
            "MLFLOW_TRACKING_USERNAME": tracking_server.user,
            "MLFLOW_TRACKING_PASSWORD": tracking_server.password,
        }
    }
    submission = f"rehearsal-{secrets.token_hex(3)}"
    submit = subprocess.run(
        [
            *(RAY, "job", "submit", "--address", ray_nodes.dashboard, "--submission-id", submission),
            *("--working-dir", str(job_dir), "--runtime-env-json", json.dumps(runtime_env), "--no-wait"),
            *("--", sys.executable, "sweep_with_fault_hook.py", "rehearsal.yaml"),
        ],
        env=ray_nodes.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert submit.returncode == 0, submit.stderr[-3000:]
    jobs = JobSubmissionClient(ray_nodes.dashboard, headers=headers)
    client = MlflowClient(tracking_server.uri)

    def wait_for_job(seconds: float) -> JobStatus:
        deadline = time.monotonic() + seconds
        while not (status := jobs.get_job_status(submission)).is_terminal():
            if time.monotonic() > deadline:
                saved = tmp_path / "ray-logs"  # the head's temp dir goes at tear-down: keep its logs
                shutil.copytree(next(ray_nodes.temp_dirs[0].glob("session_2*")) / "logs", saved)
                jobs.stop_job(submission)
                pytest.fail(
                    f"the sweep job did not finish in {seconds:.0f} s (Ray logs in {saved}):\n"
                    + jobs.get_job_logs(submission)[-3000:]
                )
            time.sleep(0.5)
        return status

    # The trial on the worker node writes the marker once Tune holds its first checkpoint and then
    # waits there (tests/faults.py), so the node is lost mid-trial however loaded the machine is.
    deadline = time.monotonic() + 240
    while not held_marker.exists():
        if jobs.get_job_status(submission).is_terminal() or time.monotonic() > deadline:
            hook_log = held_marker.with_name(held_marker.name + ".log")
            calls = hook_log.read_text() if hook_log.exists() else "(no checkpoint reached the hook)"
            pytest.fail(
                f"no trial on the worker node reached its first checkpoint; hook calls:\n{calls}\n"
                + jobs.get_job_logs(submission)[-3000:]
            )
        time.sleep(0.5)
    # A lost machine: every process of the worker node dies at once.
    _kill_sessions({ray_nodes.worker_session}, grace_s=0)
    status = wait_for_job(240)
    logs = jobs.get_job_logs(submission)
    assert status == JobStatus.SUCCEEDED, logs[-4000:]

    # Trials ran on both nodes: the marker is written only by a trial on the worker node (the
    # hook checks its node's resources), and once that node was lost only the head was left to
    # run the rest and the retry. (Listing Ray's dead actors to see it returned nothing once
    # on a loaded machine: the state API is not a reliable witness.)
    assert int(held_marker.read_text()) > 0

    # The trial on the lost node was retried and every trial finished.
    trials = ExperimentAnalysis(str(storage / "rehearsal")).trials
    assert len(trials) == TRIALS
    assert all(t.status == "TERMINATED" for t in trials), [(t.trial_id, t.status) for t in trials]
    assert sum(t.num_failures for t in trials) >= 1

    # Every child run is in the PostgreSQL store, finished, no step twice, artifacts proxied.
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    children = client.search_runs([found.experiment_id], "tags.ray_trial_id != ''")
    assert len(children) == TRIALS
    assert {c.data.tags["ray_trial_id"] for c in children} == {t.trial_id for t in trials}
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.params["model.factory"] == f"{PLUGIN_PACKAGE}.models:build"  # the shipped plugin ran
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # through the server, not a path
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
        assert steps == sorted(set(steps)) and steps, steps
        downloaded = client.download_artifacts(run.info.run_id, "metrics.json", str(tmp_path))
        assert "test_accuracy" in json.loads(Path(downloaded).read_text())
    import psycopg2

    with (
        psycopg2.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={tracking_server.database}") as db,
        db.cursor() as cursor,
    ):
        cursor.execute(
            "SELECT count(*) FROM runs JOIN experiments USING (experiment_id) "
            "WHERE experiments.name = %s AND runs.status = 'FINISHED'",
            (experiment,),
        )
        assert cursor.fetchone()[0] == TRIALS + 1  # the children and the sweep's parent run
    db.close()
    # Anonymous readers see nothing of it either (default permission NO_PERMISSIONS).
    request = urllib.request.Request(
        f"{tracking_server.uri}/api/2.0/mlflow/experiments/get-by-name?experiment_name={experiment}"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
