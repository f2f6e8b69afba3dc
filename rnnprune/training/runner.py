"""One whole trial: data -> dense model (cached) -> pruning schedule -> final metrics.

The runner knows nothing of Ray or MLflow. It reports each pruning-phase epoch to a
callback (the sweep layer forwards that to Tune and MLflow), writes a resumable checkpoint
after every epoch, and picks up from it when run again on the same output directory.
A finished trial is not run twice: its metrics are read back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnprune.config import TrialConfig
from rnnprune.data import registry as task_registry
from rnnprune.data.base import TaskData, resolve_data_root
from rnnprune.errors import ConfigError
from rnnprune.graphs import graph_metrics
from rnnprune.metrics import sparsity_report
from rnnprune.models.recurrent import RecurrentClassifier
from rnnprune.pruning import registry as method_registry
from rnnprune.pruning.schedules import PruningPlan
from rnnprune.training.dense import (
    DenseModel,
    EpochCallback,
    build_model,
    dense_model,
    optimizer_settings,
)
from rnnprune.training.loop import (
    OptimizerSettings,
    evaluate,
    learning_rate,
    make_optimizer,
    train_steps,
)
from rnnprune.training.state import (
    atomic_torch_save,
    atomic_write_json,
    derived_seed,
    generator,
    resolve_device,
)

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
    dense = dense_model(config, data, device, on_dense_epoch)
    trial = _PruningPhase(config, data, dense, device)
    if checkpoint is not None:
        trial.restore(checkpoint)
    return trial.run(output_dir, callback)


def load_model(path: Path) -> tuple[TrialConfig, RecurrentClassifier, torch.Tensor]:
    """A finished trial's (config, pruned model with masks, example input) from its model.pt."""
    saved = torch.load(Path(path), weights_only=False, map_location="cpu")
    config = TrialConfig.model_validate(saved["config"])
    example: torch.Tensor = saved["input_example"]
    state = saved["state_dict"]
    model = RecurrentClassifier(
        cell=config.model.cell,
        input_size=example.shape[-1],
        hidden_size=config.model.hidden_size,
        num_layers=config.model.num_layers,
        num_classes=state["readout.weight"].shape[0],
        dropout=config.model.dropout,
    )
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
    state = torch.load(path, weights_only=False, map_location="cpu")
    if state["config_hash"] != config.hash():
        raise ConfigError(
            f"output: {output_dir} holds a checkpoint of a different trial config; "
            f"choose another --output directory (the checkpoint is kept)"
        )
    return state


