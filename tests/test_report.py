"""`rnnprune report`: the tables, tests of significance, hypervolumes and axis importance of a
results page, from synthetic runs; the page and its HTML artifact from a small SQLite store."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from mlflow import MlflowClient
from scipy import stats as scipy_stats

from rnnprune import catalogue
from rnnprune.cli import main
from rnnprune.pareto import RunRecord
from rnnprune.provenance import Provenance
from rnnprune.report import ReportError, Row, build_report, compare
from rnnprune.results_page import Section, write_page
from rnnprune.tracking import ChildRun, ensure_experiment, start_parent_run

# Per seed, a small offset shared by every method, so seeds differ and pairing matters.
SEED_OFFSET = (0.004, -0.002, 0.001, -0.003, 0.000, 0.002)


def record(index: int, method: str, target: float, seed: int, quality: float, **extra: object) -> RunRecord:
    task = str(extra.pop("task", "seq_mnist"))
    quality_name = str(extra.pop("quality_name", "test_accuracy"))
    params = {"pruning.method": method, "pruning.target_sparsity": str(target), "seed": str(seed)}
    params.update({k: str(v) for k, v in extra.items() if not k.startswith("metric:")})
    metrics = {quality_name: quality, "sparsity": target + 0.001, "nonzero_params": 4000 * (1 - target)}
    metrics.update({k.removeprefix("metric:"): float(v) for k, v in extra.items() if k.startswith("metric:")})
    return RunRecord(
        f"run{index}",
        "1",
        f"{method}-{target}-{seed}",
        {**params, "trial_hash": f"h{index}", "task.name": task},
        metrics,
        {"method": method, "task": task, "seed": str(seed)},
    )


def classification_runs() -> list[RunRecord]:
    """global_magnitude and random with six seeds, lattice with three, one_shot with one; each
    method reacts to a seed's offset by its own factor, so paired differences have spread."""
    runs = []
    for method, base, seeds, factor in (
        ("global_magnitude", 0.95, 6, 1.0),
        ("random", 0.80, 6, 2.0),
        ("lattice", 0.93, 3, 0.5),
        ("one_shot", 0.90, 1, 1.0),
    ):
        for target, drop in ((0.5, 0.0), (0.9, 0.1)):
            for seed in range(seeds):
                quality = base - drop + SEED_OFFSET[seed] * factor
                runs.append(record(len(runs), method, target, seed, quality))
    return runs


def by_label(rows: list[Row]) -> dict[tuple[str, str], Row]:
    return {(r.variant, r.target): r for r in rows}


def test_rows_hold_the_seed_spread_and_the_baseline_comes_first() -> None:
    report = build_report(classification_runs())
    assert report.quality.name == "test_accuracy" and report.baseline == "global_magnitude"
    assert [c.name for c in report.columns] == ["test_accuracy", "sparsity", "nonzero_params"]
    assert [(r.variant, r.target) for r in report.rows[:2]] == [
        ("global_magnitude", "0.5"),
        ("global_magnitude", "0.9"),
    ]
    rows = by_label(report.rows)
    assert len(rows) == 8
    random_low = rows[("random", "0.5")]
    expected = [0.80 + 2 * offset for offset in SEED_OFFSET]
    assert random_low.n == 6
    assert random_low.values["test_accuracy"].mean == pytest.approx(sum(expected) / 6)
    assert random_low.values["test_accuracy"].std == pytest.approx(scipy_stats.tstd(expected))
    assert rows[("one_shot", "0.9")].values["test_accuracy"].n == 1
    assert rows[("global_magnitude", "0.5")].comparison is None  # the baseline itself


