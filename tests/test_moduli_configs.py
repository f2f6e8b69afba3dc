"""The committed moduli reproduction configs are valid trials and say what they claim."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.moduli_reproduction import trial_configs
from rnnprune.config import load_config, validate_config
from rnnprune.moduli import mean_coefficient

SWEEP = Path(__file__).parents[1] / "sweeps" / "moduli"


@pytest.mark.parametrize("name", ["navigation_cpu", "navigation_paper", "adding", "ptb_lm"])
def test_base_trials_validate(name: str) -> None:
    config = load_config(SWEEP / f"{name}.yaml")
    assert config.pruning.method == "moduli" and config.regularizes


@pytest.mark.parametrize("experiment", ["navigation", "navigation_paper", "adding", "ptb_lm"])
def test_every_condition_expands_to_a_valid_trial(experiment: str) -> None:
    trials = trial_configs(experiment, None, [])
    names = {validate_config(raw).name() for _, _, raw in trials}
    assert len(names) == len(trials)  # no two conditions are the same trial


def test_magnitude_matched_l1_carries_the_mean_torus_dog_coefficient() -> None:
    raw = next(
        raw for condition, _, raw in trial_configs("navigation", [0], []) if condition.startswith("L1*")
    )
    hidden = raw["model"]["hidden_size"]
    assert raw["pruning"]["params"]["scale"] == pytest.approx(mean_coefficient("torus", hidden), rel=0.01)


def test_cpu_navigation_keeps_the_papers_share_of_w_hh_in_the_pool() -> None:
    config = load_config(SWEEP / "navigation_cpu.yaml")
    hidden, cells = config.model.hidden_size, config.task.typed_params.place_cells  # type: ignore[attr-defined]
    pool = {"encoder": cells * hidden, "ih": 2 * hidden, "hh": hidden * hidden, "readout": hidden * cells}
    paper = {"encoder": 512 * 4096, "ih": 2 * 4096, "hh": 4096 * 4096, "readout": 4096 * 512}
    assert set(config.pruning.scope) == set(pool)
    assert pool["hh"] / sum(pool.values()) == pytest.approx(paper["hh"] / sum(paper.values()), abs=0.01)
