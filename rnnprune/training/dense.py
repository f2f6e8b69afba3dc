"""Dense pretraining, cached: a sweep trains each dense model once.

Entries are named by the hash of everything that defines the dense phase (task, model,
training hyperparameters, seed) and guarded by a file lock, so concurrent trials that need
the same dense model wait for the one that trains it instead of training it again. An entry
keeps the weights after every epoch (epoch 0 = initialisation) for lottery-ticket rewinding,
and resumes from its last epoch if the process training it dies.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from filelock import FileLock

from rnnprune.config import TrialConfig
from rnnprune.data.base import TaskData
from rnnprune.models.recurrent import RecurrentClassifier
from rnnprune.training.loop import (
    OptimizerSettings,
    evaluate,
    learning_rate,
    make_optimizer,
    train_steps,
)
from rnnprune.training.state import atomic_torch_save, atomic_write_json, derived_seed, generator

CACHE_DIR_ENV = "RNNPRUNE_CACHE_DIR"

EpochCallback = Callable[[int, int, dict[str, float]], None]
"""(epoch, epochs, metrics) after each dense epoch trained here."""


def cache_root(config: TrialConfig) -> Path:
    if config.cache_dir is not None:
        return Path(config.cache_dir).expanduser()
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "rnnprune" / "dense"


def build_model(config: TrialConfig, data: TaskData) -> RecurrentClassifier:
    torch.manual_seed(derived_seed(config.seed, "init"))
    return RecurrentClassifier(
        cell=config.model.cell,
        input_size=data.input_size,
        hidden_size=config.model.hidden_size,
        num_layers=config.model.num_layers,
        num_classes=data.num_classes,
        dropout=config.model.dropout,
    )


def optimizer_settings(config: TrialConfig, lr: float | None = None) -> OptimizerSettings:
    t = config.training
    return OptimizerSettings(t.optimizer, lr or t.lr, t.momentum, t.weight_decay, t.lr_schedule, t.grad_clip)


@dataclass(frozen=True)
class DenseModel:
    entry: Path
    epochs: int
    val_accuracy: float
    test_accuracy: float
    train_seconds: float
    cache_hit: bool

    def state_at(self, epoch: int) -> dict[str, torch.Tensor]:
        """Weights after `epoch` dense epochs (0 = initialisation)."""
        if not 0 <= epoch <= self.epochs:
            raise ValueError(f"rewind epoch {epoch} outside the dense run's 0..{self.epochs}")
        return torch.load(self.entry / f"epoch_{epoch}.pt", weights_only=True)

    @property
    def final_state(self) -> dict[str, torch.Tensor]:
        return self.state_at(self.epochs)


def dense_model(
    config: TrialConfig, data: TaskData, device: torch.device, on_epoch: EpochCallback | None = None
) -> DenseModel:
    """The trained dense model for `config`, from the cache or trained now (and cached)."""
    entry = cache_root(config) / config.dense_hash()[:20]
    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry) + ".lock"):
        summary_path = entry / "dense.json"
        if summary_path.is_file():
            summary = json.loads(summary_path.read_text())
            return DenseModel(
                entry,
                summary["epochs"],
                summary["val_accuracy"],
                summary["test_accuracy"],
                summary["train_seconds"],
                cache_hit=True,
            )
        summary = _train_dense(config, data, device, entry, on_epoch)
        atomic_write_json(summary, summary_path)  # written last: its presence marks a whole entry
        return DenseModel(
            entry,
            summary["epochs"],
            summary["val_accuracy"],
            summary["test_accuracy"],
            summary["train_seconds"],
            cache_hit=False,
        )


def _train_dense(
    config: TrialConfig,
    data: TaskData,
    device: torch.device,
    entry: Path,
    on_epoch: EpochCallback | None,
) -> dict:
    model = build_model(config, data).to(device)
    settings = optimizer_settings(config)
    optimizer = make_optimizer(model, settings)
    epochs = config.training.epochs
    steps_per_epoch = -(-len(data.train) // config.training.batch_size)
    progress_path = entry / "progress.pt"
    first_epoch, seconds = 1, 0.0
    if progress_path.is_file():  # resume a dense run whose process died
        progress = torch.load(progress_path, weights_only=False, map_location=device)
        model.load_state_dict(progress["model"])
        optimizer.load_state_dict(progress["optimizer"])
        first_epoch, seconds = progress["epoch"] + 1, progress["seconds"]
    else:
        atomic_torch_save(model.state_dict(), entry / "epoch_0.pt")

    total_steps = epochs * steps_per_epoch
    for epoch in range(first_epoch, epochs + 1):
        started = time.perf_counter()
        torch.manual_seed(derived_seed(config.seed, "dense", epoch))
        batches = data.train.batches(config.training.batch_size, generator(config.seed, "dense-order", epoch))
        train_loss, _ = train_steps(
            model,
            optimizer,
            batches,
            settings,
            (epoch - 1) * steps_per_epoch,
            lambda step: learning_rate(settings, step, 0, total_steps),
        )
        val = evaluate(model, data.val)
        seconds += time.perf_counter() - started
        atomic_torch_save(model.state_dict(), entry / f"epoch_{epoch}.pt")
        atomic_torch_save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch,
                "seconds": seconds,
            },
            progress_path,
        )
        if on_epoch is not None:
            on_epoch(
                epoch,
                epochs,
                {
                    "train_loss": train_loss,
                    "val_loss": val["loss"],
                    "val_accuracy": val["accuracy"],
                },
            )

    val, test = evaluate(model, data.val), evaluate(model, data.test)
    progress_path.unlink(missing_ok=True)
    return {
        "epochs": epochs,
        "val_accuracy": val["accuracy"],
        "test_accuracy": test["accuracy"],
        "train_seconds": seconds,
        "config": {
            key: value
            for key, value in config.model_dump(mode="json").items()
            if key in ("task", "model", "training", "seed")
        },
    }
