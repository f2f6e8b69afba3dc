"""A `ResultsReport` as a results page: Markdown with PNG plots beside it, and the same page as
one self-contained HTML file (plots inlined) for the MLflow parent run.

Every page says which command, commit and machine wrote it and when, and that it is generated:
pages in `docs/results/` are this module's output, never hand-written tables.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rnnprune.curves import CurvesReport
from rnnprune.curves_page import curves_section, plot_curves
from rnnprune.dashboard import PALETTE
from rnnprune.provenance import Provenance
from rnnprune.report import (
    METHOD_AXIS,
    SHORT_OF_TARGET,
    SPEEDUPS,
    TARGET,
    Comparison,
    ResultsReport,
    Row,
    Versus,
)
from rnnprune.stats import SeedStats, format_spread

COUNTS = ("nonzero_params", "model_bytes")  # integers: no decimals
LINE_STYLES = ("-", "--", ":", "-.")
LEGEND_INSIDE = 10  # series at most in a legend drawn inside the plot


@dataclass(frozen=True)
class Page:
    markdown: Path
    plots: list[Path]
    html: str  # the page as one HTML document, plots inlined


def _digits(metric: str) -> int:
    if metric in COUNTS:
        return 0
    return 2 if metric in SPEEDUPS else 4


def spread_cell(stats: SeedStats, digits: int, n: int) -> str:
    """`mean ± std`, with the cell's own n where fewer runs report it than the row holds."""
    cell = f"{stats.mean:.{digits}f} ± {format_spread(stats.std, stats.n, digits)}"
    return cell if stats.n == n else f"{cell} (n={stats.n})"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _axis_cells(row: Row) -> list[str]:
    return [row.target, *(value or "—" for value in row.axes)]


def _axis_header(report: ResultsReport) -> list[str]:
    return ["target", *report.axes.shared]


def results_table(report: ResultsReport) -> list[str]:
    header = ["method", *_axis_header(report), "seeds", *(c.label for c in report.columns)]
    rows = [
        [
            row.variant,
            *_axis_cells(row),
            str(row.n),
            *(
                spread_cell(row.values[c.name], _digits(c.name), row.n) if c.name in row.values else "—"
                for c in report.columns
            ),
        ]
        for row in report.rows
    ]
    return _table(header, rows)


def difference_cell(change: SeedStats | None, digits: int) -> str:
    """A paired difference as `+mean ± std`, or "—" with no pairs."""
    return (
        "—"
        if change is None
        else f"{change.mean:+.{digits}f} ± {format_spread(change.std, change.n, digits)}"
    )


def paired_table(report: ResultsReport, pairs: Iterable[tuple[Row, Comparison]]) -> list[str]:
    """Rows, each with its paired comparison: the difference in quality and both tests."""
    digits = _digits(report.quality.name)
    header = [
        "method",
        *_axis_header(report),
        "pairs",
        f"Δ {report.quality.label} (mean ± std)",
        "paired t-test p",
        "Wilcoxon p",
    ]
    rows = [
        [
            row.variant,
            *_axis_cells(row),
            str(comparison.pairs),
            difference_cell(comparison.difference, digits),
            comparison.t_test.cell(),
            comparison.wilcoxon.cell(),
        ]
        for row, comparison in pairs
    ]
    return _table(header, rows)


def comparison_table(report: ResultsReport) -> list[str]:
    return paired_table(report, ((r, r.comparison) for r in report.rows if r.comparison is not None))


def versus_table(report: ResultsReport, versus: Versus) -> list[str]:
    return paired_table(report, ((c.row, c.comparison) for c in versus.comparisons))


SIGNIFICANCE = 0.05


