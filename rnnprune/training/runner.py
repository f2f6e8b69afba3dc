"""One whole trial: data -> dense model (cached) -> pruning schedule -> final metrics.

With `pruning.lottery`, a last phase re-initialises the weights, keeps the final masks and
retrains (the lottery-ticket control); the trial then reports the ticket.

The runner knows nothing of Ray or MLflow. It reports each pruning-phase epoch to a
callback (the sweep layer forwards that to Tune and MLflow), writes a resumable checkpoint
after every epoch, and picks up from it when run again on the same output directory.
A finished trial is not run twice: its metrics are read back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from rnnprune.config import TrialConfig
from rnnprune.data import registry as task_registry
from rnnprune.data.base import TaskData, resolve_data_root
from rnnprune.errors import ConfigError
from rnnprune.graphs import graph_metrics
from rnnprune.metrics import sparsity_report
from rnnprune.models.recurrent import RecurrentNet
from rnnprune.pruning import registry as method_registry
from rnnprune.pruning.schedules import PruningPlan
from rnnprune.regularization import Regularizer
from rnnprune.training.dense import (
    DenseModel,
    EpochCallback,
    build_model,
    build_regularizer,
    dense_model,
    optimizer_settings,
)
from rnnprune.training.loop import (
    OptimizerSettings,
    Plateau,
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
    _check_scope(config, data)
    dense = dense_model(config, data, device, on_dense_epoch)
    trial = _PruningPhase(config, data, dense, device)
    if checkpoint is not None:
        trial.restore(checkpoint)
    return trial.run(output_dir, callback)


def _check_scope(config: TrialConfig, data: TaskData) -> None:
    """Fail before training if the scope names weights this task's network does not have."""
    kinds = {w.kind for w in build_model(config, data).prunable_weights(("encoder", "ih", "hh", "readout"))}
    missing = [kind for kind in config.pruning.scope if kind not in kinds]
    if missing:
        raise ConfigError(
            f"pruning.scope: task {config.task.name!r} has no {', '.join(missing)} weights "
            f"(its network has {', '.join(sorted(kinds))}); remove {', '.join(missing)} from the scope"
        )


