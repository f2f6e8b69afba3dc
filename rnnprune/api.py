"""The Python API: what the CLI does, from Python objects, for notebooks and scripts.

    import rnnprune

    report = rnnprune.prune(my_lstm_model, "global_magnitude", sparsity=0.9)
    result = rnnprune.train({"task": {"name": "adding"}, "pruning": {"target_sparsity": 0.8}})
    outcome = rnnprune.sweep(spec, trial, directory="runs/my-sweep")
    front = rnnprune.front("my-sweep", tracking_uri="sqlite:///runs/my-sweep/mlflow.db")

Each function validates its input as the CLI does (the same one-line errors, the same
preflight of plugins) and returns the library's own result objects. Ray and MLflow load only
in the functions that need them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml
from torch import nn

from rnnprune.config import TrialConfig, validate_config
from rnnprune.metrics import sparsity_report
from rnnprune.models.masking import with_masks
from rnnprune.pruning import registry as method_registry
from rnnprune.pruning.base import MethodParams
from rnnprune.weights import WeightKind

if TYPE_CHECKING:
    from rnnprune.pareto import FrontAnalysis
    from rnnprune.sweep.runner import SweepOutcome
    from rnnprune.training.runner import TrialResult


def prune(
    model: nn.Module,
    method: str = "global_magnitude",
    sparsity: float = 0.9,
    *,
    scope: Sequence[WeightKind] = ("ih", "hh"),
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    readout: str | None = None,
) -> dict[str, float]:
    """Prune `model` in place, once, to `sparsity` of the weights in `scope` with `method`.

    `model` is any `nn.Module` with `nn.LSTM`/`nn.GRU`/`nn.RNN` layers (or their cells): it
    gains mask buffers and the mask methods (`prunable_weights`, `masks`, `apply_masks`), and
    keeps its class, forward and state-dict keys. To fine-tune it, call
    `model.apply_masks(optimizer)` after every `optimizer.step()`. Returns the sparsity
    report's figures (`sparsity` of the pool, `sparsity_total`, `nonzero_params`, ...).
    """
    config = validate_config(
        {
            "pruning": {
                "method": method,
                "target_sparsity": sparsity,
                "scope": list(scope),
                "params": dict(params or {}),
            }
        },
        source="(rnnprune.prune arguments)",
    )
    masked = with_masks(model, readout)
    pool = masked.prunable_weights(config.pruning.scope)  # type: ignore[operator]
    typed: MethodParams = config.pruning.typed_params
    result = method_registry.get(method)(pool, sparsity, typed, torch.Generator().manual_seed(seed))
    masked.set_masks(result.masks)  # type: ignore[operator]
    return sparsity_report(masked, [w.name for w in pool]).summary()  # type: ignore[arg-type]


def train(config: Mapping[str, Any] | TrialConfig, output_dir: str | Path | None = None) -> TrialResult:
    """Run one trial (dense training, the pruning schedule, fine-tuning) as `rnnprune train`.

    `config` is a trial config as a mapping (the YAML's content) or a `TrialConfig`; the trial
    writes to `output_dir` (default `runs/<trial name>`), and a finished one is read back.
    """
    from rnnprune.training.preflight import check_plugins
    from rnnprune.training.runner import run_trial

    trial = config if isinstance(config, TrialConfig) else validate_config(config, source="(rnnprune.train)")
    check_plugins([trial])
    return run_trial(trial, Path(output_dir) if output_dir is not None else Path("runs") / trial.name())


def sweep(
    spec: Mapping[str, Any] | str | Path,
    trial: Mapping[str, Any] | None = None,
    *,
    directory: str | Path | None = None,
    address: str | None = None,
    tracking_uri: str | None = None,
    resume: bool = False,
    progress: bool = True,
) -> SweepOutcome:
    """Run a sweep as `rnnprune sweep`: a spec file, or a spec and its base trial as mappings.

    Mappings are written as `spec.yaml` and `trial.yaml` into `directory` (default
    `runs/sweeps/<name>`), where they stay as the record of what ran; the spec's `base` is set
    to that trial, so the same sweep can be resumed from the CLI.
    """
    from rnnprune.sweep.runner import run_sweep
    from rnnprune.sweep.spec import load_spec

    if isinstance(spec, Mapping):
        if trial is None:
            raise TypeError("rnnprune.sweep: give the base trial config as `trial` with a spec mapping")
        folder = Path(directory) if directory is not None else Path("runs") / "sweeps" / str(spec.get("name"))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "trial.yaml").write_text(yaml.safe_dump(dict(trial), sort_keys=False))
        (folder / "spec.yaml").write_text(yaml.safe_dump({**spec, "base": "trial.yaml"}, sort_keys=False))
        path = folder / "spec.yaml"
    else:
        path = Path(spec)
    return run_sweep(
        load_spec(path), address=address, tracking_uri=tracking_uri, resume=resume, progress=progress
    )


def front(
    name: str, tracking_uri: str | None = None, objectives: Sequence[str] | None = None
) -> FrontAnalysis:
    """The Pareto analysis of a sweep (or of every sweep of an MLflow experiment) as `rnnprune
    pareto` computes it, without tagging runs or writing a dashboard. `analysis.front()` lists
    the front's configurations, best first; `analysis.hypervolume` has the volumes."""
    from rnnprune.pareto import analyse, default_objectives, task_of
    from rnnprune.publish import read_runs
    from rnnprune.tracking import resolve_tracking_uri

    _, _, runs = read_runs(resolve_tracking_uri(tracking_uri, Path.cwd()), name)
    task = task_of(runs)
    return analyse(runs, objectives or default_objectives(task), task)
