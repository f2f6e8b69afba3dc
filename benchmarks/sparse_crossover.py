"""Where PyTorch's sparse kernels beat dense for LSTM-sized matrices: dense vs CSR vs BSR.

For each weight shape (rows, columns) of an LSTM layer's matrices (4H x H) and each sparsity,
the product W @ X with X of (columns, batch), timed as `rnnprune.sparse` computes it (32-bit
indices) with `rnnprune.latency.median_ms` (one thread, blocks of calls taking turns, medians).
CSR gets an unstructured mask (what magnitude pruning leaves); a BSR format gets a mask of
whole blocks of its own size at the same sparsity (what block pruning leaves), since on an
unstructured mask almost no block is empty. Formats the kernels refuse are reported as such.
Figures are ratios dense time / format time within one run (> 1: the format is faster).

    python -m benchmarks.sparse_crossover [--blocks 10] [--calls 10]
"""

from __future__ import annotations

import argparse
import os

import torch

from benchmarks.common import write_result
from rnnprune.latency import Repeats, median_ms
from rnnprune.sparse import BLOCKS, fits, stored

SHAPES = ((512, 128), (1024, 256), (2048, 512))
BATCHES = (1, 64)
SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)


def masked(
    shape: tuple[int, int], sparsity: float, block: tuple[int, int], generator: torch.Generator
) -> torch.Tensor:
    """A random weight with `sparsity` of it zero, in whole blocks of `block` ((1, 1): unstructured)."""
    rows, columns = shape[0] // block[0], shape[1] // block[1]
    scores = torch.rand(rows, columns, generator=generator)
    keep = scores >= torch.quantile(scores.flatten(), sparsity)
    mask = keep.repeat_interleave(block[0], 0).repeat_interleave(block[1], 1)
    return torch.randn(shape, generator=generator) * mask


def runs(weight: torch.Tensor, operand: torch.Tensor) -> bool:
    try:
        weight @ operand
    except (RuntimeError, NotImplementedError):
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    repeats = Repeats(blocks=args.blocks, calls=args.calls, warmup=3)
    generator = torch.Generator().manual_seed(0)
    load_before = os.getloadavg()
    rows = []
    for shape in SHAPES:
        for batch in BATCHES:
            operand = torch.randn(shape[1], batch, generator=generator)
            for sparsity in SPARSITIES:
                candidates: dict[str, torch.Tensor] = {}
                unstructured = masked(shape, sparsity, (1, 1), generator)
                candidates["dense"] = stored(unstructured, "dense")
                candidates["csr"] = stored(unstructured, "csr")
                unsupported = []
                for fmt, block in BLOCKS.items():
                    if not fits(shape, fmt):
                        continue
                    weight = stored(masked(shape, sparsity, block, generator), fmt)
                    if runs(weight, operand):
                        candidates[fmt] = weight
                    else:
                        unsupported.append(fmt)
                calls = {f: (lambda w=w, x=operand: w @ x) for f, w in candidates.items()}
                times = median_ms(calls, repeats)
                row = {
                    "shape": list(shape),
                    "batch": batch,
                    "sparsity": sparsity,
                    "dense_ms": times["dense"],
                    "speedup": {f: times["dense"] / t for f, t in times.items() if f != "dense"},
                    "unsupported": unsupported,
                }
                rows.append(row)
                best = max(row["speedup"].items(), key=lambda item: item[1])
                print(
                    f"{shape} b{batch} s{sparsity}: dense {times['dense']:.4f} ms, {best[0]} x{best[1]:.2f}"
                )
    crossover = {}
    for shape in SHAPES:
        for batch in BATCHES:
            for fmt in ("csr", *BLOCKS):
                wins = [
                    r["sparsity"]
                    for r in rows
                    if r["shape"] == list(shape) and r["batch"] == batch and r["speedup"].get(fmt, 0) > 1
                ]
                crossover[f"{shape[0]}x{shape[1]} b{batch} {fmt}"] = min(wins) if wins else None
    path = write_result(
        "sparse_crossover",
        {
            "command": f"python -m benchmarks.sparse_crossover --blocks {args.blocks} --calls {args.calls}",
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "rows": rows,
            "lowest_sparsity_faster_than_dense": crossover,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