class _PruningPhase:
    """The pruning phase's state, advanced one epoch at a time."""

    def __init__(self, config: TrialConfig, data: TaskData, dense: DenseModel, device: torch.device):
        self.config, self.data, self.dense = config, data, dense
        self.model: RecurrentClassifier = build_model(config, data).to(device)
        self.model.load_state_dict(dense.final_state)
        self.method = method_registry.get(config.pruning.method)
        self.pool_names = [w.name for w in self.model.prunable_weights(config.pruning.scope)]
        self.steps_per_epoch = -(-len(data.train) // config.training.batch_size)
        self.plan: PruningPlan = config.pruning.schedule.plan(
            config.pruning.target_sparsity, self.steps_per_epoch
        )
        self.settings: OptimizerSettings = optimizer_settings(config, config.pruning.lr)
        self.optimizer = make_optimizer(self.model, self.settings)
        self.epoch, self.next_event, self.seconds = 0, 0, 0.0
        self.history: list[dict[str, float]] = []
        self.diagnostics: dict[str, float] = {}  # of the latest pruning event

    @property
    def total_steps(self) -> int:
        return self.plan.epochs * self.steps_per_epoch

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer = make_optimizer(self.model, self.settings)
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.next_event = state["epoch"], state["next_event"]
        self.seconds, self.history = state["seconds"], state["history"]
        self.diagnostics = state["diagnostics"]

    def _prune_until(self, step: int) -> None:
        """Apply every pruning event scheduled at or before `step` that has not run yet."""
        while self.next_event < len(self.plan.events) and self.plan.events[self.next_event].step <= step:
            event = self.plan.events[self.next_event]
            weights = self.model.prunable_weights(self.config.pruning.scope)
            result = self.method(
                weights,
                event.target_sparsity,
                self.config.pruning.typed_params,
                generator(self.config.seed, "prune", self.next_event),
            )
            self.model.set_masks(result.masks)
            self.diagnostics = {f"prune.{key}": value for key, value in result.diagnostics.items()}
            if event.restart:
                if self.plan.rewind_epoch is not None:
                    kept = self.model.masks()
                    self.model.load_state_dict(
                        {
                            **self.dense.state_at(self.plan.rewind_epoch),
                            **{name + "_mask": mask for name, mask in kept.items()},
                        },
                        strict=False,
                    )
                self.optimizer = make_optimizer(self.model, self.settings)
            self.next_event += 1

    def _lr_at(self, step: int) -> float:
        start, end = self.plan.segment_bounds(step, self.total_steps)
        return learning_rate(self.settings, step, start, end)

    def run(self, output_dir: Path, callback: TrialCallback | None) -> TrialResult:
        """Train the remaining epochs; the last one finishes the trial before it is reported."""
        seed, batch_size = self.config.seed, self.config.training.batch_size
        while self.epoch < self.plan.epochs:
            started = time.perf_counter()
            epoch = self.epoch + 1
            torch.manual_seed(derived_seed(seed, "prune", epoch))
            batches = self.data.train.batches(batch_size, generator(seed, "prune-order", epoch))
            train_loss, _ = train_steps(
                self.model,
                self.optimizer,
                batches,
                self.settings,
                (epoch - 1) * self.steps_per_epoch,
                self._lr_at,
                before_step=self._prune_until,
            )
            if epoch == self.plan.epochs:
                self._prune_until(self.total_steps)  # events past the last step (no fine-tuning)
            val = evaluate(self.model, self.data.val)
            self.seconds += time.perf_counter() - started
            metrics = {
                "epoch": float(epoch),
                "train_loss": train_loss,
                "val_loss": val["loss"],
                "val_accuracy": val["accuracy"],
                **self.sparsity(),
                **self.diagnostics,
            }
            self.history.append(metrics)
            self.epoch = epoch
            path = output_dir / CHECKPOINT
            atomic_torch_save(
                {
                    "config_hash": self.config.hash(),
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "epoch": self.epoch,
                    "next_event": self.next_event,
                    "seconds": self.seconds,
                    "history": self.history,
                    "diagnostics": self.diagnostics,
                },
                path,
            )
            if epoch < self.plan.epochs:
                if callback is not None:
                    callback(EpochReport(epoch, self.plan.epochs, metrics, path))
                continue
            result = _finish(self.config, output_dir, self)
            if callback is not None:
                callback(EpochReport(epoch, self.plan.epochs, metrics, None, result.metrics))
            return result
        self._prune_until(self.total_steps)  # a plan with zero epochs still prunes
        return _finish(self.config, output_dir, self)

    def sparsity(self) -> dict[str, float]:
        return sparsity_report(self.model, self.pool_names).summary()


def _finish(config: TrialConfig, output_dir: Path, trial: _PruningPhase) -> TrialResult:
    val, test = evaluate(trial.model, trial.data.val), evaluate(trial.model, trial.data.test)
    report = sparsity_report(trial.model, trial.pool_names)
    metrics: dict[str, Any] = {
        "trial": config.name(),
        "config_hash": config.hash(),
        "dense_hash": config.dense_hash(),
        "method": config.pruning.method,
        "target_sparsity": config.pruning.target_sparsity,
        "val_accuracy": val["accuracy"],
        "val_loss": val["loss"],
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "dense_val_accuracy": trial.dense.val_accuracy,
        "dense_test_accuracy": trial.dense.test_accuracy,
        "dense_cache_hit": trial.dense.cache_hit,
        "dense_train_seconds": trial.dense.train_seconds,
        "pruning_epochs": trial.plan.epochs,
        "wall_time_s": trial.seconds,
        **report.summary(),
        **graph_metrics(trial.model),  # every method read through the expander lens
        **trial.diagnostics,
        **report.tables(),
        "history": trial.history,
    }
    atomic_torch_save(
        {
            "config": config.model_dump(mode="json"),
            "state_dict": trial.model.state_dict(),
            # One test input, for model signatures and export checks without the data set.
            "input_example": trial.data.test.inputs[:1].cpu(),
        },
        output_dir / MODEL,
    )
    atomic_write_json(metrics, output_dir / METRICS)
    (output_dir / CHECKPOINT).unlink(missing_ok=True)
    return TrialResult(metrics, output_dir, trial.history)
