"""A sweep's results as tables: per configuration the seed spread of quality, sparsity, size and
speed; hypervolumes per method; paired differences to a baseline with significance tests; and
how much each swept axis matters for quality.

Pure: `RunRecord`s in, a `ResultsReport` out (`rnnprune.results_page` writes it as a page,
`rnnprune.publish` reads the runs from MLflow). Spread is `rnnprune.stats.seed_stats` (sample
std, n shown); directions and labels come from the catalogue, so a lower-is-better quality
(an RMSE) reads the right way everywhere.

Axes. A param that takes more than one value among the runs of one method is a swept axis,
besides the seed: a method's own parameters (`pruning.params.*`) name the method's variant
(`gate_balanced_magnitude (granularity=row)`), any other param (`training.lr`, `model.cell`)
is a shared axis. Params that differ only between methods belong to the method. A sweep
spec's named variant (tag `variant`) names the method's variant too, and what it sets is not
an axis (`moduli (L1 (R = 1))`). One row is one variant at one target sparsity and one value
of every shared axis; a row is compared with the baseline's row of the same target and shared
axes, seed by seed.

Matched baselines (tag `matched_to`: the runs whose reached sparsity they ran at) are rows of
their own, `random matched to lattice (binary q=0.9)`, at their reference's target and axes, and
each reference row is compared with them run by run (`ResultsReport.matched`). A lottery trial
(`pruning.lottery`) holds two models under one set of masks: the trained sparse model (its
`sparse_*` metrics) is the row of its variant, the ticket a row of its own (`..., lottery ticket`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from scipy import stats as scipy_stats

from rnnprune import catalogue
from rnnprune.catalogue import Metric, MetricError
from rnnprune.errors import RnnpruneError
from rnnprune.pareto import SEED_PARAMS, RunRecord, analyse, default_objectives, task_of
from rnnprune.stats import SeedStats, seed_stats

TARGET = "pruning.target_sparsity"
METHOD_PARAM = "pruning.method"
METHOD_PARAMS = "pruning.params."
DEFAULT_BASELINE = "global_magnitude"
# Accounting columns every trial reports, then what the end-of-trial measurement adds where the
# runs have it (measured speed-up at batch 1 and 64, the deployable file's size).
ACCOUNTING = ("sparsity", "nonzero_params")
DENSE_PREFIX = "dense_"  # a trial's dense model before pruning: dense_test_accuracy
MEASURED = ("speedup_b1", "speedup_b64", "model_bytes")
SPEEDUPS = ("speedup_b1", "speedup_b64")
# The exact two-sided Wilcoxon signed-rank test over n non-zero differences cannot give a p-value
# below 2 / 2**n: 0.0625 at n = 5, so fewer pairs can never show a difference at 5%.
WILCOXON_MIN_PAIRS = 6
IMPORTANCE_MIN_TRIALS = 4
IMPORTANCE_SEED = 0
METHOD_AXIS = "method"
VARIANT_TAG = "variant"  # a sweep spec's named variant of the method
MATCHED_TAG = "matched_to"  # a matched baseline's reference run ids, comma-separated
LOTTERY_PARAM = "pruning.lottery"
TRAINED_PREFIX = "sparse_"  # a lottery trial's trained sparse model; its plain metrics are the ticket's
TICKET_KEY = "lottery_ticket"  # marks the ticket's record (not a trial-config path)


class ReportError(RnnpruneError, ValueError):
    """Runs a report cannot be made of, or a baseline that is not among them."""


@dataclass(frozen=True)
class Axes:
    shared: tuple[str, ...]  # swept params other than the target and methods' own parameters
    own: Mapping[str, tuple[str, ...]]  # method -> its own swept `pruning.params.*`


def seed_of(run: RunRecord) -> str:
    return run.params.get("seed") or run.tags.get("seed", "")


def swept_axes(runs: Sequence[RunRecord]) -> Axes:
    """The params the runs varied within a method (seed, trial hash, method and target aside)."""
    values: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    keys = {key for run in runs for key in run.params} - SEED_PARAMS - {METHOD_PARAM, TARGET, TICKET_KEY}
    for run in runs:  # within a named variant: what the variant sets is its name, not an axis
        for key in keys:
            values[(run.method, run.tags.get(VARIANT_TAG, ""), key)].add(run.params.get(key, ""))
    varied = {(method, key) for (method, _, key), seen in values.items() if len(seen) > 1}
    shared = sorted({key for _, key in varied if not key.startswith(METHOD_PARAMS)})
    own: dict[str, list[str]] = defaultdict(list)
    for method, key in sorted(varied):
        if key.startswith(METHOD_PARAMS):
            own[method].append(key)
    return Axes(tuple(shared), {m: tuple(k) for m, k in own.items()})


def variant_of(run: RunRecord, axes: Axes) -> str:
    """The method, with its named variant and the values of its own swept parameters:
    `lattice (mode=binary)`, `moduli (torus DoG)`; a lottery ticket says so."""
    named = [run.tags[VARIANT_TAG]] if run.tags.get(VARIANT_TAG) else []
    own = [f"{k.removeprefix(METHOD_PARAMS)}={run.params.get(k, '—')}" for k in axes.own.get(run.method, ())]
    parts = named + own
    label = run.method + (f" ({', '.join(parts)})" if parts else "")
    return label + (", lottery ticket" if TICKET_KEY in run.params else "")


def matched_to(run: RunRecord) -> tuple[str, ...]:
    """The run ids a matched baseline ran at the reached sparsity of (none for other runs)."""
    return tuple(i for i in run.tags.get(MATCHED_TAG, "").split(",") if i)


def models_of(run: RunRecord) -> list[RunRecord]:
    """The models a run reports: itself, or for a lottery trial the trained sparse model (its
    `sparse_*` metrics under their plain names) and the ticket (its plain metrics)."""
    if run.params.get(LOTTERY_PARAM) != "True":
        return [run]
    plain = {k: v for k, v in run.metrics.items() if not k.startswith(TRAINED_PREFIX)}
    trained = {
        k.removeprefix(TRAINED_PREFIX): v for k, v in run.metrics.items() if k.startswith(TRAINED_PREFIX)
    }
    # The ticket's params differ, so fronts and hypervolumes keep it apart from the trained model.
    ticket = replace(run, metrics=plain, params={**run.params, TICKET_KEY: "true"})
    return [replace(run, metrics={**plain, **trained}), ticket] if trained else [ticket]


@dataclass(frozen=True)
class Test:
    """One significance test's two-sided p-value, or why there is none."""

    p_value: float | None
    note: str = ""

    def cell(self) -> str:
        return self.note if self.p_value is None else f"{self.p_value:.3g}"


