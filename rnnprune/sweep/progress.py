"""One line per finished trial on the driver's terminal, as tqdm users expect of a long job:
done / total, failures, elapsed and estimated time left, and the size of the front so far."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from ray import tune

from rnnprune.pareto import non_dominated

ENDED = ("TERMINATED", "ERROR")


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


class ProgressLine(tune.Callback):
    """Tune callback: after each trial ends, one line on stderr (pickled with the run config,
    so it keeps no stream; a restored sweep counts the trials that ended before it too)."""

    def __init__(self, total: int, quality: str, maximize: bool, enabled: bool = True) -> None:
        self.total, self.quality, self.maximize, self.enabled = total, quality, maximize, enabled
        self.started: float | None = None
        self.ended_here = 0

    def setup(self, **info: Any) -> None:
        """At the start of every `fit`: a restored sweep's clock starts again in this process."""
        self.started, self.ended_here = None, 0

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.started is None:
            self.started = time.monotonic()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trials, trial, "done")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trials, trial, "FAILED")

    def _line(self, trials: list, trial: Any, outcome: str) -> None:
        if not self.enabled:
            return
        self.ended_here += 1
        others = [t for t in trials if t is not trial]
        ended = 1 + sum(t.status in ENDED for t in others)
        failed = (outcome == "FAILED") + sum(t.status == "ERROR" for t in others)
        finished = [t for t in others if t.status == "TERMINATED"] + ([trial] if outcome == "done" else [])
        points = [p for t in finished if (p := self._point(t.last_result or {})) is not None]
        front = int(non_dominated(points, [self.maximize, True]).sum()) if points else 0
        elapsed = time.monotonic() - (self.started or time.monotonic())
        left = elapsed / self.ended_here * max(self.total - ended, 0)
        value = (trial.last_result or {}).get(self.quality)
        shown = f", {self.quality} {value:.4g}" if isinstance(value, float) else ""
        print(
            f"[{ended}/{self.total}] {trial.trial_id} {outcome}{shown} | {failed} failed | "
            f"{_clock(elapsed)} elapsed, ~{_clock(left)} left | front: {front} trial(s)",
            file=sys.stderr,
            flush=True,
        )

    def _point(self, result: dict[str, Any]) -> tuple[float, float] | None:
        """(quality, sparsity) of a finished trial's final result; None if it reported none."""
        values = (result.get(self.quality), result.get("sparsity"))
        if all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            return values  # type: ignore[return-value]
        return None
