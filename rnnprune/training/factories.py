"""What every phase builds from the trial's settings: the network, the method's regularizer,
and the optimizer settings."""

from __future__ import annotations

import torch

from rnnprune.config import TrainingConfig, TrialConfig
from rnnprune.data.base import TaskData
from rnnprune.models.recurrent import RecurrentNet
from rnnprune.pruning import registry as method_registry
from rnnprune.pruning.base import MethodParams
from rnnprune.regularization import Regularizer
from rnnprune.training.loop import OptimizerSettings
from rnnprune.training.state import derived_seed


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


def make_trial_regularizer(
    method: str, params: MethodParams, model: RecurrentNet, generator: torch.Generator
) -> Regularizer:
    """The regularizer of a method that regularises with `params`, for `model`, on its device,
    its random structure drawn from `generator` (the method's `RegularizerHook.build`)."""
    hook = method_registry.get(method).regularizer
    if hook is None or not hook.active(params):
        raise ValueError(f"method {method!r} does not regularise with these parameters")
    return hook.build(params, model, generator).to(next(model.parameters()).device)


def optimizer_settings(training: TrainingConfig, lr: float | None = None) -> OptimizerSettings:
    """The training group's optimizer, at `lr` when a phase overrides the peak learning rate."""
    t = training
    return OptimizerSettings(
        t.optimizer, lr or t.lr, t.momentum, t.weight_decay, t.lr_schedule, t.grad_clip, t.plateau_factor
    )