@dataclass(frozen=True)
class Comparison:
    """A row against the baseline's row at the same target and shared axes, paired by seed."""

    pairs: int
    difference: SeedStats | None  # row quality minus baseline quality over the paired seeds
    t_test: Test
    wilcoxon: Test


def compare(values: Sequence[float], baseline: Sequence[float]) -> Comparison:
    """Paired t-test and Wilcoxon signed-rank test of a row's per-seed quality against the
    baseline's of the same seeds (`values[i]` and `baseline[i]` share a seed)."""
    differences = [a - b for a, b in zip(values, baseline, strict=True)]
    n = len(differences)
    if n == 0:
        none = Test(None, "no paired seeds")
        return Comparison(0, None, none, none)
    spread = seed_stats(differences)
    if n < 2:
        t_test = Test(None, "n too small (1 pair)")
    elif spread.std <= 1e-12 * max(1.0, *map(abs, differences)):  # rounding aside, all equal:
        # scipy would answer p = 0 (or NaN) from a zero-variance t statistic
        t_test = Test(None, "no spread in the differences")
    else:
        t_test = Test(float(scipy_stats.ttest_rel(values, baseline).pvalue))
    nonzero = sum(d != 0.0 for d in differences)  # the signed-rank test drops zero differences
    if nonzero == 0:
        wilcoxon = Test(None, "all differences zero")
    elif nonzero < WILCOXON_MIN_PAIRS:
        wilcoxon = Test(None, f"n too small ({nonzero} non-zero: p ≥ {2 / 2**nonzero:.3g} at best)")
    else:
        wilcoxon = Test(float(scipy_stats.wilcoxon(values, baseline, zero_method="wilcox").pvalue))
    return Comparison(n, spread, t_test, wilcoxon)


