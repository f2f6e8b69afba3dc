"""Tracking store under sweep load: 16 concurrent trial writers against MLflow on PostgreSQL
(through `mlflow server`, basic auth on, proxied artifacts: the shipped cluster setup) and against
the SQLite default that every trial opens directly.

Each writer is a separate process (not Ray, so only the store is measured) and does what a
sweep trial does (rnnprune/tracking.py TrialRun): create a child run of a shared parent, log
params, one `log_batch` of per-epoch metrics per epoch, an artifact, and end the run FINISHED.
Afterwards every run is read back and counted: lost or duplicated metric values, runs left
RUNNING (orphans), failed calls, and metric values accepted per second.

    .venv/bin/python -m benchmarks.tracking_load            # both stores, 16 writers
    .venv/bin/python -m benchmarks.tracking_load --epochs 200 --stores sqlite postgres \
        --result tracking_load_heavy          # ten times the metric writes per trial

Needs PostgreSQL on 127.0.0.1:5432 with trust auth for `postgres` (a throwaway database is
created and dropped) and `mlflow[auth]`, `psycopg2-binary`. Everything stays on loopback.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing as mp
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import write_result

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
METRIC_KEYS = ("val_accuracy", "val_loss", "train_loss", "sparsity", "sparsity_total", "compression_ratio")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def writer(
    uri: str, experiment_id: str, parent: str, index: int, epochs: int, start_at: float
) -> dict[str, Any]:
    """One trial's worth of tracking calls; every failed call is counted, none is retried here."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(uri)
    stats: dict[str, Any] = {"index": index, "failures": 0, "errors": []}

    def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as error:  # what a trial would see: count it and go on
            stats["failures"] += 1
            stats["errors"].append(f"{type(error).__name__}: {str(error)[:200]}")
            return None

    stats["late_s"] = max(0.0, time.time() - start_at)  # still importing when the others began
    time.sleep(max(0.0, start_at - time.time()))  # all writers start together
    began = time.time()
    run = call(client.create_run, experiment_id, run_name=f"w{index}", tags={"mlflow.parentRunId": parent})
    if run is None:
        stats["elapsed_s"] = time.time() - began
        return stats
    run_id = run.info.run_id
    call(client.log_batch, run_id, params=[Param(f"p{i}", str(i)) for i in range(40)])
    for epoch in range(1, epochs + 1):
        now = int(time.time() * 1000)
        batch = [Metric(k, float(index + epoch / 100), now, epoch) for k in METRIC_KEYS]
        call(client.log_batch, run_id, metrics=batch)  # accepted values are counted from the store
    with tempfile.TemporaryDirectory() as directory:
        artifact = Path(directory) / "metrics.json"
        artifact.write_text(json.dumps({"writer": index, "payload": "x" * 65536}))
        call(client.log_artifact, run_id, str(artifact))
    call(client.set_terminated, run_id, "FINISHED")
    stats["run_id"] = run_id
    stats["elapsed_s"] = time.time() - began
    return stats


def _count(uri: str, experiment_id: str, parent: str, writers: int, epochs: int) -> dict[str, Any]:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'", max_results=1000)
    lost = duplicated = stored = artifacts_missing = 0
    for run in runs:
        for key in METRIC_KEYS:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            stored += len(steps)
            lost += len(set(range(1, epochs + 1)) - set(steps))
            duplicated += len(steps) - len(set(steps))
        if "metrics.json" not in {a.path for a in client.list_artifacts(run.info.run_id)}:
            artifacts_missing += 1
    lost += (writers - len(runs)) * epochs * len(METRIC_KEYS)  # runs never created lost everything
    return {
        "runs": len(runs),
        "running_orphans": sum(r.info.status == "RUNNING" for r in runs),
        "metric_values_stored": stored,
        "metric_values_lost": lost,
        "metric_values_duplicated": duplicated,
        "artifacts_missing": artifacts_missing + writers - len(runs),
    }


