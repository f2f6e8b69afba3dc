"""`rnnprune` command line: train one trial, run a sweep, fronts, results pages and picks, list
methods and tasks.

Each command imports what it uses when it runs (torch for a trial, Ray only once a sweep's spec
is valid, MLflow for the tracking commands), so `--help` and input errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnprune import catalogue
from rnnprune.errors import RnnpruneError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from rnnprune.pareto import Constraint
    from rnnprune.registry import Registry

METRICS_IN_HELP = "{catalogue metrics}"
DEPRECATED_STATE_DICT = "state-dict"  # `export --format`'s old spelling of state_dict


def summary_keys(quality: str) -> tuple[str, ...]:
    """What `rnnprune train` prints: the task's quality metric, then the accounting."""
    return (
        f"dense_test_{quality}",
        f"val_{quality}",
        f"test_{quality}",
        *catalogue.headline_names(),
    )


class _CatalogueHelp(argparse.HelpFormatter):
    """Fills in the catalogue's metric names only when help is shown: listing them imports every
    task's module (torchvision, torchaudio), too slow for every command's start-up."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        return text.replace(METRICS_IN_HELP, catalogue.describe_names()) if text else text


def _train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rnnprune.config import load_config
    from rnnprune.training.preflight import check_plugins
    from rnnprune.training.runner import EpochReport, run_trial

    config = load_config(args.config, args.overrides)
    check_plugins([config])
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
        b.set_postfix(val_loss=f"{metrics['val_loss']:.4f}")

    def on_epoch(report: EpochReport) -> None:
        b = bar("prune", report.epochs)
        b.n = report.epoch
        b.set_postfix(
            val_loss=f"{report.metrics['val_loss']:.4f}", sparsity=f"{report.metrics['sparsity']:.3f}"
        )

    result = run_trial(config, output, callback=on_epoch, on_dense_epoch=on_dense_epoch)
    for b in bars.values():
        b.close()
    summary = {
        key: result.metrics[key]
        for key in summary_keys(result.metrics.get("quality_metric", "accuracy"))
        if key in result.metrics  # latency figures are absent with latency.measure: false
    }
    print(json.dumps(summary, indent=2))
    print(f"wrote {output / 'metrics.json'} and {output / 'model.pt'}", file=sys.stderr)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from rnnprune.sweep.spec import dry_run, load_spec

    loaded = load_spec(args.spec)  # a bad spec fails here, before Ray and MLflow load
    if args.dry_run:
        print(dry_run(loaded))
        return 0
    from rnnprune.sweep.runner import print_outcome, run_sweep

    outcome = run_sweep(
        loaded,
        address=args.address,
        tracking_uri=args.tracking_uri,
        resume=args.resume,
        num_cpus=args.num_cpus,
    )
    print_outcome(outcome)
    return 0 if outcome.errors == 0 else 1


def _pareto(args: argparse.Namespace) -> int:
    from rnnprune.pareto import format_front
    from rnnprune.publish import publish
    from rnnprune.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri, Path.cwd())
    output = Path(args.output) if args.output else Path("runs") / "pareto" / args.name
    objectives = tuple(args.objectives.split(",")) if args.objectives else None
    published = publish(uri, args.name, output, objectives, ui_url=args.ui_url)
    print(format_front(published.analysis))
    print(
        f"\ntagged {sum(len(p.runs) for p in published.analysis.points)} runs (pareto, pareto_rank, "
        f"pareto_method); dashboard in {output / 'pareto.html'} and in the artifacts of parent "
        f"run(s) {', '.join(published.parent_run_ids)}"
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from rnnprune.publish import publish_report
    from rnnprune.tracking import resolve_tracking_uri

    if args.output is None and len(args.names) > 1:
        raise RnnpruneError(
            "--output: several sweeps make one page; name its file (for example docs/results/X.md)"
        )
    output = Path(args.output) if args.output else Path("docs") / "results" / f"{args.names[0]}.md"
    if output.suffix != ".md":
        raise RnnpruneError(f"--output: {output} is not a Markdown file; give a path ending in .md")
    if args.quality_drop is not None and not args.quality_drop >= 0:
        raise RnnpruneError(f"--quality-drop: {args.quality_drop} is negative; give 0 or more")
    versus = None
    if args.versus is not None:
        axis, equals, value = args.versus.partition("=")
        if not (axis and equals and value):
            raise RnnpruneError(
                f"--versus: {args.versus!r} is not AXIS=VALUE; give one, e.g. pruning.schedule.prune_epochs=4"
            )
        versus = (axis, value)
    uri = resolve_tracking_uri(args.tracking_uri, Path.cwd())
    reported = publish_report(
        uri, args.names, output, args.command_line, args.baseline, args.title, args.quality_drop, versus
    )
    plots = ", ".join(str(p) for p in reported.page.plots)
    print(
        f"wrote {reported.page.markdown} with {plots}; the HTML page is artifact {reported.artifact} "
        f"of parent run(s) {', '.join(reported.parent_run_ids)}"
    )
    return 0


def _deprecated(old: str, new: str) -> None:
    print(f"warning: {old} is deprecated; use {new}", file=sys.stderr)


def _constraint(args: argparse.Namespace) -> Constraint:
    """The pick's bound from the flags, the deprecated accuracy flags mapped to the quality ones."""
    from rnnprune.pareto import CONSTRAINT_FLAGS, Constraint

    quality_metric = args.quality_metric
    if args.accuracy_metric is not None:
        if quality_metric is not None:
            raise catalogue.MetricError("--accuracy-metric: give --quality-metric only (it replaces it)")
        _deprecated("--accuracy-metric", "--quality-metric")
        quality_metric = args.accuracy_metric
    if args.min_accuracy is not None:
        # "at least this good": the old flag's meaning, with its old default metric.
        metric = catalogue.metric(quality_metric or "test_accuracy", option="--accuracy-metric")
        kind = "min_quality" if metric.maximize else "max_quality"
        _deprecated("--min-accuracy", CONSTRAINT_FLAGS[kind])
        return Constraint(kind, args.min_accuracy, metric.name)
    for kind, bound in (
        ("min_quality", args.min_quality),
        ("max_quality", args.max_quality),
        ("min_sparsity", args.min_sparsity),
        ("max_params", args.max_params),
        ("min_speedup", args.min_speedup),
        ("max_bytes", args.max_bytes),
    ):
        if bound is not None:
            return Constraint(kind, bound, quality_metric, args.speedup_batch)  # type: ignore[arg-type]
    raise AssertionError("argparse requires one bound")


