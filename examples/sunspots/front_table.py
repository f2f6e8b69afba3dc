"""Write the results of the example's sweep into its README, between the front-table markers.

Everything is read back from the MLflow store the sweep logged to: the Pareto front over the
task's test RMSE and sparsity (the one `rnnprune sweep` published, recomputed from the runs the
way `rnnprune pareto` does), every configuration's test RMSE, the dense models' RMSE, the
hypervolumes and, at one target sparsity, how each method spread the pruning over the LSTM's
gates. Run it from the folder the sweep ran in (its default store is ./mlflow.db):

    python examples/sunspots/front_table.py sunspots [--tracking-uri URI] [--gates-at 0.95]
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from mlflow import MlflowClient

from rnnprune import catalogue
from rnnprune.pareto import RunRecord, analyse, default_objectives, task_of
from rnnprune.publish import read_runs
from rnnprune.stats import format_spread, seed_stats
from rnnprune.tracking import resolve_tracking_uri

README = Path(__file__).with_name("README.md")
START, END = "<!-- front-table:start -->", "<!-- front-table:end -->"
GATES = ("i", "f", "g", "o")
METHOD_PARAMS = "pruning.params."


def labeller(runs: Sequence[RunRecord]) -> Callable[[RunRecord], str]:
    """Names a run by its method and those of the method's parameters that the sweep varied
    (it runs gate_balanced_magnitude at two granularities)."""
    values: dict[tuple[str, str], set[str]] = defaultdict(set)
    for run in runs:
        for key, value in run.params.items():
            if key.startswith(METHOD_PARAMS):
                values[(run.method, key)].add(value)
    varied = {key for key, seen in values.items() if len(seen) > 1}

    def label(run: RunRecord) -> str:
        own = sorted(
            (key.removeprefix(METHOD_PARAMS), value)
            for key, value in run.params.items()
            if (run.method, key) in varied
        )
        return run.method + "".join(f" ({key}={value})" for key, value in own)

    return label


def mean_std(values: Iterable[float], digits: int = 2) -> str:
    stats = seed_stats(values)
    return f"{stats.mean:.{digits}f} ± {format_spread(stats.std, stats.n, digits)}"


def front_rows(
    runs: Sequence[RunRecord], task: str | None, label: Callable[[RunRecord], str]
) -> tuple[list[str], list[str]]:
    """The front's rows, and the hypervolume lines under it."""
    objectives = default_objectives(task)
    analysis = analyse(runs, objectives, task)
    quality = objectives[0]
    rows = [
        f"| method | target | seeds | {quality} | sparsity | non-zero parameters |",
        "|---|---|---|---|---|---|",
    ]
    for point in sorted(analysis.front(), key=lambda p: p.mean["sparsity"]):
        rows.append(
            f"| {label(point.runs[0])} | {point.runs[0].params.get('pruning.target_sparsity', '?')} | "
            f"{point.n} | {mean_std(r.metrics[quality] for r in point.runs)} | "
            f"{mean_std((r.metrics['sparsity'] for r in point.runs), 3)} | "
            f"{mean_std((r.metrics['nonzero_params'] for r in point.runs), 0)} |"
        )
    reference = ", ".join(
        f"{o.name} {v:g}" for o, v in zip(analysis.objectives, analysis.reference or (), strict=True)
    )
    volumes = [
        f"Hypervolume against ({reference}), larger is better, per method as `rnnprune pareto` "
        "computes it (a method's parameter variants together):",
        "",
    ]
    volumes += [
        f"- {method}: {volume:.3f}"
        for method, volume in sorted(analysis.hypervolume.items(), key=lambda kv: -kv[1])
    ]
    return rows, volumes


