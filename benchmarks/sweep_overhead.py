"""Sweep-layer benchmarks on one machine (local Ray, MLflow on SQLite).

1. Overhead: the same fixed trial run by calling the trial runner directly and as a
   one-trial sweep (Tune trainable + MLflow child run + checkpoints every epoch). Both use
   one CPU thread and a dense model already in the cache, so they do the same work. We
   report the trial's own time inside Tune (`time_total_s`: what the sweep layer adds to a
   trial) and the whole sweep command (Ray start-up included), against the direct call.
   Each repeat runs both sides, alternating which goes first. On a shared machine the
   training epochs themselves vary by more than the sweep layer costs, so we also report
   the sweep layer's seconds alone: each side's time minus its runner's own epoch time
   (`wall_time_s`), Tune's minus direct's.
2. Parallelism: 4 trials on 2 CPUs, one at a time vs two at a time (1 CPU each).
3. Dense cache: over the quickstart sweep's child runs, the hit rate and the dense
   training seconds that hits saved.

    RNNPRUNE_DATA_DIR=../shared/data/mnist python -m benchmarks.sweep_overhead [--epochs 6]
        [--parts overhead parallelism cache]   # parts not run are kept from the last result
"""

from __future__ import annotations

import argparse
import json
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

from benchmarks.common import RESULTS, write_result
from rnnprune.config import load_config
from rnnprune.sweep.runner import run_sweep
from rnnprune.training.runner import run_trial

ROOT = Path(__file__).parents[1]
BASE = ROOT / "sweeps" / "trials" / "quickstart.yaml"
PARTS = {"overhead": "overhead", "parallelism": "parallelism", "cache": "dense_cache_quickstart"}


def _trial_yaml(directory: Path, epochs: int, cache: Path, name: str = "trial.yaml") -> Path:
    raw = yaml.safe_load(BASE.read_text())
    raw["pruning"]["schedule"] = {
        "kind": "gradual",
        "prune_epochs": epochs // 2,
        "frequency_steps": 25,
        "finetune_epochs": epochs - epochs // 2,
    }
    raw["cache_dir"] = str(cache)
    raw["device"] = "cpu"
    path = directory / name
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


def _tune_trial(storage: Path, name: str) -> tuple[float, float]:
    """(time_total_s, the runner's own epoch seconds) of a one-trial sweep, from Tune's results."""
    (result,) = (storage / name).glob("*/result.json")
    last = [json.loads(line) for line in result.read_text().splitlines() if line.strip()][-1]
    return last["time_total_s"], last["wall_time_s"]


def _fill_dense_cache(directory: Path, cache: Path) -> None:
    """Train (or find) the dense model, so every measured trial starts from the cache."""
    if not (directory / "warm").exists():  # a shorter pruning phase, the same dense model
        run_trial(load_config(_trial_yaml(directory, 2, cache, "warm.yaml")), directory / "warm")