@dataclass(frozen=True)
class MatchedComparison:
    """A row against one baseline's runs matched to the row's runs (tag `matched_to`), pair by
    pair: the same config and seed, the baseline at the sparsity the row's run reached."""

    variant: str
    target: str
    axes: tuple[str, ...]
    baseline: str  # the baseline's variant name
    comparison: Comparison


@dataclass(frozen=True)
class Row:
    """One variant at one target sparsity and one value of every shared axis, over its seeds."""

    variant: str
    method: str
    target: str
    axes: tuple[str, ...]  # values of `Axes.shared`, in that order ("" where a run lacks the param)
    runs: tuple[RunRecord, ...]
    values: Mapping[str, SeedStats]  # column -> spread over the runs that report it
    comparison: Comparison | None = None  # None for the baseline's own rows, or with no baseline
    line: str = ""  # its plot line where not its variant's: matched baselines, per reference method

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def series(self) -> tuple[str, tuple[str, ...]]:
        """The row's line in a plot: every axis but the target."""
        return self.line or self.variant, self.axes


@dataclass(frozen=True)
class AxisComparison:
    """A row against the row of the same variant and target whose `Versus.axis` is at the
    reference value, the other shared axes equal, paired by seed: what that axis does."""

    row: Row
    reference: Row
    comparison: Comparison


@dataclass(frozen=True)
class Versus:
    """`--versus AXIS=VALUE`: every row compared with its own variant at that axis value."""

    axis: str
    value: str
    comparisons: tuple[AxisComparison, ...] = ()


SHORT_OF_TARGET = 0.005
"""A row whose reached sparsity is this far below its target is not ranked at that target."""


@dataclass(frozen=True)
class Ranked:
    """A row's place among the rows of its target and shared axes, and its paired comparison
    with the row ranked next (None for the last)."""

    row: Row
    versus_next: Comparison | None


@dataclass(frozen=True)
class Ranking:
    target: str
    axes: tuple[str, ...]
    ranked: tuple[Ranked, ...]  # best quality first, among the rows that reached the target
    short: tuple[Row, ...] = ()  # rows that stopped short of the target: denser, so not ranked


def _short_of(row: Row, target: str) -> bool:
    sparsity = row.values.get("sparsity")
    return sparsity is not None and sparsity.mean < _as_number(target) - SHORT_OF_TARGET


def rankings(rows: Sequence[Row], quality: Metric) -> tuple[Ranking, ...]:
    """Per target and shared axes, the rows that reached the target (matched baselines aside:
    they ran at other sparsities) by mean quality, best first, each compared seed by seed with
    the next one; rows that stopped short of the target are listed apart, unranked."""
    groups: dict[tuple[str, tuple[str, ...]], list[Row]] = defaultdict(list)
    for row in rows:
        if quality.name in row.values and not matched_to(row.runs[0]):
            groups[(row.target, row.axes)].append(row)
    result = []
    for (target, axes), members in sorted(
        groups.items(), key=lambda item: (_as_number(item[0][0]), _values_key(item[0][1]))
    ):
        members.sort(key=lambda r: r.values[quality.name].mean, reverse=quality.maximize)
        reached = [r for r in members if not _short_of(r, target)]
        ranked = []
        for index, row in enumerate(reached):
            versus = None
            if index + 1 < len(reached):
                versus = compare_by_seed(row.runs, reached[index + 1].runs, quality.name)
            ranked.append(Ranked(row, versus))
        short = tuple(r for r in members if _short_of(r, target))
        result.append(Ranking(target, axes, tuple(ranked), short))
    return tuple(result)


@dataclass(frozen=True)
class Importance:
    """fANOVA importance of each swept axis for quality (sums to 1), or why it was not computed."""

    values: Mapping[str, float]
    trials: int
    note: str


@dataclass(frozen=True)
class ResultsReport:
    task: str | None
    quality: Metric
    columns: tuple[Metric, ...]  # quality, the dense model's where logged, accounting, measured
    axes: Axes
    rows: list[Row]
    baseline: str | None  # a variant name
    baseline_note: str  # why there is no baseline, when there is none
    objectives: tuple[Metric, ...]  # of the hypervolume
    reference: tuple[float, ...] | None
    hypervolume: Mapping[str, float]  # method (or "all") -> volume of the seed means
    hypervolume_per_seed: Mapping[str, SeedStats] = field(default_factory=dict)  # volumes of each seed
    importance: Importance = Importance({}, 0, "")
    left_out: int = 0  # finished runs without the quality metric or sparsity
    matched: tuple[MatchedComparison, ...] = ()  # rows against their matched baselines
    rankings: tuple[Ranking, ...] = ()  # per target and shared axes, best first
    versus: Versus | None = None  # rows against their own variant at one value of a shared axis


