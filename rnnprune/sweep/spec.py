"""Sweep specifications: a base trial config, search axes, search and resources.

A spec is YAML in `sweeps/`, validated into typed objects before Ray starts. Every grid
point (with every sampled axis at its bounds) is validated as a full trial config, so a
misspelt path or a value out of range fails here, naming the file, the line and the field,
rather than in a trial an hour later.

    name: quickstart
    base: trials/quickstart.yaml          # trial config, relative to this file
    set: {training.epochs: 3}             # overrides of the base
    axes:                                  # for every method
      pruning.target_sparsity: [0.5, 0.8, 0.9]   # a list is a grid axis
      seed: [0, 1, 2]
    methods:                               # one block per method; its own axes
      global_magnitude: {}
      random: {pruning.params.layerwise: [false, true]}
      lattice: {}
    variants:                              # named sets of overrides of one method, tied
      lattice:                             # together; every variant runs every grid point
        continuous rho=0.1: {pruning.params.mode: continuous, pruning.params.rho: 0.1}
    search: {algorithm: grid}              # grid | random | optuna
    scheduler: {kind: fifo}                # fifo | asha (within each sparsity level)
    resources: {cpu: 1, gpu: 0}
    matched_baselines:                     # after the grid: baselines at the reached sparsity
      methods: [global_magnitude, random]
      to: [lattice]                        # default: every other method of `methods`
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rnnprune import catalogue
from rnnprune.config import TrialConfig, read_yaml, validate_config, with_values
from rnnprune.data import registry as task_registry
from rnnprune.errors import ConfigError
from rnnprune.pruning import registry as method_registry
from rnnprune.registry import UnknownName
from rnnprune.yaml_files import parse, read_text

EPOCH_METRICS = tuple(m.name for m in catalogue.COMMON if m.per_epoch)
"""Metrics every trial reports each epoch, whatever its task; the task adds its own
(`val_<metric>` of its objective: `val_loss`, `val_accuracy`, `val_error_cm`, ...)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sampled(_Strict):
    """A sampled axis: exactly one of the distributions."""

    choice: list[Any] | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Sampled:
        given = [
            name for name in ("choice", "uniform", "loguniform", "randint") if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of choice, uniform, loguniform, randint")
        bounds = self.uniform or self.loguniform or self.randint
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(f"bounds must be [low, high] with low < high (got {list(bounds)})")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError("loguniform bounds must be positive")
        if self.choice is not None and not self.choice:
            raise ValueError("choice needs at least one value")
        return self

    @property
    def kind(self) -> str:
        return next(n for n in ("choice", "uniform", "loguniform", "randint") if getattr(self, n) is not None)

    def extremes(self) -> list[Any]:
        """Values that must all be valid for the axis to be valid."""
        if self.choice is not None:
            return list(self.choice)
        low, high = self.uniform or self.loguniform or self.randint  # type: ignore[misc]
        return [low, high - 1 if self.randint is not None else high]


Axis = list[Any] | Sampled


class SearchObjective(_Strict):
    """One metric Optuna optimises, and which way."""

    metric: str = Field(description="A metric every trial reports each epoch.")
    mode: Literal["max", "min"]


class Search(_Strict):
    algorithm: Literal["grid", "random", "optuna"] = Field(
        default="grid",
        description="grid: lists are grid axes; random: lists are sampled too; optuna: Optuna TPE.",
    )
    num_samples: int = Field(
        default=1, ge=1, description="Repeats of the grid (grid/random); trials (optuna)."
    )
    objectives: list[SearchObjective] | None = Field(
        default=None,
        min_length=1,
        description="Optuna objectives (several = multi-objective); default: the task's "
        "validation quality metric and sparsity.",
    )
    seed: int | None = Field(default=None, description="Seed of the search algorithm.")


class Scheduler(_Strict):
    kind: Literal["fifo", "asha"] = Field(default="fifo", description="asha stops trials early.")
    metric: str | None = Field(default=None, description="Default: the task's validation quality metric.")
    mode: Literal["max", "min"] | None = Field(default=None, description="Default: the metric's direction.")
    grace_period: int = Field(default=1, ge=1, description="Epochs before a trial can be stopped.")
    reduction_factor: float = Field(default=2.0, gt=1.0)


class Resources(_Strict):
    cpu: float = Field(default=1.0, gt=0, description="CPUs per trial.")
    gpu: float = Field(default=0.0, ge=0, description="GPUs per trial (fractions share a GPU).")
    memory_gb: float | None = Field(
        default=None, gt=0, description="Memory per trial in GiB (Ray's `memory`); None: none reserved."
    )

    @field_validator("gpu")
    @classmethod
    def _shareable(cls, gpu: float) -> float:
        # Ray shares one GPU between trials that ask for fractions of it; a trial cannot hold
        # a fraction of a second GPU.
        if gpu > 1 and not gpu.is_integer():
            raise ValueError(
                f"{gpu:g} GPUs per trial cannot be granted: give a fraction up to 1 (trials share a GPU) "
                "or a whole number of GPUs"
            )
        return gpu

    def ray_resources(self) -> dict[str, float]:
        """The request as Ray spells it (memory in bytes)."""
        request = {"cpu": self.cpu, "gpu": self.gpu}
        if self.memory_gb is not None:
            request["memory"] = self.memory_gb * 2**30
        return request


class Tracking(_Strict):
    experiment: str | None = Field(default=None, description="MLflow experiment (default: the sweep name).")
    tracking_uri: str | None = Field(
        default=None, description="Else --tracking-uri, $MLFLOW_TRACKING_URI, SQLite."
    )
    log_models: bool = Field(default=True, description="Log each trial's pruned model as an MLflow model.")


class RuntimeEnv(_Strict):
    """Code Ray ships to every worker: plugins that the cluster's nodes do not have installed.

    Paths are relative to the spec file. Ray uploads `py_modules` folders (or wheels) and
    `working_dir`, and installs `pip` requirements, into each worker's environment; the
    driver imports `py_modules` from where they are, to validate the spec before Ray starts.
    """

    py_modules: list[Path] = Field(
        default_factory=list, description="Package folders (or .whl/.zip files) to upload to every worker."
    )
    pip: list[str] = Field(default_factory=list, description="Requirements pip installs on every worker.")
    working_dir: Path | None = Field(
        default=None, description="A folder uploaded as each worker's working dir."
    )

    def paths(self, spec_dir: Path) -> list[tuple[tuple[str, ...], Path]]:
        """(field path, absolute path) of every local path named."""
        named = [(("runtime_env", "py_modules", str(i)), m) for i, m in enumerate(self.py_modules)]
        if self.working_dir is not None:
            named.append((("runtime_env", "working_dir"), self.working_dir))
        return [(loc, (spec_dir / path).resolve()) for loc, path in named]

    def ray_runtime_env(self, spec_dir: Path) -> dict[str, Any]:
        """The fields of Ray's `runtime_env` this block sets (absolute paths)."""
        env: dict[str, Any] = {}
        if self.py_modules:
            env["py_modules"] = [str((spec_dir / m).resolve()) for m in self.py_modules]
        if self.pip:
            env["pip"] = list(self.pip)
        if self.working_dir is not None:
            env["working_dir"] = str((spec_dir / self.working_dir).resolve())
        return env


class Pareto(_Strict):
    objectives: list[str] | None = Field(
        default=None,
        min_length=2,
        max_length=3,
        description="The front the sweep publishes when it ends: two or three catalogue metrics, "
        "measured ones (speedup_b1, model_bytes) too; default: the task's test quality metric and sparsity.",
    )


class MatchedBaselines(_Strict):
    """Baselines run at the sparsity each finished trial of a reference method reached.

    Some methods reach a sparsity other than their target (lattice in continuous mode, expander
    with stopping, whole units under a parameter target); a fair baseline runs at the sparsity
    they reached. After the grid, each finished trial of a `to` method gets one trial of each
    baseline with its config, but the baseline's method (default params) and
    `pruning.target_sparsity` = the trial's measured `sparsity`, tagged `matched_to`.
    """

    methods: list[str] = Field(min_length=1, description="Baseline methods run at the reached sparsity.")
    to: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Reference methods (of the spec's `methods`); default: those not baselines.",
    )

    @field_validator("methods")
    @classmethod
    def _registered(cls, methods: list[str]) -> list[str]:
        for name in methods:
            try:
                method_registry.registered_methods.lookup(name)
            except UnknownName as error:
                raise ValueError(str(error)) from None
        if len(set(methods)) != len(methods):
            raise ValueError(f"a baseline is named twice in {methods}; name each once")
        return methods


class SweepSpec(_Strict):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Sweep (and Tune experiment) name."
    )
    base: Path = Field(description="Base trial config, relative to the spec file.")
    set: dict[str, Any] = Field(default_factory=dict, description="Overrides of the base (dotted keys).")
    axes: dict[str, Axis] = Field(default_factory=dict, description="Axes for every method.")
    methods: dict[str, dict[str, Axis]] = Field(min_length=1, description="Method name -> its own axes.")
    search: Search = Field(default_factory=Search)
    scheduler: Scheduler = Field(default_factory=Scheduler)
    resources: Resources = Field(default_factory=Resources)
    max_concurrent_trials: int | None = Field(default=None, ge=1, description="None: as resources allow.")
    max_failures: int = Field(default=2, ge=0, description="Retries of a failed trial (from its checkpoint).")
    storage_path: Path = Field(default=Path("runs/sweeps"), description="Tune storage (shared on a cluster).")
    tracking: Tracking = Field(default_factory=Tracking)
    runtime_env: RuntimeEnv = Field(default_factory=RuntimeEnv)
    pareto: Pareto = Field(default_factory=Pareto)
    matched_baselines: MatchedBaselines | None = Field(
        default=None, description="Baselines at the sparsity other methods reached (after the grid)."
    )
    variants: dict[str, dict[str, dict[str, Any]]] = Field(
        default_factory=dict,
        description="Method -> named variants, each a set of overrides (dotted keys) set together; "
        "the method's trials run every variant at every grid point, tagged `variant` with its name.",
    )

    @field_validator("methods")
    @classmethod
    def _registered(cls, methods: dict[str, dict[str, Axis]]) -> dict[str, dict[str, Axis]]:
        for name in methods:
            try:  # a registered name, an entry point, or a plugin's module:attribute
                method_registry.registered_methods.lookup(name)
            except UnknownName as error:
                raise ValueError(str(error)) from None
        return methods

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        if (
            self.search.algorithm == "optuna"
            and self.scheduler.kind == "asha"
            and len(self.search.objectives or [None, None]) > 1
        ):
            raise ValueError(
                "scheduler: asha ranks one metric and cannot be combined with multi-objective "
                "optuna; use kind: fifo or a single objective"
            )
        for path in [*self.axes, *(p for axes in self.methods.values() for p in axes)]:
            if path in ("pruning.method",):
                raise ValueError("axes: pruning.method is set by the methods block, not an axis")
        return self

    @property
    def matched_references(self) -> list[str]:
        """The methods whose trials get matched baselines (none without the block)."""
        matched = self.matched_baselines
        if matched is None:
            return []
        return matched.to or [m for m in self.methods if m not in matched.methods]

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or self.name


