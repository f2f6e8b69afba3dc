"""Training: the trial plan, the phase engine and its hooks, the cached dense phase, the runner."""

from rnnprune.training.runner import EpochReport, TrialResult, run_trial

__all__ = ["EpochReport", "TrialResult", "run_trial"]