def test_paired_tests_match_scipy_and_say_when_n_is_too_small() -> None:
    rows = by_label(build_report(classification_runs()).rows)
    random_low = rows[("random", "0.5")].comparison
    assert random_low is not None and random_low.pairs == 6
    mine = [0.80 + 2 * o for o in SEED_OFFSET]
    baseline = [0.95 + o for o in SEED_OFFSET]
    assert random_low.difference is not None
    assert random_low.difference.mean == pytest.approx(-0.15 + sum(SEED_OFFSET) / 6)
    assert random_low.t_test.p_value == pytest.approx(scipy_stats.ttest_rel(mine, baseline).pvalue)
    assert random_low.wilcoxon.p_value == pytest.approx(scipy_stats.wilcoxon(mine, baseline).pvalue)
    assert random_low.t_test.p_value < 1e-6  # a 0.15 drop against spreads of a few thousandths
    # Three seeds: a t-test, but no Wilcoxon (its exact p cannot go below 2/2**3 = 0.25).
    lattice = rows[("lattice", "0.5")].comparison
    assert lattice is not None and lattice.pairs == 3
    assert lattice.t_test.p_value is not None
    assert lattice.wilcoxon.p_value is None and lattice.wilcoxon.cell() == (
        "n too small (3 non-zero: p ≥ 0.25 at best)"
    )
    single = rows[("one_shot", "0.5")].comparison
    assert single is not None and single.pairs == 1
    assert single.t_test.cell() == "n too small (1 pair)"


def test_differences_without_spread_or_without_change_get_no_p_value() -> None:
    constant = compare([0.9, 0.8, 0.7], [0.8, 0.7, 0.6])  # every seed 0.1 better
    assert constant.t_test.p_value is None and constant.t_test.note == "no spread in the differences"
    same = compare([0.9] * 7, [0.9] * 7)
    assert same.wilcoxon.note == "all differences zero" and same.t_test.p_value is None
    nothing = compare([], [])
    assert nothing.pairs == 0 and nothing.difference is None and nothing.t_test.note == "no paired seeds"


def test_a_lower_is_better_task_reads_its_own_direction() -> None:
    runs = []
    for method, error in (("global_magnitude", 0.02), ("random", 0.08)):
        for target in (0.5, 0.9):
            for seed in range(6):
                mse = error * (2 if target == 0.9 else 1) + SEED_OFFSET[seed] / 10
                runs.append(
                    record(len(runs), method, target, seed, mse, task="adding", quality_name="test_mse")
                )
    report = build_report(runs)
    assert report.quality.name == "test_mse" and not report.quality.maximize
    comparison = by_label(report.rows)[("random", "0.9")].comparison
    assert comparison is not None and comparison.difference is not None
    assert comparison.difference.mean == pytest.approx(0.12)  # worse: more error
    # Lower error covers more of what the chance-level reference (1/6) bounds.
    assert report.hypervolume["global_magnitude"] > report.hypervolume["random"]
    assert report.hypervolume_per_seed["random"].n == 6


def test_own_method_parameters_make_variants_and_shared_axes_are_matched() -> None:
    runs = []
    for lr in (0.01, 0.02):
        for seed in range(2):
            runs.append(record(len(runs), "global_magnitude", 0.9, seed, 0.9, **{"training.lr": lr}))
            for granularity in ("gate", "row"):
                runs.append(
                    record(
                        len(runs),
                        "gate_balanced_magnitude",
                        0.9,
                        seed,
                        0.88 if granularity == "row" else 0.86,
                        **{"training.lr": lr, "pruning.params.granularity": granularity},
                    )
                )
        runs.append(record(len(runs), "random", 0.9, 0, 0.5, **{"training.lr": 0.05}))  # no baseline there
    report = build_report(runs)
    assert report.axes.shared == ("training.lr",)
    labels = {(r.variant, r.axes) for r in report.rows}
    assert ("gate_balanced_magnitude (granularity=row)", ("0.02",)) in labels
    row = next(r for r in report.rows if r.variant.endswith("(granularity=row)") and r.axes == ("0.01",))
    assert row.comparison is not None and row.comparison.pairs == 2
    assert row.comparison.difference is not None and row.comparison.difference.mean == pytest.approx(-0.02)
    lonely = next(r for r in report.rows if r.variant == "random")
    assert lonely.comparison is not None and lonely.comparison.pairs == 0
    with pytest.raises(ReportError, match=r"--baseline: gate_balanced_magnitude ran as 2 variants"):
        build_report(runs, baseline="gate_balanced_magnitude")
    chosen = build_report(runs, baseline="gate_balanced_magnitude (granularity=gate)")
    assert chosen.baseline == "gate_balanced_magnitude (granularity=gate)"
    with pytest.raises(ReportError, match=r"--baseline: no method 'magnitude' among these runs"):
        build_report(runs, baseline="magnitude")


