"""Lattice pruning reproduction (issue 3): LSTM(128) on row-wise sequential MNIST, binary q and
continuous rho points of the lattice reading, against global magnitude and random pruning at
the recurrent sparsity each lattice trial measured, over seeds, without and with a short
masked fine-tune.

Runs the grid of sweeps/lattice/grid.yaml sequentially through `run_trial` (the dense model of
each seed is trained once and cached). Writes benchmarks/results/lattice_reproduction.json,
docs/results/lattice.md and docs/results/lattice_accuracy_sparsity.png. Every number in them
comes from the trials' metrics.json; a trial already finished is read back, not rerun.

    RNNPRUNE_DATA_DIR=../shared/data/mnist python -m benchmarks.lattice_reproduction \
        [--seeds 0] [--quantiles 0.5 0.9] [--rhos 0.05] [--finetune 0 1] [--output runs/lattice] \
        [--report-only]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import write_result
from rnnprune.config import load_config
from rnnprune.stats import seed_stats
from rnnprune.training.runner import run_trial

ROOT = Path(__file__).parents[1]
SWEEP = ROOT / "sweeps" / "lattice"
BASE = SWEEP / "seq_mnist_lstm128_lattice.yaml"
DOCS = ROOT / "docs" / "results"
BASELINES = ("global_magnitude", "random")
RESULTS_NAME = "lattice_reproduction"
# target_sparsity must stay below 1; a lattice point that pruned all of W_hh is matched by this
# (the selection rounds it to every entry), which is then the W_hh = 0 floor.
_ALMOST_ONE = 1 - 1e-9


def _lattice_points(grid: dict[str, Any], quantiles: list[float] | None, rhos: list[float] | None):
    for q in grid["lattice"]["binary"]["quantile"] if quantiles is None else quantiles:
        yield f"lattice binary q={q:g}", {"mode": "binary", "quantile": q}, q
    for rho in grid["lattice"]["continuous"]["rho"] if rhos is None else rhos:
        # The reading fixes the sparsity; the target is only recorded (not used by the method).
        yield f"lattice continuous rho={rho:g}", {"mode": "continuous", "rho": rho}, 0.99


def _run(overrides: list[str], output: Path, report_only: bool) -> dict[str, Any] | None:
    """A trial's metrics: run (or read back) the trial, or with `report_only` read it back if it
    finished and give None if it did not."""
    config = load_config(BASE, overrides)
    directory = output / config.name()
    if report_only and not (directory / "metrics.json").is_file():
        return None
    return run_trial(config, directory).metrics


def _row(point: str, method: str, seed: int, finetune: int, metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "point": point,
        "method": method,
        "seed": seed,
        "finetune_epochs": finetune,
        "sparsity": metrics["sparsity"],
        "test_accuracy": metrics["test_accuracy"],
        "val_accuracy": metrics["val_accuracy"],
        "dense_test_accuracy": metrics["dense_test_accuracy"],
        "dense_cache_hit": metrics["dense_cache_hit"],
        "wall_time_s": metrics["wall_time_s"],
        "trial": metrics["trial"],
        **{key: value for key, value in metrics.items() if key.startswith("prune.")},
    }


def _spread(values: list[float]) -> dict[str, float]:
    return {**seed_stats(values).as_dict(), "min": min(values), "max": max(values)}


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread over seeds of every (point, method, fine-tune) cell, in grid order."""
    cells: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        cells[(row["point"], row["method"], row["finetune_epochs"])].append(row)
    summary = []
    for (point, method, finetune), members in cells.items():
        cell = {
            "point": point,
            "method": method,
            "finetune_epochs": finetune,
            "seeds": [m["seed"] for m in members],
            "sparsity": _spread([m["sparsity"] for m in members]),
            "test_accuracy": _spread([m["test_accuracy"] for m in members]),
        }
        if method == "lattice":
            for key in ("meet_irreducible", "kept", "adjacency_density", "threshold"):
                cell[key] = _spread([m[f"prune.layer0.{key}"] for m in members])
        summary.append(cell)
    return summary