def overhead(directory: Path, epochs: int, repeats: int, cache: Path) -> dict[str, Any]:
    torch.set_num_threads(1)  # a 1-CPU Tune trial runs with one thread
    config = load_config(_trial_yaml(directory, epochs, cache))
    _fill_dense_cache(directory, cache)
    direct, in_tune, whole, layer = [], [], [], []
    for repeat in range(repeats):
        sides = ["direct", "tune"] if repeat % 2 == 0 else ["tune", "direct"]
        for side in sides:
            started = time.perf_counter()
            if side == "direct":
                result = run_trial(config, directory / f"direct{repeat}")
                direct.append(time.perf_counter() - started)
                direct_rest = direct[-1] - result.metrics["wall_time_s"]
            else:
                name = f"overhead{repeat}"
                spec = _spec(directory, name, [config.pruning.target_sparsity], 1)
                run_sweep(spec, workdir=directory, num_cpus=1)
                whole.append(time.perf_counter() - started)
                total, epochs_s = _tune_trial(directory / "storage", name)
                in_tune.append(total)
                tune_rest = total - epochs_s
        # Outside the epochs both sides load the data and the cached dense model and write
        # the results; what Tune's side spends beyond that is the sweep layer.
        layer.append(tune_rest - direct_rest)
    d, t, w = statistics.median(direct), statistics.median(in_tune), statistics.median(whole)
    return {
        "direct_s": direct,
        "trial_in_tune_s": in_tune,
        "whole_sweep_s": whole,
        "sweep_layer_s": layer,
        "median_direct_s": d,
        "median_trial_in_tune_s": t,
        "median_whole_sweep_s": w,
        "median_sweep_layer_s": statistics.median(layer),
        "overhead_in_trial": t / d - 1,
        "overhead_whole_command": w / d - 1,
        "sweep_layer_share_of_60s_trial": statistics.median(layer) / 60,
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
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="what to measure; the other parts are kept from the last result, with its machine and date",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="dense-model cache to use (default: a fresh one, so the dense model is trained first)",
    )
    parser.add_argument(
        "--quickstart-uri",
        default=f"sqlite:///{ROOT / 'mlflow.db'}",
        help="tracking URI holding a finished quickstart sweep (for the cache figures)",
    )
    args = parser.parse_args()
    previous_path = RESULTS / "sweep_overhead.json"
    previous = json.loads(previous_path.read_text()) if previous_path.is_file() else {}
    directory = Path(tempfile.mkdtemp(prefix="rnnprune-sweep-bench-"))
    cache = args.cache_dir.resolve() if args.cache_dir else directory / "cache"
    load_before = os.getloadavg()
    result: dict[str, Any] = {}
    try:
        for part, key in PARTS.items():
            if part not in args.parts:
                if key in previous:  # kept as measured, with where and when it was measured
                    result[key] = previous[key]
                    origin = previous.get("kept_from_previous_result", {}).get(key) or {
                        "machine": previous.get("machine"),
                        "command": previous.get("command"),
                        "load_average_before_after": previous.get("load_average_before_after"),
                    }
                    result.setdefault("kept_from_previous_result", {})[key] = origin
                continue
            if part == "overhead":
                result[key] = overhead(directory, args.epochs, args.repeats, cache)
            elif part == "parallelism":
                _trial_yaml(directory, args.epochs, cache)
                _fill_dense_cache(directory, cache)
                result[key] = parallelism(directory, args.trials)
            else:
                result[key] = cache_savings(args.quickstart_uri, "rnnprune-quickstart")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    # Other work on the machine slows the two-at-a-time run most: record it with the figures.
    result["load_average_before_after"] = [load_before, os.getloadavg()]
    result["command"] = (
        "RNNPRUNE_DATA_DIR=../shared/data/mnist python -m benchmarks.sweep_overhead "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
        )
    )
    path = write_result("sweep_overhead", result)
    if "overhead" in args.parts:
        o = result["overhead"]
        print(
            f"direct {o['median_direct_s']:.1f} s, trial inside Tune {o['median_trial_in_tune_s']:.1f} s "
            f"({100 * o['overhead_in_trial']:+.1f}%), whole sweep command {o['median_whole_sweep_s']:.1f} s "
            f"({100 * o['overhead_whole_command']:+.1f}%); sweep layer alone "
            f"{o['median_sweep_layer_s']:.2f} s ({100 * o['sweep_layer_share_of_60s_trial']:.1f}% of 60 s)"
        )
    if "parallelism" in args.parts:
        p = result["parallelism"]
        print(
            f"{p['trials']} trials: one at a time {p['one_at_a_time_s']:.1f} s, two at a time "
            f"{p['two_at_a_time_s']:.1f} s, speed-up {p['speedup']:.2f}x"
        )
    if "cache" in args.parts:
        print(f"dense cache on the quickstart: {result['dense_cache_quickstart']}")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
