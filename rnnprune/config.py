"""Typed, validated trial configuration: the one place where input is checked.

A trial is a bundle of hyperparameter groups (task, model, training, pruning), as in
OpenLTH. Configs come from YAML plus `--set key=value` overrides, are validated once here,
and every error names the field and says how to fix it. Inside the package, code trusts
the config. Trials and dense-cache entries are named by hashes of what defines them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from rnnprune.data import registry as task_registry
from rnnprune.data.base import TaskParams
from rnnprune.errors import ConfigError
from rnnprune.latency import Repeats
from rnnprune.models import registry as model_registry
from rnnprune.models.base import ModelParams
from rnnprune.models.recurrent import GATES, Cell, RecurrentParams
from rnnprune.pruning import registry as method_registry
from rnnprune.pruning.base import MethodParams
from rnnprune.pruning.schedules import GradualSchedule, Schedule
from rnnprune.registry import Registry, UnknownName
from rnnprune.weights import PrunableWeight, WeightKind
from rnnprune.yaml_files import read_mapping

T = TypeVar("T")


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _LocatedError(ValueError):
    """Errors found inside a validator, kept with their own field paths (relative)."""

    def __init__(self, errors: list[tuple[tuple[Any, ...], str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in errors))


def _allowed(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


def _validate_params(params_type: type[BaseModel], raw: Any) -> BaseModel:
    if isinstance(raw, params_type):
        return raw
    try:
        return params_type.model_validate(raw or {})
    except ValidationError as error:
        errors = []
        for e in error.errors():
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                allowed = _allowed(params_type) or "none (this block takes no parameters)"
                msg = f"unknown parameter; allowed: {allowed}"
            errors.append((("params", *e["loc"]), msg))
        raise _LocatedError(errors) from None


def _lookup(field: str, name: Any, registry: Registry[T], hint: str = "") -> T:
    """The registered (or `module:attribute`) implementation of `name`, as a located error if none."""
    if not isinstance(name, str):
        raise _LocatedError([((field,), f"give a name as text (got {name!r})")])
    try:
        return registry.lookup(name)
    except UnknownName as error:
        raise _LocatedError([((field,), f"{error}{hint}")]) from None


class TaskConfig(_Group):
    name: str = Field(default="seq_mnist", description="Registered task name.")
    params: Any = Field(default_factory=dict, description="The task's own parameters.")
    data_dir: Path | None = Field(
        default=None, description="Data root; else $RNNPRUNE_DATA_DIR, else the user cache."
    )
    download: bool = Field(default=True, description="Let torchvision download missing files.")

    @model_validator(mode="before")
    @classmethod
    def _typed_params(cls, raw: Any) -> Any:
        if isinstance(raw, Mapping):
            name = raw.get("name", "seq_mnist")
            task = _lookup("name", name, task_registry.registered_tasks)
            params = _validate_params(task.params, raw.get("params"))
            return {**raw, "params": params}
        return raw

    @property
    def typed_params(self) -> TaskParams:
        return self.params


_BUILT_IN_FIELDS = tuple(RecurrentParams.model_fields)


class ModelConfig(_Group):
    """The network: the built-in one (its fields directly here) or a plugin factory's."""

    cell: Cell = RecurrentParams.model_fields["cell"]
    hidden_size: int = RecurrentParams.model_fields["hidden_size"]
    num_layers: int = RecurrentParams.model_fields["num_layers"]
    dropout: float = RecurrentParams.model_fields["dropout"]
    factory: str = Field(
        default=model_registry.BUILT_IN_FACTORY,
        description="recurrent (built-in), an installed plugin's name, or module:attribute of a "
        "ModelFactory or a function build(inputs, **params) returning an nn.Module.",
    )
    params: Any = Field(default_factory=dict, description="A plugin factory's own parameters.")

    @model_validator(mode="before")
    @classmethod
    def _typed_params(cls, raw: Any) -> Any:
        if not isinstance(raw, Mapping):
            return raw
        name = raw.get("factory", model_registry.BUILT_IN_FACTORY)
        factory = _lookup(
            "factory", name, model_registry.registered_models, " (`rnnprune models` lists them)"
        )
        if name == model_registry.BUILT_IN_FACTORY:
            if raw.get("params"):
                raise _LocatedError(
                    [
                        (
                            ("params",),
                            f"the built-in network takes {', '.join(_BUILT_IN_FIELDS)} directly "
                            "under model, not under model.params",
                        )
                    ]
                )
            return raw
        misplaced = [key for key in _BUILT_IN_FIELDS if key in raw]
        if misplaced:
            raise _LocatedError(
                [
                    (
                        (key,),
                        f"belongs to the built-in network; give factory {name}'s parameters under "
                        f"model.params (allowed: {_allowed(factory.params) or 'none'})",
                    )
                    for key in misplaced
                ]
            )
        return {**raw, "params": _validate_params(factory.params, raw.get("params"))}

    @model_serializer(mode="wrap")
    def _chosen_network_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Only the chosen network's fields define it (and read back): the built-in network's
        # configs dump, and hash, as they did before factories existed, so finished trials
        # and dense caches stay found.
        data: dict[str, Any] = handler(self)
        unused = ("factory", "params") if self.is_built_in else _BUILT_IN_FIELDS
        return {key: value for key, value in data.items() if key not in unused}

    @property
    def is_built_in(self) -> bool:
        return self.factory == model_registry.BUILT_IN_FACTORY

    @property
    def typed_params(self) -> ModelParams:
        """The factory's parameters (the built-in network's from the fields above)."""
        if self.is_built_in:
            return RecurrentParams(**{key: getattr(self, key) for key in _BUILT_IN_FIELDS})
        return self.params

    def label(self) -> str:
        """A short name of the network for run names and tags (`lstm128`, `mypkg.models:build`)."""
        if self.is_built_in:
            return f"{self.cell}{self.hidden_size}"
        return self.factory