def load(uri: str, writers: int, epochs: int, name: str) -> dict[str, Any]:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment_id = client.create_experiment(name)  # also creates/migrates the store before fan-out
    parent = client.create_run(experiment_id, run_name="sweep", tags={"rnnprune.role": "sweep"}).info.run_id
    start_at = time.time() + 10.0 + writers * 4.0  # time for the processes to import MLflow
    context = mp.get_context("spawn")
    with context.Pool(writers) as pool:
        results = pool.starmap(
            writer, [(uri, experiment_id, parent, i, epochs, start_at) for i in range(writers)]
        )
    wall = max(r["elapsed_s"] for r in results)
    client.set_terminated(parent, "FINISHED")
    counts = _count(uri, experiment_id, parent, writers, epochs)
    errors = [e for r in results for e in r["errors"]]
    return {
        "writers": writers,
        "epochs": epochs,
        "metrics_per_epoch": len(METRIC_KEYS),
        **counts,
        "failed_calls": sum(r["failures"] for r in results),
        "late_writers": sum(r["late_s"] > 0 for r in results),
        "first_errors": errors[:5],
        "wall_s": round(wall, 2),
        # Over the whole trial workload (runs, params, metrics, artifacts, status), as a sweep sees it.
        "metric_values_per_s": round(counts["metric_values_stored"] / wall, 1),
        "writer_s": sorted(round(r["elapsed_s"], 2) for r in results),
    }


@contextmanager
def postgres_server(root: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`mlflow server` on a throwaway PostgreSQL database, basic auth on (cluster/mlflow setup)."""
    import psycopg2

    admin_db = psycopg2.connect(PG_DSN, connect_timeout=5)
    admin_db.autocommit = True
    database = f"rnnprune_load_{secrets.token_hex(4)}"
    with admin_db.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {database}")
    ini = root / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 60\n"  # as shipped: uncached PBKDF2 checks starve a small server
    )
    password, port = secrets.token_urlsafe(18), _free_port()
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
    }
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)),
        *("--backend-store-uri", f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"),
        *("--artifacts-destination", str(root / "artifacts"), "--serve-artifacts", "--workers", "4"),
        *("--app-name", "basic-auth", "--allowed-hosts", f"127.0.0.1:{port}"),
    ]
    log = (root / "server.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    credentials = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": password}
    try:
        token = base64.b64encode(f"admin:{password}".encode()).decode()
        deadline = time.monotonic() + 300
        while True:
            request = urllib.request.Request(f"{uri}/api/2.0/mlflow/experiments/search?max_results=1")
            request.add_header("Authorization", f"Basic {token}")
            try:
                with urllib.request.urlopen(request, timeout=5):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("mlflow server did not start; see " + log.name) from None
                time.sleep(1)
        yield uri, credentials
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
        with admin_db.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin_db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--stores", nargs="+", choices=["postgres", "sqlite"], default=["postgres", "sqlite"])
    parser.add_argument("--result", default="tracking_load", help="name of benchmarks/results/NAME.json")
    args = parser.parse_args()
    results: dict[str, Any] = {"loadavg_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="tracking-load-") as directory:
        root = Path(directory)
        for store in args.stores:
            if store == "postgres":
                with postgres_server(root) as (uri, credentials):
                    os.environ.update(credentials)  # inherited by the spawned writers
                    results[store] = {"uri": "http://127.0.0.1 (mlflow server, PostgreSQL, basic-auth)"}
                    results[store].update(load(uri, args.writers, args.epochs, "load-postgres"))
                    for key in credentials:
                        os.environ.pop(key)
            else:
                uri = f"sqlite:///{root / 'mlflow.db'}"
                results[store] = {"uri": "sqlite:///mlflow.db (direct, the local default)"}
                results[store].update(load(uri, args.writers, args.epochs, "load-sqlite"))
            print(store, json.dumps({k: v for k, v in results[store].items() if k != "writer_s"}), flush=True)
    results["loadavg_after"] = os.getloadavg()
    results["command"] = "python -m benchmarks.tracking_load " + " ".join(sys.argv[1:])
    print("wrote", write_result(args.result, results))


if __name__ == "__main__":
    main()
