"""`rnnprune pareto`, `pick` and `export` against a real SQLite MLflow store built run by run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from mlflow import MlflowClient

from rnnprune.cli import main
from rnnprune.models.recurrent import RecurrentNet
from rnnprune.tracking import ChildRun, ensure_experiment, start_parent_run

EXPERIMENT = "pareto-test"
# (sweep, method, target, seed, test accuracy, sparsity, log a model?)
RUNS = [
    ("s1", "global_magnitude", 0.5, 0, 0.97, 0.50, False),
    ("s1", "global_magnitude", 0.9, 0, 0.95, 0.90, True),
    ("s1", "global_magnitude", 0.9, 1, 0.93, 0.90, False),
    ("s1", "random", 0.5, 0, 0.96, 0.50, False),  # dominated by global_magnitude@0.5
    ("s1", "random", 0.9, 0, 0.70, 0.90, False),  # dominated by global_magnitude@0.9
    ("s2", "lattice", 0.95, 0, 0.90, 0.95, True),  # the second sweep's only trial
]


def tiny_model_dir(directory: Path, config: dict[str, Any]) -> tuple[RecurrentNet, torch.Tensor]:
    """A trial's output folder (model.pt, metrics.json) for a small pruned LSTM."""
    torch.manual_seed(0)
    model = RecurrentNet("lstm", 28, 8, 1, 10).eval()
    masks = {name: torch.rand(mask.shape) > 0.5 for name, mask in model.masks().items()}
    masks["rnn.weight_hh_l0"][:, :3] = False  # units 0-2 are read by nothing: compact drops them
    masks["readout.weight"][:, :3] = False
    model.set_masks(masks)
    example = torch.rand(1, 28, 28)
    directory.mkdir(parents=True)
    torch.save(
        {"config": config, "state_dict": model.state_dict(), "input_example": example}, directory / "model.pt"
    )
    (directory / "metrics.json").write_text("{}")
    return model, example


BASE_TRIAL: dict[str, Any] = {
    "task": {"name": "seq_mnist", "data_dir": "unused", "download": False},
    "model": {"cell": "lstm", "hidden_size": 8},
    "pruning": {"method": "global_magnitude", "target_sparsity": 0.5},
    "device": "cpu",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """Two sweeps of one experiment; returns the tracking URI and {sweep name: parent run id}.

    Shared by the module's tests (logging models is the slow part): `pareto` rewrites tags, so
    the sweep-then-experiment order lives in one test, and `pick` and `export` read no tags.
    """
    tmp_path = tmp_path_factory.mktemp("store")
    trial_dict = BASE_TRIAL
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = ensure_experiment(client, EXPERIMENT, uri, tmp_path)
    parents: dict[str, str] = {}
    for index, (sweep, method, target, seed, accuracy, sparsity, with_model) in enumerate(RUNS):
        if sweep not in parents:
            parents[sweep] = start_parent_run(client, experiment_id, sweep, {"sweep": sweep}, None)
        config = {
            **trial_dict,
            "seed": seed,
            "pruning": {**trial_dict["pruning"], "method": method, "target_sparsity": target},
        }
        run = ChildRun(
            uri,
            experiment_id,
            parents[sweep],
            f"trial-{index}",
            f"{method}-{target}-{seed}",
            params={**config, "trial_hash": f"h{index}"},
            tags={"method": method, "task": "seq_mnist", "seed": str(seed), "sweep": sweep},
        )
        run.log_metrics(
            {"test_accuracy": accuracy, "sparsity": sparsity, "nonzero_params": 5000 * (1 - sparsity)}, step=1
        )
        if with_model:
            model, example = tiny_model_dir(tmp_path / f"trial-{index}", config)
            run.log_trial_outputs(
                tmp_path / f"trial-{index}", {"per_tensor": {}, "per_gate": {}}, model, example
            )
        run.finish()
    for parent in parents.values():
        client.set_terminated(parent, "FINISHED")
    return uri, parents


def _children(client: MlflowClient, parent_run_id: str) -> dict[str, Any]:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'"
    )
    return {r.info.run_name: r for r in runs}