class TrainingConfig(_Group):
    """The dense phase (and, unless the pruning block overrides them, fine-tuning)."""

    epochs: int = Field(default=10, ge=0, description="Dense training epochs (cached across trials).")
    batch_size: int = Field(default=128, ge=1, description="Examples per optimizer step.")
    optimizer: Literal["adam", "adamw", "sgd"] = Field(default="adam", description="Optimizer.")
    lr: float = Field(default=1e-3, gt=0.0, description="Peak learning rate.")
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0, description="SGD momentum.")
    weight_decay: float = Field(default=0.0, ge=0.0, description="Weight decay.")
    lr_schedule: Literal["constant", "cosine", "plateau"] = Field(
        default="cosine",
        description="Per phase (and per iterative round); plateau: multiply the lr by plateau_factor "
        "after every epoch whose validation loss is not the phase's best (the word-language-model recipe).",
    )
    plateau_factor: float = Field(
        default=0.25, gt=0.0, lt=1.0, description="lr multiplier of lr_schedule: plateau."
    )
    grad_clip: float | None = Field(default=1.0, gt=0.0, description="Max gradient norm (None: off).")


class PruningConfig(_Group):
    method: str = Field(default="global_magnitude", description="Registered method name.")
    params: Any = Field(default_factory=dict, description="The method's own parameters.")
    target_sparsity: float = Field(
        default=0.9, ge=0.0, lt=1.0, description="Fraction of the prunable pool set to zero."
    )
    scope: tuple[WeightKind, ...] = Field(
        default=("ih", "hh"),
        min_length=1,
        description="Prunable tensors: ih, hh, readout, encoder (embedding or initial-state encoder).",
    )
    schedule: Schedule = Field(default_factory=GradualSchedule, description="When to prune.")
    lr: float | None = Field(default=None, gt=0.0, description="Pruning-phase lr (None: training.lr).")
    lottery: bool = Field(
        default=False,
        description="Lottery-ticket control: after the schedule, re-initialise the weights (and any "
        "regularizer's random structure), keep the final masks, and retrain for the dense + pruning "
        "epochs; the trial reports the ticket, and the trained sparse model as sparse_*.",
    )

    @model_validator(mode="before")
    @classmethod
    def _typed_params(cls, raw: Any) -> Any:
        if isinstance(raw, Mapping):
            name = raw.get("method", "global_magnitude")
            method = _lookup(
                "method",
                name,
                method_registry.registered_methods,
                " (`rnnprune methods` lists them with their parameters)",
            )
            params = _validate_params(method.params, raw.get("params"))
            return {**raw, "params": params}
        return raw

    @field_validator("scope")
    @classmethod
    def _unique_scope(cls, scope: tuple[WeightKind, ...]) -> tuple[WeightKind, ...]:
        if len(set(scope)) != len(scope):
            raise ValueError(f"repeated entries in {list(scope)}")
        return scope

    @property
    def typed_params(self) -> MethodParams:
        return self.params


