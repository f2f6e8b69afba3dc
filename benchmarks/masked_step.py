"""Masked vs unmasked training step time, same model, same data, one process.

Both models train through the phase engine's own step loop (`rnnprune.training.loop.
train_steps`), as a dense and a pruning phase do: the masked model is pruned to 90%
(weight_ih and weight_hh), carries the pruning phase's mask-events hook, and after every
optimizer step re-applies its masks to the weights and to Adam's moment estimates. Blocks of
steps alternate between the two models so that drift in machine load hits both alike; the
figure is the ratio of the medians of per-step times.

    python -m benchmarks.masked_step [--cell lstm] [--hidden 128] [--batch 64] [--blocks 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.common import write_result
from rnnprune.models import RecurrentNet
from rnnprune.objectives import Classification
from rnnprune.pruning.base import NoParams, nested
from rnnprune.pruning.magnitude import prune_global_magnitude
from rnnprune.training.hooks import MaskEventsHook, TrainingHook
from rnnprune.training.loop import OptimizerSettings, make_optimizer, train_steps
from rnnprune.training.plan import MaskSchedule

OBJECTIVE = Classification()


SETTINGS = OptimizerSettings("adam", 1e-3, 0.9, 0.0, "constant", 1.0)


def _constant_lr(step: int) -> float:
    return SETTINGS.lr


def _steps(
    model: RecurrentNet,
    optimizer: torch.optim.Optimizer,
    hooks: list[TrainingHook],
    batch: tuple[torch.Tensor, torch.Tensor],
    steps: int,
) -> None:
    train_steps(model, optimizer, iter([batch] * steps), SETTINGS, 0, _constant_lr, OBJECTIVE, hooks)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=28)
    parser.add_argument("--features", type=int, default=28)
    parser.add_argument("--blocks", type=int, default=30, help="alternating blocks per model")
    parser.add_argument("--steps", type=int, default=10, help="steps per block")
    parser.add_argument("--sparsity", type=float, default=0.9)
    args = parser.parse_args()

    torch.manual_seed(0)
    models = {
        name: RecurrentNet(args.cell, args.features, args.hidden, 1, 10) for name in ("dense", "masked")
    }
    models["masked"].load_state_dict(models["dense"].state_dict())
    weights = models["masked"].prunable_weights(("ih", "hh"))
    models["masked"].set_masks(
        nested(prune_global_magnitude(weights, args.sparsity, NoParams(), torch.Generator()), weights)
    )
    optimizers = {name: make_optimizer(model, SETTINGS) for name, model in models.items()}
    # The pruning phase's hook, its events already applied: what each of its steps pays.
    schedule = MaskSchedule("global_magnitude", NoParams(), ("ih", "hh"), ())
    hooks: dict[str, list[TrainingHook]] = {
        "dense": [],
        "masked": [MaskEventsHook(schedule, 0, lambda epoch: {})],
    }
    batch = (torch.randn(args.batch, args.seq, args.features), torch.randint(0, 10, (args.batch,)))

    for name in models:  # warm-up: allocator, Adam state, thread pools
        _steps(models[name], optimizers[name], hooks[name], batch, args.steps)
    times: dict[str, list[float]] = {"dense": [], "masked": []}
    for block in range(args.blocks):
        order = ("dense", "masked") if block % 2 == 0 else ("masked", "dense")
        for name in order:
            start = time.perf_counter()
            _steps(models[name], optimizers[name], hooks[name], batch, args.steps)
            times[name].append((time.perf_counter() - start) / args.steps)

    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["masked"] / medians["dense"]
    result = {
        "command": "python -m benchmarks.masked_step "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
        "settings": vars(args),
        "median_step_ms": {name: 1000 * value for name, value in medians.items()},
        "ratio_masked_over_dense": ratio,
        "target_ratio": 1.05,
    }
    path = write_result(f"masked_step_{args.cell}{args.hidden}", result)
    print(
        f"median step: dense {1000 * medians['dense']:.2f} ms, masked {1000 * medians['masked']:.2f} ms, "
        f"ratio {ratio:.3f} (target <= 1.05) -> {path}"
    )


if __name__ == "__main__":
    main()