@dataclass(frozen=True)
class Variant:
    """One grid point: a method, the values of its grid axes and of its named variant's overrides
    (dotted paths), and that variant's name (None: the method has no named variants)."""

    method: str
    grid: dict[str, Any]
    sampled: dict[str, Sampled]
    name: str | None = None

    def overrides(self, sampled_values: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "pruning.method": self.method,
            **self.grid,
            **{path: sampled_values[path] for path in self.sampled},
        }


@dataclass(frozen=True)
class LoadedSpec:
    spec: SweepSpec
    path: Path
    text: str
    base: dict[str, Any]  # the base trial config with `set` applied, validated
    variants: tuple[Variant, ...]

    @property
    def trial_count(self) -> int:
        """Trials the sweep runs: each grid point num_samples times, or num_samples sampled ones."""
        search = self.spec.search
        return len(self.variants) * search.num_samples if search.algorithm == "grid" else search.num_samples

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def trial_config(self, variant: Variant, sampled_values: Mapping[str, Any]) -> TrialConfig:
        raw = _apply(self.base, variant.overrides(sampled_values))
        return validate_config(raw, source=f"{self.path} (trial of method {variant.method})")

    @property
    def matched_trial_bound(self) -> int:
        """Most matched-baseline trials the sweep can add after its grid (one per baseline and
        finished reference trial; fewer when references fail or reach the same config)."""
        references = self.spec.matched_references
        if not references:
            return 0
        reference_trials = (
            sum(v.method in references for v in self.variants) * self.spec.search.num_samples
            if self.spec.search.algorithm == "grid"
            else self.spec.search.num_samples
        )
        return reference_trials * len(self.spec.matched_baselines.methods)  # type: ignore[union-attr]

    def config_of(self, overrides: Mapping[str, Any], what: str) -> TrialConfig:
        """A trial config from the base and dotted overrides (a matched-baseline trial's)."""
        return validate_config(_apply(self.base, overrides), source=f"{self.path} ({what})")


