"""`rnnprune pick` flags and `rnnprune pareto --help`: quality bounds in the metric's own
direction, the deprecated accuracy flags mapped onto them (no MLflow store needed)."""

from __future__ import annotations

import pytest

from rnnprune import catalogue
from rnnprune.catalogue import MetricError
from rnnprune.cli import _constraint, build_parser, main
from rnnprune.pareto import Constraint


def constraint_of(*flags: str) -> Constraint:
    return _constraint(build_parser().parse_args(["pick", "sweep", *flags]))


def test_quality_flags_keep_the_metric_open_until_the_runs_name_their_task(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert constraint_of("--min-quality", "0.9") == Constraint("min_quality", 0.9, None)
    assert constraint_of("--max-quality", "10", "--quality-metric", "test_error_cm") == Constraint(
        "max_quality", 10.0, "test_error_cm"
    )
    assert constraint_of("--max-params", "500") == Constraint("max_params", 500.0, None)
    assert capsys.readouterr().err == ""  # no deprecation for the new flags


def test_deprecated_accuracy_flags_map_to_the_quality_flags_with_one_line_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert constraint_of("--min-accuracy", "0.95") == Constraint("min_quality", 0.95, "test_accuracy")
    assert capsys.readouterr().err == "warning: --min-accuracy is deprecated; use --min-quality\n"
    # The old flag meant "at least this good": at most this much error for a lower-is-better metric.
    assert constraint_of("--min-accuracy", "10", "--accuracy-metric", "test_error_cm") == Constraint(
        "max_quality", 10.0, "test_error_cm"
    )
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "warning: --accuracy-metric is deprecated; use --quality-metric",
        "warning: --min-accuracy is deprecated; use --max-quality",
    ]
    with pytest.raises(MetricError, match="--quality-metric only"):
        constraint_of("--min-sparsity", "0.9", "--accuracy-metric", "a", "--quality-metric", "b")


def test_a_wrong_direction_bound_names_the_flag_to_use() -> None:
    with pytest.raises(ValueError) as raised:
        Constraint("min_quality", 10.0, "test_error_cm").check(catalogue.metric("test_error_cm"))
    assert str(raised.value) == (
        "--min-quality: test_error_cm is lower-is-better, so bound it with --max-quality 10"
    )


def test_pareto_help_lists_the_catalogue_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["pareto", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name in ("theoretical_speedup", "nonzero_params", "error_cm", "perplexity", "mse"):
        assert name in out


def test_speed_and_size_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert constraint_of("--min-speedup", "2") == Constraint("min_speedup", 2.0, None, 1)
    at_64 = constraint_of("--min-speedup", "2", "--speedup-batch", "64")
    assert at_64 == Constraint("min_speedup", 2.0, None, 64)
    assert constraint_of("--max-bytes", "50000") == Constraint("max_bytes", 50000.0, None)
    with pytest.raises(SystemExit):  # one bound at a time
        constraint_of("--min-speedup", "2", "--max-bytes", "50000")
    with pytest.raises(SystemExit):
        constraint_of("--min-speedup", "2", "--speedup-batch", "8")
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["pick", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--min-speedup" in out and "--max-bytes" in out and "--speedup-batch {1,64}" in out