def _pick(args: argparse.Namespace) -> int:
    from rnnprune.pareto import describe
    from rnnprune.publish import pick_and_register
    from rnnprune.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri, Path.cwd())
    constraint = _constraint(args)
    model_name = args.model_name or f"{args.name}-pruned"
    registered = pick_and_register(uri, args.name, constraint, model_name, register=not args.dry_run)
    resolved = registered.pick.constraint
    metrics = (resolved.quality_metric or "", "sparsity", "nonzero_params", resolved.constrained_metric or "")
    if registered.pick.point is None:
        print(
            f"no Pareto-optimal run of {args.name} meets {resolved.kind} {resolved.bound:g}",
            file=sys.stderr,
        )
        if not registered.pick.closest:
            print(f"  no finished run reports {', '.join(resolved.objectives(metrics[0]))}", file=sys.stderr)
        for point in registered.pick.closest:
            print(f"  closest: {describe(point, metrics)}", file=sys.stderr)
        return 1
    run = registered.pick.run
    assert run is not None
    print(f"picked {describe(registered.pick.point, metrics)}")
    if args.dry_run:
        print(f"would register run {run.run_id} as {model_name} (--dry-run: nothing registered)")
        return 0
    print(
        f"registered run {run.run_id} as {model_name} version {registered.version}, alias {registered.alias}"
    )
    print(
        f"registered its deployable form ({registered.deployable_form}) as {registered.deployable_name} "
        f"version {registered.deployable_version}, alias {registered.alias}"
    )
    print(
        "load it with:\n"
        f"  import mlflow; mlflow.set_tracking_uri({uri!r})\n"
        f"  model = mlflow.pytorch.load_model('models:/{model_name}@{registered.alias}')"
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    import tempfile

    from rnnprune.deploy_files import FILE_FORMATS
    from rnnprune.export import STATE_DICT, export_model
    from rnnprune.tracking import download_run_artifact, resolve_tracking_uri

    fmt = args.format
    if fmt == DEPRECATED_STATE_DICT:
        _deprecated(f"--format {DEPRECATED_STATE_DICT}", f"--format {STATE_DICT}")
        fmt = STATE_DICT
    uri = resolve_tracking_uri(args.tracking_uri, Path.cwd())
    suffix = "state_dict.pt" if fmt == STATE_DICT else FILE_FORMATS[fmt].suffix
    destination = Path(args.output or f"{args.run_id}-{suffix}")
    with tempfile.TemporaryDirectory() as directory:
        model_pt = download_run_artifact(uri, args.run_id, "model.pt", Path(directory))
        summary = export_model(model_pt, destination, fmt)
    print(json.dumps(summary, indent=2))
    return 0


def _print_params(params: type[BaseModel]) -> None:
    for field_name, field in params.model_fields.items():
        annotation = getattr(field.annotation, "__name__", str(field.annotation))
        print(f"    {field_name} ({annotation}, default {field.default!r}): {field.description or ''}")


def _list(registry: Registry[Any], describe: Callable[[Any], str]) -> int:
    """Every name of `registry` with where it comes from, its description and parameters; a
    plugin that does not load is listed with the reason, not a traceback."""
    from rnnprune.registry import UnknownName

    for name in registry.names():
        origin = registry.origin(name)
        try:
            item = registry.lookup(name)
        except UnknownName as error:
            print(f"{name} [{origin}]: does not load: {error}")
            continue
        print(f"{name} [{origin}]: {describe(item)}")
        _print_params(item.params)
    return 0


def _methods(args: argparse.Namespace) -> int:
    from rnnprune.pruning import registry as method_registry

    return _list(method_registry.registered_methods, lambda method: method.description)


def _tasks(args: argparse.Namespace) -> int:
    from rnnprune.data import registry as task_registry

    def describe(task: Any) -> str:
        quality = task.quality_metric()
        return f"{task.description} Quality: {quality.name} ({quality.better} is better)."

    return _list(task_registry.registered_tasks, describe)


def _models(args: argparse.Namespace) -> int:
    from rnnprune.models import registry as model_registry

    def describe(factory: Any) -> str:
        if factory.name == model_registry.BUILT_IN_FACTORY:
            return f"{factory.description} Its parameters go directly under `model`."
        return f"{factory.description} Parameters under `model.params`."

    return _list(model_registry.registered_models, describe)


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

    tracking_help = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)"
    pareto = commands.add_parser(
        "pareto",
        help="Pareto front of a sweep (or of all sweeps of an experiment): table, tags, dashboard",
        formatter_class=_CatalogueHelp,
    )
    pareto.add_argument("name", help="sweep name (its parent run) or MLflow experiment name")
    pareto.add_argument("--tracking-uri", help=tracking_help)
    pareto.add_argument(
        "--objectives",
        help=f"two or three comma-separated metrics: {METRICS_IN_HELP}; default: the task's test "
        "quality metric and sparsity (test_accuracy,sparsity for classifiers)",
    )
    pareto.add_argument("--output", help="local folder for the dashboard (default: runs/pareto/NAME)")
    pareto.add_argument("--ui-url", help="MLflow UI base for run links (default: the server, or mlflow ui's)")
    pareto.set_defaults(handler=_pareto)

    report = commands.add_parser(
        "report",
        help="results page of a sweep (or experiment): tables, plots, significance, axis importance",
    )
    report.add_argument(
        "names",
        nargs="+",
        metavar="NAME",
        help="sweep name (its parent run) or MLflow experiment name; several make one page with a part each",
    )
    report.add_argument("--tracking-uri", help=tracking_help)
    report.add_argument(
        "--output",
        help="Markdown file; the PNG plots go beside it (default: docs/results/NAME.md for one NAME)",
    )
    report.add_argument(
        "--baseline",
        help="method (or method variant) every other one is compared with, seed by seed "
        "(default: global_magnitude where the runs have it)",
    )
    report.add_argument(
        "--versus",
        metavar="AXIS=VALUE",
        help="also compare each row, seed by seed, with its own method at this value of a swept "
        "axis (e.g. pruning.schedule.prune_epochs=4: what a longer budget does to each method)",
    )
    report.add_argument("--title", help="the page's title (default: Results of sweep NAME ...)")
    report.add_argument(
        "--quality-drop",
        type=float,
        help="per-epoch curves (track.graphs): quality has fallen once it is this much worse than "
        "the dense model's, in the metric's units (default: 0.01, a point of accuracy)",
    )
    report.set_defaults(handler=_report)

    pick = commands.add_parser(
        "pick",
        help="register the Pareto-optimal model that meets a constraint",
        formatter_class=_CatalogueHelp,
    )
    pick.add_argument("name", help="MLflow experiment name (or one sweep's name)")
    bound = pick.add_mutually_exclusive_group(required=True)
    bound.add_argument(
        "--min-quality",
        type=float,
        help="highest sparsity with at least this quality (a higher-is-better metric such as accuracy)",
    )
    bound.add_argument(
        "--max-quality",
        type=float,
        help="highest sparsity with at most this quality (a lower-is-better metric such as test_error_cm)",
    )
    bound.add_argument("--min-sparsity", type=float, help="best quality with at least this sparsity")
    bound.add_argument("--max-params", type=float, help="best quality within this many non-zero params")
    bound.add_argument(
        "--min-speedup",
        type=float,
        help="best quality at least this much faster than dense (measured speed-up, see --speedup-batch)",
    )
    bound.add_argument("--max-bytes", type=float, help="best quality within this deployable file size")
    bound.add_argument("--min-accuracy", type=float, help="deprecated: --min-quality / --max-quality")
    pick.add_argument(
        "--speedup-batch",
        type=int,
        choices=(1, 64),
        default=1,
        help="the batch size of --min-speedup's speed-up: 1 (one request's latency, default) or 64",
    )
    pick.add_argument(
        "--quality-metric",
        help=f"the quality metric ({METRICS_IN_HELP}); default: the test quality metric of the runs' task",
    )
    pick.add_argument("--accuracy-metric", help="deprecated: --quality-metric")
    pick.add_argument("--model-name", help="registered model name (default: NAME-pruned)")
    pick.add_argument("--dry-run", action="store_true", help="show the pick, register nothing")
    pick.add_argument("--tracking-uri", help=tracking_help)
    pick.set_defaults(handler=_pick)

    export = commands.add_parser(
        "export",
        help="export a trial's model: plain state dict, or its compact model pickled, as TorchScript "
        "or as ONNX; prints the file's size and measured latency",
    )
    export.add_argument("run_id", help="MLflow run id of a finished trial")
    export.add_argument(
        "--format",
        # Listed here, not imported: `rnnprune --help` must not load torch.
        choices=("compact", "torchscript", "onnx", "state_dict", DEPRECATED_STATE_DICT),
        default="compact",
        help="compact (pickled module), torchscript, onnx (needs rnnprune[deploy]), or state_dict",
    )
    export.add_argument("--output", help="file to write (default: RUN_ID-<format>.pt, or .onnx)")
    export.add_argument("--tracking-uri", help=tracking_help)
    export.set_defaults(handler=_export)

    methods = commands.add_parser("methods", help="list registered pruning methods and parameters")
    methods.set_defaults(handler=_methods)
    tasks = commands.add_parser("tasks", help="list registered tasks, their quality metric and parameters")
    tasks.set_defaults(handler=_tasks)
    models = commands.add_parser("models", help="list registered model factories (built-in and plugins)")
    models.set_defaults(handler=_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    args.command_line = ["rnnprune", *arguments]  # what generated pages say wrote them
    try:
        return args.handler(args)
    except RnnpruneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
