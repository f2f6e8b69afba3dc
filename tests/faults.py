"""Test-only fault injection, installed in Ray workers as their setup hook.

A test points the sweep's `worker_process_setup_hook` here (monkeypatching
`rnnprune.sweep.runner.WORKER_SETUP_HOOK`) and puts this folder on the workers' PYTHONPATH.
The hook does the product's own worker set-up, then wraps `ray.tune.report`: the first report
of the target epoch, anywhere in the sweep, kills its worker process, once (a marker file says
it happened). That is after the trial logged the epoch to MLflow and before Tune holds its
checkpoint, the worst moment for a retry that must not log a step twice. The kill follows the
trial's own progress, so it happens at the same point on a fast or a loaded machine.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

KILL_AT_EPOCH_ENV = "RNNPRUNE_TEST_KILL_AT_EPOCH"
MARKER_ENV = "RNNPRUNE_TEST_KILL_MARKER"
HOOK = "faults.kill_once_at_epoch"


def kill_once_at_epoch() -> None:
    from ray import tune

    from rnnprune.sweep import trainable

    trainable.worker_setup()
    target, marker = int(os.environ[KILL_AT_EPOCH_ENV]), Path(os.environ[MARKER_ENV])
    report = tune.report

    def report_or_die(metrics: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        if metrics.get("epoch") == target and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        report(metrics, *args, **kwargs)

    tune.report = report_or_die