class LatencyConfig(_Group):
    """How a finished trial's deployable form is timed against its dense model
    (`rnnprune.deploy`): blocks of calls taking turns, medians of the per-call times."""

    measure: bool = Field(
        default=True,
        description="Measure latency_ms_b1/b64, speedup_b1/b64 and model_bytes at the end of the trial.",
    )
    blocks: int = Field(default=10, ge=1, description="Turns each model takes, per batch size.")
    calls: int = Field(default=5, ge=1, description="Timed calls per turn.")

    def repeats(self) -> Repeats:
        return Repeats(blocks=self.blocks, calls=self.calls)


class TrackConfig(_Group):
    """Readings each epoch of the pruning phases adds to its losses, validation metrics and
    sparsity. They read the model and never change it, so they stay out of the hashes (a trial
    that finished without them is found, not rerun)."""

    graphs: bool = Field(
        default=False,
        description="Every layer graph's margins (graph.<G>.delta_r, delta_s, their weighted _w "
        "variants, ...) after each epoch: the curves of an iterative reproduction.",
    )
    test: bool = Field(
        default=False,
        description="The test split's metrics after each epoch (test_<metric>), to plot curves; "
        "validation still drives every choice.",
    )

    @property
    def any(self) -> bool:
        return self.graphs or self.test