def load_model(path: Path) -> tuple[TrialConfig, RecurrentNet, torch.Tensor]:
    """A finished trial's (config, pruned model with masks, example input) from its model.pt."""
    saved = torch.load(Path(path), weights_only=False, map_location="cpu")
    config = TrialConfig.model_validate(saved["config"])
    example: torch.Tensor = saved["input_example"]
    state = saved["state_dict"]
    model = RecurrentNet(
        cell=config.model.cell,
        input_size=saved.get("input_size", example.shape[-1]),
        hidden_size=config.model.hidden_size,
        num_layers=config.model.num_layers,
        num_classes=state["readout.weight"].shape[0],
        dropout=config.model.dropout,
        architecture=saved.get("architecture"),
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
    """The pruning phase's state (and the lottery phase's), advanced one epoch at a time."""

    def __init__(self, config: TrialConfig, data: TaskData, dense: DenseModel, device: torch.device):
        self.config, self.data, self.dense = config, data, dense
        self.objective = data.objective
        self.model: RecurrentNet = build_model(config, data).to(device)
        self.model.load_state_dict(dense.final_state)
        # The same draw as the dense phase: the penalty keeps its structure across phases.
        self.regularizer: Regularizer | None = build_regularizer(config, self.model)
        if self.regularizer is not None and dense.regularizer_state is not None:
            self.regularizer.load_state_dict(dense.regularizer_state)
        self.method = method_registry.get(config.pruning.method)
        self.pool_names = [w.name for w in self.model.prunable_weights(config.pruning.scope)]
        self.steps_per_epoch = -(-len(data.train) // config.training.batch_size)
        self.plan: PruningPlan = config.pruning.schedule.plan(
            config.pruning.target_sparsity, self.steps_per_epoch
        )
        # The ticket trains from scratch for the whole budget: dense epochs + pruning epochs.
        self.lottery_epochs = config.training.epochs + self.plan.epochs if config.pruning.lottery else 0
        self.settings: OptimizerSettings = optimizer_settings(config, config.pruning.lr)
        self.optimizer = make_optimizer(self.model, self.settings, self.regularizer)
        self.epoch, self.next_event, self.seconds = 0, 0, 0.0
        self.history: list[dict[str, float]] = []
        self.diagnostics: dict[str, float] = {}  # of the latest pruning event
        self.sparse_metrics: dict[str, float] = {}  # the trained sparse model, before the ticket
        self.plateau = Plateau(self.settings.plateau_factor)

    @property
    def epochs(self) -> int:
        return self.plan.epochs + self.lottery_epochs

    @property
    def total_steps(self) -> int:
        return self.plan.epochs * self.steps_per_epoch

    @property
    def in_lottery(self) -> bool:
        """Whether the epoch being trained (`self.epoch + 1`) is a lottery-ticket epoch."""
        return self.lottery_epochs > 0 and self.epoch >= self.plan.epochs

    def restore(self, state: dict[str, Any]) -> None:
        if self.lottery_epochs > 0 and state["epoch"] > self.plan.epochs:  # the ticket had started
            self._start_lottery(state["model"])
        self.model.load_state_dict(state["model"])
        if self.regularizer is not None:
            self.regularizer.load_state_dict(state["regularizer"])
        self.optimizer = make_optimizer(self.model, self.settings, self.regularizer)
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.next_event = state["epoch"], state["next_event"]
        self.seconds, self.history = state["seconds"], state["history"]
        self.diagnostics, self.sparse_metrics = state["diagnostics"], state["sparse_metrics"]
        self.plateau = Plateau(**state["plateau"])

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
                self.optimizer = make_optimizer(self.model, self.settings, self.regularizer)
            self.next_event += 1

    def _start_lottery(self, masked_state: dict[str, torch.Tensor]) -> None:
        """Fresh weights and a fresh regularizer draw under the masks in `masked_state`.

        The reference draws a new random neuron embedding for the ticket too (its penalty is
        rebuilt in the constructor), so the ticket's penalty is unrelated to the mask.
        """
        fresh = build_model(self.config, self.data, init="lottery-init").to(
            next(self.model.parameters()).device
        )
        masks = {key: value for key, value in masked_state.items() if key.endswith("_mask")}
        self.model.load_state_dict({**fresh.state_dict(), **masks})
        self.regularizer = build_regularizer(self.config, self.model, draw="lottery-regularizer")
        self.settings = optimizer_settings(self.config)
        self.optimizer = make_optimizer(self.model, self.settings, self.regularizer)
        self.plateau = Plateau(self.settings.plateau_factor)  # the ticket's own phase

    def _lr_at(self, step: int) -> float:
        if self.in_lottery:
            end = self.epochs * self.steps_per_epoch
            return self.plateau.scale * learning_rate(self.settings, step, self.total_steps, end)
        start, end = self.plan.segment_bounds(step, self.total_steps)
        return self.plateau.scale * learning_rate(self.settings, step, start, end)

    def run(self, output_dir: Path, callback: TrialCallback | None) -> TrialResult:
        """Train the remaining epochs; the last one finishes the trial before it is reported."""
        seed, batch_size = self.config.seed, self.config.training.batch_size
        while self.epoch < self.epochs:
            started = time.perf_counter()
            epoch = self.epoch + 1
            if self.in_lottery and epoch == self.plan.epochs + 1:
                self.sparse_metrics = self.evaluate_splits("sparse_")
                self._start_lottery(self.model.state_dict())
            torch.manual_seed(derived_seed(seed, "prune", epoch))
            batches = self.data.train.batches(batch_size, generator(seed, "prune-order", epoch))
            losses, _ = train_steps(
                self.model,
                self.optimizer,
                batches,
                self.settings,
                (epoch - 1) * self.steps_per_epoch,
                self._lr_at,
                self.objective,
                before_step=None if self.in_lottery else self._prune_until,
                regularizer=self.regularizer,
            )
            if epoch == self.plan.epochs:
                self._prune_until(self.total_steps)  # events past the last step (no fine-tuning)
            val = evaluate(self.model, self.data.val, self.objective)
            self.plateau.update(self.settings, val["loss"])
            self.seconds += time.perf_counter() - started
            metrics = {
                "epoch": float(epoch),
                **losses,
                **{f"val_{key}": value for key, value in val.items()},
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
                    "regularizer": self.regularizer.state_dict() if self.regularizer is not None else None,
                    "optimizer": self.optimizer.state_dict(),
                    "epoch": self.epoch,
                    "next_event": self.next_event,
                    "seconds": self.seconds,
                    "history": self.history,
                    "diagnostics": self.diagnostics,
                    "sparse_metrics": self.sparse_metrics,
                    "plateau": asdict(self.plateau),
                },
                path,
            )
            if epoch < self.epochs:
                if callback is not None:
                    callback(EpochReport(epoch, self.epochs, metrics, path))
                continue
            result = _finish(self.config, output_dir, self)
            if callback is not None:
                callback(EpochReport(epoch, self.epochs, metrics, None, result.metrics))
            return result
        self._prune_until(self.total_steps)  # a plan with zero epochs still prunes
        return _finish(self.config, output_dir, self)

    def evaluate_splits(self, prefix: str = "") -> dict[str, float]:
        """`{prefix}val_<metric>` and `{prefix}test_<metric>` of the current model."""
        return {
            f"{prefix}{split}_{key}": value
            for split, data in (("val", self.data.val), ("test", self.data.test))
            for key, value in evaluate(self.model, data, self.objective).items()
        }

    def sparsity(self) -> dict[str, float]:
        return sparsity_report(self.model, self.pool_names).summary()


def _finish(config: TrialConfig, output_dir: Path, trial: _PruningPhase) -> TrialResult:
    report = sparsity_report(trial.model, trial.pool_names)
    objective = trial.objective
    metrics: dict[str, Any] = {
        "trial": config.name(),
        "config_hash": config.hash(),
        "dense_hash": config.dense_hash(),
        "method": config.pruning.method,
        "target_sparsity": config.pruning.target_sparsity,
        # Which reported metric ranks models, and which way (`val_<quality>`, `test_<quality>`).
        "quality_metric": objective.quality,
        "quality_mode": "max" if objective.maximize else "min",
        **trial.evaluate_splits(),
        **{f"dense_val_{key}": value for key, value in trial.dense.val_metrics.items()},
        **{f"dense_test_{key}": value for key, value in trial.dense.test_metrics.items()},
        **trial.sparse_metrics,
        "dense_cache_hit": trial.dense.cache_hit,
        "dense_train_seconds": trial.dense.train_seconds,
        "pruning_epochs": trial.plan.epochs,
        "lottery_epochs": trial.lottery_epochs,
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
            "input_size": trial.data.input_size,
            "architecture": trial.data.architecture,
        },
        output_dir / MODEL,
    )
    atomic_write_json(metrics, output_dir / METRICS)
    (output_dir / CHECKPOINT).unlink(missing_ok=True)
    return TrialResult(metrics, output_dir, trial.history)
