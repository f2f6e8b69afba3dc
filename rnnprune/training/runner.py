"""One whole trial: data -> plan -> its phases in order (the dense one cached) -> final metrics.

The config compiles into a trial plan (`rnnprune.training.plan`): the dense phase, the
pruning schedule's phase and, with `pruning.lottery`, the lottery-ticket control (fresh
weights under the final masks, retrained); the trial then reports the ticket. The phase
engine (`rnnprune.training.engine`) trains each phase.

The runner knows nothing of Ray or MLflow. It reports each epoch after the dense phase to a
callback (the sweep layer forwards that to Tune and MLflow), writes a resumable checkpoint
after every epoch, and picks up from it when run again on the same output directory.
A finished trial is not run twice: its metrics are read back.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from rnnprune import deploy
from rnnprune.config import TrackConfig, TrialConfig
from rnnprune.data import registry as task_registry
from rnnprune.data.base import Architecture, TaskData, resolve_data_root
from rnnprune.errors import ConfigError
from rnnprune.graphs import graph_metrics
from rnnprune.metrics import sparsity_report
from rnnprune.models import registry as model_registry
from rnnprune.models.base import ModelInputs
from rnnprune.models.masking import MaskedWeights, with_masks
from rnnprune.pruning import registry as method_registry
from rnnprune.training.dense import DenseModel, EpochCallback, dense_model
from rnnprune.training.engine import (
    PhaseEnv,
    PhaseOutcome,
    PhaseRun,
    is_current_format,
    load_checkpoint,
    run_phase,
    save_checkpoint,
    start_phase,
)
from rnnprune.training.factories import build_model
from rnnprune.training.loop import evaluate, evaluate_splits
from rnnprune.training.plan import TrialPlan, compile_plan, steps_per_epoch
from rnnprune.training.state import atomic_torch_save, atomic_write_json, resolve_device
from rnnprune.weights import ALL_KINDS

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
MODEL = "model.pt"


@dataclass(frozen=True)
class EpochReport:
    """What the runner tells its callback after each pruning-phase epoch."""

    epoch: int  # 1-based, within the pruning phase
    epochs: int
    metrics: dict[str, float]
    checkpoint: Path | None  # resumable state after this epoch; None once the trial is finished
    final: dict[str, Any] | None = None  # the trial's final metrics, with the last epoch's report


TrialCallback = Callable[[EpochReport], None]


@dataclass(frozen=True)
class TrialResult:
    metrics: dict[str, Any]
    output_dir: Path
    history: list[dict[str, float]]


def load_task_data(config: TrialConfig) -> TaskData:
    """Read the task's data; raises DataError (naming the option) before any training."""
    task = task_registry.get(config.task.name)
    return task.load(config.task.typed_params, resolve_data_root(config.task.data_dir), config.task.download)


def run_trial(
    config: TrialConfig,
    output_dir: Path,
    callback: TrialCallback | None = None,
    on_dense_epoch: EpochCallback | None = None,
) -> TrialResult:
    output_dir = Path(output_dir)
    finished = _finished_result(config, output_dir)
    if finished is not None:
        return finished
    checkpoint = _read_checkpoint(config, output_dir)

    device = resolve_device(config.device)
    data = load_task_data(config).to(device)
    _check_pruning(config, data)
    plan = compile_plan(config, steps_per_epoch(len(data.train), config.training.batch_size))
    env = PhaseEnv(
        data,
        config.seed,
        lambda draw: build_model(config, data, draw).to(device),
        readings=epoch_readings(config.track, data),
    )
    dense = dense_model(config, plan.dense, env, on_dense_epoch)
    return _run_phases(
        config, plan, dataclasses.replace(env, dense=dense), dense, output_dir, checkpoint, callback
    )


def epoch_readings(track: TrackConfig, data: TaskData) -> Callable[[MaskedWeights], dict[str, float]] | None:
    """What `track` asks each pruning-phase epoch to add: layer-graph margins, test metrics."""
    if not track.any:
        return None

    def read(model: MaskedWeights) -> dict[str, float]:
        readings = graph_metrics(model) if track.graphs else {}
        if track.test:
            test = evaluate(model, data.test, data.objective)
            readings.update({f"test_{key}": value for key, value in test.items()})
        return readings

    return read