class TrialConfig(_Group):
    task: TaskConfig = Field(default_factory=TaskConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    pruning: PruningConfig = Field(default_factory=PruningConfig)
    seed: int = Field(default=0, ge=0, description="Seeds initialisation, shuffling and masks.")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto: cuda if present.")
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    track: TrackConfig = Field(default_factory=TrackConfig)
    cache_dir: Path | None = Field(
        default=None,
        description="Dense-pretraining cache; else $RNNPRUNE_CACHE_DIR or the user cache.",
    )

    # Fields that say where or how, not what: they never change the trained model, so they
    # stay out of the hashes (moving the data or the cache, or timing the finished model
    # differently, must not invalidate finished work).
    _LOCATION_FIELDS: tuple[tuple[str, ...], ...] = (
        ("task", "data_dir"),
        ("task", "download"),
        ("device",),
        ("latency",),
        ("track",),
        ("cache_dir",),
    )

    def _defining(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for path in self._LOCATION_FIELDS:
            node = data
            for key in path[:-1]:
                node = node[key]
            node.pop(path[-1], None)
        return data

    @model_validator(mode="after")
    def _method_fits_the_model(self) -> TrialConfig:
        """The method's own check of the matrices the model group fixes (before any data)."""
        if not self.model.is_built_in:  # its matrices are known once built: the runner checks them
            return self
        method = method_registry.get(self.pruning.method)
        weights = _weights_known_before_data(self.model, self.pruning.scope)
        problems = method.problems(weights, self.pruning.target_sparsity, self.pruning.typed_params)
        if problems:
            raise _LocatedError([(("pruning", *field.split(".")), message) for field, message in problems])
        return self

    def hash(self) -> str:
        """Names the whole trial."""
        return _digest(self._defining())

    def dense_hash(self) -> str:
        """Names the dense phase: everything that defines it, nothing about pruning.

        A method whose regularizer penalises the dense phase too (moduli) is part of it.
        """
        data = self._defining()
        defining = {key: data[key] for key in ("task", "model", "training", "seed")}
        if self.regularizes:
            hook = method_registry.get(self.pruning.method).regularizer
            penalty_params = data["pruning"]["params"]
            if hook is not None and hook.defining is not None:
                penalty_params = hook.defining(self.pruning.typed_params)
            defining["regularizer"] = {"method": data["pruning"]["method"], "params": penalty_params}
        return _digest(defining)

    @property
    def regularizes(self) -> bool:
        """Whether the trial's method adds a penalty to training."""
        return method_registry.get(self.pruning.method).regularizes(self.pruning.typed_params)

    def name(self) -> str:
        return f"{self.task.name}-{self.model.label()}-{self.pruning.method}-{self.hash()[:10]}"


def _weights_known_before_data(model: ModelConfig, scope: Iterable[WeightKind]) -> list[PrunableWeight]:
    """The built-in network's recurrent matrices and readout as shape-only (meta) tensors,
    named as it names them; a size the task fixes (the input width, the outputs) is 0."""
    gates = GATES[model.cell]
    rows = len(gates) * model.hidden_size
    shapes: list[tuple[str, int, WeightKind, tuple[int, int]]] = []
    for layer in range(model.num_layers):
        inputs = model.hidden_size if layer else 0
        shapes.append((f"rnn.weight_ih_l{layer}", layer, "ih", (rows, inputs)))
        shapes.append((f"rnn.weight_hh_l{layer}", layer, "hh", (rows, model.hidden_size)))
    shapes.append(("readout.weight", model.num_layers, "readout", (0, model.hidden_size)))
    return [
        PrunableWeight(
            name,
            layer,
            kind,
            gates if kind != "readout" else ("out",),
            torch.empty(shape, device="meta"),
            torch.empty(shape, dtype=torch.bool, device="meta"),
            module=name.partition(".")[0],
        )
        for name, layer, kind, shape in shapes
        if kind in scope
    ]


def _digest(data: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Loading, overrides and error messages


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config group a field path points into, to list its allowed fields."""
    model: Any = TrialConfig
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _format_errors(error: ValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        # The discriminated schedule union puts the kind in the path; users never write it.
        loc = tuple(p for p in item["loc"] if p not in ("one_shot", "iterative", "gradual", "linear"))
        located = item.get("ctx", {}).get("error")
        if isinstance(located, _LocatedError):
            entries = [(loc + sub, msg) for sub, msg in located.errors]
        elif item["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1])
            allowed = f"; allowed here: {_allowed(parent)}" if parent else ""
            entries = [(loc, f"unknown field{allowed}")]
        else:
            got = item.get("input")
            shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
            entries = [(loc, item["msg"].removeprefix("Value error, ") + shown)]
        for path, msg in entries:
            lines.append(f"  {'.'.join(str(p) for p in path) or '(top level)'}: {msg}")
    return f"invalid trial config {source}:\n" + "\n".join(lines)


def parse_override(override: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (['a', 'b', 'c'], value parsed as YAML)."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like key.path=value (e.g. seed=3)")
    key, _, text = override.partition("=")
    if not key.strip():
        raise ConfigError(f"override {override!r} has an empty key")
    return key.strip().split("."), yaml.safe_load(text)


def with_values(raw: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of `raw` with each dotted path (`pruning.target_sparsity`) set."""
    merged = json.loads(json.dumps(raw, default=str))
    for dotted, value in values.items():
        node = merged
        *parents, last = dotted.split(".")
        for key in parents:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{dotted}: {key!r} is not a group of fields")
            node = child
        node[last] = value
    return merged


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply `--set key.path=value` strings (values parsed as YAML)."""
    return with_values(raw, {".".join(path): value for path, value in map(parse_override, overrides)})


def validate_config(raw: Mapping[str, Any], source: str = "(inline)") -> TrialConfig:
    try:
        return TrialConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format_errors(error, source)) from None


def read_yaml(path: Path) -> dict[str, Any]:
    """A trial config file as raw data (UTF-8 YAML, no repeated keys); ConfigError otherwise."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist (pass the path to a trial YAML)")
    return read_mapping(path, "config file")


def load_config(path: Path, overrides: Iterable[str] = ()) -> TrialConfig:
    """Read a trial YAML, apply `--set` overrides, validate. Raises ConfigError."""
    return validate_config(apply_overrides(read_yaml(path), overrides), source=str(path))
