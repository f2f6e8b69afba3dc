"""Reading and writing sweeps in the tracking store at scale: every run read (no cap), the
database path equal to MLflow's own search, tags written in bulk, one query per trial event,
and experiments the MLflow UI opens on their training runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from rnnprune import catalogue, tracking
from rnnprune.tracking import (
    EXPERIMENT_KIND_TAG,
    TRAINING_EXPERIMENT,
    _slim,
    _sql_children,
    ensure_experiment,
    set_run_tags,
    sweep_scope,
    trial_run,
)


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, str, str, list[str]]:
    """A sweep of 7 finished child runs and one still running, in a new SQLite store."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = ensure_experiment(client, "sweeps", uri, tmp_path)
    parent = client.create_run(experiment, run_name="s", tags={"rnnprune.role": "sweep", "sweep": "s"})
    children = []
    for index in range(8):
        run = client.create_run(
            experiment,
            run_name=f"trial-{index}",
            tags={"mlflow.parentRunId": parent.info.run_id, "ray_trial_id": f"t{index}", "method": "m"},
        )
        client.log_batch(
            run.info.run_id,
            metrics=[
                Metric("test_accuracy", 0.9 + index / 100, 0, 3),
                Metric("sparsity", 0.5, 0, 3),
                Metric("tensor_sparsity.rnn.weight_hh_l0", 0.5, 0, 3),
            ],
            params=[Param("seed", str(index)), Param("pruning.target_sparsity", "0.5")],
            tags=[RunTag("task", "seq_mnist"), RunTag("mlflow.note.content", "x" * 5000)],
        )
        client.log_metric(run.info.run_id, "val_loss", float("nan"))
        if index < 7:
            client.set_terminated(run.info.run_id, "FINISHED")
        children.append(run.info.run_id)
    return uri, experiment, parent.info.run_id, children


def test_every_child_run_is_read_page_by_page(
    store: tuple[str, str, str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, experiment, parent, children = store
    monkeypatch.setattr(tracking, "SEARCH_PAGE", 3)  # 8 runs: three pages
    read = tracking.child_runs(MlflowClient(uri), experiment, parent)
    assert {r.info.run_id for r in read} == set(children)


def test_the_database_path_reads_what_mlflow_search_reads(store: tuple[str, str, str, list[str]]) -> None:
    uri, experiment, parent, _ = store
    searched = MlflowClient(uri).search_runs(
        [experiment], f"tags.`mlflow.parentRunId` = '{parent}' and attributes.status = 'FINISHED'"
    )
    expected = sorted((_slim(run) for run in searched), key=lambda r: r["run_id"])
    read = _sql_children(uri, [parent])
    assert len(read) == 7  # the running trial is not a result yet
    for mine, theirs in zip(read, expected, strict=True):
        nan = mine["metrics"].pop("val_loss"), theirs["metrics"].pop("val_loss")
        assert all(value != value for value in nan)  # NaN read back as NaN
        assert mine == theirs
    assert "mlflow.note.content" not in read[0]["tags"]  # MLflow's own bulky tags stay behind
    kind, parents, runs = sweep_scope(uri, "s")
    assert (kind, [p["run_id"] for p in parents], len(runs)) == ("sweep", [parent], 7)
    # What the analysis reads: the catalogue's metrics, not the per-tensor ones.
    _, _, slim = sweep_scope(uri, "s", catalogue.is_reported_name)
    assert set(slim[0]["metrics"]) == {"test_accuracy", "sparsity", "val_loss"}


def test_tags_are_written_in_bulk_and_replace_old_values(store: tuple[str, str, str, list[str]]) -> None:
    uri, _, _, children = store
    set_run_tags(uri, {run: {"pareto": "false", "pareto_rank": "2"} for run in children})
    set_run_tags(uri, {children[0]: {"pareto": "true", "pareto_rank": "1"}})
    client = MlflowClient(uri)
    assert client.get_run(children[0]).data.tags["pareto"] == "true"
    assert client.get_run(children[0]).data.tags["pareto_rank"] == "1"
    assert client.get_run(children[1]).data.tags["pareto"] == "false"
    assert client.get_run(children[0]).data.tags["method"] == "m"  # other tags untouched


def test_a_trial_event_finds_its_run_with_one_query(
    store: tuple[str, str, str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, experiment, parent, children = store
    client = MlflowClient(uri)
    calls: list[int] = []
    search = client.search_runs

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(int(kwargs.get("max_results", 0)))  # type: ignore[arg-type]
        return search(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(client, "search_runs", counted)
    found = trial_run(client, experiment, parent, "t5")
    assert found is not None and found.info.run_id == children[5]
    assert calls == [1]  # one query of one run, however many trials the sweep has
    assert trial_run(client, experiment, parent, "nope") is None


def test_experiments_open_on_their_training_runs(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    made = ensure_experiment(client, "new", uri, tmp_path)
    assert client.get_experiment(made).tags[EXPERIMENT_KIND_TAG] == TRAINING_EXPERIMENT
    older = client.create_experiment("older")  # made before rnnprune set the kind
    assert ensure_experiment(client, "older", uri, tmp_path) == older
    assert client.get_experiment(older).tags[EXPERIMENT_KIND_TAG] == TRAINING_EXPERIMENT