def _check_pruning(config: TrialConfig, data: TaskData) -> None:
    """Fail before training if the scope names weights this task's network does not have, or
    the method cannot prune its pool to the target (what the config alone could not show)."""
    model = build_model(config, data)
    for note in getattr(model, "left_out", ()):
        logger.warning(
            "model %s: %s is not pruned (not a recurrent, linear or embedding matrix)",
            config.model.factory,
            note,
        )
    subject = (
        f"task {config.task.name!r}"
        if config.model.is_built_in
        else f"model {config.model.factory} on task {config.task.name!r}"
    )
    kinds = {w.kind for w in model.prunable_weights(ALL_KINDS)}
    missing = [kind for kind in config.pruning.scope if kind not in kinds]
    if missing:
        raise ConfigError(
            f"pruning.scope: {subject} has no {', '.join(missing)} weights "
            f"(it has {', '.join(sorted(kinds))}); remove {', '.join(missing)} from the scope"
        )
    pruning = config.pruning
    method = method_registry.get(pruning.method)
    problems = method.problems(
        model.prunable_weights(pruning.scope), pruning.target_sparsity, pruning.typed_params
    )
    if problems:
        field, message = problems[0]
        raise ConfigError(f"pruning.{field}: {message} ({subject})")


def load_model(path: Path) -> tuple[TrialConfig, MaskedWeights, torch.Tensor]:
    """A finished trial's (config, pruned model with masks, example input) from its model.pt."""
    saved = torch.load(Path(path), weights_only=False, map_location="cpu")
    config = TrialConfig.model_validate(saved["config"])
    example: torch.Tensor = saved["input_example"]
    state = saved["state_dict"]
    # Files written before plugin models existed hold only the built-in network's readout.
    num_outputs = saved["num_outputs"] if "num_outputs" in saved else state["readout.weight"].shape[0]
    inputs = ModelInputs(
        saved.get("input_size", example.shape[-1]), num_outputs, saved.get("architecture") or Architecture()
    )
    factory = model_registry.get(config.model.factory)
    model = with_masks(factory.build(config.model.typed_params, inputs), factory.readout)
    model.load_state_dict(state)
    return config, model.eval(), example


def _finished_result(config: TrialConfig, output_dir: Path) -> TrialResult | None:
    metrics_path = output_dir / METRICS
    if not metrics_path.is_file():
        return None
    written = json.loads(metrics_path.read_text())
    if written.get("config_hash") != config.hash():
        raise ConfigError(
            f"output: {output_dir} already holds the results of a different trial "
            f"(config hash {written.get('config_hash', '?')[:10]}, this one {config.hash()[:10]}); "
            f"choose another --output directory so those results are kept"
        )
    return TrialResult(written, output_dir, written.get("history", []))


def _read_checkpoint(config: TrialConfig, output_dir: Path) -> dict[str, Any] | None:
    path = output_dir / CHECKPOINT
    if not path.is_file():
        return None
    state = load_checkpoint(path)
    if state["config_hash"] != config.hash():
        raise ConfigError(
            f"output: {output_dir} holds a checkpoint of a different trial config; "
            f"choose another --output directory (the checkpoint is kept)"
        )
    if not is_current_format(state):
        # Written before the phase engine: the trial's phases start again from the cached dense
        # model, which gives the same results (every draw comes from the trial's position).
        logger.warning("%s predates this rnnprune's checkpoint format; the trial starts again", path)
        return None
    return state