def paired_differences(rows: list[dict[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """Lattice minus baseline test accuracy, paired by seed (same dense model, same sparsity)."""
    by_key = {(r["point"], r["method"], r["finetune_epochs"], r["seed"]): r for r in rows}
    cells: dict[tuple[str, int], list[float]] = defaultdict(list)
    for (point, method, finetune, seed), row in by_key.items():
        other = by_key.get((point, baseline, finetune, seed))
        if method == "lattice" and other is not None:
            cells[(point, finetune)].append(row["test_accuracy"] - other["test_accuracy"])
    return [
        {"point": point, "finetune_epochs": finetune, "baseline": baseline, "difference": _spread(diffs)}
        for (point, finetune), diffs in cells.items()
    ]


def _pct(spread: dict[str, float]) -> str:
    text = f"{100 * spread['mean']:.2f}%"
    return text + (f" ± {100 * spread['std']:.2f}" if spread["n"] > 1 else "")


def _pp(spread: dict[str, float]) -> str:
    text = f"{100 * spread['mean']:+.2f}"
    return text + (f" ± {100 * spread['std']:.2f}" if spread["n"] > 1 else "")


def reading(summary: list[dict[str, Any]], differences: list[dict[str, Any]]) -> list[str]:
    """Sentences computed from the numbers: the acceptance checks and the comparison verdict."""
    lines = []
    cell = {(c["point"], c["method"], c["finetune_epochs"]): c for c in summary}
    for finetune in sorted({c["finetune_epochs"] for c in summary}):
        half = cell.get(("lattice binary q=0.5", "lattice", finetune))
        if half:
            sparsity, accuracy = half["sparsity"]["mean"], half["test_accuracy"]["mean"]
            lines.append(
                f"- Fine-tune {finetune} epoch(s), binary q = 0.5: recurrent sparsity {sparsity:.3f} "
                f"({'within' if abs(sparsity - 0.5) <= 0.02 else 'outside'} 0.50 ± 0.02), test accuracy "
                f"{_pct(half['test_accuracy'])} "
                f"({'meets' if accuracy >= 0.98 else 'misses'} the paper's >= 98.0%)."
            )
        continuous = [
            c for (p, m, f), c in cell.items() if m == "lattice" and f == finetune and "continuous" in p
        ]
        binary = [c for (p, m, f), c in cell.items() if m == "lattice" and f == finetune and "binary" in p]
        for c in continuous:
            below = [b for b in binary if b["test_accuracy"]["mean"] > c["test_accuracy"]["mean"]]
            lines.append(
                f"- Fine-tune {finetune}, {c['point']}: sparsity {c['sparsity']['mean']:.3f} "
                f"({'>=' if c['sparsity']['mean'] >= 0.95 else '<'} 0.95), "
                f"accuracy {_pct(c['test_accuracy'])} against 10% chance, below "
                f"{len(below)} of {len(binary)} binary points."
            )
    for baseline in BASELINES:
        diffs = [d for d in differences if d["baseline"] == baseline]
        if not diffs:
            continue
        wins = [d for d in diffs if d["difference"]["mean"] > 0]
        clear_wins = [d for d in diffs if d["difference"]["n"] > 1 and d["difference"]["min"] > 0]
        clear_losses = [d for d in diffs if d["difference"]["n"] > 1 and d["difference"]["max"] < 0]
        lines.append(
            f"- Against {baseline} at matched sparsity: lattice is ahead on mean test accuracy at "
            f"{len(wins)} of {len(diffs)} (point, fine-tune) cells; among cells with more than one seed, "
            f"ahead on every seed at {len(clear_wins)}, behind on every seed at {len(clear_losses)}."
        )
    return lines


def markdown(result: dict[str, Any]) -> str:
    summary, differences = result["summary"], result["paired_differences"]
    diff = {(d["point"], d["finetune_epochs"], d["baseline"]): d["difference"] for d in differences}
    dense, machine = result["dense_test_accuracy"], result["machine"]
    lines = [
        "# Lattice (poset) pruning: reproduction on row-wise sequential MNIST, LSTM(128)",
        "",
        "Generated by `benchmarks/lattice_reproduction.py`; do not edit by hand. Command:",
        "",
        f"    {result['command']}",
        "",
        f"Machine: {machine['cpu']} ({machine['cores']} cores), {machine['date']}, "
        f"commit {machine['commit']}. Seeds: {result['seeds']}. Trials: {len(result['rows'])}.",
        "",
        "Setup (spec §4.2, grid in `sweeps/lattice/grid.yaml`): dense phase of "
        "`sweeps/trials/seq_mnist_lstm128.yaml` (12 epochs, cached per seed); pruning of `weight_hh_l0` only "
        "(the pool, so *sparsity* is the recurrent sparsity, measured from the weights); one shot, then "
        "0 or 1 epoch of masked fine-tuning. Lattice points fix their own sparsity (binary: quantile q; "
        "continuous: rho); global magnitude and random run at the sparsity the lattice trial of the same "
        "seed reached. Lattice defaults of the spec §2.2 otherwise (L2 over gates, one-step order, concept "
        "lattice, degree centrality, keep = MI plus top-rho with rho = 0.05 in binary mode).",
        "",
        f"Dense test accuracy: {_pct(dense)} over {dense['n']} seed(s).",
        "",
        "| point | fine-tune | method | sparsity | test accuracy (mean ± std) | lattice − this (pp, paired) "
        "| MI neurons | kept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cell in summary:
        paired = diff.get((cell["point"], cell["finetune_epochs"], cell["method"]))
        lattice = cell["method"] == "lattice"
        structure = (
            f"{cell['meet_irreducible']['mean']:.1f} | {cell['kept']['mean']:.1f}" if lattice else " | "
        )
        lines.append(
            f"| {cell['point']} | {cell['finetune_epochs']} | {cell['method']} | "
            f"{cell['sparsity']['mean']:.4f} | {_pct(cell['test_accuracy'])} | "
            f"{_pp(paired) if paired else ''} | {structure} |"
        )
    lines += [
        "",
        f"![accuracy against sparsity]({result['plot']})",
        "",
        "## Reading (computed from the table)",
        "",
        *reading(summary, differences),
        "",
    ]
    return "\n".join(lines)


def plot(summary: list[dict[str, Any]], dense: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finetunes = sorted({c["finetune_epochs"] for c in summary})
    figure, axes = plt.subplots(1, len(finetunes), figsize=(6 * len(finetunes), 4.5), squeeze=False)
    styles = {
        ("lattice", "binary"): ("o-", "lattice binary (q)"),
        ("lattice", "continuous"): ("s", "lattice continuous (rho)"),
        ("global_magnitude", ""): ("^--", "global magnitude, matched"),
        ("random", ""): ("x:", "random, matched"),
    }
    for axis, finetune in zip(axes[0], finetunes, strict=True):
        for (method, mode), (style, label) in styles.items():
            cells = [
                c
                for c in summary
                if c["finetune_epochs"] == finetune
                and c["method"] == method
                and (not mode or mode in c["point"])
            ]
            cells.sort(key=lambda c: c["sparsity"]["mean"])
            if cells:
                axis.errorbar(
                    [c["sparsity"]["mean"] for c in cells],
                    [100 * c["test_accuracy"]["mean"] for c in cells],
                    yerr=[100 * c["test_accuracy"]["std"] for c in cells],
                    fmt=style,
                    capsize=3,
                    label=label,
                )
        axis.axhline(100 * dense["mean"], color="grey", lw=0.8, label="dense")
        axis.set(
            title=f"fine-tune {finetune} epoch(s)",
            xlabel="recurrent (W_hh) sparsity",
            ylabel="test accuracy (%)",
            ylim=(0, 100),
        )
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="lower left")
    figure.suptitle("Sequential MNIST (rows), LSTM(128): lattice vs matched baselines")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)  # the plot is redrawn after every point


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: grid.yaml")
    parser.add_argument("--quantiles", type=float, nargs="*", default=None, help="default: grid.yaml")
    parser.add_argument("--rhos", type=float, nargs="*", default=None, help="default: grid.yaml")
    parser.add_argument("--finetune", type=int, nargs="+", default=None, help="default: grid.yaml")
    parser.add_argument("--output", type=Path, default=Path("runs/lattice"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: report the trials of the grid that finished (e.g. of an interrupted run)",
    )
    args = parser.parse_args()

    grid = yaml.safe_load((SWEEP / "grid.yaml").read_text())
    seeds = args.seeds if args.seeds is not None else grid["seeds"]
    finetunes = args.finetune if args.finetune is not None else grid["finetune_epochs"]
    rows: list[dict[str, Any]] = []
    dense: dict[int, float] = {}
    # Fine-tune-major: the cheap unfine-tuned grid completes for every seed first. The outputs
    # are rewritten after every point, so an interrupted run still reports what finished.
    for finetune in finetunes:
        for seed in seeds:
            for point, params, target in _lattice_points(grid, args.quantiles, args.rhos):
                common = [*args.overrides, f"seed={seed}", f"pruning.schedule.finetune_epochs={finetune}"]
                lattice = _run(
                    [
                        *common,
                        "pruning.method=lattice",
                        f"pruning.params={params}",
                        f"pruning.target_sparsity={target}",
                    ],
                    args.output,
                    args.report_only,
                )
                if lattice is None:
                    continue
                rows.append(_row(point, "lattice", seed, finetune, lattice))
                dense[seed] = lattice["dense_test_accuracy"]
                matched = min(lattice["sparsity"], _ALMOST_ONE)
                for baseline in BASELINES:
                    metrics = _run(
                        [
                            *common,
                            f"pruning.method={baseline}",
                            "pruning.params={}",
                            f"pruning.target_sparsity={matched}",
                        ],
                        args.output,
                        args.report_only,
                    )
                    if metrics is not None:
                        rows.append(_row(point, baseline, seed, finetune, metrics))
                print(
                    f"seed {seed} ft {finetune} {point}: sparsity {lattice['sparsity']:.4f}, test "
                    + ", ".join(f"{r['method']} {r['test_accuracy']:.4f}" for r in rows[-3:]),
                    file=sys.stderr,
                    flush=True,
                )
                if not args.report_only:
                    write_outputs(rows, dense, seeds, finetunes)
    if rows:
        write_outputs(rows, dense, seeds, finetunes)
    print(f"-> {RESULTS_NAME}.json, {DOCS / 'lattice.md'}", file=sys.stderr)


def write_outputs(
    rows: list[dict[str, Any]], dense: dict[int, float], seeds: list[int], finetunes: list[int]
) -> None:
    summary = summarise(rows)
    differences = [d for baseline in BASELINES for d in paired_differences(rows, baseline)]
    plot_path = DOCS / "lattice_accuracy_sparsity.png"
    plot(summary, _spread(list(dense.values())), plot_path)
    result = {
        "command": "RNNPRUNE_DATA_DIR=../shared/data/mnist python -m benchmarks.lattice_reproduction "
        + " ".join(sys.argv[1:]),
        "config": str(BASE.relative_to(ROOT)),
        "grid": str((SWEEP / "grid.yaml").relative_to(ROOT)),
        "seeds": seeds,
        "finetune_epochs": finetunes,
        "dense_test_accuracy": _spread(list(dense.values())),
        "summary": summary,
        "paired_differences": differences,
        "rows": rows,
        "plot": plot_path.name,
    }
    path = write_result(RESULTS_NAME, result)
    result["machine"] = json.loads(path.read_text())["machine"]
    (DOCS / "lattice.md").write_text(markdown(result))


if __name__ == "__main__":
    main()
