"""Dense pretraining, cached: a sweep trains each dense model once.

Entries are named by the hash of everything that defines the dense phase (task, model,
training hyperparameters, seed, and the method's regularizer when it has one) and guarded
by a file lock, so concurrent trials that need the same dense model wait for the one that
trains it instead of training it again. An entry keeps the weights after every epoch
(epoch 0 = initialisation) for lottery-ticket rewinding, and resumes from its last epoch if
the process training it dies. The phase engine trains it, like every other phase.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from filelock import FileLock

from rnnprune.config import TrialConfig
from rnnprune.training.engine import (
    PhaseEnv,
    PhaseRun,
    is_current_format,
    load_checkpoint,
    run_phase,
    save_checkpoint,
    start_phase,
)
from rnnprune.training.hooks import PenaltyHook
from rnnprune.training.loop import evaluate
from rnnprune.training.plan import Phase
from rnnprune.training.state import atomic_torch_save, atomic_write_json

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
    config: TrialConfig, phase: Phase, env: PhaseEnv, on_epoch: EpochCallback | None = None
) -> DenseModel:
    """The trained dense model of `config` (its plan's dense `phase`), from the cache or
    trained now (and cached)."""
    entry = cache_root(config) / config.dense_hash()[:20]
    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry) + ".lock"):
        summary_path = entry / "dense.json"
        cache_hit = summary_path.is_file()
        if cache_hit:
            summary = json.loads(summary_path.read_text())
        else:
            summary = _train_dense(config, phase, env, entry, on_epoch)
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
    config: TrialConfig, phase: Phase, env: PhaseEnv, entry: Path, on_epoch: EpochCallback | None
) -> dict:
    run = start_phase(phase, env)
    progress_path = entry / "progress.pt"
    progress = load_checkpoint(progress_path) if progress_path.is_file() else None
    if progress is not None and is_current_format(progress):  # resume a dense run whose process died
        run.load_state_dict(progress)
    else:  # a first run, or progress from before the phase engine: train from the start
        atomic_torch_save(run.model.state_dict(), entry / "epoch_0.pt")

    def save(run: PhaseRun) -> Path:
        # The epoch's weights (for rewinding) before the progress that says the epoch is done.
        atomic_torch_save(run.model.state_dict(), entry / f"epoch_{run.epoch}.pt")
        return save_checkpoint(run, progress_path)

    def report(run: PhaseRun, metrics: dict[str, float], _: Path) -> None:
        if on_epoch is not None:
            on_epoch(run.epoch, phase.epochs, metrics)

    run_phase(run, env, save, report)
    data = env.data
    val, test = evaluate(run.model, data.val, data.objective), evaluate(run.model, data.test, data.objective)
    for hook in run.hooks:
        if isinstance(hook, PenaltyHook) and any(True for _ in hook.parameters()):
            atomic_torch_save(hook.state_dict(), entry / REGULARIZER_STATE)  # the learnt state
    progress_path.unlink(missing_ok=True)
    return {
        "epochs": phase.epochs,
        "val_metrics": val,
        "test_metrics": test,
        "train_seconds": run.seconds,
        "config": {
            key: value
            for key, value in config.model_dump(mode="json").items()
            if key in ("task", "model", "training", "seed")
        },
    }
