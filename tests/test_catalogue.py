"""The metric catalogue: one declaration per metric, resolved per task, open to new tasks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

from rnnprune import catalogue
from rnnprune.catalogue import Metric, MetricError
from rnnprune.cli import main
from rnnprune.dashboard import dashboard_data
from rnnprune.data import registry as task_registry
from rnnprune.data.base import Task, TaskParams
from rnnprune.objectives import LOSS, DeclaredMetrics
from rnnprune.pareto import Constraint, RunRecord, analyse, default_objectives, pick
from rnnprune.stats import format_spread, seed_stats
from rnnprune.sweep.spec import EPOCH_METRICS


def test_prefixed_names_resolve_from_the_task_with_its_chance_level() -> None:
    accuracy = catalogue.metric("test_accuracy", "seq_mnist")
    assert (accuracy.direction, accuracy.reference, accuracy.label) == ("maximize", 0.1, "test accuracy")
    assert accuracy.tasks == frozenset({"seq_mnist"})
    assert catalogue.metric("dense_val_mse", "adding").reference == pytest.approx(1 / 6)
    assert catalogue.metric("val_mse", "adding").mode == "min"
    # Chance belongs to the task: the same objective on another task has none declared.
    assert catalogue.metric("test_accuracy", "speech_commands").reference is None
    # Without a task: direction and label from the tasks that declare it, no chance level.
    error = catalogue.metric("test_error_cm")
    assert (error.maximize, error.reference, error.tasks) == (False, None, frozenset({"navigation"}))
    assert catalogue.metric("test_accuracy").tasks >= {"seq_mnist", "word_lm"}  # type: ignore[operator]


def test_common_metrics_have_neutral_references_and_feed_the_epoch_list() -> None:
    assert catalogue.metric("sparsity").reference == 0.0
    assert catalogue.metric("theoretical_speedup").reference == 1.0
    assert catalogue.metric("compression_ratio").reference == 1.0
    assert catalogue.metric("nonzero_params").reference is None
    assert not catalogue.metric("wall_time_s").per_task
    assert {"train_loss", "sparsity", "nonzero_params", "theoretical_speedup"} <= set(EPOCH_METRICS)
    assert "wall_time_s" not in EPOCH_METRICS  # reported once, at the end


def test_unknown_metric_is_one_line_naming_the_option_and_the_known_names() -> None:
    with pytest.raises(MetricError) as raised:
        catalogue.metric("test_acuracy", "seq_mnist", option="--objectives")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("--objectives: unknown metric 'test_acuracy'")
    assert "sparsity" in message and "accuracy" in message and "test_/" in message


def test_task_quality_comes_from_its_objective() -> None:
    assert catalogue.quality("navigation").name == "test_error_cm"
    assert catalogue.quality("word_lm", "val_").name == "val_perplexity"
    assert task_registry.get("adding").quality_metric().maximize is False


def test_seed_stats_use_the_sample_std_and_report_one_seed_as_unmeasured() -> None:
    stats = seed_stats([1.0, 2.0, 3.0, float("nan")])
    assert (stats.mean, stats.std, stats.n) == (2.0, 1.0, 3)  # ddof=1: sqrt(2 / 2)
    one = seed_stats([0.5])
    assert (one.std, one.n) == (0.0, 1)
    assert format_spread(one.std, one.n) == "—" and format_spread(0.25, 2) == "0.250"
    with pytest.raises(ValueError, match="finite"):
        seed_stats([])


# ---- a task that declares a metric no built-in task has, registered like a plugin -------------

F1 = Metric("f1", "maximize", "F1 score")


@dataclass(frozen=True)
class F1Objective(DeclaredMetrics):
    declares: ClassVar[tuple[Metric, ...]] = (LOSS, F1)
    quality_metric: ClassVar[Metric] = F1

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def totals(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def summarise(self, totals: dict[str, float]) -> dict[str, float]:
        raise NotImplementedError


def _unused(*args: object) -> None:
    raise NotImplementedError


@pytest.fixture
def plugin_task() -> Iterator[str]:
    name = "f1_plugin"
    task = Task(name, TaskParams, _unused, _unused, "A plugin task scored by F1.", F1Objective, {"f1": 0.5})  # type: ignore[arg-type]
    task_registry.registered_tasks.register(name, task)
    yield name
    del task_registry.registered_tasks[name]


def _f1_run(run_id: str, target: float, f1: float) -> RunRecord:
    return RunRecord(
        run_id,
        "1",
        run_id,
        {"pruning.method": "m", "pruning.target_sparsity": str(target), "seed": "0"},
        {"test_f1": f1, "sparsity": target, "nonzero_params": 100 * (1 - target)},
        {"method": "m", "task": "f1_plugin"},
    )


def test_a_task_with_a_new_quality_metric_works_end_to_end(
    plugin_task: str, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [_f1_run("a", 0.5, 0.9), _f1_run("b", 0.9, 0.7), _f1_run("c", 0.8, 0.6)]
    assert default_objectives(plugin_task) == ("test_f1", "sparsity")
    analysis = analyse(runs, default_objectives(plugin_task), plugin_task)
    assert analysis.reference == (0.5, 0.0)  # the task's chance F1
    assert analysis.hypervolume["all"] == pytest.approx(0.4 * 0.5 + 0.2 * 0.4)
    chosen = pick(runs, Constraint("min_quality", 0.65))
    assert chosen.run is not None and chosen.run.run_id == "b"
    assert chosen.constraint.quality_metric == "test_f1"  # the runs' task's quality metric
    with pytest.raises(ValueError, match="--min-quality"):
        pick(runs, Constraint("max_quality", 0.65))
    data = dashboard_data(runs, "test_f1", lambda r: r.run_id, "plugin")
    assert data["y_label"] == "test F1 score"
    assert main(["tasks"]) == 0
    listed = capsys.readouterr().out
    assert (
        "f1_plugin [registered in code]: A plugin task scored by F1. Quality: f1 (higher is better)."
        in listed
    )


def test_a_chance_level_for_a_metric_the_objective_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match="chance names"):
        Task("t", TaskParams, _unused, _unused, "", F1Objective, {"accuracy": 0.1})  # type: ignore[arg-type]
