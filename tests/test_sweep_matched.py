"""Matched-sparsity baselines: after the grid, each baseline runs at the sparsity that each
finished trial of a reference method reached (not its target), tagged `matched_to`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from rnnprune.pruning import registry as method_registry
from rnnprune.sweep.runner import run_sweep
from rnnprune.sweep.spec import dry_run, load_spec, matched_overrides

FIXTURES = Path(__file__).parent / "fixtures"


def _spec(tmp_path: Path, matched: dict[str, object], methods: dict[str, object]) -> Path:
    (tmp_path / "trial.yaml").write_text((FIXTURES / "trial.yaml").read_text())
    spec = {
        "name": "m",
        "base": "trial.yaml",
        "axes": {"pruning.target_sparsity": [0.25, 0.5], "seed": [0, 1]},
        "methods": methods,
        "matched_baselines": matched,
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_matched_overrides_drop_the_reference_params_and_take_the_reached_sparsity() -> None:
    reference = {
        "pruning.method": "units",
        "pruning.target_sparsity": 0.5,
        "pruning.params.unit_target": "units",
        "seed": 1,
    }
    assert matched_overrides(reference, "random", 0.6875) == {
        "pruning.method": "random",
        "pruning.target_sparsity": 0.6875,
        "seed": 1,
    }


def test_matched_overrides_drop_a_whole_params_block_too() -> None:
    reference = {
        "pruning.method": "lattice",
        "pruning.params": {"mode": "continuous", "rho": 0.05},
        "pruning.target_sparsity": 0.99,
        "pruning.schedule.finetune_epochs": 1,
    }
    assert matched_overrides(reference, "random", 0.9453) == {
        "pruning.method": "random",
        "pruning.target_sparsity": 0.9453,
        "pruning.schedule.finetune_epochs": 1,
    }


def test_references_default_to_every_method_that_is_not_a_baseline(tmp_path: Path) -> None:
    methods = {"units": {}, "lattice": {}, "global_magnitude": {}}
    loaded = load_spec(_spec(tmp_path, {"methods": ["global_magnitude", "random"]}, methods))
    assert loaded.spec.matched_references == ["units", "lattice"]
    # 2 references x 2 targets x 2 seeds, each with 2 baselines
    assert loaded.matched_trial_bound == 16
    text = dry_run(loaded)
    assert "then matched baselines: global_magnitude, random at the sparsity each finished trial" in text
    assert "of units, lattice reached: up to 16 more trial(s), counted once the grid has finished" in text
    assert "trials: 12;" in text  # the grid alone: 3 methods x 2 targets x 2 seeds


def test_named_references_only(tmp_path: Path) -> None:
    methods = {"units": {}, "lattice": {}}
    loaded = load_spec(_spec(tmp_path, {"methods": ["random"], "to": ["lattice"]}, methods))
    assert loaded.spec.matched_references == ["lattice"]
    assert loaded.matched_trial_bound == 4


def test_a_spec_without_the_block_has_no_matched_trials(tmp_path: Path) -> None:
    (tmp_path / "trial.yaml").write_text((FIXTURES / "trial.yaml").read_text())
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"name": "m", "base": "trial.yaml", "methods": {"units": {}}}))
    loaded = load_spec(path)
    assert loaded.spec.matched_references == []
    assert loaded.matched_trial_bound == 0
    assert "matched" not in dry_run(loaded)


def _children(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list:
    return client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'")


@pytest.mark.slow
def test_a_matched_sparsity_baseline_spec_runs_and_resumes(sweep_dir: Path) -> None:
    # Whole units under a units target (hidden 12): removing a unit takes its row of weight_ih and
    # its row and column of weight_hh, so the parameter sparsity reached is not the target.
    spec = sweep_dir / "matched.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "matched",
                "base": "trial.yaml",
                "axes": {"pruning.target_sparsity": [0.25, 0.5]},
                "methods": {"units": {"pruning.params.unit_target": ["units"]}},
                "matched_baselines": {"methods": ["global_magnitude"]},
                "max_concurrent_trials": 2,
                "storage_path": str(sweep_dir / "storage"),
            }
        )
    )
    outcome = run_sweep(spec, workdir=sweep_dir, num_cpus=2, progress=False)
    assert outcome.errors == 0
    client = MlflowClient(outcome.tracking_uri)
    children = _children(client, outcome.experiment_id, outcome.parent_run_id)
    references = {r.info.run_id: r for r in children if r.data.tags["method"] == "units"}
    baselines = [r for r in children if "matched_to" in r.data.tags]
    assert len(references) == 2 and len(baselines) == 2 and len(children) == 4
    reached = []
    for baseline in baselines:
        reference = references[baseline.data.tags["matched_to"]]
        target = float(reference.data.tags["target_sparsity"])
        sparsity = reference.data.metrics["sparsity"]
        assert abs(sparsity - target) > 0.05, "the reference reached its target: the test proves nothing"
        assert baseline.info.status == "FINISHED"
        assert baseline.data.tags["method"] == "global_magnitude"
        assert "pruning.params.unit_target" not in baseline.data.params
        # exactly the reached sparsity, as the target; the baseline meets it to one weight
        assert float(baseline.data.params["pruning.target_sparsity"]) == sparsity
        assert float(baseline.data.tags["target_sparsity"]) == sparsity
        assert baseline.data.metrics["sparsity"] == pytest.approx(sparsity, abs=2e-3)
        assert reference.data.params["seed"] == baseline.data.params["seed"]
        reached.append(sparsity)
    assert len(set(reached)) == 2
    assert {r["matched_to"] for r in outcome.rows} == {None, *(b.data.tags["matched_to"] for b in baselines)}

    # Resumed: nothing reruns, the matched trials included.
    again = run_sweep(spec, workdir=sweep_dir, num_cpus=2, progress=False, resume=True)
    assert again.errors == 0 and again.parent_run_id == outcome.parent_run_id
    after = _children(client, outcome.experiment_id, outcome.parent_run_id)
    assert sorted(r.info.run_id for r in after) == sorted(r.info.run_id for r in children)
    assert all(r.info.status == "FINISHED" for r in after)
    assert [r.info.end_time for r in sorted(after, key=lambda r: r.info.run_id)] == [
        r.info.end_time for r in sorted(children, key=lambda r: r.info.run_id)
    ]


LEADERBOARD = Path(__file__).parent.parent / "sweeps" / "leaderboard"


@pytest.mark.parametrize(
    ("name", "targets", "grid", "matched"),
    [("seq_mnist_lstm128", [0.5, 0.8, 0.9, 0.95, 0.98], 135, 15), ("seq_mnist_gru128", [0.9, 0.98], 54, 6)],
)
def test_leaderboard_specs_run_every_built_in_method_on_one_budget(
    name: str, targets: list[float], grid: int, matched: int
) -> None:
    loaded = load_spec(LEADERBOARD / f"{name}.yaml")
    built_in = {
        m for m in method_registry.names() if method_registry.registered_methods.origin(m) == "built-in"
    }
    assert set(loaded.spec.methods) == built_in
    assert loaded.spec.axes["pruning.target_sparsity"] == targets
    assert loaded.trial_count == grid and loaded.matched_trial_bound == matched
    budgets = set()
    for variant in loaded.variants:
        config = loaded.trial_config(variant, {})
        schedule = config.pruning.schedule
        budgets.add((config.training.epochs, schedule.kind, schedule.prune_epochs, schedule.finetune_epochs))
        assert config.task.typed_params.max_train_examples == 24000
        assert config.model.hidden_size == 128 and config.model.cell == name.split("_")[-1][:-3]
    assert budgets == {(10, "gradual", 4, 2)}


LATTICE = Path(__file__).parent.parent / "sweeps" / "lattice" / "seq_mnist_lstm128.yaml"


def test_the_lattice_reproduction_reuses_the_leaderboards_dense_models() -> None:
    lattice = load_spec(LATTICE)
    leaderboard = load_spec(LEADERBOARD / "seq_mnist_lstm128.yaml")
    dense = {c.seed: c.dense_hash() for c in (leaderboard.trial_config(v, {}) for v in leaderboard.variants)}
    configs = [lattice.trial_config(v, {}) for v in lattice.variants]
    assert {c.seed for c in configs} == {0, 1, 2}
    assert all(c.dense_hash() == dense[c.seed] for c in configs)
    assert lattice.trial_count == 72 and lattice.matched_trial_bound == 144
    assert lattice.spec.matched_baselines is not None
    assert lattice.spec.matched_baselines.methods == ["global_magnitude", "random"]
    points = {}
    for variant, config in zip(lattice.variants, configs, strict=True):
        params = config.pruning.typed_params
        assert tuple(config.pruning.scope) == ("hh",) and config.pruning.schedule.kind == "one_shot"
        assert config.pruning.schedule.finetune_epochs in (0, 1)
        if params.mode == "binary":  # a fixed quantile, recorded as the target
            assert params.quantile == config.pruning.target_sparsity
            points[variant.name] = params.quantile
        else:
            points[variant.name] = params.rho
    assert list(points.values()) == [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.0, 0.01, 0.05, 0.1, 0.2]


@pytest.mark.slow
def test_a_tiny_lattice_reproduction_reports_lattice_minus_each_matched_baseline(
    sweep_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_report import table_rows

    from rnnprune.cli import main

    # The shape of sweeps/lattice/seq_mnist_lstm128.yaml on the tiny trial (LSTM(12)).
    spec = sweep_dir / "lattice.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "lattice-tiny",
                "base": "trial.yaml",
                "set": {
                    "pruning.scope": ["hh"],
                    "pruning.schedule": {"kind": "one_shot", "finetune_epochs": 1},
                    "latency.measure": False,
                },
                "axes": {"pruning.schedule.finetune_epochs": [0, 1], "seed": [0, 1]},
                "methods": {"lattice": {}},
                "variants": {
                    "lattice": {
                        "binary q=0.5": {
                            "pruning.params.mode": "binary",
                            "pruning.params.quantile": 0.5,
                            "pruning.target_sparsity": 0.5,
                        },
                        "continuous rho=0.25": {
                            "pruning.params.mode": "continuous",
                            "pruning.params.rho": 0.25,
                            "pruning.target_sparsity": 0.99,
                        },
                    }
                },
                "matched_baselines": {"methods": ["global_magnitude", "random"]},
                "max_concurrent_trials": 2,
                "storage_path": str(sweep_dir / "storage"),
            }
        )
    )
    outcome = run_sweep(spec, workdir=sweep_dir, num_cpus=2, progress=False)
    assert outcome.errors == 0
    matched = [r for r in outcome.rows if r["matched_to"]]
    assert len(outcome.rows) == 8 + len(matched) and 0 < len(matched) <= 16
    output = sweep_dir / "lattice.md"
    assert (
        main(["report", "lattice-tiny", "--tracking-uri", outcome.tracking_uri, "--output", str(output)]) == 0
    )
    text = output.read_text()
    results = {(row[0], row[1], row[2]) for row in table_rows(text, "method")}
    assert ("lattice (continuous rho=0.25)", "0.99", "1") in results
    assert ("random matched to lattice (continuous rho=0.25)", "0.99", "1") in results
    paired = table_rows(
        text, "method | target | pruning.schedule.finetune_epochs | baseline at its reached sparsity"
    )
    pairs = {(row[0], row[2], row[3]): row[4] for row in paired}
    # Every lattice row against both baselines, two seeds each (a reference reached a sparsity
    # the baseline cannot run at, all of W_hh, only with every neuron dropped: not at rho 0.25).
    assert pairs == {
        (variant, finetune, baseline): "2"
        for variant in ("lattice (binary q=0.5)", "lattice (continuous rho=0.25)")
        for finetune in ("0", "1")
        for baseline in ("global_magnitude", "random")
    }
