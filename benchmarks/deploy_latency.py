"""What a trial's end-of-trial latency measurement costs, and what it finds.

`rnnprune.deploy.trial_metrics` at its default settings (what every trial runs) on LSTM(H)
over 28 steps of 28 features (sequential MNIST's shape), pruned three ways from one dense
model: unstructured global magnitude pruning at several sparsities, and 90% of it with half
of the units made unread (the structure compact export removes). Each case is measured
`--repeats` times: the seconds the measurement takes (`latency_measurement_s`, the cost added
to a trial), the form chosen, the speed-ups against dense and the deployable file's size.

    python -m benchmarks.deploy_latency [--hidden 128 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch

from benchmarks.common import write_result
from benchmarks.inference_latency import pruned_copy
from rnnprune.deploy import trial_metrics
from rnnprune.latency import Repeats
from rnnprune.models import RecurrentNet

CASES = (
    ("unstructured", 0.5, 0.0),
    ("unstructured", 0.9, 0.0),
    ("unstructured", 0.97, 0.0),
    ("dead_units", 0.9, 0.5),
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()
    results = []
    for hidden in args.hidden:
        torch.manual_seed(0)
        dense = RecurrentNet("lstm", 28, hidden, 1, 10).eval()
        example = torch.randn(1, 28, 28)
        for kind, sparsity, dead_fraction in CASES:
            model = pruned_copy(dense, sparsity, dead_fraction)
            runs = [trial_metrics(model, dense.state_dict(), example, Repeats()) for _ in range(args.repeats)]
            summary = {
                "hidden": hidden,
                "case": kind,
                "sparsity": sparsity,
                "dead_fraction": dead_fraction,
                "forms": [run["deployable_form"] for run in runs],
                "measurement_s": [run["latency_measurement_s"] for run in runs],
                **{
                    key: statistics.median(run[key] for run in runs)
                    for key in (
                        "speedup_b1",
                        "speedup_b64",
                        "latency_ms_b1",
                        "dense_latency_ms_b1",
                        "latency_ms_b64",
                        "dense_latency_ms_b64",
                        "model_bytes",
                    )
                },
            }
            results.append(summary)
            print(
                f"LSTM({hidden}) {kind} {sparsity}: {summary['forms']} "
                f"x{summary['speedup_b1']:.2f} b1, x{summary['speedup_b64']:.2f} b64, "
                f"{summary['model_bytes']} B, measured in {[f'{s:.2f}' for s in summary['measurement_s']]} s"
            )
    path = write_result(
        "deploy_latency",
        {
            "command": "python -m benchmarks.deploy_latency --hidden "
            + " ".join(map(str, args.hidden))
            + f" --repeats {args.repeats}",
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "cases": results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
