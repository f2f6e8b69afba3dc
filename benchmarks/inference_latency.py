"""Inference latency of one pruned model three ways: dense, masked, compact.

- dense: the unpruned model (same architecture);
- masked: the pruned model as trials produce it (zeros in dense matrices: same kernels);
- compact: `rnnprune export --format compact` of it (hidden units nothing reads removed).

Two pruned models: unstructured global magnitude at `--sparsity` alone (what trials make; it
rarely leaves a whole unit unread, so compact has little to remove), and the same plus
`--dead-fraction` of each layer's units made unread (readout and recurrent columns zeroed),
the structure that compact turns into speed. Forward passes under no_grad on CPU, blocks of
calls alternating between the models so load drift hits all alike; figures are medians of
per-call times. The load average is recorded before and after: on a shared machine, compare
ratios, not absolute times.

    python -m benchmarks.inference_latency [--cell lstm] [--hidden 128] [--layers 1] [--blocks 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from benchmarks.common import write_result
from rnnprune.compact import compact, kept_units, parameter_count
from rnnprune.models import RecurrentNet
from rnnprune.pruning.base import NoParams, nested
from rnnprune.pruning.magnitude import prune_global_magnitude


def pruned_copy(dense: RecurrentNet, sparsity: float, dead_fraction: float) -> RecurrentNet:
    model = RecurrentNet(
        dense.cell,
        dense.rnn.input_size,
        dense.rnn.hidden_size,
        dense.rnn.num_layers,
        dense.readout.out_features,
    ).eval()
    model.load_state_dict(dense.state_dict())
    weights = model.prunable_weights(("ih", "hh"))
    pruned = nested(prune_global_magnitude(weights, sparsity, NoParams(), torch.Generator()), weights)
    masks = {name: mask.clone() for name, mask in {**model.masks(), **pruned}.items()}
    layers, hidden = model.rnn.num_layers, model.rnn.hidden_size
    dead = torch.randperm(hidden, generator=torch.Generator().manual_seed(1))[: int(dead_fraction * hidden)]
    for layer in range(layers):
        masks[f"rnn.weight_hh_l{layer}"][:, dead] = False
        reader = f"rnn.weight_ih_l{layer + 1}" if layer + 1 < layers else "readout.weight"
        masks[reader][:, dead] = False
    model.set_masks(masks)
    return model


def median_latency(
    models: dict[str, torch.nn.Module], inputs: torch.Tensor, blocks: int, calls: int
) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.no_grad():
        for model in models.values():  # warm-up
            model(inputs)
        for _ in range(blocks):
            for name, model in models.items():
                for _ in range(calls):
                    start = time.perf_counter()
                    model(inputs)
                    times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--seq", type=int, default=28)
    parser.add_argument("--features", type=int, default=28)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--dead-fraction", type=float, default=0.5)
    parser.add_argument("--blocks", type=int, default=15, help="alternating blocks per model")
    args = parser.parse_args()

    torch.manual_seed(0)
    dense = RecurrentNet(args.cell, args.features, args.hidden, args.layers, 10).eval()
    load_before = os.getloadavg()
    scenarios = {}
    for scenario, dead_fraction in (("unstructured", 0.0), ("unstructured+dead_units", args.dead_fraction)):
        masked = pruned_copy(dense, args.sparsity, dead_fraction)
        small = compact(masked)
        probe = torch.randn(8, args.seq, args.features)
        with torch.no_grad():
            difference = (small(probe) - masked(probe)).abs().max().item()
        models = {"dense": dense, "masked": masked, "compact": small}
        latency = {}
        for batch, calls in ((1, 20), (64, 4)):
            inputs = torch.randn(batch, args.seq, args.features)
            latency[f"batch_{batch}"] = median_latency(models, inputs, args.blocks, calls)
        scenarios[scenario] = {
            "dead_fraction": dead_fraction,
            "kept_units": [len(units) for units in kept_units(masked)],
            "params": {"dense": parameter_count(dense), "compact": parameter_count(small)},
            "max_abs_output_difference": difference,
            "median_ms": latency,
            "compact_speedup_vs_masked": {
                batch: values["masked"] / values["compact"] for batch, values in latency.items()
            },
        }
        print(scenario, scenarios[scenario]["kept_units"], latency)
    path = write_result(
        "inference_latency",
        {
            "command": "python -m benchmarks.inference_latency "
            + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
            "settings": vars(args),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "scenarios": scenarios,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