def column_metric(name: str, task: str | None) -> Metric:
    """The catalogue's metric, or a plain one named as reported where this rnnprune does not
    declare it (a measured metric newer than the catalogue of the installed version)."""
    try:
        return catalogue.metric(name, task)
    except MetricError:
        return Metric(name, "minimize" if name.endswith("_bytes") else "maximize", name)


def resolve_baseline(
    requested: str | None, variants: Sequence[str], methods: Mapping[str, str]
) -> str | None:
    """The baseline variant: one named exactly, or a method's only variant. With none asked for,
    global magnitude pruning where the runs have it. `methods` maps variant -> method."""
    name = requested or DEFAULT_BASELINE
    if name in variants:
        return name
    matches = sorted(v for v in variants if methods[v] == name)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ReportError(
            f"--baseline: {name} ran as {len(matches)} variants ({'; '.join(matches)}); name one of them"
        )
    if requested is None:
        return None
    raise ReportError(
        f"--baseline: no method {name!r} among these runs; they ran {', '.join(sorted(variants))}"
    )


def _finite(run: RunRecord, name: str) -> bool:
    return name in run.metrics and math.isfinite(run.metrics[name])


def _per_seed(runs: Sequence[RunRecord], name: str) -> dict[str, float]:
    """Quality per seed (the mean where one seed ran more than once, e.g. in two sweeps)."""
    values: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        values[seed_of(run)].append(run.metrics[name])
    return {seed: math.fsum(v) / len(v) for seed, v in values.items()}


def compare_by_seed(runs: Sequence[RunRecord], others: Sequence[RunRecord], name: str) -> Comparison:
    """`compare` of `runs` against `others` on metric `name`, over the seeds both ran."""
    mine, theirs = _per_seed(runs, name), _per_seed(others, name)
    seeds = sorted(s for s in mine if s in theirs)
    return compare([mine[s] for s in seeds], [theirs[s] for s in seeds])


def build_report(
    runs: Sequence[RunRecord], baseline: str | None = None, versus: tuple[str, str] | None = None
) -> ResultsReport:
    """Rows, comparisons, hypervolumes and axis importance of a sweep's finished runs; with
    `versus` (axis, value), each row against its own variant at that value of a shared axis."""
    task = task_of(runs)
    objectives = default_objectives(task)
    quality = catalogue.metric(objectives[0], task)
    usable = [m for r in runs for m in models_of(r) if _finite(m, quality.name) and _finite(m, "sparsity")]
    if not usable:
        raise ReportError(f"no finished run reports {quality.name} and sparsity: nothing to report")
    axes = swept_axes(usable)
    # The dense model each trial pruned (`dense_<quality>`): what the pruned rows are read against.
    dense = f"{DENSE_PREFIX}{quality.name}"
    present = [m for m in (dense, *ACCOUNTING, *MEASURED) if any(_finite(r, m) for r in usable)]
    columns = (quality, *(column_metric(m, task) for m in present))
    variants = {variant_of(r, axes): r.method for r in usable if not matched_to(r)}
    chosen = resolve_baseline(baseline, list(variants), variants)
    groups, lines = _groups(usable, axes)
    baseline_runs = {(t, a): members for (v, t, a), members in groups.items() if v == chosen}
    rows = []
    for (variant, target, axis_values), members in groups.items():
        members.sort(key=seed_of)
        values = {
            c.name: seed_stats(r.metrics[c.name] for r in members if _finite(r, c.name))
            for c in columns
            if any(_finite(r, c.name) for r in members)
        }
        comparison = None
        if chosen is not None and variant != chosen and not matched_to(members[0]):
            comparison = compare_by_seed(members, baseline_runs.get((target, axis_values), []), quality.name)
        line = lines.get(variant, "")
        rows.append(
            Row(variant, members[0].method, target, axis_values, tuple(members), values, comparison, line)
        )
    rows.sort(key=lambda r: (r.variant != chosen, r.variant, _values_key(r.axes), _as_number(r.target)))
    note = "" if chosen else f"{DEFAULT_BASELINE} is not among these runs; name a baseline with --baseline"
    if not chosen and baseline is None and any(r.method == DEFAULT_BASELINE for r in usable):
        note = (
            f"{DEFAULT_BASELINE} ran only as a matched baseline (compared at matched sparsity below); "
            "name another baseline with --baseline"
        )
    analysis = analyse(usable, objectives, task)
    return ResultsReport(
        task=task,
        quality=quality,
        columns=columns,
        axes=axes,
        rows=rows,
        baseline=chosen,
        baseline_note=note,
        objectives=analysis.objectives,
        reference=analysis.reference,
        hypervolume=analysis.hypervolume,
        hypervolume_per_seed=hypervolume_per_seed(usable, objectives, task),
        importance=axis_importance(usable, quality, axes),
        left_out=len({r.run_id for r in runs} - {r.run_id for r in usable}),
        matched=matched_comparisons(rows, usable, quality.name, axes),
        rankings=rankings(rows, quality),
        versus=None if versus is None else axis_comparisons(rows, axes, *versus, quality.name),
    )