def test_pareto_of_a_sweep_then_of_its_experiment(
    store: tuple[str, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, parents = store
    assert main(["pareto", "s1", "--tracking-uri", uri, "--output", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "global_magnitude" in printed and "hypervolume" in printed
    client = MlflowClient(uri)
    runs = _children(client, parents["s1"])
    tags = {name: run.data.tags for name, run in runs.items()}
    on_front = {name for name, t in tags.items() if t["pareto"] == "true"}
    assert on_front == {"global_magnitude-0.5-0", "global_magnitude-0.9-0", "global_magnitude-0.9-1"}
    assert tags["random-0.5-0"]["pareto_rank"] == "2" and tags["random-0.5-0"]["pareto_method"] == "true"
    assert tags["random-0.9-0"]["pareto_method"] == "true"  # on random's own front
    assert tags["global_magnitude-0.9-1"]["pareto_scope"] == "sweep:s1"
    parent = client.get_run(parents["s1"])
    # global_magnitude: mean accuracy 0.94 at 0.9; reference (0.1, 0).
    expected = (0.97 - 0.1) * 0.5 + (0.94 - 0.1) * 0.4
    assert parent.data.metrics["hypervolume.global_magnitude"] == pytest.approx(expected)
    assert parent.data.metrics["hypervolume.all"] == pytest.approx(expected)
    assert parent.data.metrics["pareto_front_size"] == 2
    artifacts = {a.path for a in client.list_artifacts(parents["s1"], "pareto")}
    assert {"pareto/pareto.html", "pareto/pareto.png", "pareto/front.json"} <= artifacts
    assert "lattice" not in (tmp_path / "out" / "front.txt").read_text()  # another sweep's run

    # Over the experiment: both sweeps' runs, tags rewritten, metrics on every parent.
    assert main(["pareto", EXPERIMENT, "--tracking-uri", uri, "--output", str(tmp_path / "exp")]) == 0
    lattice = _children(client, parents["s2"])["lattice-0.95-0"]
    assert (
        lattice.data.tags["pareto"] == "true"
        and lattice.data.tags["pareto_scope"] == f"experiment:{EXPERIMENT}"
    )
    front = json.loads((tmp_path / "exp" / "front.json").read_text())
    assert sum(p["rank"] == 1 for p in front["points"]) == 3
    for parent in parents.values():
        assert "experiment.hypervolume.lattice" in client.get_run(parent).data.metrics
    assert main(["pareto", "no-such-thing", "--tracking-uri", uri, "--output", str(tmp_path / "x")]) == 2


def test_pick_registers_the_front_run_with_tags_and_alias(
    store: tuple[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow.pytorch

    uri, parents = store
    assert main(["pick", EXPERIMENT, "--min-quality", "0.94", "--tracking-uri", uri]) == 0
    assert "models:/pareto-test-pruned@pick-acc0_94" in capsys.readouterr().out
    client = MlflowClient(uri)
    version = client.get_model_version_by_alias("pareto-test-pruned", "pick-acc0_94")
    expected_run = _children(client, parents["s1"])["global_magnitude-0.9-0"].info.run_id
    assert version.tags["run_id"] == expected_run
    assert version.tags["pareto"] == "true" and version.tags["method"] == "global_magnitude"
    assert version.tags["sweep"] == "s1" and float(version.tags["sparsity"]) == 0.9
    assert version.tags["quality_metric"] == "test_accuracy" and float(version.tags["quality"]) == 0.95
    assert version.tags["constraint"] == "min_quality=0.94"
    mlflow.set_tracking_uri(uri)
    model = mlflow.pytorch.load_model("models:/pareto-test-pruned@pick-acc0_94")
    assert model(torch.zeros(2, 28, 28)).shape == (2, 10)
    # Beside it, under the same alias: the deployable form, computing the same outputs.
    deployable = client.get_model_version_by_alias("pareto-test-pruned-deployable", "pick-acc0_94")
    assert deployable.tags["run_id"] == expected_run and deployable.tags["form"].startswith("compact")
    assert deployable.tags["masked_model"] == f"pareto-test-pruned/{version.version}"
    small = mlflow.pytorch.load_model("models:/pareto-test-pruned-deployable@pick-acc0_94")
    assert [layer.hidden_size for layer in small.layers] == [5]  # compact: three unread units gone
    inputs = torch.randn(3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(small(inputs), model(inputs), atol=1e-5, rtol=0)

    # Nothing reaches 0.99 (asked with the deprecated flag, which still works): exit non-zero,
    # name the nearest front points, register nothing new.
    assert main(["pick", EXPERIMENT, "--min-accuracy", "0.99", "--tracking-uri", uri]) == 1
    err = capsys.readouterr().err
    assert "closest: global_magnitude@0.5" in err and "--min-accuracy is deprecated" in err
    # A bound against the metric's direction is a one-line error naming the flag to use.
    assert main(["pick", EXPERIMENT, "--max-quality", "0.9", "--tracking-uri", uri]) == 2
    assert "bound it with --min-quality 0.9" in capsys.readouterr().err
    assert len(client.search_model_versions("name = 'pareto-test-pruned'")) == 1


def test_export_every_format_from_a_run(
    store: tuple[str, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, parents = store
    run_id = _children(MlflowClient(uri), parents["s2"])["lattice-0.95-0"].info.run_id

    def export(fmt: str) -> dict[str, Any]:
        path = tmp_path / f"model-{fmt}"
        assert main(["export", run_id, "--format", fmt, "--output", str(path), "--tracking-uri", uri]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["path"] == str(path) and summary["bytes"] == path.stat().st_size
        return summary

    for fmt in ("compact", "torchscript", "onnx"):
        summary = export(fmt)
        assert summary["widths"] == [5] and summary["max_abs_difference_on_example"] <= 1e-5
        assert summary["latency_ms_b1"] > 0 and summary["speedup_b64"] > 0
    export("state_dict")
    old = str(tmp_path / "old-spelling.pt")
    assert main(["export", run_id, "--format", "state-dict", "--tracking-uri", uri, "--output", old]) == 0
    warning = "warning: --format state-dict is deprecated; use --format state_dict"
    assert warning in capsys.readouterr().err.splitlines()
    small = torch.load(tmp_path / "model-compact", weights_only=False)
    assert [layer.hidden_size for layer in small.layers] == [5]
    original = RecurrentNet("lstm", 28, 8, 1, 10)
    original.load_state_dict(torch.load(tmp_path / "model-state_dict")["state_dict"], strict=False)
    inputs = torch.randn(3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(small(inputs), original.eval()(inputs), atol=1e-6, rtol=0)
