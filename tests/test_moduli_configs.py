"""The committed moduli reproduction configs are valid trials and say what they claim, and a
reproduction spec's named conditions run through the sweep and the report."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rnnprune.config import load_config
from rnnprune.moduli import mean_coefficient
from rnnprune.sweep.spec import load_spec

SWEEP = Path(__file__).parents[1] / "sweeps" / "moduli"
# Reproduction spec -> (base trial, conditions, trials of the lottery)
REPRODUCTIONS = {
    "navigation": ("navigation_cpu", 11, {"torus DoG", "permuted torus DoG"}),
    "navigation_paper": ("navigation_paper", 11, {"torus DoG", "permuted torus DoG"}),
    "adding": ("adding", 5, set()),
    "ptb_lm": ("ptb_lm", 4, set()),
    "ptb_lm_adam": ("ptb_lm", 4, set()),
}


@pytest.mark.parametrize("name", ["navigation_cpu", "navigation_paper", "adding", "ptb_lm"])
def test_base_trials_validate(name: str) -> None:
    config = load_config(SWEEP / f"{name}.yaml")
    assert config.pruning.method == "moduli" and config.regularizes


@pytest.mark.parametrize("experiment", sorted(REPRODUCTIONS))
def test_every_condition_is_a_named_variant_and_a_distinct_trial(experiment: str) -> None:
    base, conditions, lottery = REPRODUCTIONS[experiment]
    loaded = load_spec(SWEEP / f"{experiment}_reproduction.yaml")
    assert loaded.spec.base == Path(f"{base}.yaml")
    assert len(loaded.spec.variants["moduli"]) == conditions
    assert loaded.trial_count == conditions * 3  # seeds 0, 1, 2
    configs = [(v.name, loaded.trial_config(v, {})) for v in loaded.variants]
    assert len({c.hash() for _, c in configs}) == len(configs)  # no two conditions are one trial
    assert {name for name, c in configs if c.pruning.lottery} == lottery
    dense = {name for name, c in configs if c.pruning.target_sparsity == 0.0}
    assert dense == {n for n in loaded.spec.variants["moduli"] if n.startswith("dense")}


@pytest.mark.parametrize("experiment", ["navigation", "navigation_paper"])
def test_magnitude_matched_l1_carries_the_mean_torus_dog_coefficient(experiment: str) -> None:
    loaded = load_spec(SWEEP / f"{experiment}_reproduction.yaml")
    variant = next(v for v in loaded.variants if v.name and v.name.startswith("L1*"))
    config = loaded.trial_config(variant, {})
    params = config.pruning.typed_params
    assert params.space == "standard" and params.invert is False  # type: ignore[attr-defined]
    expected = mean_coefficient("torus", config.model.hidden_size)
    assert params.scale == pytest.approx(expected, rel=1e-3)  # type: ignore[attr-defined]


def test_cpu_navigation_keeps_the_papers_share_of_w_hh_in_the_pool() -> None:
    config = load_config(SWEEP / "navigation_cpu.yaml")
    hidden, cells = config.model.hidden_size, config.task.typed_params.place_cells  # type: ignore[attr-defined]
    pool = {"encoder": cells * hidden, "ih": 2 * hidden, "hh": hidden * hidden, "readout": hidden * cells}
    paper = {"encoder": 512 * 4096, "ih": 2 * 4096, "hh": 4096 * 4096, "readout": 4096 * 512}
    assert set(config.pruning.scope) == set(pool)
    assert pool["hh"] / sum(pool.values()) == pytest.approx(paper["hh"] / sum(paper.values()), abs=0.01)


@pytest.mark.slow
def test_a_tiny_navigation_reproduction_runs_and_reports_its_conditions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_report import table_rows

    from rnnprune.cli import main
    from rnnprune.sweep.runner import run_sweep

    # The committed base and conditions (a subset, by name), at a tiny scale.
    committed = yaml.safe_load((SWEEP / "navigation_reproduction.yaml").read_text())
    names = ["torus DoG", "no penalty", "L1* (R = mean of torus DoG)", "dense, no penalty"]
    spec = {
        "name": "navigation-tiny",
        "base": str(SWEEP / "navigation_cpu.yaml"),
        "set": {
            "task.params": {
                "sequence_length": 5,
                "place_cells": 16,
                "train_trajectories": 64,
                "val_trajectories": 16,
                "test_trajectories": 16,
            },
            "model.hidden_size": 16,
            "training.batch_size": 16,
            "pruning.schedule.prune_epochs": 2,
            "latency.measure": False,
            "device": "cpu",
            "cache_dir": str(tmp_path / "cache"),
        },
        "axes": {"seed": [0, 1]},
        "methods": {"moduli": {}},
        "variants": {"moduli": {n: committed["variants"]["moduli"][n] for n in names}},
        "max_concurrent_trials": 2,
        "storage_path": str(tmp_path / "storage"),
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    outcome = run_sweep(tmp_path / "spec.yaml", workdir=tmp_path, num_cpus=2, progress=False)
    assert outcome.errors == 0 and len(outcome.rows) == 8
    output = tmp_path / "navigation.md"
    argv = ["report", "navigation-tiny", "--tracking-uri", outcome.tracking_uri, "--output", str(output)]
    assert main([*argv, "--baseline", "moduli (no penalty)"]) == 0
    text = output.read_text()
    rows = {(row[0], row[1]): row[2] for row in table_rows(text, "method")}
    assert rows == {
        ("moduli (no penalty)", "0.9"): "2",
        ("moduli (L1* (R = mean of torus DoG))", "0.9"): "2",
        ("moduli (dense, no penalty)", "0.0"): "2",
        ("moduli (torus DoG)", "0.9"): "2",  # the trained sparse model
        ("moduli (torus DoG), lottery ticket", "0.9"): "2",
    }
    assert "A `..., lottery ticket` row is the lottery control" in text
    paired = {row[0]: row[2] for row in table_rows(text, "method | target | pairs")}
    assert paired["moduli (torus DoG)"] == "2" and paired["moduli (L1* (R = mean of torus DoG))"] == "2"
