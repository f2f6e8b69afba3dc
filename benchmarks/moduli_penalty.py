"""Training-step time with the moduli penalty vs without, same model, same data, one process.

The CPU navigation setting: a bias-free ReLU RNN (H = 512) reading 2-d velocities for T = 20
steps, batch 64, a readout at every step (128 place cells, regressed here), AdamW. Every
variant runs the core's `train_steps`: `plain` without a regularizer, `moduli` with
λ·mean(R ⊙ |W_hh|) (torus DoG, inverted; R a fixed buffer) added to the loss, and
`trainable` with R recomputed from learnt points at every step. Blocks of steps rotate
between the variants so that drift in machine load hits all alike; the figures are ratios of
the medians of per-step times to `plain` (target ≤ 1.10 for `moduli`: the penalty reads the
weights once, not the recurrence).

    python -m benchmarks.moduli_penalty [--hidden 512] [--blocks 20] [--space torus]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from benchmarks.common import write_result
from rnnprune.data.base import Architecture
from rnnprune.models import RecurrentNet
from rnnprune.objectives import MeanSquaredError
from rnnprune.pruning.moduli import ModuliParams, build_regularizer
from rnnprune.regularization import Regularizer
from rnnprune.training.hooks import PenaltyHook, TrainingHook
from rnnprune.training.loop import OptimizerSettings, make_optimizer, train_steps

PLACE_CELLS = 128


def _load() -> str:
    return Path("/proc/loadavg").read_text().strip()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=20)
    parser.add_argument("--features", type=int, default=2)
    parser.add_argument("--blocks", type=int, default=20, help="alternating blocks per variant")
    parser.add_argument("--steps", type=int, default=5, help="steps per block")
    parser.add_argument("--space", default="torus")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = _load()

    torch.manual_seed(0)
    architecture = Architecture(readout="all", bias=False)
    variants = ("plain", "moduli", "trainable")
    models = {
        name: RecurrentNet("rnn_relu", args.features, args.hidden, 1, PLACE_CELLS, architecture=architecture)
        for name in variants
    }
    for name in variants[1:]:
        models[name].load_state_dict(models["plain"].state_dict())
    regularizers: dict[str, Regularizer | None] = {
        "plain": None,
        "moduli": build_regularizer(
            ModuliParams(space=args.space), models["moduli"], torch.Generator().manual_seed(0)
        ),
        "trainable": build_regularizer(
            ModuliParams(space=args.space, trainable_embedding=True),
            models["trainable"],
            torch.Generator().manual_seed(0),
        ),
    }
    settings = OptimizerSettings("adamw", 1e-3, 0.0, 0.01, "constant", None)
    hooks: dict[str, tuple[TrainingHook, ...]] = {
        name: () if regularizer is None else (PenaltyHook(regularizer),)
        for name, regularizer in regularizers.items()
    }
    optimizers = {name: make_optimizer(models[name], settings, hooks[name]) for name in models}
    inputs = torch.randn(args.batch, args.seq, args.features)
    targets = torch.rand(args.batch, args.seq, PLACE_CELLS)
    objective = MeanSquaredError()

    def run_block(name: str) -> float:
        start = time.perf_counter()
        train_steps(
            models[name],
            optimizers[name],
            iter([(inputs, targets)] * args.steps),
            settings,
            0,
            lambda _: settings.lr,
            objective,
            hooks[name],
        )
        return (time.perf_counter() - start) / args.steps

    for name in models:  # warm-up: allocator, AdamW state, thread pool
        run_block(name)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for block in range(args.blocks):
        shift = block % len(variants)  # every variant runs first, second and last equally often
        for name in variants[shift:] + variants[:shift]:
            times[name].append(run_block(name))

    medians = {name: statistics.median(values) for name, values in times.items()}
    ratios = {name: medians[name] / medians["plain"] for name in variants[1:]}
    result = {
        "command": "python -m benchmarks.moduli_penalty "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
        "settings": {**vars(args), "cell": "rnn_relu", "outputs": PLACE_CELLS, "optimizer": "adamw"},
        "median_step_ms": {name: 1000 * value for name, value in medians.items()},
        "ratio_over_plain": ratios,
        "target_ratio_moduli": 1.10,
        "loadavg_before": load_before,
        "loadavg_after": _load(),
    }
    path = write_result("moduli_penalty", result)
    print(
        "median step ms: "
        + ", ".join(f"{name} {1000 * value:.2f}" for name, value in medians.items())
        + "; ratios "
        + ", ".join(f"{name} {value:.3f}" for name, value in ratios.items())
        + f" (target moduli <= 1.10); loadavg {load_before} -> {result['loadavg_after']} -> {path}"
    )


if __name__ == "__main__":
    main()