def axis_comparisons(rows: Sequence[Row], axes: Axes, axis: str, value: str, quality: str) -> Versus:
    """Each row whose `axis` is not at `value` against the row of its variant, target and other
    axes at `value`, seed by seed. Raises ReportError naming --versus when the runs did not
    sweep that axis or never ran that value."""
    if axis not in axes.shared:
        swept = ", ".join(axes.shared) or "no axis besides the methods, targets and seeds"
        raise ReportError(f"--versus: {axis} is not a swept axis of these runs; they swept {swept}")
    index = axes.shared.index(axis)
    seen = sorted({row.axes[index] for row in rows}, key=lambda v: _values_key((v,)))
    if value not in seen:
        raise ReportError(f"--versus: {axis} never took the value {value!r} here; it took {', '.join(seen)}")
    at_value = {(r.variant, r.target, r.axes): r for r in rows if r.axes[index] == value}
    comparisons = []
    for row in rows:
        if row.axes[index] == value or quality not in row.values:
            continue
        key = (row.variant, row.target, (*row.axes[:index], value, *row.axes[index + 1 :]))
        reference = at_value.get(key)
        if reference is not None:
            comparison = compare_by_seed(row.runs, reference.runs, quality)
            comparisons.append(AxisComparison(row, reference, comparison))
    return Versus(axis, value, tuple(comparisons))


def _axis_values(run: RunRecord, axes: Axes) -> tuple[str, ...]:
    return tuple(run.params.get(k, "") for k in axes.shared)


def _groups(
    usable: Sequence[RunRecord], axes: Axes
) -> tuple[dict[tuple[str, str, tuple[str, ...]], list[RunRecord]], dict[str, str]]:
    """Runs by row: (variant, target, shared axis values), and the plot line of each matched
    row. A matched baseline joins the row of each reference it ran for, at the reference's
    target and axes (its own target is the sparsity the reference reached); its rows for the
    references of one method make one line."""
    references = {r.run_id: r for r in usable if not matched_to(r) and TICKET_KEY not in r.params}
    groups: dict[tuple[str, str, tuple[str, ...]], list[RunRecord]] = defaultdict(list)
    lines: dict[str, str] = {}
    for run in usable:
        label = variant_of(run, axes)
        found = [references[i] for i in matched_to(run) if i in references]
        if found:
            places = [(f"{label} matched to {variant_of(reference, axes)}", reference) for reference in found]
            lines.update({name: f"{label} matched to {at.method}" for name, at in places})
        elif matched_to(run):  # its references are not among these runs
            places = [(f"{label} matched", run)]
        else:
            places = [(label, run)]
        keys = [(name, at.params.get(TARGET, "?"), _axis_values(at, axes)) for name, at in places]
        for key in dict.fromkeys(keys):
            groups[key].append(run)
    return groups, lines


