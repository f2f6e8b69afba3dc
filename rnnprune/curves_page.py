"""A `CurvesReport` as a section of a results page: per group of shared axes, a plot of quality
and the lowest layer-graph margins against the remaining weights, a per-epoch table, and each
run's crossings (where quality fell, where each margin first went negative)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rnnprune.curves import GRAPH_PREFIX, MARGIN_LABELS, MARGINS, Curve, CurvesReport, Epoch, quality_base
from rnnprune.dashboard import PALETTE
from rnnprune.stats import format_spread


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]


def lowest_margin(epoch: Epoch, margin: str) -> float | None:
    """The lowest seed-mean `margin` over the epoch's layer graphs: the first one to cross."""
    means = [
        stats.mean
        for name, stats in epoch.values.items()
        if name.startswith(GRAPH_PREFIX) and name.endswith(f".{margin}")
    ]
    return min(means) if means else None


def _groups(curves: CurvesReport) -> dict[str, list[Curve]]:
    groups: dict[str, list[Curve]] = {}
    for curve in curves.curves:
        groups.setdefault(curve.group, []).append(curve)
    return groups


def plot_curves(curves: CurvesReport, folder: Path, stem: str, title: str) -> dict[str, Path]:
    """One PNG per group: quality (val solid, test dotted where tracked) and the lowest
    unweighted and weighted margins against the remaining weights (% of the pool, log axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = quality_base(curves.quality)
    labels = sorted({c.label.split(" [")[0] for c in curves.curves})
    colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
    paths = {}
    for index, (group, members) in enumerate(sorted(_groups(curves).items())):
        figure, (left, middle, right) = plt.subplots(1, 3, figsize=(19, 5), dpi=110)
        for curve in members:
            color = colors[curve.label.split(" [")[0]]
            x = [e.remaining.mean for e in curve.epochs]
            for split, style in (("val", "-"), ("test", ":")):
                name = f"{split}_{base}"
                points = [
                    (xi, e.values[name]) for xi, e in zip(x, curve.epochs, strict=True) if name in e.values
                ]
                if points:
                    left.errorbar(
                        [p[0] for p in points],
                        [p[1].mean for p in points],
                        yerr=[p[1].std for p in points],
                        color=color,
                        linestyle=style,
                        marker="o",
                        markersize=3,
                        capsize=2,
                        label=f"{curve.label} ({split})",
                    )
            for panel, pair in ((middle, ("delta_r", "delta_s")), (right, ("delta_r_w", "delta_s_w"))):
                for margin, style in zip(pair, ("-", "--"), strict=True):
                    points = [(xi, lowest_margin(e, margin)) for xi, e in zip(x, curve.epochs, strict=True)]
                    points = [p for p in points if p[1] is not None]
                    if points:
                        panel.plot(
                            [p[0] for p in points],
                            [p[1] for p in points],
                            color=color,
                            linestyle=style,
                            marker=".",
                            label=f"{curve.label} {MARGIN_LABELS[margin]}",
                        )
        left.set_ylabel(curves.quality.label.replace("test ", ""))
        middle.set_ylabel("lowest margin over the layer graphs (seed mean)")
        right.set_ylabel("lowest weighted margin over the layer graphs (seed mean)")
        for panel in (left, middle, right):
            panel.set_xscale("log")
            panel.invert_xaxis()  # pruning proceeds to the right
            panel.set_xlabel("remaining weights (% of the pool)")
            panel.grid(alpha=0.3)
            if panel.get_legend_handles_labels()[0]:  # a weighted panel of runs without _w margins is empty
                panel.legend(fontsize=6)
        for panel in (middle, right):
            panel.axhline(0.0, color="black", linewidth=0.8)
        figure.suptitle(f"{title}: {group}" if group else title)
        figure.tight_layout()
        path = folder / f"{stem}_curves_{index}.png"
        figure.savefig(path)
        plt.close(figure)
        paths[group] = path
    return paths


def _remaining(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}"


def curves_section(curves: CurvesReport, plots: dict[str, str]) -> list[str]:
    """The section's Markdown; `plots` maps each group to its image file name."""
    base = quality_base(curves.quality)
    metric = curves.quality.label.replace("test ", "")
    lines = [
        "## Curves per epoch",
        "",
        f"Each pruning epoch's validation {metric} (and test, where the runs tracked it) and the "
        "layer-graph margins of the model at the end of that epoch (`track.graphs`), against the "
        "remaining weights of the pool; mean ± sample std over seeds. Δ_R = √(d_L−1)+√(d_R−1)−μ̂ "
        "and Δ_S = 2√(μ0−1)−μ̂ on the unweighted graph, ^w on |W ⊙ M| with strengths for "
        "degrees (`rnnprune.graphs`); a layer graph is Ramanujan while its margin is ≥ 0.",
    ]
    for group, members in sorted(_groups(curves).items()):
        lines += ["", f"### {group}" if group else "### All runs", ""]
        if group in plots:
            lines += [f"![{metric} and margins against remaining weights: {group}]({plots[group]})", ""]
        header = ["epoch", *(f"{c.label.split(' [')[0]}: remaining % / val {metric}" for c in members)]
        steps = sorted({e.epoch for c in members for e in c.epochs})
        rows = []
        for step in steps:
            cells = [str(step)]
            for curve in members:
                epoch = next((e for e in curve.epochs if e.epoch == step), None)
                value = epoch.values.get(f"val_{base}") if epoch is not None else None
                if epoch is None or value is None:
                    cells.append("—")
                else:
                    spread = format_spread(value.std, value.n, 4)
                    cells.append(f"{epoch.remaining.mean:.1f} / {value.mean:.4f} ± {spread}")
            rows.append(cells)
        lines += _table(header, rows)
    lines += [
        "",
        "### Where quality falls and where the margins cross zero, per seed",
        "",
        f"Remaining % of the first epoch whose validation {metric} is more than {curves.drop:g} "
        f"{'below' if curves.quality.maximize else 'above'} the dense model's, and of the first "
        "epoch where a margin is negative on any layer graph (the graph named); never: not within "
        "the run.",
        "",
    ]
    header = ["run", "seed", f"dense val {metric}", "quality falls at", *(MARGIN_LABELS[m] for m in MARGINS)]
    rows = []
    for crossing in curves.crossings:
        margins = []
        for margin in MARGINS:
            found = crossing.margins[margin]
            margins.append("never" if found is None else f"{found[0]:.1f} ({found[1]})")
        rows.append(
            [crossing.label, crossing.seed, f"{crossing.dense:.4f}", _remaining(crossing.falls_at), *margins]
        )
    return lines + _table(header, rows)
