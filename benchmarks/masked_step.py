"""Masked vs unmasked training step time, same model, same data, one process.

The masked model is pruned to 90% (weight_ih and weight_hh); after every optimizer step its
masks are re-applied to the weights and to Adam's moment estimates. Blocks of steps
alternate between the two models so that drift in machine load hits both alike; the figure
is the ratio of the medians of per-step times.

    python -m benchmarks.masked_step [--cell lstm] [--hidden 128] [--batch 64] [--blocks 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn import functional as F

from benchmarks.common import write_result
from rnnprune.models import RecurrentNet
from rnnprune.pruning.base import NoParams, nested
from rnnprune.pruning.magnitude import prune_global_magnitude


def _step(
    model: RecurrentNet,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
) -> None:
    loss = F.cross_entropy(model(inputs), targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    model.apply_masks(optimizer)


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
    optimizers = {name: torch.optim.Adam(model.parameters(), lr=1e-3) for name, model in models.items()}
    inputs = torch.randn(args.batch, args.seq, args.features)
    targets = torch.randint(0, 10, (args.batch,))

    for name in models:  # warm-up: allocator, Adam state, thread pools
        for _ in range(args.steps):
            _step(models[name], optimizers[name], inputs, targets)
    times: dict[str, list[float]] = {"dense": [], "masked": []}
    for block in range(args.blocks):
        order = ("dense", "masked") if block % 2 == 0 else ("masked", "dense")
        for name in order:
            start = time.perf_counter()
            for _ in range(args.steps):
                _step(models[name], optimizers[name], inputs, targets)
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