def matched_overrides(reference: Mapping[str, Any], baseline: str, reached: float) -> dict[str, Any]:
    """A reference trial's overrides with its method and method params swapped for `baseline`'s
    (defaults) and its target for the sparsity it reached."""
    # A whole params block (`pruning.params: {...}`) is the reference method's too.
    kept = {
        k: v for k, v in reference.items() if k != "pruning.params" and not k.startswith("pruning.params.")
    }
    return {**kept, "pruning.method": baseline, "pruning.target_sparsity": reached}


def _apply(base: Mapping[str, Any], dotted: Mapping[str, Any]) -> dict[str, Any]:
    # The method's own params block starts empty: another method's params would be unknown fields.
    raw = copy.deepcopy(dict(base))
    if "pruning.method" in dotted and dotted["pruning.method"] != raw.get("pruning", {}).get("method"):
        raw.setdefault("pruning", {})["params"] = {}
    return with_values(raw, dotted)


def _lines(text: str) -> dict[tuple[str, ...], int]:
    """Line number (1-based) of every mapping key, by its path of keys."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                lines[child] = key.start_mark.line + 1
                walk(value, child)

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, ())
    return lines


def _where(lines: Mapping[tuple[str, ...], int], loc: tuple[Any, ...]) -> str:
    path = tuple(str(p) for p in loc)
    while path and path not in lines:
        path = path[:-1]
    return f":{lines[path]}" if path in lines else ""


def _split(axes: Mapping[str, Axis], algorithm: str) -> tuple[dict[str, list[Any]], dict[str, Sampled]]:
    grid = {p: a for p, a in axes.items() if isinstance(a, list)}
    sampled = {p: a for p, a in axes.items() if isinstance(a, Sampled)}
    if algorithm != "grid":  # random and optuna sample every axis
        sampled.update({p: Sampled(choice=v) for p, v in grid.items()})
        grid = {}
    return grid, sampled


def expand(spec: SweepSpec) -> tuple[Variant, ...]:
    """Grid points of every method and each of its named variants (the method's axes override
    shared axes of the same path; a variant's overrides are never axes, `_check_named`)."""
    variants = []
    for method, own_axes in spec.methods.items():
        grid, sampled = _split({**spec.axes, **own_axes}, spec.search.algorithm)
        named: Mapping[str | None, Mapping[str, Any]] = spec.variants.get(method) or {None: {}}
        for name, fixed in named.items():
            for values in itertools.product(*grid.values()):
                variants.append(
                    Variant(method, {**fixed, **dict(zip(grid, values, strict=True))}, sampled, name)
                )
    return tuple(variants)


def _check_named(spec: SweepSpec, path: Path, lines: Mapping[tuple[str, ...], int]) -> None:
    """Named variants belong to a method of the sweep and set trial-config paths that no axis of
    that method also sets (a value would silently win over the other)."""

    def problem(loc: tuple[str, ...], message: str) -> ConfigError:
        return ConfigError(f"invalid sweep spec:\n  {path}{_where(lines, loc)}: {'.'.join(loc)}: {message}")

    for method, named in spec.variants.items():
        if method not in spec.methods:
            raise problem(
                ("variants", method),
                f"{method!r} is not a method of this sweep ({', '.join(spec.methods)}); "
                "name methods of the `methods` block",
            )
        if not named:
            raise problem(("variants", method), "no variants; name at least one or leave the method out")
        axes = {**spec.axes, **spec.methods[method]}
        for name, overrides in named.items():
            if not name.strip() or not name.isprintable():
                raise problem(
                    ("variants", method, name), "a variant's name must be printable text, not blank"
                )
            for key in overrides:
                loc = ("variants", method, name, key)
                if not _AXIS_PATH.match(key):
                    raise problem(
                        loc, "override keys are dotted trial-config paths like pruning.params.space"
                    )
                if key == "pruning.method":
                    raise problem(
                        loc, "pruning.method is set by the methods block; a variant sets its params"
                    )
                # A block and a path inside it overlap too: the later one would replace the other.
                overlap = [a for a in axes if a == key or a.startswith(f"{key}.") or key.startswith(f"{a}.")]
                if overlap:
                    raise problem(
                        loc,
                        f"axis {overlap[0]} of method {method!r} sets it too; set it in the axis or in "
                        "the variants, not both",
                    )


def _check_variants(
    loaded_base: dict[str, Any], spec: SweepSpec, variants: tuple[Variant, ...], source: str
) -> None:
    """Validate every grid point with each sampled axis at each of its extremes."""
    for variant in variants:
        probes: list[dict[str, Any]] = [{}]
        for path, axis in variant.sampled.items():
            probes = [{**p, path: value} for p in probes for value in axis.extremes()][:64]
        for probe in probes or [{}]:
            raw = _apply(
                loaded_base, {**variant.overrides({k: probe.get(k) for k in variant.sampled}), **probe}
            )
            try:
                validate_config(raw, source=source)
            except ConfigError as error:
                axis_lines = "\n".join(f"    {k} = {v!r}" for k, v in {**variant.grid, **probe}.items())
                named = f" or `variants.{variant.method}.{variant.name}`" if variant.name else ""
                raise ConfigError(
                    f"{error}\n  in the trial of method {variant.method!r} with\n{axis_lines}\n"
                    f"  Fix the value in `axes`, `methods.{variant.method}`{named}."
                ) from None


_AXIS_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _import_shipped_modules(raw: Mapping[str, Any], spec_dir: Path) -> None:
    """Make the spec's `runtime_env.py_modules` folders importable here, as Ray makes them on
    the workers, before the spec's plugin references are looked up."""
    runtime_env = raw.get("runtime_env")
    modules = runtime_env.get("py_modules") if isinstance(runtime_env, Mapping) else None
    for module in modules if isinstance(modules, list) else ():
        folder = (spec_dir / str(module)).resolve()
        if folder.is_dir() and str(folder.parent) not in sys.path:
            sys.path.insert(0, str(folder.parent))


def load_spec(path: Path) -> LoadedSpec:
    """Read and validate a sweep spec; raises ConfigError naming file, line and field."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"sweep spec {path} does not exist (pass the path to a sweep YAML in sweeps/)")
    text = read_text(path, "sweep spec")
    lines = _lines(text)
    raw = parse(text, f"sweep spec {path}")
    if not isinstance(raw, dict):
        raise ConfigError(f"sweep spec {path} must hold a mapping of fields at the top level")
    _import_shipped_modules(raw, path.parent)
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            loc = tuple(
                p
                for p in item["loc"]
                if p not in ("list[any]", "Sampled", "function-after[_exactly_one(), Sampled]")
            )
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = "unknown field"
            problems.append(
                f"  {path}{_where(lines, loc)}: {'.'.join(map(str, loc)) or '(top level)'}: {message}"
            )
        raise ConfigError("invalid sweep spec:\n" + "\n".join(problems)) from None

    for where, axes in [("axes", spec.axes), *((f"methods.{m}", a) for m, a in spec.methods.items())]:
        for axis_path, axis in axes.items():
            line = _where(lines, (*where.split("."), axis_path))
            if not _AXIS_PATH.match(axis_path):
                raise ConfigError(
                    f"invalid sweep spec:\n  {path}{line}: {where}.{axis_path}: "
                    "axis names are dotted trial-config paths like pruning.target_sparsity"
                )
            if isinstance(axis, list) and not axis:
                raise ConfigError(
                    f"invalid sweep spec:\n  {path}{line}: {where}.{axis_path}: "
                    "an empty list gives no trials; give at least one value"
                )

    for loc, local in spec.runtime_env.paths(path.parent):
        if not local.exists():
            raise ConfigError(
                f"invalid sweep spec:\n  {path}{_where(lines, loc)}: {'.'.join(loc)}: {local} does not exist "
                "(paths are relative to the spec file)"
            )

    base_path = (path.parent / spec.base).resolve()
    if not base_path.is_file():
        problem = "is a folder; name a trial YAML" if base_path.is_dir() else "does not exist"
        raise ConfigError(
            f"invalid sweep spec:\n  {path}{_where(lines, ('base',))}: base: trial config "
            f"{base_path} {problem} (the path is relative to the spec file)"
        )
    base = with_values(read_yaml(base_path), spec.set)
    try:
        validate_config(base, source=f"{base_path} with {path} `set`")
    except ConfigError as error:
        raise ConfigError(
            f"{error}\n  (base trial config of sweep spec {path}{_where(lines, ('base',))})"
        ) from None
    spec = _with_task_metrics(spec, validate_config(base).task.name, path, lines)
    _check_named(spec, path, lines)
    variants = expand(spec)
    _check_variants(base, spec, variants, source=str(path))
    _check_matched(base, spec, variants, path, lines)
    return LoadedSpec(spec, path, text, base, variants)


def _check_matched(
    base: dict[str, Any],
    spec: SweepSpec,
    variants: tuple[Variant, ...],
    path: Path,
    lines: Mapping[tuple[str, ...], int],
) -> None:
    """Each baseline must accept each reference trial's config (at the reference's own target:
    the reached sparsity is known only after the grid)."""
    matched = spec.matched_baselines
    if matched is None:
        return

    def problem(field: str, message: str) -> ConfigError:
        line = _where(lines, ("matched_baselines", field))
        return ConfigError(f"invalid sweep spec:\n  {path}{line}: matched_baselines.{field}: {message}")

    for name in matched.to or ():
        if name not in spec.methods:
            raise problem(
                "to",
                f"{name!r} is not a method of this sweep ({', '.join(spec.methods)}); "
                "name methods of the `methods` block",
            )
        if name in matched.methods:
            raise problem("to", f"{name!r} is also a baseline; a method is not matched to itself")
    if not spec.matched_references:
        raise problem(
            "methods",
            "every method of the sweep is a baseline, so no trial is matched; "
            "add a reference method to `methods` or name one in `matched_baselines.to`",
        )
    for variant in variants:
        if variant.method not in spec.matched_references:
            continue
        reference = variant.overrides({p: a.extremes()[0] for p, a in variant.sampled.items()})
        target = _apply(base, reference)["pruning"]["target_sparsity"]
        for baseline in matched.methods:
            try:
                validate_config(
                    _apply(base, matched_overrides(reference, baseline, target)), source=str(path)
                )
            except ConfigError as error:
                raise problem(
                    "methods",
                    f"baseline {baseline!r} cannot run the config of a {variant.method!r} trial: "
                    f"{str(error).splitlines()[-1].strip()}",
                ) from None


def _with_task_metrics(
    spec: SweepSpec, task_name: str, path: Path, lines: Mapping[tuple[str, ...], int]
) -> SweepSpec:
    """The spec with metric defaults taken from the task's objective, and every metric checked
    against what the task's trials report (the task is known only once the base is read)."""
    task = task_registry.get(task_name)
    validation = catalogue.quality(task, "val_")
    quality = SearchObjective(metric=validation.name, mode=validation.mode)
    reported = dict.fromkeys((quality.metric, *task.reported_metrics(), *EPOCH_METRICS))

    def problem(loc: tuple[str, ...], message: str) -> ConfigError:
        return ConfigError(f"invalid sweep spec:\n  {path}{_where(lines, loc)}: {'.'.join(loc)}: {message}")

    sparsity = catalogue.metric("sparsity")
    objectives = spec.search.objectives or [
        quality,
        SearchObjective(metric=sparsity.name, mode=sparsity.mode),
    ]
    metric = spec.scheduler.metric or quality.metric
    named = [(("scheduler", "metric"), metric)] + [
        (("search", "objectives", str(i), "metric"), o.metric) for i, o in enumerate(objectives)
    ]
    final_only = {m.name for m in catalogue.COMMON if not m.per_epoch}
    for loc, name in named:
        if name in final_only:
            raise problem(
                loc,
                f"{name} is measured once, at the end of a trial, and the scheduler and searcher read "
                f"every epoch's report; use one of {', '.join(reported)} (or put {name} in "
                "pareto.objectives)",
            )
        if name not in reported:
            raise problem(
                loc, f"unknown metric {name!r}; trials of task {task_name!r} report {', '.join(reported)}"
            )
    for index, name in enumerate(spec.pareto.objectives or ()):
        try:  # a front reads the final metrics, so a metric measured once at the end is fine
            catalogue.metric(name, task)
        except catalogue.MetricError as error:
            raise problem(("pareto", "objectives", str(index)), str(error).removeprefix("metric: ")) from None
    # Every reported metric is in the catalogue (checked above), so its direction is known.
    mode = spec.scheduler.mode or catalogue.metric(metric, task).mode
    scheduler = spec.scheduler.model_copy(update={"metric": metric, "mode": mode})
    return spec.model_copy(
        update={"scheduler": scheduler, "search": spec.search.model_copy(update={"objectives": objectives})}
    )