def _run_phases(
    config: TrialConfig,
    plan: TrialPlan,
    env: PhaseEnv,
    dense: DenseModel,
    output_dir: Path,
    checkpoint: dict[str, Any] | None,
    callback: TrialCallback | None,
) -> TrialResult:
    """Run the trial's phases after the dense one, from `checkpoint` when there is one; the
    last epoch of the last phase finishes the trial before it is reported."""
    done = [PhaseOutcome(**outcome) for outcome in checkpoint["done"]] if checkpoint is not None else []
    # The state the previous phase ended with; a resumed phase's own state holds its masks.
    previous: Mapping[str, torch.Tensor] | None = checkpoint["model"] if checkpoint is not None else None
    path = output_dir / CHECKPOINT
    result: TrialResult | None = None
    run: PhaseRun | None = None
    for phase in plan.trial_phases[len(done) :]:
        run = start_phase(phase, env, previous, done[-1].diagnostics if done else {})
        if checkpoint is not None:  # the phase the trial stopped in
            run.load_state_dict(checkpoint)
            checkpoint = None
        header = {"config_hash": config.hash(), "phase": phase.name, "done": [asdict(o) for o in done]}
        last = phase is plan.trial_phases[-1]

        def report(run: PhaseRun, metrics: dict[str, float], saved: Path, last: bool = last) -> None:
            nonlocal result
            epoch = run.phase.epoch_offset + run.epoch
            if last and run.epoch == run.phase.epochs:
                result = _finish(
                    config, output_dir, env.data, dense, plan, run.model, [*done, run.outcome(env.data)]
                )
                if callback is not None:
                    callback(EpochReport(epoch, plan.trial_epochs, metrics, None, result.metrics))
            elif callback is not None:
                callback(EpochReport(epoch, plan.trial_epochs, metrics, saved))

        run_phase(run, env, lambda run, header=header: save_checkpoint(run, path, **header), report)
        if result is not None:
            return result
        done.append(run.outcome(env.data))
        previous = run.model.state_dict()
    assert run is not None, "a plan has a pruning phase"
    # No epoch finished the trial: a last phase without epochs, or one that had finished
    # before its process died.
    return _finish(config, output_dir, env.data, dense, plan, run.model, done)


def _finish(
    config: TrialConfig,
    output_dir: Path,
    data: TaskData,
    dense: DenseModel,
    plan: TrialPlan,
    model: MaskedWeights,
    outcomes: list[PhaseOutcome],
) -> TrialResult:
    """Final metrics of the trial's `model`, from the `outcomes` of its phases after dense."""
    report = sparsity_report(model, [w.name for w in model.prunable_weights(config.pruning.scope)])
    objective = data.objective
    history = [epoch for outcome in outcomes for epoch in outcome.history]
    metrics: dict[str, Any] = {
        "trial": config.name(),
        "config_hash": config.hash(),
        "dense_hash": config.dense_hash(),
        "method": config.pruning.method,
        "target_sparsity": config.pruning.target_sparsity,
        # Which reported metric ranks models, and which way (`val_<quality>`, `test_<quality>`).
        "quality_metric": objective.quality,
        "quality_mode": "max" if objective.maximize else "min",
        **evaluate_splits(model, data),
        **{f"dense_val_{key}": value for key, value in dense.val_metrics.items()},
        **{f"dense_test_{key}": value for key, value in dense.test_metrics.items()},
        **{key: value for outcome in outcomes for key, value in outcome.metrics.items()},
        "dense_cache_hit": dense.cache_hit,
        "dense_train_seconds": dense.train_seconds,
        "pruning_epochs": plan.epochs_of("prune"),
        "lottery_epochs": plan.epochs_of("lottery"),
        "wall_time_s": sum(outcome.seconds for outcome in outcomes),
        **report.summary(),
        **graph_metrics(model),  # every method read through the expander lens
        **outcomes[-1].diagnostics,
        # The deployable form's speed against the dense model, and its file size.
        **(
            deploy.trial_metrics(model, dense.final_state, data.test.inputs[:1], config.latency.repeats())
            if config.latency.measure
            else {}
        ),
        **report.tables(),
        "history": history,
    }
    atomic_torch_save(
        {
            "config": config.model_dump(mode="json"),
            "state_dict": model.state_dict(),
            # One test input, for model signatures and export checks without the data set.
            "input_example": data.test.inputs[:1].cpu(),
            "input_size": data.input_size,
            "num_outputs": data.num_classes,
            "architecture": data.architecture,
        },
        output_dir / MODEL,
    )
    atomic_write_json(metrics, output_dir / METRICS)
    (output_dir / CHECKPOINT).unlink(missing_ok=True)
    return TrialResult(metrics, output_dir, history)
