"""Malformed sweep specs fail before Ray starts, naming the file, the line and the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import ray

from rnnprune.cli import main
from rnnprune.errors import ConfigError
from rnnprune.sweep.runner import param_space
from rnnprune.sweep.spec import dry_run, load_spec

FIXTURES = Path(__file__).parent / "fixtures"
BAD_SPECS = sorted((FIXTURES / "bad_specs").glob("*.yaml"))


def test_there_are_at_least_twenty_malformed_specs() -> None:
    assert len(BAD_SPECS) >= 20


@pytest.mark.parametrize("path", BAD_SPECS, ids=[p.stem for p in BAD_SPECS])
def test_malformed_spec_fails_before_ray_starts(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = re.match(r"# expect: (.*)", path.read_text()).group(1)  # type: ignore[union-attr]
    with pytest.raises(ConfigError) as raised:
        load_spec(path)
    message = str(raised.value)
    assert re.search(expected, message, re.DOTALL), message
    assert path.name in message or "base trial config" in message or "not valid YAML" in message
    # Through the CLI: exit code 2, the message on stderr, and Ray never started.
    assert main(["sweep", str(path), "--dry-run"]) == 2
    assert re.search(expected, capsys.readouterr().err, re.DOTALL)
    assert not ray.is_initialized()


def _write_spec(tmp_path: Path, body: str) -> Path:
    (tmp_path / "trial.yaml").write_text((FIXTURES / "trial.yaml").read_text())
    path = tmp_path / "spec.yaml"
    path.write_text(body)
    return path


def test_grid_expands_per_method_axes(tmp_path: Path) -> None:
    spec = _write_spec(
        tmp_path,
        """
name: grid
base: trial.yaml
axes: {pruning.target_sparsity: [0.5, 0.9], seed: [0, 1]}
methods:
  global_magnitude: {}
  random: {pruning.params.layerwise: [false, true]}
""",
    )
    loaded = load_spec(spec)
    assert len(loaded.variants) == 4 + 8
    random_points = [v for v in loaded.variants if v.method == "random"]
    assert {v.grid["pruning.params.layerwise"] for v in random_points} == {False, True}
    config = loaded.trial_config(random_points[-1], {})
    assert config.pruning.method == "random" and config.pruning.typed_params.layerwise is True
    assert config.pruning.target_sparsity == 0.9 and config.seed == 1
    assert "[11] random:" in dry_run(loaded) and "trials: 12" in dry_run(loaded)


def test_named_variants_tie_overrides_together_and_run_at_every_grid_point(tmp_path: Path) -> None:
    spec = _write_spec(
        tmp_path,
        """
name: named
base: trial.yaml
axes: {seed: [0, 1]}
methods:
  lattice: {pruning.schedule.finetune_epochs: [0, 1]}
  global_magnitude: {}
variants:
  lattice:
    binary q=0.3: {pruning.params.mode: binary, pruning.params.quantile: 0.3, pruning.target_sparsity: 0.3}
    continuous rho=0.1: {pruning.params: {mode: continuous, rho: 0.1}, pruning.target_sparsity: 0.99}
""",
    )
    loaded = load_spec(spec)
    # 2 variants x 2 fine-tunes x 2 seeds of lattice, 2 seeds of global_magnitude
    assert loaded.trial_count == 10
    lattice = [v for v in loaded.variants if v.method == "lattice"]
    assert [v.name for v in lattice] == ["binary q=0.3"] * 4 + ["continuous rho=0.1"] * 4
    assert {v.name for v in loaded.variants if v.method == "global_magnitude"} == {None}
    binary = loaded.trial_config(lattice[3], {})
    assert binary.pruning.typed_params.quantile == 0.3 and binary.pruning.target_sparsity == 0.3
    assert binary.pruning.schedule.finetune_epochs == 1 and binary.seed == 1
    continuous = loaded.trial_config(lattice[4], {})
    assert continuous.pruning.typed_params.mode == "continuous" and continuous.pruning.typed_params.rho == 0.1
    text = dry_run(loaded)
    assert "[0] lattice [binary q=0.3]: pruning.params.mode=binary" in text
    assert "[8] global_magnitude: seed=0" in text and "trials: 10" in text


def test_a_variant_name_is_the_trials_tag(tmp_path: Path) -> None:
    from rnnprune.sweep.trainable import SweepContext, trial_of

    spec = _write_spec(
        tmp_path,
        """
name: tagged
base: trial.yaml
methods: {moduli: {}, global_magnitude: {}}
variants:
  moduli:
    torus DoG: {}
    dense, no penalty: {pruning.params.space: none, pruning.target_sparsity: 0.0}
