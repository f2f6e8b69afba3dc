"""Per-trial cost of rnnprune's sweep layer against bare Ray Tune, over many trivial trials.

Both sides run the same trainable work, N times: one tiny trial of the adding problem (an
Elman RNN of 4 units on 32 sequences of 5 steps, one dense epoch, then one-shot pruning and 3
fine-tuning epochs reported one by one), seeds 0..N-1, two at a time on local Ray.

- rnnprune: `run_sweep` of a spec over those seeds: its trainable, MLflow child run per trial
  (params, per-epoch and final metrics, artifacts), Tune checkpoint every epoch, the per-level
  bookkeeping callbacks, and the Pareto front published at the end. `tracking.log_models` is
  off: bare Tune logs no model either.
- bare Ray Tune: a function trainable that calls the same trial runner and reports each epoch
  with `tune.report`, tracked by Tune's own `MLflowLoggerCallback` (params and metrics).

The trial's own work is measured apart (the runner called directly, one thread, median over
`--direct` seeds). Per-trial overhead = the time each of the two trial slots spends per trial
(2 x wall / N) minus that work; the figure that matters is the ratio of the two overheads.

    .venv/bin/python -m benchmarks.sweep_scale --trials 1000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from benchmarks.common import write_result
from rnnprune.config import validate_config
from rnnprune.training.runner import EpochReport, run_trial

CONCURRENCY = 2
TRIAL: dict[str, Any] = {
    "task": {
        "name": "adding",
        "params": {"train_examples": 32, "val_examples": 16, "test_examples": 16, "sequence_length": 5},
    },
    "model": {"cell": "rnn_tanh", "hidden_size": 4},
    "training": {"epochs": 1, "batch_size": 16},
    "pruning": {"method": "global_magnitude", "schedule": {"kind": "one_shot", "finetune_epochs": 3}},
    "device": "cpu",
}


def _trial(seed: int, cache: Path) -> dict[str, Any]:
    return {**TRIAL, "seed": seed, "cache_dir": str(cache)}


def direct_seconds(seeds: int, folder: Path) -> float:
    """Median wall time of one trial run by calling the runner (its own work, no sweep layer)."""
    times = []
    for seed in range(seeds):
        started = time.perf_counter()
        run_trial(validate_config(_trial(10_000 + seed, folder / "cache")), folder / f"direct{seed}")
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def rnnprune_sweep(trials: int, folder: Path) -> float:
    from rnnprune.sweep.runner import run_sweep

    (folder / "trial.yaml").write_text(yaml.safe_dump({**TRIAL, "cache_dir": str(folder / "cache")}))
    spec = {
        "name": "scale",
        "base": "trial.yaml",
        "axes": {"seed": list(range(trials))},
        "methods": {"global_magnitude": {}},
        "max_concurrent_trials": CONCURRENCY,
        "storage_path": str(folder / "storage"),
        "tracking": {"log_models": False},
    }
    (folder / "scale.yaml").write_text(yaml.safe_dump(spec))
    started = time.perf_counter()
    outcome = run_sweep(folder / "scale.yaml", workdir=folder, num_cpus=CONCURRENCY, progress=False)
    seconds = time.perf_counter() - started
    if outcome.errors or len(outcome.rows) != trials:
        raise SystemExit(f"rnnprune sweep: {outcome.errors} errors, {len(outcome.rows)} of {trials} runs")
    return seconds


def _bare_trainable(config: dict[str, Any]) -> None:
    from ray import tune

    trial = validate_config(_trial(config["seed"], Path(config["cache"])))
    output = Path(tune.get_context().get_trial_dir()) / "trial"

    def report(epoch: EpochReport) -> None:
        tune.report({k: v for k, v in epoch.metrics.items() if isinstance(v, float)})

    run_trial(trial, output, callback=report)


def bare_tune(trials: int, folder: Path) -> float:
    import ray
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    started = time.perf_counter()
    ray.init(num_cpus=CONCURRENCY, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(_bare_trainable, {"cpu": 1}),
            param_space={"seed": tune.grid_search(list(range(trials))), "cache": str(folder / "cache")},
            tune_config=tune.TuneConfig(max_concurrent_trials=CONCURRENCY, reuse_actors=True),
            run_config=tune.RunConfig(
                name="bare",
                storage_path=str(folder / "storage"),
                callbacks=[
                    MLflowLoggerCallback(
                        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}", experiment_name="bare"
                    )
                ],
                verbose=0,
            ),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    seconds = time.perf_counter() - started
    if results.errors or len(results) != trials:
        raise SystemExit(f"bare Tune: {len(results.errors)} errors, {len(results)} of {trials} trials")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--direct", type=int, default=30, help="trials timed by calling the runner")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)  # a 1-CPU trial runs with one thread
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rnnprune-sweep-scale-") as directory:
        root = Path(directory)
        for side, run in (("bare_tune", bare_tune), ("rnnprune", rnnprune_sweep)):
            folder = root / side
            folder.mkdir()
            figures[f"{side}_wall_s"] = round(run(args.trials, folder), 1)
            print(f"{side}: {figures[f'{side}_wall_s']} s for {args.trials} trials", flush=True)
        work = direct_seconds(args.direct, root)
    figures["trial_work_s"] = round(work, 4)
    for side in ("bare_tune", "rnnprune"):
        slot = CONCURRENCY * figures[f"{side}_wall_s"] / args.trials
        figures[f"{side}_overhead_per_trial_s"] = round(slot - work, 3)
    ratio = figures["rnnprune_overhead_per_trial_s"] / figures["bare_tune_overhead_per_trial_s"]
    figures["overhead_ratio"] = round(ratio, 2)
    print(
        f"trial work {work:.3f} s; overhead per trial: bare Tune "
        f"{figures['bare_tune_overhead_per_trial_s']} s, rnnprune "
        f"{figures['rnnprune_overhead_per_trial_s']} s; ratio {ratio:.2f} (target <= 2)"
    )
    command = f"python -m benchmarks.sweep_scale --trials {args.trials} --direct {args.direct}"
    print(f"wrote {write_result('sweep_scale', {'command': command, 'trials': args.trials, **figures})}")


if __name__ == "__main__":
    main()
