"""Test-only fault injection, installed in Ray workers as their setup hook.

A test points the sweep's `worker_process_setup_hook` at one of these hooks (monkeypatching
`rnnprune.sweep.runner.WORKER_SETUP_HOOK`, or from a job's entry script) and makes this
module importable by the workers. Each hook does the product's own worker set-up, then wraps
`ray.tune.report`, so faults follow the trial's own progress and happen at the same point on
a fast or a loaded machine, never by racing a poll.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

KILL_AT_EPOCH_ENV = "RNNPRUNE_TEST_KILL_AT_EPOCH"
MARKER_ENV = "RNNPRUNE_TEST_KILL_MARKER"
HOLD_SETTINGS = "faults_hold.json"
HOOK = "faults.kill_once_at_epoch"
HOLD_HOOK = "faults.hold_after_first_checkpoint"
HOLD_LIMIT_S = 300.0  # a held trial gives up waiting after this, so a broken test cannot hang


def _wrap_report(before: Any = None, after: Any = None) -> None:
    from ray import tune

    from rnnprune.sweep import trainable

    trainable.worker_setup()
    report = tune.report

    def wrapped(metrics: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        if before is not None:
            before(metrics)
        report(metrics, *args, **kwargs)
        if after is not None:
            after(metrics, kwargs.get("checkpoint"))

    tune.report = wrapped


def kill_once_at_epoch() -> None:
    """The first report of the target epoch, anywhere in the sweep, kills its worker, once.

    That is after the trial logged the epoch to MLflow and before Tune holds its checkpoint:
    the worst moment for a retry that must not log a step twice.
    """
    target, marker = int(os.environ[KILL_AT_EPOCH_ENV]), Path(os.environ[MARKER_ENV])

    def kill(metrics: dict[str, Any]) -> None:
        if metrics.get("epoch") == target and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)

    _wrap_report(before=kill)


def hold_after_first_checkpoint() -> None:
    """Make a trial be running on the node that has the custom resource named in the settings
    file beside this module (`hold_on_resource`) when the test kills that node.

    There, the first trial to hand Tune a checkpoint writes the marker file and then waits,
    still running, for the test to kill the node. Elsewhere a trial that reaches a checkpoint
    first waits for the marker: trials of a tiny data set finish in a second, and without the
    wait one node can run them all before the other's first worker has started. The settings
    travel as a file in the job's working directory, beside this module, so no node's
    environment has to carry them.
    """
    settings = json.loads(Path(__file__).with_name(HOLD_SETTINGS).read_text())
    marker = Path(settings["marker"])
    log = marker.with_name(marker.name + ".log")  # read by a failing test

    def on_held_node() -> bool:
        import ray

        node, resource = ray.get_runtime_context().get_node_id(), settings["hold_on_resource"]
        return any(n["NodeID"] == node and resource in n["Resources"] for n in ray.nodes())

    def wait_for(condition: Any) -> None:
        deadline = time.monotonic() + HOLD_LIMIT_S
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.5)

    def hold(metrics: dict[str, Any], checkpoint: Any) -> None:
        if checkpoint is None or marker.exists():
            return
        held = on_held_node()
        with log.open("a") as lines:
            lines.write(f"pid {os.getpid()} epoch {metrics.get('epoch')} held node {held}\n")
        if held:
            marker.write_text(str(os.getpid()))
            wait_for(lambda: False)  # until the test kills this node
        else:
            wait_for(marker.exists)  # until a trial is running on the held node

    _wrap_report(after=hold)
