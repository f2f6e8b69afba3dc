"""`rnnprune` command line: train one trial, list methods."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from rnnprune.config import TrialConfig, load_config
from rnnprune.errors import RnnpruneError
from rnnprune.pruning import registry as method_registry
from rnnprune.training.runner import EpochReport, run_trial

SUMMARY_KEYS = (
    "dense_test_accuracy",
    "val_accuracy",
    "test_accuracy",
    "target_sparsity",
    "sparsity",
    "sparsity_total",
    "nonzero_params",
    "compression_ratio",
    "theoretical_speedup",
    "wall_time_s",
)


def _train(args: argparse.Namespace) -> int:
    config: TrialConfig = load_config(args.config, args.overrides)
    output = Path(args.output) if args.output else Path("runs") / config.name()
    print(f"trial {config.name()} -> {output}", file=sys.stderr)

    bars: dict[str, tqdm] = {}

    def bar(phase: str, total: int) -> tqdm:
        if phase not in bars:
            bars[phase] = tqdm(
                total=total,
                desc=phase,
                unit="epoch",
                file=sys.stderr,
                disable=args.quiet,
                leave=True,
            )
        return bars[phase]

    def on_dense_epoch(epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        b = bar("dense", epochs)
        b.n = epoch
        b.set_postfix(val_acc=f"{metrics['val_accuracy']:.4f}")

    def on_epoch(report: EpochReport) -> None:
        b = bar("prune", report.epochs)
        b.n = report.epoch
        b.set_postfix(
            val_acc=f"{report.metrics['val_accuracy']:.4f}",
            sparsity=f"{report.metrics['sparsity']:.3f}",
        )

    result = run_trial(config, output, callback=on_epoch, on_dense_epoch=on_dense_epoch)
    for b in bars.values():
        b.close()
    summary = {key: result.metrics[key] for key in SUMMARY_KEYS}
    print(json.dumps(summary, indent=2))
    print(f"wrote {output / 'metrics.json'} and {output / 'model.pt'}", file=sys.stderr)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    # Ray and MLflow load only for sweeps: `train` and `methods` stay quick to start.
    from rnnprune.sweep.runner import dry_run, print_outcome, run_sweep
    from rnnprune.sweep.spec import load_spec

    if args.dry_run:
        print(dry_run(load_spec(args.spec)))
        return 0
    outcome = run_sweep(
        args.spec,
        address=args.address,
        tracking_uri=args.tracking_uri,
        resume=args.resume,
        num_cpus=args.num_cpus,
    )
    print_outcome(outcome)
    return 0 if outcome.errors == 0 else 1


def _methods(args: argparse.Namespace) -> int:
    for name, method in sorted(method_registry.registered_methods.items()):
        print(f"{name}: {method.description}")
        for field_name, field in method.params.model_fields.items():
            annotation = getattr(field.annotation, "__name__", str(field.annotation))
            print(f"    {field_name} ({annotation}, default {field.default!r}): {field.description or ''}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnprune", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="run one trial from a trial config")
    train.add_argument("config", type=Path, help="trial config YAML (see sweeps/trials/)")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field, e.g. --set pruning.target_sparsity=0.95 (repeatable)",
    )
    train.add_argument("--output", help="output directory (default: runs/<trial name>)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(handler=_train)

    sweep = commands.add_parser("sweep", help="run a sweep spec on Ray Tune, tracked in MLflow")
    sweep.add_argument("spec", type=Path, help="sweep spec YAML (see sweeps/)")
    sweep.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    sweep.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
        "sqlite:///mlflow.db in the working directory)",
    )
    sweep.add_argument("--resume", action="store_true", help="continue an interrupted sweep of this spec")
    sweep.add_argument("--dry-run", action="store_true", help="print the trials and resources, run nothing")
    sweep.add_argument("--num-cpus", type=int, help="CPUs of a local Ray (default: all)")
    sweep.set_defaults(handler=_sweep)

    methods = commands.add_parser("methods", help="list registered pruning methods and parameters")
    methods.set_defaults(handler=_methods)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except RnnpruneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
