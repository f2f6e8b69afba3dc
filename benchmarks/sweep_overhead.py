"""Sweep-layer benchmarks on one machine (local Ray, MLflow on SQLite).

1. Overhead: the same fixed trial run by calling the trial runner directly and as a
   one-trial sweep (Tune trainable + MLflow child run + checkpoints every epoch). Both use
   one CPU thread and a dense model already in the cache, so they do the same work. We
   report the trial's own time inside Tune (what the sweep layer adds to a trial) and the
   whole sweep command (Ray start-up included), against the direct call.
2. Parallelism: 4 trials on 2 CPUs, one at a time vs two at a time (1 CPU each).
3. Dense cache: over the quickstart sweep's child runs, the hit rate and the dense
   training seconds that hits saved.

    RNNPRUNE_DATA_DIR=../shared/data/mnist python -m benchmarks.sweep_overhead [--epochs 6]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from mlflow import MlflowClient

from benchmarks.common import write_result
from rnnprune.config import load_config
from rnnprune.sweep.runner import run_sweep
from rnnprune.training.runner import run_trial

ROOT = Path(__file__).parents[1]
BASE = ROOT / "sweeps" / "trials" / "quickstart.yaml"


def _trial_yaml(directory: Path, epochs: int, cache: Path) -> Path:
    raw = yaml.safe_load(BASE.read_text())
    raw["pruning"]["schedule"] = {
        "kind": "gradual",
        "prune_epochs": epochs // 2,
        "frequency_steps": 25,
        "finetune_epochs": epochs - epochs // 2,
    }
    raw["cache_dir"] = str(cache)
    raw["device"] = "cpu"
    path = directory / "trial.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _spec(directory: Path, name: str, targets: list[float], concurrency: int) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "base": "trial.yaml",
                "axes": {"pruning.target_sparsity": targets},
                "methods": {"global_magnitude": {}},
                "max_concurrent_trials": concurrency,
                "storage_path": str(directory / "storage"),
                "tracking": {"log_models": True},
            }
        )
    )
    return path


def _tune_trial_seconds(storage: Path, name: str) -> list[float]:
    import json

    seconds = []
    for result in (storage / name).glob("*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        seconds.append(rows[-1]["time_total_s"])
    return seconds


def overhead(directory: Path, epochs: int, repeats: int) -> dict[str, Any]:
    trial = _trial_yaml(directory, epochs, directory / "cache")
    torch.set_num_threads(1)  # a 1-CPU Tune trial runs with one thread
    config = load_config(trial)
    run_trial(config, directory / "warm")  # fills the dense cache for both sides
    direct, in_tune, whole = [], [], []
    for repeat in range(repeats):
        output = directory / f"direct{repeat}"
        started = time.perf_counter()
        run_trial(config, output)
        direct.append(time.perf_counter() - started)
        name = f"overhead{repeat}"
        started = time.perf_counter()
        run_sweep(_spec(directory, name, [config.pruning.target_sparsity], 1), workdir=directory, num_cpus=1)
        whole.append(time.perf_counter() - started)
        in_tune.extend(_tune_trial_seconds(directory / "storage", name))
    d, t, w = statistics.median(direct), statistics.median(in_tune), statistics.median(whole)
    return {
        "direct_s": direct,
        "trial_in_tune_s": in_tune,
        "whole_sweep_s": whole,
        "median_direct_s": d,
        "median_trial_in_tune_s": t,
        "median_whole_sweep_s": w,
        "overhead_in_trial": t / d - 1,
        "overhead_whole_command": w / d - 1,
    }


def parallelism(directory: Path, trials: int) -> dict[str, Any]:
    targets = [round(0.5 + 0.1 * i, 2) for i in range(trials)]
    timings = {}
    for concurrency in (1, 2):
        name = f"parallel{concurrency}"
        started = time.perf_counter()
        run_sweep(_spec(directory, name, targets, concurrency), workdir=directory, num_cpus=2)
        timings[concurrency] = time.perf_counter() - started
    return {
        "trials": trials,
        "one_at_a_time_s": timings[1],
        "two_at_a_time_s": timings[2],
        "speedup": timings[1] / timings[2],
    }


def cache_savings(tracking_uri: str, experiment: str) -> dict[str, Any] | None:
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = [r for r in client.search_runs([found.experiment_id]) if "dense_cache_hit" in r.data.metrics]
    hits = [r for r in runs if r.data.metrics["dense_cache_hit"] == 1.0]
    return {
        "trials": len(runs),
        "hits": len(hits),
        "hit_rate": len(hits) / max(len(runs), 1),
        "dense_seconds_saved": sum(r.data.metrics["dense_train_seconds"] for r in hits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=6, help="pruning-phase epochs of the fixed trial")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument(
        "--quickstart-uri",
        default=f"sqlite:///{ROOT / 'mlflow.db'}",
        help="tracking URI holding a finished quickstart sweep (for the cache figures)",
    )
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="rnnprune-sweep-bench-"))
    load_before = os.getloadavg()
    try:
        result = {
            "overhead": overhead(directory, args.epochs, args.repeats),
            "parallelism": parallelism(directory, args.trials),
            "dense_cache_quickstart": cache_savings(args.quickstart_uri, "rnnprune-quickstart"),
        }
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    # Other work on the machine slows the two-at-a-time run most: record it with the figures.
    result["load_average_before_after"] = [load_before, os.getloadavg()]
    result["command"] = (
        "RNNPRUNE_DATA_DIR=../shared/data/mnist python -m benchmarks.sweep_overhead "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items())
    )
    path = write_result("sweep_overhead", result)
    o, p = result["overhead"], result["parallelism"]
    print(
        f"direct {o['median_direct_s']:.1f} s, trial inside Tune {o['median_trial_in_tune_s']:.1f} s "
        f"({100 * o['overhead_in_trial']:+.1f}%), whole sweep command {o['median_whole_sweep_s']:.1f} s "
        f"({100 * o['overhead_whole_command']:+.1f}%)"
    )
    print(
        f"{p['trials']} trials: one at a time {p['one_at_a_time_s']:.1f} s, two at a time "
        f"{p['two_at_a_time_s']:.1f} s, speed-up {p['speedup']:.2f}x"
    )
    print(f"dense cache on the quickstart: {result['dense_cache_quickstart']}")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
