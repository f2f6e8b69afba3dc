"""The Tune function trainable: one sweep trial = one call of the foundation trial runner.

It reports once per epoch with `ray.tune.report`, hands Tune the runner's checkpoint so a
retried or restored trial resumes where it stopped, and logs to the trial's MLflow child
run. The runner itself knows nothing of Ray or MLflow.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

from rnnprune.config import TrialConfig
from rnnprune.sweep.spec import LoadedSpec
from rnnprune.tracking import ChildRun, warm_up
from rnnprune.training.runner import CHECKPOINT, MODEL, EpochReport, TrialResult, load_model, run_trial

# What `worker_setup` warms, set by the sweep driver for its Ray workers.
WORKER_TRACKING_URI_ENV = "RNNPRUNE_WORKER_TRACKING_URI"
WORKER_LOG_MODELS_ENV = "RNNPRUNE_WORKER_LOG_MODELS"
WORKER_SETUP_HOOK = "rnnprune.sweep.trainable.worker_setup"

logger = logging.getLogger(__name__)

FINAL_REPORT = "final_report"
"""Key of a trial's last Tune report once it has run to its end (a trial the scheduler stopped
never reports it): the driver matches baselines only to such trials."""
MATCHED_KEY = "matched"
"""Key of a matched-baseline trial's Tune config: its overrides and the runs it is matched to."""


@dataclass(frozen=True)
class SweepContext:
    """What every trial of a sweep shares (sent once through Ray's object store)."""

    spec: LoadedSpec
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    log_models: bool


def sampled_key(method: str, path: str) -> str:
    return f"{method}|{path}"


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Final metrics as MLflow/Tune scalars, per-tensor and per-gate tables flattened."""
    scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    for name, row in metrics.get("per_tensor", {}).items():
        scalars[f"tensor_sparsity.{name}"] = row["sparsity"]
    for name, gates in metrics.get("per_gate", {}).items():
        for gate, value in gates.items():
            scalars[f"gate_sparsity.{name}.{gate}"] = value
    return scalars


def worker_setup() -> None:
    """Ray's `worker_process_setup_hook` for sweep workers: MLflow's per-process start-up
    (about 2 s) is paid when the worker starts, once, rather than inside its first trial.
    With `reuse_actors` a worker then runs trial after trial at the warm cost.

    Best effort: a hook that raises would stop the worker from starting, and a trial that
    meets the same problem reports it with its own error.
    """
    try:
        warm_up(os.environ.get(WORKER_TRACKING_URI_ENV), os.environ.get(WORKER_LOG_MODELS_ENV) == "1")
    except Exception:  # a failing hook would stop the worker starting
        logger.warning("warming MLflow up in the sweep worker failed", exc_info=True)


def run_name(config: TrialConfig) -> str:
    """What the MLflow runs table shows for a trial: method, target, seed, and the config hash
    that tells apart trials differing in other axes (`global_magnitude@0.9-seed1-3fa2c1`)."""
    return f"{config.pruning.method}@{config.pruning.target_sparsity:g}-seed{config.seed}-{config.hash()[:6]}"


def trial_of(tune_config: dict[str, Any], context: SweepContext) -> tuple[TrialConfig, dict[str, str]]:
    """The trial's config and its extra tags: a grid point's (`variant`: the name of the
    method's named variant, if it has them), or a matched baseline's (`matched_to`: the
    reference runs, comma-separated)."""
    if MATCHED_KEY in tune_config:
        matched = tune_config[MATCHED_KEY]
        config = context.spec.config_of(matched["overrides"], f"matched baseline {matched['overrides']}")
        return config, {"matched_to": matched["matched_to"]}
    variant = context.spec.variants[tune_config["variant"]]
    sampled = {path: tune_config["sampled"][sampled_key(variant.method, path)] for path in variant.sampled}
    return context.spec.trial_config(variant, sampled), {"variant": variant.name} if variant.name else {}


def sweep_trial(tune_config: dict[str, Any], context: SweepContext) -> None:
    config, extra_tags = trial_of(tune_config, context)
    trial_id = tune.get_context().get_trial_id()
    output = Path(tune.get_context().get_trial_dir()) / "trial"
    output.mkdir(parents=True, exist_ok=True)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # Tune's checkpoint is the source of truth on retry/restore
        with checkpoint.as_directory() as directory:
            shutil.copy2(Path(directory) / CHECKPOINT, output / CHECKPOINT)

    run = ChildRun(
        context.tracking_uri,
        context.experiment_id,
        context.parent_run_id,
        trial_id,
        run_name(config),
        params={**config.model_dump(mode="json"), "trial_hash": config.hash()},
        tags={
            "method": config.pruning.method,
            "target_sparsity": str(config.pruning.target_sparsity),
            "task": config.task.name,
            "arch": (
                f"{config.model.cell}{config.model.hidden_size}x{config.model.num_layers}"
                if config.model.is_built_in
                else config.model.factory
            ),
            "seed": str(config.seed),
            "sweep": context.spec.spec.name,
            **extra_tags,
        },
    )

    def finish_run(result: TrialResult, epoch: int) -> dict[str, float]:
        # The model before the final metrics: MLflow 3's log_model reads the history of every
        # metric the run has so far (to link them to the model), one query per metric name.
        if context.log_models and not run.has_outputs():
            _, model, example = load_model(output / MODEL)
            run.log_trial_outputs(output, result.metrics, model, example)
        finals = scalar_metrics(result.metrics)
        last_epoch = result.history[-1] if result.history else {}
        # The last epoch's own metrics are already logged at this step; add only the rest.
        run.log_metrics({k: v for k, v in finals.items() if k not in last_epoch}, step=epoch, force=True)
        run.finish("FINISHED")
        return finals

    reported_final = False

    def on_epoch(report: EpochReport) -> None:
        nonlocal reported_final
        run.log_metrics(report.metrics, step=report.epoch)
        if report.final is not None:
            finals = finish_run(TrialResult(report.final, output, report.final["history"]), report.epoch)
            reported_final = True
            tune.report({**report.metrics, **finals, FINAL_REPORT: 1.0})
            return
        with tempfile.TemporaryDirectory() as directory:
            shutil.copy2(report.checkpoint, Path(directory) / CHECKPOINT)  # type: ignore[arg-type]
            tune.report(dict(report.metrics), checkpoint=tune.Checkpoint.from_directory(directory))

    # No status on exceptions here: a retry continues this run, and only the driver knows
    # whether an exception was a failure or the scheduler stopping the trial (TrackingJanitor).
    result = run_trial(config, output, callback=on_epoch)
    if not reported_final:  # no pruning epochs, or finished before this attempt reported
        tune.report({**finish_run(result, int(result.metrics["pruning_epochs"])), FINAL_REPORT: 1.0})
