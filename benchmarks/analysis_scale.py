"""Analysis at scale: `rnnprune pareto` and `rnnprune pick` over stores of 1k, 10k and 30k runs.

Each store is an MLflow SQLite store holding one sweep: a parent run and N finished child runs
shaped like real trials (the flattened trial config as 56 params, 91 final metrics, 10 epochs
of history for 12 per-epoch metrics, 15 tags), over 6 methods, 5 target sparsities, a learning-
rate axis and 3 seeds. The experiment and the parent run are made through MLflow; the child
rows are written to MLflow's own tables in bulk, because logging 30k runs through the client
takes longer than everything measured here, in a process of its own. Each command runs as
its own process, timed from outside, with its peak resident memory read from `wait4`; the
measuring process imports nothing heavy (a child's peak counts the pages it shared with its
parent when it was forked).

    .venv/bin/python -m benchmarks.analysis_scale                 # 1k, 10k, 30k
    .venv/bin/python -m benchmarks.analysis_scale --runs 1000     # one size
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

METHODS = ("global_magnitude", "layerwise_magnitude", "random", "lattice", "expander", "moduli")
TARGETS = (0.5, 0.8, 0.9, 0.95, 0.98)
SEEDS = (0, 1, 2)
EPOCH_METRICS = (
    "epoch",
    "train_loss",
    "val_loss",
    "val_accuracy",
    "sparsity",
    "sparsity_total",
    "compression_ratio",
    "theoretical_speedup",
    "nonzero_params",
    "nonzero_params_pool",
    "total_params",
    "compression_ratio_pool",
)
EPOCHS = 10
SWEEP = "scale"


def _param_template() -> dict[str, str]:
    """A real trial config, flattened as the sweep logs it (lattice's block stands in for any)."""
    from rnnprune.config import validate_config
    from rnnprune.tracking import flatten

    config = validate_config({"pruning": {"method": "lattice"}})
    return {key: str(value) for key, value in flatten(config.model_dump(mode="json")).items()}


def _params(template: dict[str, str], method: str, target: float, lr: float, seed: int) -> dict[str, str]:
    return {
        **template,
        "pruning.method": method,
        "pruning.target_sparsity": str(target),
        "training.lr": str(lr),
        "seed": str(seed),
        "trial_hash": uuid.uuid4().hex,
    }


def _final_metrics(method: str, target: float, rng: random.Random) -> dict[str, float]:
    sparsity = target + rng.uniform(-0.002, 0.002)
    quality = 0.985 - 0.2 * sparsity**8 - 0.01 * METHODS.index(method) + rng.gauss(0, 0.003)
    metrics = {
        "val_accuracy": quality + rng.gauss(0, 0.002),
        "test_accuracy": quality,
        "dense_val_accuracy": 0.985,
        "dense_test_accuracy": 0.984,
        "val_loss": 1 - quality,
        "test_loss": 1 - quality,
        "sparsity": sparsity,
        "sparsity_total": sparsity * 0.9,
        "nonzero_params": 82_000 * (1 - sparsity) + 1_300,
        "nonzero_params_pool": 82_000 * (1 - sparsity),
        "total_params": 83_300,
        "compression_ratio": 1 / (1 - sparsity * 0.9),
        "compression_ratio_pool": 1 / (1 - sparsity),
        "theoretical_speedup": 1 / (1 - sparsity),
        "wall_time_s": rng.uniform(50, 70),
        "epoch": float(EPOCHS),
        "train_loss": 1 - quality,
    }
    for index in range(91 - len(metrics)):  # per-tensor and per-gate sparsities, graph metrics
        metrics[f"gate_sparsity.rnn.weight_hh_l0.g{index}"] = sparsity + rng.uniform(-0.05, 0.05)
    return metrics


def build_store(folder: Path, runs: int, seed: int = 0) -> str:
    """A SQLite MLflow store at `folder` with one sweep of `runs` finished child runs."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment(SWEEP, artifact_location=(folder / "artifacts").as_uri())
    parent = client.create_run(experiment, run_name=SWEEP, tags={"rnnprune.role": "sweep", "sweep": SWEEP})
    parent_id = parent.info.run_id
    rng = random.Random(seed)
    lrs = [round(1e-3 * (1 + i), 6) for i in range(max(1, runs // (len(METHODS) * len(TARGETS) * 3)) + 1)]
    database = sqlite3.connect(folder / "mlflow.db")
    now = int(time.time() * 1000)
    tables = ("runs", "params", "tags", "metrics", "latest")
    rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in tables}
    template = _param_template()
    for index in range(runs):
        method = METHODS[index % len(METHODS)]
        target = TARGETS[(index // len(METHODS)) % len(TARGETS)]
        seed_value = SEEDS[index % len(SEEDS)]
        lr = lrs[(index // (len(METHODS) * len(TARGETS) * len(SEEDS))) % len(lrs)]
        run_id = uuid.uuid4().hex
        name = f"{method}-{target}-s{seed_value}-{index}"
        artifacts = (folder / "artifacts" / run_id / "artifacts").as_uri()
        status = ("FINISHED", now, now + 1, "", "active", artifacts, experiment)
        rows["runs"].append((run_id, name, "LOCAL", "", "", "bench", *status))
        params = _params(template, method, target, lr, seed_value)
        rows["params"] += [(k, v, run_id) for k, v in params.items()]
        tags = {
            "mlflow.parentRunId": parent_id,
            "mlflow.runName": name,
            "mlflow.user": "bench",
            "mlflow.source.type": "LOCAL",
            "mlflow.source.name": "rnnprune",
            "ray_trial_id": f"t{index:06d}",
            "method": method,
            "target_sparsity": str(target),
            "task": "seq_mnist",
            "arch": "lstm128x1",
            "seed": str(seed_value),
            "sweep": SWEEP,
            "rnnprune.outputs_logged": "true",
            "mlflow.log-model.history": "[]",
            "mlflow.source.git.commit": "0" * 40,
        }
        rows["tags"] += [(k, v, run_id) for k, v in tags.items()]
        finals = _final_metrics(method, target, rng)
        rows["latest"] += [(k, v, now, EPOCHS, 0, run_id) for k, v in finals.items()]
        for step in range(1, EPOCHS + 1):
            rows["metrics"] += [(k, finals.get(k, 0.0), now + step, run_id, step, 0) for k in EPOCH_METRICS]
    with database:
        database.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
            "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows["runs"],
        )
        database.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", rows["params"])
        database.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", rows["tags"])
        database.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)",
            rows["metrics"],
        )
        database.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows["latest"],
        )
    database.close()
    client.set_terminated(parent_id, "FINISHED")
    return uri


def measure(command: list[str], cwd: Path) -> dict[str, Any]:
    """Wall time and peak resident memory of one command run as its own process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    output = process.stdout.read().decode(errors="replace") if process.stdout else ""
    return {
        "command": " ".join(command),
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux reports kilobytes
        "exit_code": os.waitstatus_to_exitcode(status),
        "output_tail": output[-600:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, nargs="+", default=[1_000, 10_000, 30_000])
    parser.add_argument("--result", default="analysis_scale")
    parser.add_argument("--build-into", type=Path, help=argparse.SUPPRESS)  # the store builder's process
    args = parser.parse_args()
    if args.build_into is not None:
        build_store(args.build_into, args.runs[0])
        return
    cli = [sys.executable, "-m", "rnnprune.cli"]
    sizes = []
    for runs in args.runs:
        with tempfile.TemporaryDirectory(prefix="rnnprune-scale-") as directory:
            folder = Path(directory)
            started = time.perf_counter()
            build = [sys.executable, "-m", "benchmarks.analysis_scale", "--build-into", str(folder)]
            subprocess.run([*build, "--runs", str(runs)], check=True, capture_output=True)
            built = time.perf_counter() - started
            uri = f"sqlite:///{folder / 'mlflow.db'}"
            results = {
                "pareto": measure(
                    [*cli, "pareto", SWEEP, "--tracking-uri", uri, "--output", "front"], folder
                ),
                "pick": measure(
                    [*cli, "pick", SWEEP, "--tracking-uri", uri, "--min-quality", "0.95", "--dry-run"], folder
                ),
            }
            sizes.append({"runs": runs, "store_build_s": round(built, 1), **results})
            for name, figures in results.items():
                print(
                    f"{runs:>6} runs  {name:<7} {figures['seconds']:>7.2f} s  "
                    f"{figures['peak_rss_mb']:>7.1f} MB  exit {figures['exit_code']}",
                    flush=True,
                )
    from benchmarks.common import write_result  # imports torch: only once nothing is measured

    command = "python -m benchmarks.analysis_scale --runs " + " ".join(map(str, args.runs))
    path = write_result(args.result, {"command": command, "sizes": sizes})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