def matched_comparisons(
    rows: Sequence[Row], usable: Sequence[RunRecord], quality: str, axes: Axes
) -> tuple[MatchedComparison, ...]:
    """Each row against each baseline matched to its runs: the row's quality minus the baseline's,
    per seed (a mean where a seed ran more than once), paired through `matched_to`."""
    by_reference: dict[str, list[RunRecord]] = defaultdict(list)
    for run in usable:
        for reference in matched_to(run):
            by_reference[reference].append(run)
    found = []
    for row in rows:
        if matched_to(row.runs[0]) or TICKET_KEY in row.runs[0].params:
            continue
        pairs: dict[str, tuple[dict[str, list[float]], dict[str, list[float]]]] = defaultdict(
            lambda: (defaultdict(list), defaultdict(list))
        )
        for run in row.runs:
            for baseline in by_reference.get(run.run_id, []):
                mine, theirs = pairs[variant_of(baseline, axes)]
                mine[seed_of(run)].append(run.metrics[quality])
                theirs[seed_of(run)].append(baseline.metrics[quality])
        for name, (mine, theirs) in sorted(pairs.items()):
            seeds = sorted(mine)
            comparison = compare(
                [math.fsum(mine[s]) / len(mine[s]) for s in seeds],
                [math.fsum(theirs[s]) / len(theirs[s]) for s in seeds],
            )
            found.append(MatchedComparison(row.variant, row.target, row.axes, name, comparison))
    return tuple(found)


def _as_number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return math.inf


def _values_key(values: Sequence[str]) -> tuple[tuple[float, str], ...]:
    """Axis values in numeric order where they are numbers (4 before 16), else by text."""
    return tuple((_as_number(v), v) for v in values)


def hypervolume_per_seed(
    runs: Sequence[RunRecord], objectives: Sequence[str], task: str | None
) -> dict[str, SeedStats]:
    """Each method's hypervolume seed by seed (the front of one seed's runs), as a spread."""
    volumes: dict[str, list[float]] = defaultdict(list)
    by_seed: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        by_seed[seed_of(run)].append(run)
    for members in by_seed.values():
        for method, volume in analyse(members, objectives, task).hypervolume.items():
            volumes[method].append(volume)
    return {method: seed_stats(v) for method, v in volumes.items()}


def _axis_table(runs: Sequence[RunRecord], axes: Axes) -> dict[str, list[str]]:
    """Per run, the value of each axis that varies: the variant, the target, the shared axes."""
    table = {
        METHOD_AXIS: [variant_of(r, axes) for r in runs],
        TARGET: [r.params.get(TARGET, "") for r in runs],
        **{k: [r.params.get(k, "") for r in runs] for k in axes.shared},
    }
    return {k: v for k, v in table.items() if len(set(v)) > 1}


def axis_importance(runs: Sequence[RunRecord], quality: Metric, axes: Axes) -> Importance:
    """fANOVA (Optuna's evaluator, seeded) over the trial table: one trial per run, the swept axes
    as its params, quality as its value. Numeric axes are ranges, others categories."""
    table = _axis_table(runs, axes)
    if len(runs) < IMPORTANCE_MIN_TRIALS:
        return Importance(
            {}, len(runs), f"not computed: {len(runs)} runs (fANOVA needs {IMPORTANCE_MIN_TRIALS})"
        )
    if len(table) < 2:
        varied = ", ".join(table) or "none"
        return Importance({}, len(runs), f"not computed: fewer than two axes vary (varied: {varied})")
    import optuna
    from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution

    distributions: dict[str, BaseDistribution] = {}
    columns: dict[str, list[float | str]] = {}
    for name, values in table.items():
        if all(_as_number(v) != math.inf for v in values):
            numbers = [float(v) for v in values]
            distributions[name] = FloatDistribution(min(numbers), max(numbers))
            columns[name] = list(numbers)
        else:
            distributions[name] = CategoricalDistribution(sorted(set(values)))
            columns[name] = list(values)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line on the console
    study = optuna.create_study(direction="maximize" if quality.maximize else "minimize")
    study.add_trials(
        optuna.trial.create_trial(
            params={name: column[index] for name, column in columns.items()},
            distributions=distributions,
            value=run.metrics[quality.name],
        )
        for index, run in enumerate(runs)
    )
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED)
    importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
    note = (
        f"fANOVA (Optuna's FanovaImportanceEvaluator, seed {IMPORTANCE_SEED}) over {len(runs)} runs, "
        f"value {quality.name}; a method's own parameters are part of the method axis, and seeds "
        "are replicates, not an axis"
    )
    return Importance(dict(importances), len(runs), note)
