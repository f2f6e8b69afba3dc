"""Training: the inner loop, the cached dense phase, and the trial runner."""

from rnnprune.training.runner import EpochReport, TrialResult, run_trial

__all__ = ["EpochReport", "TrialResult", "run_trial"]
