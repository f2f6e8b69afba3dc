"""Quality against measured speed (issue 14's acceptance): the front of a sweep's configurations
over test quality and the measured speed-ups at batch 1 and 64 (seed means), and which front
configurations run at least `--min-b64` times faster than dense at batch 64 and `--min-b1` at
batch 1 while their quality stays within `--within` of their own dense models' (the mean of
`dense_test_<quality>` over the same seeds).

Reads the sweep's finished runs from MLflow, the way `rnnprune pareto` does; writes
benchmarks/results/speed_front_<name>.json and prints the table for BENCHMARKS.md.

    python -m benchmarks.speed_front leaderboard-seq-mnist-lstm128 --tracking-uri sqlite:///runs/mlflow.db
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from typing import Any

from benchmarks.common import write_result
from rnnprune import catalogue
from rnnprune.pareto import ConfigPoint, analyse, task_of
from rnnprune.publish import read_runs
from rnnprune.report import Axes, swept_axes, variant_of

SPEEDUPS = ("speedup_b1", "speedup_b64")


def _dense(point: ConfigPoint, quality: str) -> float:
    values = [r.metrics[f"dense_{quality}"] for r in point.runs if f"dense_{quality}" in r.metrics]
    return statistics.fmean(values) if values else math.nan


def _label(point: ConfigPoint, axes: Axes) -> str:
    """The variant (a method with the values of its own swept parameters) at its target."""
    run = point.runs[0]
    return f"{variant_of(run, axes)} @ {run.params.get('pruning.target_sparsity', '?')}"


def front_rows(name: str, tracking_uri: str, min_b1: float, min_b64: float, within: float) -> dict[str, Any]:
    _, _, runs = read_runs(tracking_uri, name)
    task = task_of(runs)
    quality = catalogue.quality(task).name if task else "test_accuracy"
    measured = [r for r in runs if all(m in r.metrics for m in (quality, *SPEEDUPS))]
    if not measured:
        raise SystemExit(f"error: no finished run of {name} reports {quality} and {', '.join(SPEEDUPS)}")
    sign = 1.0 if catalogue.metric(quality, task).maximize else -1.0
    analysis = analyse(measured, (quality, *SPEEDUPS), task)
    axes = swept_axes(measured)
    rows = []
    for point in analysis.front():
        dense = _dense(point, quality)
        gap = sign * (point.mean[quality] - dense)  # > 0: better than dense
        meets = point.mean["speedup_b1"] >= min_b1 and point.mean["speedup_b64"] >= min_b64 and gap >= -within
        rows.append(
            {
                "configuration": _label(point, axes),
                "seeds": point.n,
                quality: point.mean[quality],
                f"{quality}_std": point.std[quality],
                f"dense_{quality}": dense,
                "speedup_b1": point.mean["speedup_b1"],
                "speedup_b64": point.mean["speedup_b64"],
                "sparsity": statistics.fmean(r.metrics["sparsity"] for r in point.runs),
                "model_bytes": statistics.fmean(r.metrics.get("model_bytes", math.nan) for r in point.runs),
                "meets": meets,
            }
        )
    return {
        "sweep": name,
        "quality": quality,
        "criterion": {"min_speedup_b1": min_b1, "min_speedup_b64": min_b64, "within_dense": within},
        "runs": len(measured),
        "front": rows,
        "met": any(r["meets"] for r in rows),
    }


def table(result: dict[str, Any]) -> str:
    quality = result["quality"]
    lines = [
        f"| front configuration | seeds | {quality} | dense | speed-up b1 | speed-up b64 | sparsity | bytes "
        "| meets |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["front"]:
        lines.append(
            f"| {row['configuration']} | {row['seeds']} | {row[quality]:.4f} ± {row[f'{quality}_std']:.4f} | "
            f"{row[f'dense_{quality}']:.4f} | {row['speedup_b1']:.2f} | {row['speedup_b64']:.2f} | "
            f"{row['sparsity']:.3f} | {row['model_bytes']:.0f} | {'yes' if row['meets'] else 'no'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", help="sweep name (its parent run) or MLflow experiment name")
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--min-b1", type=float, default=1.5)
    parser.add_argument("--min-b64", type=float, default=2.0)
    parser.add_argument(
        "--within", type=float, default=0.01, help="quality gap to dense allowed (0.01: a point)"
    )
    args = parser.parse_args(argv)
    result = front_rows(args.name, args.tracking_uri, args.min_b1, args.min_b64, args.within)
    path = write_result(
        f"speed_front_{args.name}",
        {"command": " ".join(["python -m benchmarks.speed_front", *sys.argv[1:]]), **result},
    )
    print(table(result))
    print(
        f"\n{'met' if result['met'] else 'NOT met'}: a front configuration at >= {args.min_b64:g}x (b64), "
        f">= {args.min_b1:g}x (b1), within {args.within:g} of dense; wrote {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