def test_no_global_magnitude_means_no_comparison_with_a_note() -> None:
    runs = [r for r in classification_runs() if r.method != "global_magnitude"]
    report = build_report(runs)
    assert report.baseline is None and all(r.comparison is None for r in report.rows)
    assert "--baseline" in report.baseline_note


def test_axis_importance_ranks_the_axis_that_moves_quality() -> None:
    runs = []
    for method, shift in (("global_magnitude", 0.0), ("random", -0.01)):
        for target, drop in ((0.5, 0.0), (0.8, 0.2), (0.9, 0.4)):
            for seed in range(3):
                runs.append(record(len(runs), method, target, seed, 0.95 - drop + shift + SEED_OFFSET[seed]))
    importance = build_report(runs).importance
    assert set(importance.values) == {"method", "pruning.target_sparsity"}
    assert sum(importance.values.values()) == pytest.approx(1.0)
    assert importance.values["pruning.target_sparsity"] > importance.values["method"]
    assert importance.trials == 18
    assert build_report(runs).importance.values == importance.values  # seeded: the same every time

    one_axis = build_report([r for r in runs if r.method == "random"]).importance
    assert one_axis.values == {} and "fewer than two axes vary" in one_axis.note
    few = build_report(runs[:3]).importance
    assert few.values == {} and "3 runs" in few.note


