"""The contract of a model factory: how rnnprune builds the network a trial prunes.

A factory turns its typed parameters and what the task fixes (`ModelInputs`) into an
`nn.Module` holding recurrent layers (`nn.LSTM`, `nn.GRU`, `nn.RNN` or their cells) and linear
layers; the core then finds the prunable matrices itself (`rnnprune.models.masking`). The
built-in network is one factory (`recurrent`); a user's own is another, named in a config by
`module:attribute` or by an entry point of the `rnnprune.models` group. A plain function
`build(inputs, *, hidden_size: int = 64, ...)` is a factory too: its keyword parameters, with
their annotations and defaults, become its typed parameters.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model
from torch import nn

from rnnprune.data.base import Architecture


class ModelParams(BaseModel):
    """Base of every factory's typed parameter block (unknown fields are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class ModelInputs:
    """What the task fixes about a model: its input features per step (or, for token inputs,
    the embedding size a built-in network uses), its outputs per read-out step, and the
    task's wishes for the network around the recurrent layers (`Architecture`)."""

    input_size: int
    num_outputs: int
    architecture: Architecture


@dataclass(frozen=True)
class ModelFactory:
    """A registered model factory.

    `build(params, inputs)` returns a new, randomly initialised module (the trial seeds torch's
    generator before the call). `readout` is the module path of the linear layer that produces
    the outputs; None means the last `nn.Linear` the module registers.
    """

    name: str
    params: type[ModelParams]
    build: Callable[[Any, ModelInputs], nn.Module]
    description: str
    readout: str | None = None


def factory_from_function(function: Callable[..., Any]) -> ModelFactory:
    """A factory from a plain function `build(inputs, *, name: type = default, ...)`.

    Raises TypeError, saying what is wrong, when the function's parameters cannot be read as
    typed parameters (no positional parameter for the inputs, a parameter without a default
    or an annotation).
    """
    signature = inspect.signature(function)
    parameters = list(signature.parameters.values())
    name = getattr(function, "__qualname__", repr(function))
    if not parameters or parameters[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise TypeError(f"{name} must take the model inputs as its first parameter: def {name}(inputs, ...)")
    try:
        hints = inspect.get_annotations(function, eval_str=True)
    except Exception as error:  # an annotation naming something the module does not define
        raise TypeError(f"{name}'s annotations do not evaluate ({type(error).__name__}: {error})") from None
    fields: dict[str, Any] = {}
    for parameter in parameters[1:]:
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise TypeError(f"{name}: *args and **kwargs cannot be typed parameters; name each one")
        if parameter.default is inspect.Parameter.empty:
            raise TypeError(
                f"{name}: parameter {parameter.name!r} needs a default (configs may leave it out)"
            )
        fields[parameter.name] = (hints.get(parameter.name, type(parameter.default)), parameter.default)
    params = create_model(f"{function.__name__}_params", __base__=ModelParams, **fields)

    def build(values: ModelParams, inputs: ModelInputs) -> nn.Module:
        module: nn.Module = function(inputs, **dict(values))
        return module

    description = (inspect.getdoc(function) or "").split("\n\n")[0].replace("\n", " ")
    return ModelFactory(name, params, build, description)


def as_factory(found: object) -> ModelFactory:
    """A `ModelFactory` as it is, a function as `factory_from_function` reads it."""
    if isinstance(found, ModelFactory):
        return found
    if inspect.isfunction(found):
        return factory_from_function(found)
    raise TypeError(f"is a {type(found).__name__}, not a ModelFactory or a function")
