"""Plugins tried once before any trial runs, so that their mistakes are one-line errors.

A built-in task, network or method is tested with the package; a plugin is not. Before a
sweep starts Ray (or `rnnprune run` trains), each distinct combination that involves a plugin
is tried on its real data: the task's loader runs, the factory builds the model, the model
reads two training examples, and the method prunes the model once at the trial's target.
Any failure becomes a `PluginError` naming the config field that chose the plugin.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch

from rnnprune.config import TrialConfig
from rnnprune.data import registry as task_registry
from rnnprune.data.base import TaskData, resolve_data_root
from rnnprune.errors import ConfigError, PluginError, RnnpruneError
from rnnprune.pruning import registry as method_registry
from rnnprune.registry import BUILT_IN
from rnnprune.training.factories import build_model
from rnnprune.weights import ALL_KINDS

logger = logging.getLogger(__name__)


def _is_plugin(origin: str) -> bool:
    return origin != BUILT_IN


def uses_plugins(config: TrialConfig) -> bool:
    """Whether the trial's task, network or method comes from outside the package."""
    return (
        _is_plugin(task_registry.registered_tasks.origin(config.task.name))
        or not config.model.is_built_in
        or _is_plugin(method_registry.registered_methods.origin(config.pruning.method))
    )


def _error(field: str, what: str, error: BaseException) -> PluginError:
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return PluginError(f"{field}: {what} ({type(error).__name__}: {first_line})")


def _load(config: TrialConfig) -> TaskData:
    task = task_registry.get(config.task.name)
    try:
        return task.load(
            config.task.typed_params, resolve_data_root(config.task.data_dir), config.task.download
        )
    except RnnpruneError:
        raise  # the loader's own one-line error already names its field
    except Exception as error:  # a plugin loader may fail in any way
        raise _error("task.name", f"the data loader of task {config.task.name} raised", error) from None


def check_trial(config: TrialConfig, data: TaskData) -> None:
    """Build, run and prune the trial's model once on `data`; PluginError if a plugin fails."""
    factory = config.model.factory
    try:
        model = build_model(config, data)
    except ConfigError as error:  # no recurrent layer, a readout that is not there
        raise PluginError(f"model.factory: {error}") from None
    except Exception as error:
        raise _error("model.factory", f"factory {factory} raised while building the model", error) from None
    for note in getattr(model, "left_out", ()):
        logger.warning(
            "model %s: %s is not pruned (not a recurrent, linear or embedding matrix)", factory, note
        )
    try:
        with torch.no_grad():
            model(data.train.inputs[:2])  # type: ignore[operator]
    except Exception as error:
        shape = tuple(data.train.inputs[:2].shape)
        raise _error(
            "model.factory",
            f"the model of {factory} fails on task {config.task.name}'s inputs {shape}",
            error,
        ) from None
    pool = model.prunable_weights(config.pruning.scope)
    if not pool:
        kinds = sorted({w.kind for w in model.prunable_weights(ALL_KINDS)})
        wanted = ", ".join(config.pruning.scope)
        raise PluginError(f"pruning.scope: the model has none of {wanted} (it has {', '.join(kinds)})")
    method = method_registry.get(config.pruning.method)
    problems = method.problems(pool, config.pruning.target_sparsity, config.pruning.typed_params)
    if problems:  # the config asks what this model cannot give (a block its matrices do not take)
        field, message = problems[0]
        raise ConfigError(f"pruning.{field}: {message} (model {factory} on task {config.task.name!r})")
    generator = torch.Generator().manual_seed(config.seed)
    try:
        method(pool, config.pruning.target_sparsity, config.pruning.typed_params, generator)
    except PluginError:
        raise
    except Exception as error:
        raise _error(
            "pruning.method", f"{config.pruning.method} raised while pruning the model", error
        ) from None


def check_plugins(configs: Iterable[TrialConfig]) -> int:
    """Try every distinct plugin combination among `configs` (data loaded once per task
    config); returns how many were tried."""
    data_by_task: dict[str, TaskData] = {}
    tried: set[str] = set()
    for config in configs:
        if not uses_plugins(config):
            continue
        # What decides whether a plugin works: not the seed, the budget or the target.
        dumped = config.model_dump(mode="json")
        pruning = dumped["pruning"]
        key = repr((dumped["task"], dumped["model"], pruning["method"], pruning["params"], pruning["scope"]))
        if key in tried:
            continue
        tried.add(key)
        task_key = config.task.model_dump_json()
        if task_key not in data_by_task:
            data_by_task[task_key] = _load(config)
        check_trial(config, data_by_task[task_key])
    return len(tried)
