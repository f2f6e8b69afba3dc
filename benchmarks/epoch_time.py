"""Time one training epoch of a trial config on this machine (to size a sweep's budget).

Times `--batches` training steps (forward, backward, clip, optimizer step, masks re-applied:
the trial loop's own `train_steps`) after `--warmup` untimed ones, and one evaluation pass
over the validation split, then extrapolates to a whole epoch of the config's training split.
Run it with the thread count a sweep trial gets (OMP_NUM_THREADS=1 for `resources.cpu: 1`)
and note the machine's load: a shared machine's figure is only as quiet as the machine was.

With `--methods`, also runs one whole trial per method (`name` or `name:key=value,...` for
its params; the dense model trained once and cached) and reports its pruning phases' seconds
per epoch (`wall_time_s` of the trial runner): what a method's mask events, penalties and
mask updates add to a plain epoch. Shorten those trials with `--set`.

    OMP_NUM_THREADS=1 RNNPRUNE_DATA_DIR=../shared/data \
        python -m benchmarks.epoch_time sweeps/trials/leaderboard_seq_mnist_lstm128.yaml
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import write_result
from rnnprune.config import load_config
from rnnprune.training.factories import build_model, optimizer_settings
from rnnprune.training.loop import evaluate, make_optimizer, train_steps
from rnnprune.training.plan import steps_per_epoch
from rnnprune.training.runner import load_task_data, run_trial


def method_epoch_seconds(config_path: Path, overrides: list[str], methods: list[str]) -> dict[str, float]:
    """Seconds per pruning-phase epoch of one whole trial of each method (dense model cached)."""
    seconds = {}
    with tempfile.TemporaryDirectory() as directory:
        for entry in methods:
            name, _, params = entry.partition(":")
            method_sets = [f"pruning.params.{p}" for p in params.split(",") if p]
            config = load_config(
                config_path,
                [*overrides, f"pruning.method={name}", f"cache_dir={directory}/cache", *method_sets],
            )
            result = run_trial(config, Path(directory) / entry.replace(":", "_"))
            epochs = result.metrics["pruning_epochs"] + result.metrics["lottery_epochs"]
            seconds[entry] = round(result.metrics["wall_time_s"] / epochs, 2)
            print(f"{entry}: {seconds[entry]} s per pruning epoch ({epochs} epochs)", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="trial YAML")
    parser.add_argument("--set", action="append", default=[], help="override KEY=VALUE (repeatable)")
    parser.add_argument("--batches", type=int, default=60, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument(
        "--methods", default="", help="methods separated by spaces, each name or name:key=value,..."
    )
    parser.add_argument("--name", default=None, help="result file benchmarks/results/<name>.json")
    args = parser.parse_args()

    config = load_config(args.config, args.set)
    data = load_task_data(config)
    model = build_model(config, data)
    settings = optimizer_settings(config.training)
    optimizer = make_optimizer(model, settings)
    generator = torch.Generator().manual_seed(config.seed)
    batch = config.training.batch_size

    def run(steps: int) -> float:
        batches = itertools.islice(data.train.batches(batch, generator), steps)
        start = time.perf_counter()
        train_steps(model, optimizer, batches, settings, 0, lambda _: settings.lr, data.objective)
        return time.perf_counter() - start

    run(args.warmup)
    step_s = run(args.batches) / args.batches
    start = time.perf_counter()
    evaluate(model, data.val, data.objective)
    val_s = time.perf_counter() - start
    steps = steps_per_epoch(len(data.train), batch)
    epoch_s = steps * step_s + val_s
    result = {
        "config": str(args.config),
        "overrides": args.set,
        "train_examples": len(data.train),
        "val_examples": len(data.val),
        "batch_size": batch,
        "steps_per_epoch": steps,
        "timed_steps": args.batches,
        "step_ms": round(step_s * 1000, 2),
        "val_pass_s": round(val_s, 2),
        "epoch_s": round(epoch_s, 1),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }
    for key, value in result.items():
        print(f"{key}: {value}", flush=True)
    if args.methods:
        result["method_epoch_s"] = method_epoch_seconds(args.config, args.set, args.methods.split())
    if args.name:
        print(f"written {write_result(args.name, result)}")


if __name__ == "__main__":
    main()
