"""The worked example plugin (examples/sunspots): its task, model and method against the core,
and its sweep end to end through the CLI on the real series statsmodels ships.

Needs the example installed (`make install` does it: `pip install -e examples/sunspots`);
skipped otherwise, since its entry points are what make the short names work.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

try:
    metadata.distribution("rnnprune-sunspots")
except metadata.PackageNotFoundError:
    pytest.skip(
        "the example plugin is not installed: pip install -e examples/sunspots (make install does it)",
        allow_module_level=True,
    )

from mlflow import MlflowClient
from sunspots_forecast.method import GATE_BALANCED_MAGNITUDE, GateBalancedParams
from sunspots_forecast.task import TASK, SunspotsParams, forecast_years, persistence_errors, yearly_series

from rnnprune import catalogue
from rnnprune.config import validate_config
from rnnprune.data.base import Architecture
from rnnprune.errors import DataError
from rnnprune.models import registry as model_registry
from rnnprune.models.base import ModelInputs
from rnnprune.models.masking import with_masks
from rnnprune.pruning import registry as method_registry
from rnnprune.training.runner import load_model, run_trial

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sunspots"
SMALL_MODEL = {"hidden_size": 8, "head_size": 4}


def test_the_entry_points_give_the_short_names_and_the_quality_is_rmse_lower_is_better() -> None:
    assert model_registry.registered_models.origin("sunspots_lstm") == "entry point of rnnprune-sunspots"
    assert method_registry.get("gate_balanced_magnitude") is GATE_BALANCED_MAGNITUDE
    quality = catalogue.quality("sunspots")
    assert (quality.name, quality.maximize, quality.reference) == ("test_rmse", False, 29.89)


def test_chance_levels_are_the_persistence_errors_on_the_default_test_years() -> None:
    persistence = persistence_errors(SunspotsParams())
    assert TASK.chance["rmse"] == pytest.approx(persistence["rmse"], abs=0.005)
    assert TASK.chance["mae"] == pytest.approx(persistence["mae"], abs=0.005)


def test_splits_are_chronological_and_normalised_by_the_training_years_alone() -> None:
    params = SunspotsParams()
    data = TASK.load(params, Path("."), False)
    series = yearly_series()
    years = forecast_years(params, len(series))
    assert [len(data.train), len(data.val), len(data.test)] == [len(series) - 20 - 80, 40, 40]
    assert years["train"][-1] + 1 == years["val"][0] and years["val"][-1] + 1 == years["test"][0]
    training_years = series[: years["train"][-1] + 1]
    assert data.objective.scale == pytest.approx(training_years.std())
    # A window holds the `window` years before the one it forecasts, in order.
    normalised = (series - training_years.mean()) / training_years.std()
    first_test = years["test"][0]
    assert torch.allclose(
        data.test.inputs[0, :, 0], torch.tensor(normalised[first_test - 20 : first_test]).float()
    )
    assert float(data.test.targets[0]) == pytest.approx(normalised[first_test], abs=1e-5)
    # RMSE is reported in sunspots: a forecast off by one training std scores that std.
    metrics = data.objective.summarise(
        data.objective.totals(data.test.targets[:, None] + 1.0, data.test.targets)
    )
    assert metrics["rmse"] == pytest.approx(training_years.std(), rel=1e-5)
    assert metrics["mae"] == pytest.approx(training_years.std(), rel=1e-5)


def test_split_sizes_that_leave_too_few_training_years_are_refused_naming_the_fields() -> None:
    with pytest.raises(DataError, match=r"(?s)task.params: .*Fix: lower task.params.val_years"):
        TASK.check(SunspotsParams(val_years=150, test_years=100), Path("."), False)


@pytest.mark.parametrize("granularity", ["gate", "row"])
def test_gate_balanced_magnitude_prunes_every_block_at_the_target_rate(granularity: str) -> None:
    torch.manual_seed(0)
    factory = model_registry.get("sunspots_lstm")
    model = with_masks(factory.build(factory.params(**SMALL_MODEL), ModelInputs(1, 1, Architecture())))
    weights = model.prunable_weights(("ih", "hh", "linear", "readout"))
    params = GateBalancedParams(granularity=granularity)  # type: ignore[arg-type]
    masks = GATE_BALANCED_MAGNITUDE(weights, 0.75, params, torch.Generator()).masks
    for weight in weights:
        blocks = weight.weight.shape[0] if granularity == "row" else len(weight.gates)
        kept = masks[weight.name].reshape(blocks, -1)
        size = kept.shape[1]
        expected = size - min(round(0.75 * size), size - 1)
        assert kept.sum(dim=1).tolist() == [expected] * blocks, weight.name
        magnitudes = weight.weight.detach().abs().reshape(blocks, -1)
        for block in range(blocks):  # within a block, every kept weight outweighs every pruned one
            row_kept, row_pruned = magnitudes[block][kept[block]], magnitudes[block][~kept[block]]
            if len(row_pruned):
                assert row_kept.min() >= row_pruned.max(), weight.name
    # Nested: a second, higher target keeps pruned weights pruned.
    model.set_masks(masks)
    again = GATE_BALANCED_MAGNITUDE(
        model.prunable_weights(("ih", "hh")), 0.9, params, torch.Generator()
    ).masks
    assert all(not bool((again[name] & ~masks[name]).any()) for name in again)


# The example's first LSTM layer reads one feature: its input matrix is 4H x 1, so tiles one
# column wide are the blocks that fit it.
METHOD_PARAMS: dict[str, dict[str, Any]] = {"block_magnitude": {"block": [4, 1]}}


def _tiny_trial(tmp_path: Path, method: str) -> dict[str, Any]:
    return {
        "task": {"name": "sunspots"},
        "model": {"factory": "sunspots_lstm", "params": SMALL_MODEL},
        "training": {"epochs": 1, "batch_size": 32, "lr": 0.01},
        "pruning": {
            "method": method,
            "params": METHOD_PARAMS.get(method, {}),
            "target_sparsity": 0.7,
            "schedule": {"kind": "gradual", "prune_epochs": 1, "frequency_steps": 2, "finetune_epochs": 1},
        },
        "device": "cpu",
        "cache_dir": str(tmp_path / "cache"),
    }


def test_every_method_prunes_the_example_model_on_the_example_task(tmp_path: Path) -> None:
    for method in method_registry.names():
        config = validate_config(_tiny_trial(tmp_path, method))
        out = tmp_path / method
        result = run_trial(config, out)
        _, model, _ = load_model(out / "model.pt")
        pool = model.prunable_weights(config.pruning.scope)
        zeros = sum(int((w.weight == 0).sum()) for w in pool)
        assert result.metrics["sparsity"] == pytest.approx(zeros / sum(w.numel for w in pool)), method
        assert result.metrics["sparsity"] > 0.2, method
        assert 0 < result.metrics["test_rmse"] < 200, method  # sunspot numbers: finite, on scale


def _children(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list[Any]:
    return client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'")


def _cli(*args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rnnprune.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_the_example_sweep_runs_end_to_end_to_a_front_a_registered_pick_and_a_compact_export(
    tmp_path: Path,
) -> None:
    # The example's own spec and trial, with a smaller grid and budget.
    spec = yaml.safe_load((EXAMPLE / "sweep.yaml").read_text())
    spec.update(
        base=str(EXAMPLE / "trial.yaml"),
        set={
            "training.epochs": 8,
            "pruning.schedule.prune_epochs": 2,
            "pruning.schedule.finetune_epochs": 2,
            "cache_dir": str(tmp_path / "cache"),
        },
        axes={"pruning.target_sparsity": [0.5, 0.9], "seed": [0]},
        methods={"global_magnitude": {}, "gate_balanced_magnitude": {}},
        max_concurrent_trials=2,
        storage_path=str(tmp_path / "storage"),
    )
    spec_path = tmp_path / "sweep.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    swept = _cli("sweep", str(spec_path), "--num-cpus", "2", "--tracking-uri", uri, cwd=tmp_path, timeout=900)
    assert swept.returncode == 0, swept.stderr[-3000:]

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("sunspots")
    assert experiment is not None
    parents = client.search_runs([experiment.experiment_id], filter_string="tags.`rnnprune.role` = 'sweep'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0].info.run_id
    children = _children(client, experiment.experiment_id, parent)
    assert len(children) == 4 and all(run.info.status == "FINISHED" for run in children)
    assert {(r.data.tags["method"], r.data.tags["target_sparsity"]) for r in children} == {
        (m, t) for m in ("global_magnitude", "gate_balanced_magnitude") for t in ("0.5", "0.9")
    }
    assert all(r.data.metrics["test_rmse"] > 0 for r in children)

    # The published front ranks by the task's own metric, lower is better, against persistence.
    front_file = Path(client.download_artifacts(parent, "pareto/front.json", str(tmp_path)))
    front = json.loads(front_file.read_text())
    assert front["objectives"] == ["test_rmse", "sparsity"]
    assert front["reference"] == [29.89, 0.0]
    on_front = [p for p in front["points"] if p["rank"] == 1]
    assert on_front
    assert all(r.data.tags["pareto_objectives"] == "test_rmse,sparsity" for r in children)

    # The pick: the sparsest front model whose test RMSE is at most the front's median.
    bound = sorted(p["mean"]["test_rmse"] for p in on_front)[(len(on_front) - 1) // 2]
    expected = max(
        (p for p in on_front if p["mean"]["test_rmse"] <= bound), key=lambda p: p["mean"]["sparsity"]
    )
    picked = _cli(
        "pick",
        "sunspots",
        "--max-quality",
        f"{bound + 1e-9}",
        "--tracking-uri",
        uri,
        cwd=tmp_path,
        timeout=300,
    )
    assert picked.returncode == 0, picked.stderr[-3000:]
    version = client.get_model_version("sunspots-pruned", "1")
    assert version.tags["quality_metric"] == "test_rmse"
    assert float(version.tags["quality"]) <= bound + 1e-6
    assert version.tags["run_id"] in expected["run_ids"]

    output = tmp_path / "compact.pt"
    exported = _cli(
        "export", version.tags["run_id"], "--format", "compact", "--output", str(output),
        "--tracking-uri", uri, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-3000:]
    summary = json.loads(exported.stdout)
    assert output.is_file() and summary["format"] == "compact"
    # Only the nonzeros are stored, and the rebuilt model forecasts as the pruned one does.
    assert summary["compact_params"] < summary["dense_params"]
    assert summary["max_abs_difference_on_example"] < 1e-5
