"""Lattice pruning scaling: wall time of one pruning pass on an LSTM's weight_hh against H.

One pass is the registered method's full call (strengths over 4 gates, quantile threshold,
meet-irreducibility test, centrality, keep set, masks, nesting), at the spec's default
reading (binary, q from the target 0.5). Random weights: the cost does not depend on training,
and the MI test is at its busiest when most neurons are meet-irreducible, as here. Reports the
median of repeats per H and the exponent of a least-squares fit of log time on log H over
H >= 256 (smaller H is dominated by fixed overheads). The machine is shared, so the load
averages before and after are recorded; rerun when they were high.

    python -m benchmarks.lattice_scaling [--sizes 128 256 512 1024 2048] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

from benchmarks.common import write_result
from rnnprune.models import RecurrentNet
from rnnprune.pruning import registry
from rnnprune.pruning.lattice import LatticeParams


def time_pass(hidden: int, repeats: int, target: float) -> dict[str, float]:
    torch.manual_seed(hidden)
    model = RecurrentNet("lstm", 28, hidden, 1, 10)
    weights = model.prunable_weights(("hh",))
    method, params = registry.get("lattice"), LatticeParams()
    seconds = []
    for _ in range(repeats + 1):  # the first call warms up allocators and BLAS threads
        started = time.perf_counter()
        result = method(weights, target, params, torch.Generator())
        seconds.append(time.perf_counter() - started)
    return {
        "hidden_size": hidden,
        "median_s": statistics.median(seconds[1:]),
        "min_s": min(seconds[1:]),
        "max_s": max(seconds[1:]),
        "repeats": repeats,
        "sparsity": result.diagnostics["sparsity"],
        "meet_irreducible": result.diagnostics["layer0.meet_irreducible"],
        "calibration_steps": result.diagnostics["calibration_steps"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.5)
    args = parser.parse_args()

    load_before = os.getloadavg()
    rows = []
    for hidden in args.sizes:
        rows.append(time_pass(hidden, args.repeats, args.target))
        print(f"H={hidden}: median {rows[-1]['median_s']:.3f} s", file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    fitted = [r for r in rows if r["hidden_size"] >= 256]
    exponent = float(
        np.polyfit(np.log([r["hidden_size"] for r in fitted]), np.log([r["median_s"] for r in fitted]), 1)[0]
    )
    path = write_result(
        "lattice_scaling",
        {
            "command": "python -m benchmarks.lattice_scaling " + " ".join(sys.argv[1:]),
            "target_sparsity": args.target,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "rows": rows,
            "growth_exponent": exponent,
            "growth_fit_sizes": [r["hidden_size"] for r in fitted],
        },
    )
    print(f"-> {path}", file=sys.stderr)
    print("| H | median s (min-max) | MI neurons | sparsity |\n|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['hidden_size']} | {r['median_s']:.3f} ({r['min_s']:.3f}-{r['max_s']:.3f}) | "
            f"{r['meet_irreducible']:.0f} | {r['sparsity']:.4f} |"
        )
    print(f"\ngrowth exponent (fit over H >= 256): {exponent:.2f}; load {load_before} -> {load_after}")


if __name__ == "__main__":
    main()
