"""What every phase builds from the trial's settings: the network, the method's regularizer,
and the optimizer settings."""

from __future__ import annotations

import torch
from torch import nn

from rnnprune.config import TrainingConfig, TrialConfig
from rnnprune.data.base import TaskData
from rnnprune.errors import ConfigError
from rnnprune.models import registry as model_registry
from rnnprune.models.base import ModelInputs
from rnnprune.models.masking import MaskedWeights, with_masks
from rnnprune.pruning import registry as method_registry
from rnnprune.pruning.base import MethodParams
from rnnprune.regularization import Regularizer
from rnnprune.training.loop import OptimizerSettings
from rnnprune.training.state import derived_seed


def model_inputs(data: TaskData) -> ModelInputs:
    return ModelInputs(data.input_size, data.num_classes, data.architecture)


def build_model(config: TrialConfig, data: TaskData, init: str = "init") -> MaskedWeights:
    """The trial's network with masks, initialised from the trial seed (`init` names another
    draw): the built-in one or a plugin factory's."""
    factory = model_registry.get(config.model.factory)
    torch.manual_seed(derived_seed(config.seed, init))
    module = factory.build(config.model.typed_params, model_inputs(data))
    if not isinstance(module, nn.Module):
        raise ConfigError(
            f"factory {config.model.factory} returned a {type(module).__name__}, not an nn.Module; "
            "return the model it builds"
        )
    return with_masks(module, factory.readout)  # type: ignore[return-value]


def make_trial_regularizer(
    method: str, params: MethodParams, model: MaskedWeights, generator: torch.Generator
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