""",
    )
    context = SweepContext(load_spec(spec), "sqlite:///unused.db", "0", "parent", log_models=False)
    tagged = [trial_of({"variant": i, "sampled": {}}, context) for i in range(len(context.spec.variants))]
    assert [tags for _, tags in tagged] == [{"variant": "torus DoG"}, {"variant": "dense, no penalty"}, {}]
    dense = tagged[1][0]
    assert dense.pruning.target_sparsity == 0.0 and dense.pruning.typed_params.space == "none"
    assert tagged[0][0].pruning.typed_params.space == "torus"  # the base's params


def test_random_search_chooses_among_named_variants_keeping_their_overrides(tmp_path: Path) -> None:
    spec = _write_spec(
        tmp_path,
        """
name: sampled-named
base: trial.yaml
axes: {seed: [0, 1, 2]}
methods: {moduli: {}}
variants:
  moduli:
    torus: {}
    klein: {pruning.params.space: klein}
search: {algorithm: random, num_samples: 4}
""",
    )
    loaded = load_spec(spec)
    assert [(v.name, v.grid) for v in loaded.variants] == [
        ("torus", {}),
        ("klein", {"pruning.params.space": "klein"}),
    ]
    assert loaded.variants[1].sampled["seed"].choice == [0, 1, 2]
    assert loaded.trial_count == 4


def test_sampled_axes_stay_with_their_method(tmp_path: Path) -> None:
    spec = _write_spec(
        tmp_path,
        """
name: sampled
base: trial.yaml
axes: {pruning.target_sparsity: [0.5]}
methods:
  global_magnitude: {}
  random: {training.lr: {loguniform: [0.0001, 0.01]}}
""",
    )
    loaded = load_spec(spec)
    space = param_space(loaded)
    assert set(space["sampled"]) == {"random|training.lr"}
    magnitude = next(v for v in loaded.variants if v.method == "global_magnitude")
    assert loaded.trial_config(magnitude, {}).training.lr == 1e-3  # untouched by random's axis


def test_random_and_optuna_sample_list_axes(tmp_path: Path) -> None:
    spec = _write_spec(
        tmp_path,
        """
name: optuna
base: trial.yaml
axes: {pruning.target_sparsity: [0.5, 0.8, 0.9]}
methods: {global_magnitude: {}, random: {}}
search: {algorithm: optuna, num_samples: 6}
""",
    )
    loaded = load_spec(spec)
    assert len(loaded.variants) == 2  # one per method; the list became a categorical axis
    assert loaded.variants[0].sampled["pruning.target_sparsity"].choice == [0.5, 0.8, 0.9]


def test_metric_defaults_follow_the_task_objective(tmp_path: Path) -> None:
    (tmp_path / "trial.yaml").write_text((FIXTURES / "trial_adding.yaml").read_text())
    path = tmp_path / "spec.yaml"
    path.write_text(
        "name: adding\nbase: trial.yaml\nsearch: {algorithm: optuna, num_samples: 2}\n"
        "methods: {moduli: {pruning.params.space: [torus, klein]}}\n"
    )
    loaded = load_spec(path)
    assert (loaded.spec.scheduler.metric, loaded.spec.scheduler.mode) == ("val_mse", "min")
    assert [(o.metric, o.mode) for o in loaded.spec.search.objectives or []] == [
        ("val_mse", "min"),
        ("sparsity", "max"),
    ]
    (tmp_path / "mnist").mkdir()
    classification = _write_spec(
        tmp_path / "mnist", "name: m\nbase: trial.yaml\nscheduler: {kind: asha}\nmethods: {random: {}}\n"
    )
    assert load_spec(classification).spec.scheduler.metric == "val_accuracy"


def test_scheduler_mode_defaults_to_the_catalogue_direction_of_any_reported_metric(tmp_path: Path) -> None:
    # Every metric a trial reports has a direction in the catalogue, so no metric needs `mode`.
    for metric, mode in (("train_loss", "min"), ("theoretical_speedup", "max"), ("val_loss", "min")):
        (tmp_path / metric).mkdir()
        spec = _write_spec(
            tmp_path / metric,
            f"name: m\nbase: trial.yaml\nscheduler: {{kind: asha, metric: {metric}}}\n"
            "methods: {random: {}}\n",
        )
        assert load_spec(spec).spec.scheduler.mode == mode


def test_the_published_front_may_be_over_measured_speed_and_size(tmp_path: Path) -> None:
    spec = _write_spec(
        tmp_path,
        """
name: speed
base: trial.yaml
pareto: {objectives: [test_accuracy, speedup_b1, model_bytes]}
methods: {global_magnitude: {}}
""",
    )
    assert load_spec(spec).spec.pareto.objectives == ["test_accuracy", "speedup_b1", "model_bytes"]
    # Optuna reads every epoch's report, and speed is measured once at the end: not a search objective.
    search = "search: {algorithm: optuna, objectives: [{metric: speedup_b1, mode: max}]}\n"
    spec.write_text(spec.read_text() + search)
    refusal = r"search\.objectives\.0\.metric: speedup_b1 is measured once, at the end of a trial"
    with pytest.raises(ConfigError, match=refusal):
        load_spec(spec)
