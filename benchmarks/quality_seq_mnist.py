"""Foundation quality run: LSTM(128) on row-wise sequential MNIST, dense and gradual global
magnitude pruning of weight_ih + weight_hh to 90% and 95%, over seeds.

Reads real data through RNNPRUNE_DATA_DIR (or --data-dir); dense models come from the cache,
so each seed's dense model is trained once. Writes benchmarks/results/quality_seq_mnist.json
and prints the table for BENCHMARKS.md.

    RNNPRUNE_DATA_DIR=../shared/data/mnist python -m benchmarks.quality_seq_mnist \
        [--seeds 0 1 2] [--targets 0.9 0.95] [--output runs/quality]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.common import write_result
from rnnprune.config import load_config
from rnnprune.stats import seed_stats
from rnnprune.training.runner import run_trial

CONFIG = Path(__file__).parents[1] / "sweeps" / "trials" / "seq_mnist_lstm128.yaml"


def _mean_spread(values: list[float]) -> dict[str, float]:
    return {**seed_stats(values).as_dict(), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--targets", type=float, nargs="+", default=[0.9, 0.95])
    parser.add_argument("--output", type=Path, default=Path("runs/quality"))
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    overrides = list(args.overrides)
    if args.data_dir is not None:
        overrides.append(f"task.data_dir={args.data_dir}")
    rows: dict[str, dict[str, list[float]]] = {}
    for target in args.targets:
        for seed in args.seeds:
            config = load_config(CONFIG, [*overrides, f"seed={seed}", f"pruning.target_sparsity={target}"])
            metrics = run_trial(config, args.output / config.name()).metrics
            print(
                f"seed {seed} target {target}: dense test {metrics['dense_test_accuracy']:.4f}, "
                f"pruned test {metrics['test_accuracy']:.4f}, sparsity {metrics['sparsity']:.4f}",
                file=sys.stderr,
                flush=True,
            )
            dense = rows.setdefault("dense", {"test_accuracy": [], "sparsity": []})
            if len(dense["test_accuracy"]) < len(args.seeds):
                dense["test_accuracy"].append(metrics["dense_test_accuracy"])
                dense["sparsity"].append(0.0)
            row = rows.setdefault(
                f"gradual global magnitude {target:.0%}", {"test_accuracy": [], "sparsity": []}
            )
            row["test_accuracy"].append(metrics["test_accuracy"])
            row["sparsity"].append(metrics["sparsity"])

    summary = {
        name: {key: _mean_spread(values) for key, values in row.items()}
        | {"per_seed_test_accuracy": row["test_accuracy"]}
        for name, row in rows.items()
    }
    path = write_result(
        "quality_seq_mnist",
        {
            "command": "RNNPRUNE_DATA_DIR=../shared/data/mnist python -m benchmarks.quality_seq_mnist "
            + " ".join(sys.argv[1:]),
            "config": str(CONFIG.relative_to(CONFIG.parents[2])),
            "seeds": args.seeds,
            "results": summary,
        },
    )
    print("| model | pool sparsity | test accuracy, mean ± std (min–max) |\n|---|---|---|")
    for name, row in summary.items():
        acc, sparsity = row["test_accuracy"], row["sparsity"]
        print(
            f"| {name} | {sparsity['mean']:.4f} | {100 * acc['mean']:.2f}% ± {100 * acc['std']:.2f} "
            f"({100 * acc['min']:.2f}–{100 * acc['max']:.2f}) |"
        )
    print(f"-> {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
