"""Malformed plugin references and misbehaving plugins fail before Ray starts, in one line that
names the config field and the fix: references that do not import or point at the wrong thing
(found while the spec is read), and plugins that break their contract on real data (found by
the preflight, which tries each plugin once before the sweep starts)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

from rnnprune.cli import main
from rnnprune.config import validate_config
from rnnprune.errors import PluginError
from rnnprune.training.preflight import check_plugins, uses_plugins

DETECTION = "tests.plugin_tasks:TASK"
GOOD_MODEL = {"factory": "tests.user_models:attention_lstm", "params": {"hidden_size": 4}}


def _trial(**groups: Any) -> dict[str, Any]:
    trial: dict[str, Any] = {
        "task": {"name": DETECTION},
        "model": dict(GOOD_MODEL),
        "training": {"epochs": 1, "batch_size": 32},
        "pruning": {"method": "global_magnitude", "target_sparsity": 0.5, "schedule": {"kind": "one_shot"}},
        "device": "cpu",
    }
    trial.update(groups)
    return trial


# (case id, the trial, methods of the spec, what the one line must say)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "task_module_missing",
        _trial(task={"name": "no_such_package.tasks:TASK"}),
        "global_magnitude",
        r"task\.name: task 'no_such_package\.tasks:TASK': module 'no_such_package\.tasks' does not import "
        r"\(ModuleNotFoundError",
    ),
    (
        "task_module_fails_to_import",
        _trial(task={"name": "tests.broken_plugin:TASK"}),
        "global_magnitude",
        r"task\.name: .*module 'tests\.broken_plugin' does not import \(ModuleNotFoundError: No module named "
        r"'not_installed_dependency'\)",
    ),
    (
        "task_attribute_missing",
        _trial(task={"name": "tests.plugin_tasks:TASKS"}),
        "global_magnitude",
        r"task\.name: .*module 'tests\.plugin_tasks' has no 'TASKS'",
    ),
    (
        "task_attribute_of_wrong_kind",
        _trial(task={"name": "tests.plugin_tasks:load"}),
        "global_magnitude",
        r"task\.name: task 'tests\.plugin_tasks:load' is a function, not a Task",
    ),
    (
        "unregistered_short_name",
        _trial(model={"factory": "sunspots_lstm_typo"}),
        "global_magnitude",
        r"model\.factory: unknown model factory 'sunspots_lstm_typo'; registered: .*recurrent.*"
        r"\(or give a plugin as module:attribute\)",
    ),
    (
        "factory_module_missing",
        _trial(model={"factory": "mypkg.models:build"}),
        "global_magnitude",
        r"model\.factory: model factory 'mypkg\.models:build': module 'mypkg\.models' does not import",
    ),
    (
        "factory_of_wrong_kind",
        _trial(model={"factory": "tests.user_models:NOT_A_FACTORY"}),
        "global_magnitude",
        r"model\.factory: model factory 'tests\.user_models:NOT_A_FACTORY': is a int, "
        r"not a ModelFactory or a function",
    ),
    (
        "factory_parameter_without_default",
        _trial(model={"factory": "tests.user_models:needs_a_default"}),
        "global_magnitude",
        r"model\.factory: .*parameter 'hidden_size' needs a default",
    ),
    (
        "factory_unknown_parameter",
        _trial(model={"factory": "tests.user_models:attention_lstm", "params": {"hiden_size": 4}}),
        "global_magnitude",
        r"model\.params\.hiden_size: unknown parameter; allowed: hidden_size",
    ),
    (
        "built_in_field_with_a_plugin_factory",
        _trial(model={"factory": "tests.user_models:attention_lstm", "hidden_size": 4}),
        "global_magnitude",
        r"model\.hidden_size: belongs to the built-in network; give factory "
        r"tests\.user_models:attention_lstm's parameters under model\.params \(allowed: hidden_size\)",
    ),
    (
        "method_of_wrong_kind",
        _trial(),
        "tests.plugin_methods:not_a_method",
        r"methods: pruning method 'tests\.plugin_methods:not_a_method' is a function, not a PruningMethod",
    ),
    (
        "factory_without_recurrent_layer",
        _trial(model={"factory": "tests.user_models:no_recurrence"}),
        "global_magnitude",
        r"model\.factory: model NoRecurrence has no nn\.LSTM, nn\.GRU or nn\.RNN layer",
    ),
    (
        "factory_returns_no_module",
        _trial(model={"factory": "tests.user_models:returns_no_module"}),
        "global_magnitude",
        r"model\.factory: factory tests\.user_models:returns_no_module returned a int, not an nn\.Module",
    ),
    (
        "model_fails_on_the_tasks_inputs",
        _trial(
            task={"name": "tests.plugin_tasks:TASK", "params": {"examples": 8}},
            model={"factory": "tests.user_models:wrong_input_size"},
        ),
        "global_magnitude",
        r"model\.factory: the model of tests\.user_models:wrong_input_size fails on task "
        r"tests\.plugin_tasks:TASK's inputs \(2, 6, 3\) \(RuntimeError",
    ),
    (
        "data_loader_raises",
        _trial(task={"name": "tests.plugin_tasks:FAILING_LOADER"}),
        "global_magnitude",
        r"task\.name: the data loader of task tests\.plugin_tasks:FAILING_LOADER raised "
        r"\(KeyError: .*column 'y'",
    ),
    (
        "method_masks_of_wrong_shape",
        _trial(),
        "tests.plugin_methods:WRONG_SHAPE",
        r"pruning\.method: wrong_shape returned a mask of shape \(3, 16\) for encoder\.weight_ih_l0, "
        r"whose weight is \(16, 3\); return masks of the weights' shapes",
    ),
    (
        "method_masks_of_wrong_dtype",
        _trial(),
        "tests.plugin_methods:WRONG_DTYPE",
        r"pruning\.method: wrong_dtype returned a torch\.float32 mask for encoder\.weight_ih_l0; "
        r"return torch\.bool masks",
    ),
    (
        "method_raises",
        _trial(),
        "tests.plugin_methods:RAISES",
        r"pruning\.method: tests\.plugin_methods:RAISES raised while pruning the model "
        r"\(IndexError: list index",
    ),
]


@pytest.mark.parametrize("trial, methods, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_plugin_fails_before_ray_starts_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    trial: dict[str, Any],
    methods: str,
    expected: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "trial.yaml").write_text(yaml.safe_dump(trial))
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "plugins",
                "base": "trial.yaml",
                "methods": {methods: {}},
                "storage_path": str(tmp_path / "storage"),
                "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
            }
        )
    )
    assert main(["sweep", str(spec)]) == 2
    error = capsys.readouterr().err
    # The line naming the field is one line; a config error adds where the config came from.
    assert error.startswith("error: ") and "Traceback" not in error and len(error.splitlines()) <= 3, error
    assert any(re.search(expected, line) for line in error.splitlines()), error
    assert not ray.is_initialized()
    assert not (tmp_path / "storage").exists()  # nothing was started


def test_there_are_at_least_ten_malformed_plugin_references() -> None:
    assert len(CASES) >= 10


def test_only_trials_with_a_plugin_are_tried_and_each_combination_once() -> None:
    built_in = validate_config({"task": {"name": "adding"}})
    assert not uses_plugins(built_in)
    plugin = [validate_config(_trial(seed=seed)) for seed in range(3)]
    assert all(uses_plugins(config) for config in plugin)
    assert check_plugins([built_in, *plugin]) == 1


def test_the_preflight_error_is_a_plugin_error() -> None:
    with pytest.raises(PluginError, match="returned a mask of shape"):
        check_plugins([validate_config(_trial(pruning={"method": "tests.plugin_methods:WRONG_SHAPE"}))])