def ranking_section(report: ResultsReport) -> list[str]:
    """Per target (and shared axes), the methods by mean quality, and whether each is ahead of
    the next one by a paired t-test at 5% (uncorrected)."""
    digits = _digits(report.quality.name)
    lines: list[str] = []
    for ranking in report.rankings:
        axes = ", ".join(f"{k}={v or '—'}" for k, v in zip(report.axes.shared, ranking.axes, strict=True))
        lines += ["", f"### Target {ranking.target}" + (f", {axes}" if axes else ""), ""]
        header = [
            "rank",
            "method",
            "seeds",
            report.quality.label,
            "sparsity reached",
            "Δ to the next (mean ± std)",
            "paired t-test p",
            f"ahead of the next at {SIGNIFICANCE:g}",
        ]
        rows = []
        for place, ranked in enumerate(ranking.ranked, 1):
            row, versus = ranked.row, ranked.versus_next
            sparsity = row.values.get("sparsity")
            reached = "—" if sparsity is None else f"{sparsity.mean:.4f}"
            if versus is None or versus.difference is None:
                change, p_cell, verdict = "—", "—", "—"
            else:
                change = difference_cell(versus.difference, digits)
                p_cell = versus.t_test.cell()
                p_value = versus.t_test.p_value
                verdict = "n/a" if p_value is None else ("yes" if p_value < SIGNIFICANCE else "no")
            quality = spread_cell(row.values[report.quality.name], digits, row.n)
            rows.append([str(place), row.variant, str(row.n), quality, reached, change, p_cell, verdict])
        for row in ranking.short:
            quality = spread_cell(row.values[report.quality.name], digits, row.n)
            reached = f"{row.values['sparsity'].mean:.4f}, short of the target"
            rows.append(["—", row.variant, str(row.n), quality, reached, "not ranked", "—", "—"])
        lines += _table(header, rows)
    return lines


def matched_table(report: ResultsReport) -> list[str]:
    digits = _digits(report.quality.name)
    header = [
        "method",
        *_axis_header(report),
        "baseline at its reached sparsity",
        "pairs",
        f"Δ {report.quality.label} (mean ± std)",
        "paired t-test p",
        "Wilcoxon p",
    ]
    rows = []
    for matched in report.matched:
        change = matched.comparison.difference
        rows.append(
            [
                matched.variant,
                matched.target,
                *(value or "—" for value in matched.axes),
                matched.baseline,
                str(matched.comparison.pairs),
                difference_cell(change, digits),
                matched.comparison.t_test.cell(),
                matched.comparison.wilcoxon.cell(),
            ]
        )
    return _table(header, rows)


def hypervolume_table(report: ResultsReport) -> list[str]:
    rows = []
    for method, volume in sorted(report.hypervolume.items(), key=lambda kv: -kv[1]):
        per_seed = report.hypervolume_per_seed.get(method)
        seeds = "—" if per_seed is None else f"{spread_cell(per_seed, 4, per_seed.n)} (n={per_seed.n})"
        rows.append([method, f"{volume:.4f}", seeds])
    return _table(["method", "hypervolume of the seed means", "per seed: mean ± std (n)"], rows)


def importance_table(report: ResultsReport) -> list[str]:
    names = {METHOD_AXIS: "method (with its own parameters)", TARGET: "target sparsity"}
    ordered = sorted(report.importance.values.items(), key=lambda kv: -kv[1])
    return _table(
        ["axis", "importance"], [[names.get(axis, axis), f"{value:.3f}"] for axis, value in ordered]
    )


def _series_label(row: Row, report: ResultsReport) -> str:
    name = row.series[0]
    axes = ", ".join(f"{k}={v or '—'}" for k, v in zip(report.axes.shared, row.axes, strict=True))
    return f"{name} [{axes}]" if axes else name