def iter_trials(loaded: LoadedSpec) -> Iterator[tuple[Variant, dict[str, str]]]:
    """Grid points with a readable description of their sampled axes (for --dry-run)."""
    for variant in loaded.variants:
        yield (
            variant,
            {
                p: f"{a.kind}{a.extremes() if a.kind != 'choice' else a.choice}"
                for p, a in variant.sampled.items()
            },
        )


def dry_run(loaded: LoadedSpec) -> str:
    spec = loaded.spec
    lines = [
        f"sweep {spec.name}: {len(loaded.variants)} grid point(s) x num_samples {spec.search.num_samples}"
        f" ({spec.search.algorithm} search, scheduler {spec.scheduler.kind})"
    ]
    for index, (variant, sampled) in enumerate(iter_trials(loaded)):
        axes = ", ".join(f"{k}={v}" for k, v in {**variant.grid, **sampled}.items())
        named = f" [{variant.name}]" if variant.name else ""
        lines.append(f"  [{index}] {variant.method}{named}: {axes or '(base config)'}")
    concurrency = spec.max_concurrent_trials or "as resources allow"
    if spec.matched_baselines is not None:
        lines.append(
            f"then matched baselines: {', '.join(spec.matched_baselines.methods)} at the sparsity each "
            f"finished trial of {', '.join(spec.matched_references)} reached: up to "
            f"{loaded.matched_trial_bound} more trial(s), counted once the grid has finished"
        )
    lines.append(
        f"trials: {loaded.trial_count}; per trial {spec.resources.cpu:g} CPU, {spec.resources.gpu:g} GPU; "
        f"max concurrent: {concurrency}; retries per trial: {spec.max_failures}"
    )
    return "\n".join(lines)