def grid_rows(runs: Sequence[RunRecord], quality: str, label: Callable[[RunRecord], str]) -> list[str]:
    """Every configuration's quality, mean ± std over seeds (measured sparsity where it differs)."""
    cells: dict[tuple[str, float], list[RunRecord]] = defaultdict(list)
    for run in runs:
        cells[(label(run), float(run.params["pruning.target_sparsity"]))].append(run)
    targets = sorted({target for _, target in cells})
    rows = [
        f"| {quality} at target sparsity | " + " | ".join(f"{t:g}" for t in targets) + " |",
        "|---" * (len(targets) + 1) + "|",
    ]
    for name in sorted({name for name, _ in cells}):
        row = []
        for target in targets:
            members = cells.get((name, target), [])
            if not members:
                row.append("—")
                continue
            reached = seed_stats(r.metrics["sparsity"] for r in members).mean
            note = f" (sparsity {reached:.3f})" if abs(reached - target) > 0.005 else ""
            row.append(mean_std(r.metrics[quality] for r in members) + note)
        rows.append(f"| {name} | " + " | ".join(row) + " |")
    return rows


def gate_rows(
    uri: str, runs: Sequence[RunRecord], target: float, label: Callable[[RunRecord], str]
) -> list[str]:
    """Sparsity of each gate block (i / f / g / o) of each LSTM matrix at `target`, mean over seeds."""
    client = MlflowClient(uri)
    chosen = [r for r in runs if float(r.params["pruning.target_sparsity"]) == target]
    by_variant: dict[str, list[dict[str, float]]] = defaultdict(list)
    for run in chosen:
        by_variant[label(run)].append(client.get_run(run.run_id).data.metrics)
    pattern = re.compile(r"^gate_sparsity\.(.+)\.([ifgo])$")
    tensors = sorted(
        {m.group(1) for metrics in by_variant.values() for key in metrics[0] if (m := pattern.match(key))}
    )
    rows = [
        f"| gate sparsity (i / f / g / o) at target {target:g} | " + " | ".join(tensors) + " |",
        "|---" * (len(tensors) + 1) + "|",
    ]
    for name, seeds in sorted(by_variant.items()):
        cells = [
            " / ".join(
                f"{seed_stats(s[f'gate_sparsity.{tensor}.{gate}'] for s in seeds).mean:.2f}" for gate in GATES
            )
            for tensor in tensors
        ]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


def report(uri: str, name: str, gates_at: float) -> str:
    _, parents, runs = read_runs(uri, name)
    task = task_of(runs)
    quality = default_objectives(task)[0]
    chance = catalogue.metric(quality, task).reference
    dense = {r.params.get("seed"): r.metrics[f"dense_{quality}"] for r in runs}
    label = labeller(runs)
    front, volumes = front_rows(runs, task, label)
    commits = sorted({p["tags"].get("git_commit", "?")[:7] for p in parents})
    lines = [
        f"Sweep `{name}`: {len(runs)} finished trials, rnnprune commit {', '.join(commits)}. "
        f"Dense models: {quality} {mean_std(dense.values())} over {len(dense)} seeds; the persistence "
        f"forecast (next year = this year) scores {chance:g} on the same test years.",
        "",
        "Pareto front over test RMSE (lower is better) and sparsity of the LSTM's matrices, mean ± "
        "sample std over seeds:",
        "",
        *front,
        "",
        *volumes,
        "",
        "Every configuration:",
        "",
        *grid_rows(runs, quality, label),
        "",
        "Where each method put the zeros:",
        "",
        *gate_rows(uri, runs, gates_at, label),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", help="sweep name (its parent run) or MLflow experiment name")
    parser.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here")
    parser.add_argument("--gates-at", type=float, default=0.95, help="target sparsity of the gate table")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args()

    uri = resolve_tracking_uri(args.tracking_uri, Path.cwd())
    text = args.readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{args.readme} has no {START} ... {END} markers to write between")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    table = report(uri, args.name, args.gates_at)
    command = f"python examples/sunspots/front_table.py {args.name}"
    generated = f"{START}\n<!-- written by `{command}`; do not edit by hand -->\n\n{table}\n\n{END}"
    args.readme.write_text(head + generated + tail)
    print(table)


if __name__ == "__main__":
    main()