def _plot(report: ResultsReport, x_metrics: Sequence[str], path: Path, title: str) -> Path:
    """Quality against each x metric: a run per faint dot, and per series (a variant at fixed
    shared axes) the seed means joined across targets, with ± std error bars on both axes."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    variants = sorted({r.series[0] for r in report.rows})
    # The colour-blind-safe palette while it suffices; past it, 20 distinct colours rather than repeats.
    palette = PALETTE if len(variants) <= len(PALETTE) else matplotlib.colormaps["tab20"].colors
    colors = {v: palette[i % len(palette)] for i, v in enumerate(variants)}
    series: dict[tuple[str, tuple[str, ...]], list[Row]] = {}
    for row in report.rows:
        series.setdefault(row.series, []).append(row)
    styles = {
        key: LINE_STYLES[i % len(LINE_STYLES)] for i, key in enumerate(sorted({r.axes for r in report.rows}))
    }
    labels = {c.name: c.label for c in report.columns}
    quality = report.quality.name
    outside = len(series) > LEGEND_INSIDE  # the legend beside each panel, not over its points
    figure, panels = plt.subplots(
        1, len(x_metrics), figsize=((11.5 if outside else 7.5) * len(x_metrics), 5), dpi=110, squeeze=False
    )
    for axes, x in zip(panels[0], x_metrics, strict=True):
        for (variant, axis_values), rows in series.items():
            rows = sorted((r for r in rows if x in r.values), key=lambda r: r.values[x].mean)
            if not rows:
                continue
            color = colors[variant]
            runs = [run for r in rows for run in r.runs if x in run.metrics]
            axes.scatter(
                [r.metrics[x] for r in runs],
                [r.metrics[quality] for r in runs],
                s=10,
                color=color,
                alpha=0.35,
            )
            axes.errorbar(
                [r.values[x].mean for r in rows],
                [r.values[quality].mean for r in rows],
                xerr=[r.values[x].std for r in rows],
                yerr=[r.values[quality].std for r in rows],
                color=color,
                linestyle=styles[axis_values],
                marker="o",
                markersize=4,
                capsize=3,
                label=_series_label(rows[0], report),
            )
        axes.set_xlabel(labels.get(x, x))
        axes.set_ylabel(report.quality.label)
        axes.grid(alpha=0.3)
        if outside:
            axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:
            axes.legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


@dataclass(frozen=True)
class Section:
    """One sweep's (or experiment's) part of a page: its report, what it covers ("Sweep NAME")
    and, where its runs tracked layer graphs per epoch, their curves."""

    report: ResultsReport
    scope: str
    curves: CurvesReport | None = None
    ran_at: tuple[str, ...] = ()  # the commits its trials ran at (the parent runs' git_commit tags)


def page_markdown(title: str, provenance: Provenance, parts: Sequence[tuple[str, list[str]]]) -> str:
    """The page of (scope, `section_markdown`) parts: one part is the page's body as it is; several
    (sweeps of other tasks, quality metrics and methods) each go under a heading of their own,
    and nothing is compared across them."""
    lines = [
        f"# {title}",
        "",
        f"Generated by `{provenance.command}`; do not edit by hand. {provenance.line()}",
    ]
    if len(parts) == 1:
        lines += ["", *parts[0][1]]
    else:
        lines += [
            "",
            f"{len(parts)} parts, one per sweep, each with its own task, quality metric, tables and "
            "tests; nothing is compared across parts.",
        ]
        for scope, body in parts:
            lines += ["", f"## {scope}", "", *(f"#{line}" if line.startswith("#") else line for line in body)]
    lines += [
        "",
        "---",
        "",
        f"*This page is generated by `rnnprune report`; do not edit it. Rerun `{provenance.command}` "
        "to update it.*",
        "",
    ]
    return "\n".join(lines)


def section_markdown(
    report: ResultsReport,
    scope: str,
    plots: dict[str, str],
    curves: CurvesReport | None = None,
    curve_plots: dict[str, str] | None = None,
    ran_at: Sequence[str] = (),
) -> list[str]:
    """A report's tables, plots and tests under level-2 headings, from its summary line on;
    `ran_at`: the commits the trials ran at, where the sweep recorded them."""
    quality = report.quality
    heading = quality.label[:1].upper() + quality.label[1:]
    seeds = sorted({r.n for r in report.rows})
    runs = sum(r.n for r in report.rows)
    ran = f" (trials ran at commit {', '.join(ran_at)})" if ran_at else ""
    lines = [
        f"{scope}{ran}: {runs} finished trial runs in {len(report.rows)} configurations, task "
        f"{report.task or 'mixed'}; quality is {quality.label} ({quality.better} is better). "
        f"Cells are the mean ± sample standard deviation over seeds (n − 1); seeds per "
        f'configuration: {", ".join(map(str, seeds))}; "—": one seed, spread unmeasured.',
    ]
    if report.left_out:
        lines.append(f"{report.left_out} finished run(s) without {quality.name} or sparsity are left out.")
    measured = [c.label for c in report.columns if c.name in ("speedup_b1", "speedup_b64", "model_bytes")]
    lines += [
        "",
        "## Results per method and target",
        "",
        *results_table(report),
        "",
    ]
    if any(r.variant.endswith(", lottery ticket") for r in report.rows):
        lines += [
            "A `..., lottery ticket` row is the lottery control of a `pruning.lottery` trial: fresh "
            "weights under that trial's final masks, retrained for the same budget; the trial's "
            "trained sparse model is the row of the same name without it.",
            "",
        ]
    lines += [
        (
            f"Measured at the end of each trial: {', '.join(measured)}."
            if measured
            else "No run reports measured speed-up or deployable size (speedup_b1, speedup_b64, "
            "model_bytes), so those columns are absent."
        ),
        "",
        f"## {heading} against sparsity",
        "",
        f"![{quality.label} against sparsity per method, seed means with ± std]({plots['sparsity']})",
        "",
        f"## {heading} against measured speed-up",
        "",
        (
            f"![{quality.label} against measured speed-up, seed means with ± std]({plots['speedup']})"
            if "speedup" in plots
            else "No run reports a measured speed-up (speedup_b1, speedup_b64): no speed plot."
        ),
        "",
        "## Hypervolume per method",
        "",
    ]
    if report.hypervolume:
        reference = ", ".join(
            f"{o.name} {v:g}" for o, v in zip(report.objectives, report.reference or (), strict=True)
        )
        lines += [
            *hypervolume_table(report),
            "",
            f"Over {' and '.join(o.name for o in report.objectives)} against the reference "
            f"({reference}); per seed: the front of that seed's runs alone.",
        ]
    else:
        lines.append(f"No hypervolume: {quality.name} has no reference (chance level) for this task.")
    if report.rankings:
        lines += [
            "",
            "## Ranking per target",
            "",
            f"Methods by their seed-mean {report.quality.label} at each target, best first; each is "
            "compared with the method ranked just below it, paired by seed (paired t-test, two-sided, "
            f'uncorrected). "ahead … yes": p < {SIGNIFICANCE:g}; "no": the order could be chance at '
            'this number of seeds; "n/a": no test (too few pairs or no spread). A method that '
            f"stopped more than {SHORT_OF_TARGET:g} below the target sparsity is listed last, unranked: "
            "it is a denser model (see its matched baseline, where the sweep ran one).",
            *ranking_section(report),
        ]
    lines += ["", f"## Paired differences to {report.baseline or 'a baseline'}", ""]
    if report.baseline is None:
        lines.append(f"No comparison: {report.baseline_note}.")
    else:
        tests = sum(1 for r in report.rows if r.comparison is not None)
        matched = " and ".join(["target", *report.axes.shared])
        lines += [
            *comparison_table(report),
            "",
            f"Δ = method − {report.baseline} in {quality.label} ({quality.better} is better), paired by "
            f"seed at the same {matched}. "
            "Two-sided p-values of the paired t-test and the Wilcoxon signed-rank test (scipy), "
            f"per row and uncorrected for multiple comparisons ({tests} rows). The t-test needs 2 "
            "pairs with spread; the exact Wilcoxon test over n non-zero differences cannot go "
            "below p = 2/2^n, so it is given from 6 pairs.",
        ]
    if report.versus is not None:
        versus = report.versus
        lines += [
            "",
            f"## Paired differences to {versus.axis}={versus.value}",
            "",
            *versus_table(report, versus),
            "",
            f"Δ = row − the same method at {versus.axis}={versus.value} in {quality.label} "
            f"({quality.better} is better), paired by seed at the same target and other axes: what "
            f"moving {versus.axis} does to each method. Two-sided p-values as above, uncorrected "
            f"({len(versus.comparisons)} rows).",
        ]
    if report.matched:
        lines += [
            "",
            "## Paired differences at matched sparsity",
            "",
            *matched_table(report),
            "",
            f"Δ = method − baseline in {quality.label} ({quality.better} is better), paired by seed: "
            "each baseline trial ran the config of the method's trial of that seed with the "
            "baseline's method, at the sparsity that trial reached (tag `matched_to`); its rows in "
            "the results table are the `... matched to ...` ones. Two-sided p-values as above, "
            f"uncorrected ({len(report.matched)} rows).",
        ]
    lines += ["", f"## Importance of the swept axes for {quality.label}", ""]
    if report.importance.values:
        lines += [*importance_table(report), "", f"{report.importance.note}."]
    else:
        lines.append(f"Importance {report.importance.note}.")
    if curves is not None:
        lines += ["", *curves_section(curves, curve_plots or {})]
    return lines


def page_html(markdown_text: str, title: str, images: dict[str, Path]) -> str:
    """The Markdown as one HTML document, each image file inlined as a data URI."""
    import markdown

    for name, path in images.items():
        data = base64.b64encode(path.read_bytes()).decode()
        markdown_text = markdown_text.replace(f"]({name})", f"](data:image/png;base64,{data})")
    body = markdown.markdown(markdown_text, extensions=["tables"])
    style = (
        "body{font-family:sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse;font-size:.85rem}td,th{border:1px solid #ccc;padding:.2rem .5rem}"
        "img{max-width:100%}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>\n{body}\n</body></html>\n"
    )


def _plots(section: Section, folder: Path, stem: str, title: str) -> tuple[dict[str, Path], dict[str, Path]]:
    """STEM_quality_sparsity.png (and STEM_quality_speedup.png where the runs measured speed,
    STEM_curves_<i>.png per group of per-epoch curves) in `folder`: (plots, curve plots)."""
    report = section.report
    images = {"sparsity": _plot(report, ["sparsity"], folder / f"{stem}_quality_sparsity.png", title)}
    speedups = [m for m in SPEEDUPS if any(m in r.values for r in report.rows)]
    if speedups:
        images["speedup"] = _plot(report, speedups, folder / f"{stem}_quality_speedup.png", title)
    curve_images = plot_curves(section.curves, folder, stem, title) if section.curves is not None else {}
    return images, curve_images


def write_page(sections: Sequence[Section], markdown_path: Path, title: str, provenance: Provenance) -> Page:
    """NAME.md with NAME_quality_sparsity.png (and NAME_quality_speedup.png where the runs measured
    speed, NAME_curves_<i>.png per group of per-epoch curves) beside it, per section, whose files
    are NAME_<part number>_... where the page has several; the HTML twin is returned, not written
    (it goes to the parent runs)."""
    folder = markdown_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    parts = []
    for number, section in enumerate(sections, 1):
        several = len(sections) > 1
        stem = f"{markdown_path.stem}_{number}" if several else markdown_path.stem
        images, curve_images = _plots(
            section, folder, stem, f"{title}: {section.scope}" if several else title
        )
        files += [*images.values(), *curve_images.values()]
        body = section_markdown(
            section.report,
            section.scope,
            {k: p.name for k, p in images.items()},
            section.curves,
            {group: p.name for group, p in curve_images.items()},
            section.ran_at,
        )
        parts.append((section.scope, body))
    text = page_markdown(title, provenance, parts)
    markdown_path.write_text(text)
    return Page(markdown_path, files, page_html(text, title, {p.name: p for p in files}))
