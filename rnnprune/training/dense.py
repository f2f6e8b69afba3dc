"""Dense pretraining, cached: a sweep trains each dense model once.

Entries are named by the hash of everything that defines the dense phase (task, model,
training hyperparameters, seed, and the method's regularizer when it has one) and guarded
by a file lock, so concurrent trials that need the same dense model wait for the one that
trains it instead of training it again. An entry keeps the weights after every epoch
(epoch 0 = initialisation) for lottery-ticket rewinding, and resumes from its last epoch if
the process training it dies.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from filelock import FileLock

from rnnprune.config import TrialConfig
from rnnprune.data.base import TaskData
from rnnprune.models.recurrent import RecurrentNet
from rnnprune.pruning import registry as method_registry
from rnnprune.regularization import Regularizer
from rnnprune.training.loop import (
    OptimizerSettings,
    Plateau,
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


def build_model(config: TrialConfig, data: TaskData, init: str = "init") -> RecurrentNet:
    """The task's network, initialised from the trial seed (`init` names another draw)."""
    torch.manual_seed(derived_seed(config.seed, init))
    return RecurrentNet(
        cell=config.model.cell,
        input_size=data.input_size,
        hidden_size=config.model.hidden_size,
        num_layers=config.model.num_layers,
        num_classes=data.num_classes,
        dropout=config.model.dropout,
        architecture=data.architecture,
    )


def build_regularizer(
    config: TrialConfig, model: RecurrentNet, draw: str = "regularizer"
) -> Regularizer | None:
    """The method's regularizer for `model`, its random structure drawn from the trial seed."""
    method = method_registry.get(config.pruning.method)
    if method.regularizer is None or not method.regularizes(config.pruning.typed_params):
        return None
    built = method.regularizer.build(config.pruning.typed_params, model, generator(config.seed, draw))
    return built.to(next(model.parameters()).device)


def optimizer_settings(config: TrialConfig, lr: float | None = None) -> OptimizerSettings:
    t = config.training
    return OptimizerSettings(
        t.optimizer, lr or t.lr, t.momentum, t.weight_decay, t.lr_schedule, t.grad_clip, t.plateau_factor
    )


REGULARIZER_STATE = "regularizer.pt"


@dataclass(frozen=True)
class DenseModel:
    entry: Path
    epochs: int
    val_metrics: dict[str, float]
    test_metrics: dict[str, float]
    train_seconds: float
    cache_hit: bool

    @property
    def regularizer_state(self) -> dict[str, torch.Tensor] | None:
        """The regularizer's learnable state after dense training (None: nothing learnable)."""
        path = self.entry / REGULARIZER_STATE
        return torch.load(path, weights_only=True) if path.is_file() else None

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
        cache_hit = summary_path.is_file()
        if cache_hit:
            summary = json.loads(summary_path.read_text())
        else:
            summary = _train_dense(config, data, device, entry, on_epoch)
            atomic_write_json(summary, summary_path)  # written last: its presence marks a whole entry
        return DenseModel(
            entry,
            summary["epochs"],
            _split_metrics(summary, "val"),
            _split_metrics(summary, "test"),
            summary["train_seconds"],
            cache_hit=cache_hit,
        )


def _split_metrics(summary: dict, split: str) -> dict[str, float]:
    # Entries written before tasks had their own objectives hold only the accuracy.
    return summary.get(f"{split}_metrics") or {"accuracy": summary[f"{split}_accuracy"]}


def _train_dense(
    config: TrialConfig,
    data: TaskData,
    device: torch.device,
    entry: Path,
    on_epoch: EpochCallback | None,
) -> dict:
    model = build_model(config, data).to(device)
    regularizer = build_regularizer(config, model)
    settings = optimizer_settings(config)
    optimizer = make_optimizer(model, settings, regularizer)
    epochs = config.training.epochs
    steps_per_epoch = -(-len(data.train) // config.training.batch_size)
    progress_path = entry / "progress.pt"
    first_epoch, seconds, plateau = 1, 0.0, Plateau(settings.plateau_factor)
    if progress_path.is_file():  # resume a dense run whose process died
        progress = torch.load(progress_path, weights_only=False, map_location=device)
        model.load_state_dict(progress["model"])
        if regularizer is not None:
            regularizer.load_state_dict(progress["regularizer"])
        optimizer.load_state_dict(progress["optimizer"])
        first_epoch, seconds = progress["epoch"] + 1, progress["seconds"]
        plateau = Plateau(**progress["plateau"])
    else:
        atomic_torch_save(model.state_dict(), entry / "epoch_0.pt")

    total_steps = epochs * steps_per_epoch
    for epoch in range(first_epoch, epochs + 1):
        started = time.perf_counter()
        torch.manual_seed(derived_seed(config.seed, "dense", epoch))
        batches = data.train.batches(config.training.batch_size, generator(config.seed, "dense-order", epoch))
        losses, _ = train_steps(
            model,
            optimizer,
            batches,
            settings,
            (epoch - 1) * steps_per_epoch,
            lambda step: plateau.scale * learning_rate(settings, step, 0, total_steps),
            data.objective,
            regularizer=regularizer,
        )
        val = evaluate(model, data.val, data.objective)
        plateau.update(settings, val["loss"])
        seconds += time.perf_counter() - started
        atomic_torch_save(model.state_dict(), entry / f"epoch_{epoch}.pt")
        atomic_torch_save(
            {
                "model": model.state_dict(),
                "regularizer": regularizer.state_dict() if regularizer is not None else None,
                "optimizer": optimizer.state_dict(),
                "epoch": epoch,
                "seconds": seconds,
                "plateau": asdict(plateau),
            },
            progress_path,
        )
        if on_epoch is not None:
            on_epoch(epoch, epochs, {**losses, **{f"val_{key}": value for key, value in val.items()}})

    val, test = evaluate(model, data.val, data.objective), evaluate(model, data.test, data.objective)
    if regularizer is not None and any(True for _ in regularizer.parameters()):
        atomic_torch_save(regularizer.state_dict(), entry / REGULARIZER_STATE)
    progress_path.unlink(missing_ok=True)
    return {
        "epochs": epochs,
        "val_metrics": val,
        "test_metrics": test,
        "train_seconds": seconds,
        "config": {
            key: value
            for key, value in config.model_dump(mode="json").items()
            if key in ("task", "model", "training", "seed")
        },
    }