def test_measured_columns_and_the_speed_plot_appear_only_when_runs_report_them(tmp_path: Path) -> None:
    provenance = Provenance("rnnprune report demo", "abc1234", "CPU (2 cores)", "2026-01-01 00:00 UTC")
    plain = write_page(
        [Section(build_report(classification_runs()), "Sweep s")], tmp_path / "plain.md", "Plain", provenance
    )
    assert [p.name for p in plain.plots] == ["plain_quality_sparsity.png"]
    assert "no speed plot" in plain.markdown.read_text()
    measured = [
        record(
            i,
            r.method,
            float(r.params["pruning.target_sparsity"]),
            int(r.params["seed"]),
            0.9,
            **{
                "metric:speedup_b1": 2.0 + i % 3,
                "metric:model_bytes": 1000 + i,
            },
        )
        for i, r in enumerate(classification_runs())
    ]
    report = build_report(measured)
    assert [c.name for c in report.columns][-2:] == ["speedup_b1", "model_bytes"]
    page = write_page([Section(report, "Sweep s")], tmp_path / "measured.md", "Measured", provenance)
    assert [p.name for p in page.plots] == ["measured_quality_sparsity.png", "measured_quality_speedup.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in page.plots)
    text = page.markdown.read_text()
    assert "![test accuracy against measured speed-up" in text
    assert catalogue.metric("speedup_b1").label in text  # the column, by its catalogue label
    assert text.count("data:image") == 0 and page.html.count("data:image/png;base64,") == 2


def budget_runs() -> list[RunRecord]:
    """Two methods at 4 and 16 pruning epochs, six seeds: the longer budget gains 0.01 for
    global_magnitude and 0.03 for rigl, and the seed offsets weigh more at 16 epochs."""
    runs = []
    for method, base in (("global_magnitude", 0.90), ("rigl", 0.85)):
        for epochs in (4, 16):
            gain = 0.0 if epochs == 4 else (0.03 if method == "rigl" else 0.01)
            for seed in range(6):
                quality = base + gain + SEED_OFFSET[seed] * (1 + epochs / 16)
                runs.append(
                    record(
                        len(runs), method, 0.95, seed, quality, **{"pruning.schedule.prune_epochs": epochs}
                    )
                )
    return runs


def test_versus_compares_each_method_with_itself_at_the_reference_value_of_an_axis(tmp_path: Path) -> None:
    report = build_report(budget_runs(), versus=("pruning.schedule.prune_epochs", "4"))
    assert report.versus is not None
    compared = report.versus.comparisons
    assert [(c.row.variant, c.row.axes, c.reference.variant, c.reference.axes) for c in compared] == [
        ("global_magnitude", ("16",), "global_magnitude", ("4",)),
        ("rigl", ("16",), "rigl", ("4",)),
    ]
    offset = sum(SEED_OFFSET) / len(SEED_OFFSET)
    for change, comparison in zip((0.01, 0.03), (c.comparison for c in compared), strict=True):
        assert comparison.pairs == 6 and comparison.difference is not None
        assert comparison.difference.mean == pytest.approx(change + 0.75 * offset)
    long, short = (
        [r.metrics["test_accuracy"] for r in compared[1].row.runs],
        [r.metrics["test_accuracy"] for r in compared[1].reference.runs],
    )
    assert compared[1].comparison.t_test.p_value == pytest.approx(scipy_stats.ttest_rel(long, short).pvalue)
    provenance = Provenance("rnnprune report budget", "abc1234", "CPU (2 cores)", "2026-01-01 00:00 UTC")
    page = write_page([Section(report, "Sweep b")], tmp_path / "budget.md", "Budget", provenance)
    rows = table_rows(
        page.markdown.read_text().split("## Paired differences to pruning.schedule.prune_epochs=4")[1],
        "method",
    )
    assert [row[:4] for row in rows] == [["global_magnitude", "0.95", "16", "6"], ["rigl", "0.95", "16", "6"]]
    assert build_report(budget_runs()).versus is None


def test_versus_names_an_axis_the_runs_did_not_sweep_or_a_value_they_never_took() -> None:
    with pytest.raises(
        ReportError,
        match=r"--versus: training.lr is not a swept axis of these runs; they swept pruning.schedule.prune",
    ):
        build_report(budget_runs(), versus=("training.lr", "0.1"))
    with pytest.raises(
        ReportError,
        match=r"--versus: pruning.schedule.prune_epochs never took the value '8' here; it took 4, 16",
    ):
        build_report(budget_runs(), versus=("pruning.schedule.prune_epochs", "8"))


def matched_runs() -> list[RunRecord]:
    """Lattice at two named variants and two fine-tunes over three seeds; global magnitude and
    random matched to each lattice run at the sparsity it reached (not the lattice target)."""
    runs: list[RunRecord] = []
    for name, target, reached, accuracy in (
        ("binary q=0.5", 0.5, 0.5003, 0.96),
        ("rho=0.05", 0.99, 0.9453, 0.2),
    ):
        for finetune in (0, 1):
            for seed in range(3):
                lattice = record(
                    len(runs),
                    "lattice",
                    target,
                    seed,
                    accuracy + 0.01 * finetune + SEED_OFFSET[seed],
                    **{"pruning.params.mode": name.split()[0], "pruning.schedule.finetune_epochs": finetune},
                )
                lattice = replace(
                    lattice,
                    tags={**lattice.tags, "variant": name},
                    metrics={**lattice.metrics, "sparsity": reached},
                )
                runs.append(lattice)
                for baseline, gain in (("global_magnitude", 0.02), ("random", -0.1)):
                    # Seed-dependent gaps, so the paired differences have spread.
                    quality = lattice.metrics["test_accuracy"] + gain * (1 + seed)
                    matched = record(
                        len(runs),
                        baseline,
                        reached,
                        seed,
                        quality,
                        **{"pruning.schedule.finetune_epochs": finetune},
                    )
                    runs.append(replace(matched, tags={**matched.tags, "matched_to": lattice.run_id}))
    return runs


def test_matched_baselines_pair_with_the_run_they_were_matched_to() -> None:
    report = build_report(matched_runs())
    assert report.axes.shared == ("pruning.schedule.finetune_epochs",)
    assert report.axes.own == {}  # what a named variant sets is its name, not an axis
    # global_magnitude ran only matched: no plain baseline, and the page says where it went
    assert report.baseline is None and "only as a matched baseline" in report.baseline_note
    labels = {(r.variant, r.target, r.axes) for r in report.rows}
    assert ("lattice (binary q=0.5)", "0.5", ("1",)) in labels
    assert ("random matched to lattice (rho=0.05)", "0.99", ("0",)) in labels  # at the reference's target
    assert len(report.rows) == 12 and all(r.n == 3 for r in report.rows)
    # A baseline's rows for every lattice point make one plot line per fine-tune.
    assert {r.series for r in report.rows if r.method == "random"} == {
        ("random matched to lattice", ("0",)),
        ("random matched to lattice", ("1",)),
    }
    matched = {(m.variant, m.axes, m.baseline): m.comparison for m in report.matched}
    assert len(matched) == 8
    against_random = matched[("lattice (rho=0.05)", ("1",), "random")]
    assert against_random.pairs == 3 and against_random.difference is not None
    assert against_random.difference.mean == pytest.approx(0.1 * (1 + 2 + 3) / 3)  # lattice − random
    expected = scipy_stats.ttest_rel([0.0] * 3, [-0.1, -0.2, -0.3]).pvalue
    assert against_random.t_test.p_value == pytest.approx(expected)
    against_magnitude = matched[("lattice (binary q=0.5)", ("0",), "global_magnitude")]
    assert against_magnitude.difference is not None and against_magnitude.difference.mean == pytest.approx(
        -0.04
    )


def test_matched_differences_are_a_section_of_the_page(tmp_path: Path) -> None:
    provenance = Provenance("rnnprune report lattice", "abc1234", "CPU (2 cores)", "2026-01-01 00:00 UTC")
    page = write_page(
        [Section(build_report(matched_runs()), "Sweep s")], tmp_path / "lattice.md", "Lattice", provenance
    )
    text = page.markdown.read_text()
    assert "## Paired differences at matched sparsity" in text
    rows = table_rows(
        text, "method | target | pruning.schedule.finetune_epochs | baseline at its reached sparsity"
    )
    assert len(rows) == 8
    assert rows[0][:5] == ["lattice (binary q=0.5)", "0.5", "0", "global_magnitude", "3"]
    assert "No comparison: global_magnitude ran only as a matched baseline" in text


def test_a_lottery_trial_is_two_rows_the_trained_model_and_the_ticket() -> None:
    runs = []
    for variant, lottery, trained, ticket in (
        ("torus DoG", True, 60.0, 90.0),
        ("no penalty", False, 77.0, 0),
    ):
        for seed in range(3):
            extra: dict[str, object] = {
                "pruning.lottery": lottery,
                "task": "navigation",
                "quality_name": "test_error_cm",
            }
            if lottery:
                extra["metric:sparse_test_error_cm"] = trained + seed
            run = record(len(runs), "moduli", 0.9, seed, (ticket if lottery else trained) + seed, **extra)
            runs.append(replace(run, tags={**run.tags, "variant": variant}))
    report = build_report(runs, baseline="moduli (no penalty)")
    rows = by_label(report.rows)
    assert set(rows) == {
        ("moduli (no penalty)", "0.9"),
        ("moduli (torus DoG)", "0.9"),
        ("moduli (torus DoG), lottery ticket", "0.9"),
    }
    assert rows[("moduli (torus DoG)", "0.9")].values["test_error_cm"].mean == pytest.approx(61.0)
    assert rows[("moduli (torus DoG), lottery ticket", "0.9")].values["test_error_cm"].mean == pytest.approx(
        91.0
    )
    trained = rows[("moduli (torus DoG)", "0.9")].comparison
    assert trained is not None and trained.difference is not None
    assert trained.difference.mean == pytest.approx(-17.0)  # the trained model, not the ticket, vs no penalty
    assert report.axes.shared == () and report.left_out == 0


# ---- through the CLI, against a SQLite store ---------------------------------------------


def add_sweep(
    uri: str, tmp_path: Path, sweep: str, task: str = "seq_mnist", quality_name: str = "test_accuracy"
) -> str:
    """A finished sweep of two methods, two targets and six seeds in the store; its parent run id.
    Quality is the task's: accuracies around 0.95 and 0.85, or (lower is better) errors."""
    client = MlflowClient(uri)
    experiment_id = ensure_experiment(client, "report-test", uri, tmp_path)
    parent = start_parent_run(
        client, experiment_id, sweep, {"sweep": sweep, "git_commit": "0123456789ab"}, None
    )
    index = 0
    for method, base in (("global_magnitude", 0.95), ("random", 0.85)):
        for target in (0.5, 0.9):
            for seed in range(6):
                config = {
                    "task": {"name": task},
                    "pruning": {"method": method, "target_sparsity": target},
                    "seed": seed,
                }
                run = ChildRun(
                    uri,
                    experiment_id,
                    parent,
                    f"{sweep}-trial-{index}",
                    f"{method}-{target}-{seed}",
                    params={**config, "trial_hash": f"{sweep}h{index}"},
                    tags={"method": method, "task": task, "seed": str(seed), "sweep": sweep},
                )
                quality = base - (0.1 if target == 0.9 else 0.0) + SEED_OFFSET[seed]
                dense = 0.99 + SEED_OFFSET[seed]  # each seed's dense model, shared by its trials
                if quality_name != "test_accuracy":
                    quality, dense = 1 - quality, 1 - dense
                metrics = {quality_name: quality, f"dense_{quality_name}": dense, "sparsity": target}
                run.log_metrics({**metrics, "nonzero_params": 100.0}, step=1)
                run.finish()
                index += 1
    client.set_terminated(parent, "FINISHED")
    return parent


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, str]:
    """One sweep, s1, of two methods, two targets and six seeds; returns (tracking URI, parent run id)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, add_sweep(uri, tmp_path, "s1")


def table_rows(text: str, first_header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header starts with `first_header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_report_command_writes_the_page_and_logs_its_html_to_the_parent_run(
    store: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, parent = store
    output = tmp_path / "results" / "s1.md"
    argv = ["report", "s1", "--tracking-uri", uri, "--output", str(output), "--baseline", "global_magnitude"]
    assert main(argv) == 0
    assert "report/s1.html" in capsys.readouterr().out
    text = output.read_text()
    assert text.startswith("# Results of sweep s1\n")
    # Provenance: the exact command, the commit (or version), the machine and the date.
    assert f"Generated by `rnnprune {' '.join(argv)}`" in text
    assert re.search(r"Commit \S+.*; machine .+ \(\d+ cores\); \d{4}-\d\d-\d\d \d\d:\d\d UTC\.", text)
    assert "This page is generated by `rnnprune report`; do not edit it." in text
    assert "Sweep s1 (trials ran at commit 0123456): 24 finished trial runs" in text  # the sweep's commit
    results = table_rows(text, "method")
    assert [row[:3] for row in results] == [
        ["global_magnitude", "0.5", "6"],
        ["global_magnitude", "0.9", "6"],
        ["random", "0.5", "6"],
        ["random", "0.9", "6"],
    ]
    assert results[2][3] == "0.8503 ± 0.0026"  # 0.85 + the offsets: mean 0.00033, std 0.00258
    assert "| seeds | test accuracy | dense test accuracy |" in text  # what each row pruned from
    assert results[2][4] == "0.9903 ± 0.0026"
    paired = table_rows(text, "method | target | pairs")
    assert [row[:3] for row in paired] == [["random", "0.5", "6"], ["random", "0.9", "6"]]
    assert paired[0][3] == "-0.1000 ± 0.0000" and paired[0][4] == "no spread in the differences"
    assert float(paired[0][5]) == pytest.approx(
        0.03125, abs=1e-4
    )  # six pairs, all one sign: the exact 2/2**6
    ranking = table_rows(text, "rank")  # the first target's: global_magnitude ahead of random
    assert [row[:3] for row in ranking] == [["1", "global_magnitude", "6"], ["2", "random", "6"]]
    assert ranking[0][5] == "+0.1000 ± 0.0000" and ranking[0][7] == "n/a"  # no spread: no t-test
    hypervolumes = {row[0]: row for row in table_rows(text, "method | hypervolume of the seed means")}
    assert set(hypervolumes) == {"all", "global_magnitude", "random"}
    assert (tmp_path / "results" / "s1_quality_sparsity.png").read_bytes().startswith(b"\x89PNG")
    assert "](s1_quality_sparsity.png)" in text
    importance = {row[0] for row in table_rows(text, "axis")}
    assert importance == {"method (with its own parameters)", "target sparsity"}

    client = MlflowClient(uri)
    assert "report/s1.html" in {a.path for a in client.list_artifacts(parent, "report")}
    page = (Path(client.download_artifacts(parent, "report/s1.html", str(tmp_path)))).read_text()
    assert "<table>" in page and page.count("data:image/png;base64,") == 1 and "Wilcoxon p" in page


def test_several_sweeps_make_one_page_with_a_part_each_in_its_own_quality(
    store: tuple[str, str], tmp_path: Path
) -> None:
    uri, first_parent = store
    second_parent = add_sweep(uri, tmp_path, "s2", task="adding", quality_name="test_mse")
    output = tmp_path / "results" / "both.md"
    argv = ["report", "s1", "s2", "--tracking-uri", uri, "--output", str(output), "--baseline", "random"]
    assert main(argv) == 0
    text = output.read_text()
    assert text.startswith("# Results of sweep s1 and sweep s2\n")
    assert text.count("Generated by `") == 1 and text.count("This page is generated by") == 1
    first, second = text.split("\n## Sweep s1\n")[1].split("\n## Sweep s2\n")
    # Each part is a whole report one heading level down, in its own task's quality metric.
    for part in (first, second):
        assert "\n### Results per method and target\n" in part and "\n#### Target 0.5\n" in part
        assert "\n## " not in part.split("\n---\n")[0]
    assert "task seq_mnist; quality is test accuracy (higher is better)" in first
    assert "task adding; quality is " in second and "(lower is better)" in second
    assert "](both_1_quality_sparsity.png)" in first and "](both_2_quality_sparsity.png)" in second
    paired = table_rows(second, "method | target | pairs")
    assert [row[:3] for row in paired] == [["global_magnitude", "0.5", "6"], ["global_magnitude", "0.9", "6"]]
    assert paired[0][3] == "-0.1000 ± 0.0000"  # lower error than random: better, in the metric's units
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [
        "both.md",
        "both_1_quality_sparsity.png",
        "both_2_quality_sparsity.png",
    ]
    client = MlflowClient(uri)
    for parent in (first_parent, second_parent):
        html = Path(client.download_artifacts(parent, "report/both.html", str(tmp_path / parent))).read_text()
        assert html.count("data:image/png;base64,") == 2 and "Sweep s2" in html


def test_several_sweeps_need_an_output_and_a_bad_name_writes_nothing(
    store: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, _ = store
    assert main(["report", "s1", "s1", "--tracking-uri", uri]) == 2
    assert capsys.readouterr().err == (
        "error: --output: several sweeps make one page; name its file (for example docs/results/X.md)\n"
    )
    out = tmp_path / "page.md"
    assert main(["report", "s1", "nothing", "--tracking-uri", uri, "--output", str(out)]) == 2
    assert "nothing" in capsys.readouterr().err and not out.exists()
    assert not list(tmp_path.glob("page_*.png"))


def test_the_report_reads_a_lottery_trials_trained_model_from_the_store(tmp_path: Path) -> None:
    from rnnprune.publish import read_runs

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = ensure_experiment(client, "lottery", uri, tmp_path)
    parent = start_parent_run(client, experiment_id, "l1", {"sweep": "l1"}, None)
    config = {"task": {"name": "seq_mnist"}, "pruning": {"method": "moduli", "lottery": True}, "seed": 0}
    run = ChildRun(uri, experiment_id, parent, "t0", "lottery", params=config, tags={"method": "moduli"})
    metrics = {"test_accuracy": 0.5, "sparse_test_accuracy": 0.9, "sparsity": 0.9, "per_tensor.x": 0.1}
    run.log_metrics(metrics, step=1)
    run.finish()
    _, _, runs = read_runs(uri, "l1")
    assert runs[0].params["pruning.lottery"] == "True"
    assert set(runs[0].metrics) == {"test_accuracy", "sparse_test_accuracy", "sparsity"}
    rows = by_label(build_report(runs).rows)
    assert rows[("moduli", "?")].values["test_accuracy"].mean == 0.9
    assert rows[("moduli, lottery ticket", "?")].values["test_accuracy"].mean == 0.5


def test_report_input_errors_are_one_line(
    store: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, _ = store
    assert main(["report", "s1", "--tracking-uri", uri, "--output", str(tmp_path / "page.html")]) == 2
    assert capsys.readouterr().err == (
        f"error: --output: {tmp_path / 'page.html'} is not a Markdown file; give a path ending in .md\n"
    )
    out = str(tmp_path / "x.md")
    assert main(["report", "s1", "--tracking-uri", uri, "--output", out, "--baseline", "lattice"]) == 2
    assert "--baseline: no method 'lattice' among these runs" in capsys.readouterr().err
    assert not Path(out).exists()
    assert main(["report", "nothing", "--tracking-uri", uri, "--output", out]) == 2
    capsys.readouterr()
    assert main(["report", "s1", "--tracking-uri", uri, "--output", out, "--versus", "prune_epochs"]) == 2
    assert capsys.readouterr().err == (
        "error: --versus: 'prune_epochs' is not AXIS=VALUE; give one, e.g. pruning.schedule.prune_epochs=4\n"
    )
    assert main(["report", "s1", "--tracking-uri", uri, "--output", out, "--versus", "seed=1"]) == 2
    assert "--versus: seed is not a swept axis of these runs" in capsys.readouterr().err
    assert not Path(out).exists()


@pytest.mark.slow
def test_report_of_a_real_tiny_sweep(sweep_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import write_spec

    from rnnprune.sweep.runner import run_sweep

    axes = {"pruning.target_sparsity": [0.5, 0.9], "seed": [0, 1]}
    spec = write_spec(
        sweep_dir, "tiny", [], ["global_magnitude", "random"], axes=axes, max_concurrent_trials=2
    )
    outcome = run_sweep(spec, workdir=sweep_dir, num_cpus=2)
    assert outcome.errors == 0
    output = sweep_dir / "results" / "tiny.md"
    assert main(["report", "tiny", "--tracking-uri", outcome.tracking_uri, "--output", str(output)]) == 0
    text = output.read_text()
    assert [row[:3] for row in table_rows(text, "method")] == [
        ["global_magnitude", "0.5", "2"],
        ["global_magnitude", "0.9", "2"],
        ["random", "0.5", "2"],
        ["random", "0.9", "2"],
    ]
    paired = table_rows(text, "method | target | pairs")
    assert [row[:3] for row in paired] == [["random", "0.5", "2"], ["random", "0.9", "2"]]
    assert all(row[5].startswith("n too small") for row in paired)  # two seeds: no Wilcoxon
    assert {row[0] for row in table_rows(text, "method | hypervolume of the seed means")} == {
        "all",
        "global_magnitude",
        "random",
    }
    assert (sweep_dir / "results" / "tiny_quality_sparsity.png").read_bytes().startswith(b"\x89PNG")
    client = MlflowClient(outcome.tracking_uri)
    artifacts = {a.path for a in client.list_artifacts(outcome.parent_run_id, "report")}
    assert artifacts == {"report/tiny.html"}


def test_a_tracking_uri_with_credentials_is_not_printed_on_the_page() -> None:
    from rnnprune.provenance import current

    made = current(["rnnprune", "report", "s", "--tracking-uri", "https://alice:secret@mlflow.example:5000"])
    assert "secret" not in made.command and "https://***@mlflow.example:5000" in made.command


def test_rankings_order_each_target_best_first_and_test_each_against_the_next() -> None:
    report = build_report(classification_runs())
    assert [r.target for r in report.rankings] == ["0.5", "0.9"]
    first = report.rankings[0]
    assert [r.row.variant for r in first.ranked] == ["global_magnitude", "lattice", "one_shot", "random"]
    top, _, third, last = first.ranked
    # global_magnitude against lattice: the three seeds lattice ran, 0.95 - 0.93 plus offsets.
    assert top.versus_next is not None and top.versus_next.pairs == 3
    assert top.versus_next.difference is not None and top.versus_next.difference.mean == pytest.approx(
        0.02 + 0.5 * sum(SEED_OFFSET[:3]) / 3
    )
    assert third.versus_next is not None and third.versus_next.pairs == 1  # one_shot ran one seed
    assert third.versus_next.t_test.p_value is None
    assert last.versus_next is None
    assert all(not r.short for r in report.rankings)


def test_a_method_short_of_its_target_is_listed_apart_not_ranked() -> None:
    runs = classification_runs()
    short = [r for r in runs if r.method == "lattice" and r.params["pruning.target_sparsity"] == "0.9"]
    for run in short:
        run.metrics["sparsity"] = 0.82  # type: ignore[index]
    ranking = build_report(runs).rankings[1]
    assert ranking.target == "0.9"
    assert [r.row.variant for r in ranking.ranked] == ["global_magnitude", "one_shot", "random"]
    assert [r.variant for r in ranking.short] == ["lattice"]
