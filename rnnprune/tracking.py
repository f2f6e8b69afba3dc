"""MLflow tracking for sweeps: one parent run per sweep, one child run per trial.

The only module that imports MLflow. Child runs are found again by their `ray_trial_id`
tag, so a retried or restored trial continues its own run instead of creating a second
one, and metric steps already logged are skipped, so a retry never duplicates a step.
Locally the store is a SQLite file plus an artifact folder (MLflow 3 refuses file stores);
many concurrent writers need a tracking server on PostgreSQL (cluster/).
"""

from __future__ import annotations

import base64
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from filelock import FileLock
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking.context.registry import resolve_tags

from rnnprune.errors import RnnpruneError

DEFAULT_DATABASE = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
MAX_PARAMS_PER_BATCH = 100  # MLflow's log_batch limits
MAX_METRICS_PER_BATCH = 1000
OUTPUTS_TAG = "rnnprune.outputs_logged"


class TrackingError(RnnpruneError):
    """The tracking server cannot be reached or refuses our credentials."""


def resolve_tracking_uri(explicit: str | None, workdir: Path) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else a SQLite file in the working directory."""
    uri = explicit or os.environ.get(TRACKING_URI_ENV)
    return uri or f"sqlite:///{(Path(workdir) / DEFAULT_DATABASE).resolve()}"


def is_local(uri: str) -> bool:
    return uri.startswith("sqlite:")


def prepare_local_store(uri: str, database: Path) -> None:
    """Create (or migrate) a SQLite store's schema once, under a lock, before any writer.

    MLflow builds the schema when a process first opens a new store; two processes doing so at
    once collide inside SQLAlchemy (CircularDependencyError). The first to take the lock builds
    it; the others find it built.
    """
    try:
        with FileLock(f"{database}.lock"):
            MlflowClient(uri).search_experiments(max_results=1)
    except Exception as error:  # a file that is not a store fails in SQLAlchemy or in a migration
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrackingError(
            f"tracking URI {uri}: {database} cannot be opened as an MLflow SQLite store ({reason}); "
            "point --tracking-uri at a new file or an existing store"
        ) from None


def check_tracking(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, before any trial, on an unreachable server or rejected credentials."""
    if is_local(uri):
        database = Path(uri.removeprefix("sqlite:///"))
        if not database.parent.is_dir():
            raise TrackingError(f"tracking URI {uri}: folder {database.parent} does not exist")
        return
    if not uri.startswith(("http://", "https://")):
        raise TrackingError(
            f"tracking URI {uri!r}: use sqlite:///PATH locally or http(s)://HOST:PORT for a server "
            "(file stores are refused by MLflow 3)"
        )
    request = urllib.request.Request(f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search?max_results=1")
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            pass
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            raise TrackingError(
                f"tracking server {uri} refused the credentials (HTTP {error.code}); set "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to a user with access"
            ) from None
        raise TrackingError(f"tracking server {uri} answered HTTP {error.code}: {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise TrackingError(
            f"tracking server {uri} is unreachable ({getattr(error, 'reason', error)}); check "
            "--tracking-uri / MLFLOW_TRACKING_URI and that `mlflow server` is running"
        ) from None


# MLflow 3's UI opens an experiment on what its kind tag says; without it, an experiment with no
# traces opens on the GenAI overview rather than on its training runs.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_EXPERIMENT = "custom_model_development"


def ensure_experiment(client: MlflowClient, name: str, uri: str, workdir: Path) -> str:
    """The experiment's id, created if missing (artifacts beside the SQLite file locally), marked
    as model training for the MLflow UI."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = (Path(workdir) / DEFAULT_ARTIFACTS / name).resolve().as_uri() if is_local(uri) else None
        try:
            return client.create_experiment(
                name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: TRAINING_EXPERIMENT}
            )
        except MlflowException:  # created meanwhile by another process
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if EXPERIMENT_KIND_TAG not in experiment.tags:  # made by an earlier rnnprune, or by hand
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_EXPERIMENT)
    return experiment.experiment_id


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> dotted keys (MLflow params are flat)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def start_parent_run(
    client: MlflowClient, experiment_id: str, sweep_name: str, tags: Mapping[str, str], run_id: str | None
) -> str:
    """Create the sweep's parent run, or reopen it when a sweep is resumed."""
    if run_id is not None:
        client.update_run(run_id, status="RUNNING")
        return run_id
    run = client.create_run(experiment_id, run_name=sweep_name, tags={"rnnprune.role": "sweep", **tags})
    return run.info.run_id


SEARCH_PAGE = 1000  # runs per search call: the tracking server's own maximum page size


def search_all_runs(client: MlflowClient, experiment_ids: list[str], filter_string: str) -> Iterator[Any]:
    """Every run matching the filter, page by page (no cap on how many)."""
    token = None
    while True:
        page = client.search_runs(
            experiment_ids, filter_string=filter_string, max_results=SEARCH_PAGE, page_token=token
        )
        yield from page
        token = page.token
        if not token:
            return


def child_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list[Any]:
    return list(search_all_runs(client, [experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'"))


def trial_run(client: MlflowClient, experiment_id: str, parent_run_id: str, trial_id: str) -> Any | None:
    """The child run of one Ray trial, found by its tags: one query, whatever the sweep's size."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}' and tags.ray_trial_id = '{trial_id}'",
        max_results=1,
    )
    return found[0] if found else None


def fail_unfinished_children(client: MlflowClient, experiment_id: str, parent_run_id: str) -> int:
    """End every child still RUNNING as FAILED (a worker killed past its last retry)."""
    running = f"tags.`mlflow.parentRunId` = '{parent_run_id}' and attributes.status = 'RUNNING'"
    stale = list(search_all_runs(client, [experiment_id], running))  # usually none: read only those
    for run in stale:
        client.set_terminated(run.info.run_id, "FAILED")
    return len(stale)


def mark_trial_failed(client: MlflowClient, experiment_id: str, parent_run_id: str, trial_id: str) -> None:
    run = trial_run(client, experiment_id, parent_run_id, trial_id)
    if run is not None and run.info.status == "RUNNING":
        client.set_terminated(run.info.run_id, "FAILED")


def _model_flavor_options(model: torch.nn.Module, example: torch.Tensor) -> dict[str, Any]:
    """How a trial's model is saved as an MLflow PyTorch model (shared with `warm_up`)."""
    model = model.cpu().eval()
    inputs = example.cpu()
    with torch.no_grad():
        output = model(inputs).numpy()
    return {
        # pickle, not the MLflow 3 default pt2: torch.export of packed RNN weights is not
        # what users load, and pickle keeps the masks as buffers of the module.
        "serialization_format": "pickle",
        "signature": infer_signature(inputs.numpy(), output),
        "input_example": inputs.numpy(),
        "pip_requirements": [f"torch=={torch.__version__.split('+')[0]}"],
    }


def warm_up(tracking_uri: str | None, log_models: bool) -> None:
    """Pay MLflow's once-per-process costs before a process runs trials, not inside one.

    A fresh process spends about 1.2 s on its first SQLite store (importing MLflow's
    SQLAlchemy store, then the schema check), about 0.8 s on its first model save (MLflow
    scans every installed distribution to check the model's pip requirements) and 0.1 s on
    the context tags of its first logged model (GitPython's import). All are cached per
    process, so a sweep worker that runs them once at start-up logs each of its trials at
    the warm cost. Nothing is written to the tracking store.
    """
    if tracking_uri is not None:
        MlflowClient(tracking_uri).search_experiments(max_results=1)
    if log_models:
        resolve_tags()
        probe = torch.nn.Linear(2, 2)
        with tempfile.TemporaryDirectory() as directory:
            mlflow.pytorch.save_model(
                probe, str(Path(directory) / "model"), **_model_flavor_options(probe, torch.zeros(1, 2))
            )


class ChildRun:
    """A trial's child run, written from inside the trial's worker process."""

    def __init__(
        self,
        tracking_uri: str,
        experiment_id: str,
        parent_run_id: str,
        trial_id: str,
        run_name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
    ) -> None:
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        found = trial_run(self.client, experiment_id, parent_run_id, trial_id)
        if found is not None:
            self.run_id = found.info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            all_tags = {"mlflow.parentRunId": parent_run_id, "ray_trial_id": trial_id, **tags}
            self.run_id = self.client.create_run(experiment_id, run_name=run_name, tags=all_tags).info.run_id
        history = self.client.get_metric_history(self.run_id, "epoch")  # every task logs it each epoch
        self.last_step = max((m.step for m in history), default=0)
        batch = [Param(key, str(value)[:6000]) for key, value in flatten(params).items()]
        for chunk in _chunks(batch, MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=chunk)

    def log_metrics(self, metrics: Mapping[str, float], step: int, *, force: bool = False) -> None:
        """One batch per step; a step logged before a retry is not logged again."""
        if step <= self.last_step and not force:
            return
        now = int(time.time() * 1000)
        batch = [
            Metric(key, float(value), now, step)
            for key, value in metrics.items()
            if isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)
        ]
        for chunk in _chunks(batch, MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=chunk)
        self.last_step = max(self.last_step, step)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def has_outputs(self) -> bool:
        return self.client.get_run(self.run_id).data.tags.get(OUTPUTS_TAG) == "true"

    def log_trial_outputs(
        self, output_dir: Path, final: Mapping[str, Any], model: torch.nn.Module, example: torch.Tensor
    ) -> None:
        """Artifacts: metrics, state dict + config, masks, sparsity table, and an MLflow model."""
        self.client.log_artifact(self.run_id, str(output_dir / "metrics.json"))
        self.client.log_artifact(self.run_id, str(output_dir / "model.pt"))
        state = model.state_dict()
        masks = {name: tensor for name, tensor in state.items() if name.endswith("_mask")}
        self.client.log_dict(
            self.run_id,
            {"per_tensor": final["per_tensor"], "per_gate": final["per_gate"]},
            "sparsity_table.json",
        )
        masks_path = output_dir / "masks.pt"
        torch.save(masks, masks_path)
        self.client.log_artifact(self.run_id, str(masks_path))
        mlflow.set_tracking_uri(self.tracking_uri)
        with mlflow.start_run(run_id=self.run_id):  # the run's experiment holds the LoggedModel
            mlflow.pytorch.log_model(model, name="model", **_model_flavor_options(model, example))
        self.set_tags({OUTPUTS_TAG: "true"})  # a retry after this point does not log them twice

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)


class SweepTracking:
    """A sweep's parent run and its child runs, driven from the Ray driver (`rnnprune sweep`)."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str) -> None:
        self.tracking_uri, self.experiment_id, self.parent_run_id = tracking_uri, experiment_id, parent_run_id
        self.client = MlflowClient(tracking_uri)

    @classmethod
    def open(
        cls,
        tracking_uri: str,
        experiment: str,
        workdir: Path,
        sweep_name: str,
        tags: Mapping[str, str],
        parent_run_id: str | None,
    ) -> SweepTracking:
        """The sweep's experiment (created if missing) and its parent run (created, or reopened
        when `parent_run_id` names the run of a resumed sweep)."""
        if is_local(tracking_uri):
            prepare_local_store(tracking_uri, Path(tracking_uri.removeprefix("sqlite:///")))
        client = MlflowClient(tracking_uri)
        experiment_id = ensure_experiment(client, experiment, tracking_uri, workdir)
        run_id = start_parent_run(client, experiment_id, sweep_name, tags, parent_run_id)
        return cls(tracking_uri, experiment_id, run_id)

    def log_documents(self, texts: Mapping[str, str], dicts: Mapping[str, Any]) -> None:
        """Text and JSON artifacts of the parent run, by artifact path."""
        for path, text in texts.items():
            self.client.log_text(self.parent_run_id, text, path)
        for path, data in dicts.items():
            self.client.log_dict(self.parent_run_id, data, path)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self.client.log_metric(self.parent_run_id, key, value)

    def mark_trial_failed(self, trial_id: str) -> None:
        mark_trial_failed(self.client, self.experiment_id, self.parent_run_id, trial_id)

    def finish_stopped_trial(self, trial_id: str) -> None:
        """A trial the scheduler stopped: FINISHED, tagged `rnnprune.stopped_early`."""
        run = trial_run(self.client, self.experiment_id, self.parent_run_id, trial_id)
        if run is not None and run.info.status != "FINISHED":
            self.client.set_tag(run.info.run_id, "rnnprune.stopped_early", "true")
            self.client.set_terminated(run.info.run_id, "FINISHED")

    def fail_unfinished_children(self) -> int:
        return fail_unfinished_children(self.client, self.experiment_id, self.parent_run_id)

    def trial_run_id(self, trial_id: str) -> str | None:
        """The MLflow run id of one Ray trial of this sweep (None if it never started one)."""
        run = trial_run(self.client, self.experiment_id, self.parent_run_id, trial_id)
        return run.info.run_id if run is not None else None

    def trial_runs(self) -> list[dict[str, Any]]:
        """Every child run as a record (`_slim`: the tags rnnprune reads) plus its `status`."""
        return [
            {**_slim(run), "status": run.info.status}
            for run in child_runs(self.client, self.experiment_id, self.parent_run_id)
        ]

    def finish(self, status: str) -> None:
        self.client.set_terminated(self.parent_run_id, status)


# ---- reading sweeps back: fronts, tags, the model registry (rnnprune pareto / pick / export) ----

MLFLOW_UI_DEFAULT = "http://127.0.0.1:5000"  # where `mlflow ui` serves a local store


def _plain_run(run: Any) -> dict[str, Any]:
    return {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "run_name": run.info.run_name or run.info.run_id,
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": dict(run.data.tags),
    }


# Tags the analysis reads back; MLflow's own (`mlflow.*`: the model-log history, the note) can be
# kilobytes per run and are left on the server.
RECORD_TAGS = frozenset(
    {"method", "task", "seed", "target_sparsity", "sweep", "arch", "matched_to", "variant", OUTPUTS_TAG}
)


def _record(run_id: str, experiment_id: Any, name: str | None) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "experiment_id": str(experiment_id),
        "run_name": name or run_id,
        "params": {},
        "metrics": {},
        "tags": {},
    }


MetricFilter = Callable[[str], bool]


def _every_metric(name: str) -> bool:
    return True


def _slim(run: Any, keep_metric: MetricFilter = _every_metric) -> dict[str, Any]:
    """A run as a record: its tags in RECORD_TAGS, the metrics `keep_metric` keeps, every param,
    strings interned (sweeps repeat the same keys and values across thousands of runs)."""
    return {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "run_name": run.info.run_name or run.info.run_id,
        "params": {sys.intern(k): sys.intern(v) for k, v in run.data.params.items()},
        "metrics": {sys.intern(k): v for k, v in run.data.metrics.items() if keep_metric(k)},
        "tags": {sys.intern(k): sys.intern(v) for k, v in run.data.tags.items() if k in RECORD_TAGS},
    }


def sweep_scope(
    tracking_uri: str, name: str, keep_metric: MetricFilter = _every_metric
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """("sweep" | "experiment", parent runs, finished child runs) named by `name`.

    A sweep name (its parent run's `sweep` tag) wins over an experiment name; an experiment
    means every sweep in it. Child runs are plain dicts (run_id, params, the metrics
    `keep_metric` keeps, the tags in RECORD_TAGS, ...), read page by page with no cap on their
    number; from a database store
    directly (`_sql_children`), since MLflow's search builds ORM objects for every param, metric
    and tag of every run (7 ms a run here: a minute for 10,000).
    """
    client = MlflowClient(tracking_uri)
    experiment_ids = [e.experiment_id for e in client.search_experiments()]
    parents = list(
        search_all_runs(client, experiment_ids, f"tags.`rnnprune.role` = 'sweep' and tags.sweep = '{name}'")
    )
    kind = "sweep"
    if not parents:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise TrackingError(f"no sweep or experiment named {name!r} in this tracking store")
        kind = "experiment"
        parents = list(search_all_runs(client, [experiment.experiment_id], "tags.`rnnprune.role` = 'sweep'"))
    parent_ids = [p.info.run_id for p in parents]
    if is_database(tracking_uri):
        children = _sql_children(tracking_uri, parent_ids, keep_metric)
    else:
        children = [
            _slim(run, keep_metric)
            for parent in parents
            for run in search_all_runs(
                client,
                [parent.info.experiment_id],
                f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' and attributes.status = 'FINISHED'",
            )
        ]
    return kind, [_plain_run(p) for p in parents], children


def metric_histories(
    tracking_uri: str, run_ids: Sequence[str], keep_metric: MetricFilter
) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Per run id, the (step, value) history of each metric `keep_metric` keeps, by step."""
    client = MlflowClient(tracking_uri)
    histories: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for run_id in run_ids:
        names = [name for name in client.get_run(run_id).data.metrics if keep_metric(name)]
        histories[run_id] = {
            name: sorted((m.step, m.value) for m in client.get_metric_history(run_id, name)) for name in names
        }
    return histories


DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def is_database(tracking_uri: str) -> bool:
    """Whether the URI names MLflow's database itself (not a tracking server)."""
    return tracking_uri.split(":", 1)[0].split("+", 1)[0] in DATABASE_SCHEMES


def _tables() -> tuple[Any, Any, Any, Any]:
    """MLflow's own table definitions (runs, params, latest metrics, tags), from the installed
    MLflow, which refuses to open a store whose schema is not its own."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlParam, SqlRun, SqlTag

    return SqlRun.__table__, SqlParam.__table__, SqlLatestMetric.__table__, SqlTag.__table__


def _sql_children(
    tracking_uri: str, parent_ids: list[str], keep_metric: MetricFilter = _every_metric
) -> list[dict[str, Any]]:
    """The finished child runs of `parent_ids`, read with four queries from the store's tables."""
    from sqlalchemy import create_engine, select

    runs, params, latest, tags = _tables()
    children = select(tags.c.run_uuid).where(tags.c.key == "mlflow.parentRunId", tags.c.value.in_(parent_ids))
    finished = select(runs.c.run_uuid).where(
        runs.c.run_uuid.in_(children), runs.c.status == "FINISHED", runs.c.lifecycle_stage == "active"
    )
    engine = create_engine(tracking_uri)
    try:
        with engine.connect() as db:
            records = {
                run_id: _record(run_id, experiment_id, name)
                for run_id, experiment_id, name in db.execute(
                    select(runs.c.run_uuid, runs.c.experiment_id, runs.c.name).where(
                        runs.c.run_uuid.in_(finished)
                    )
                )
            }
            query = select(params.c.run_uuid, params.c.key, params.c.value).where(
                params.c.run_uuid.in_(finished)
            )
            for run_id, key, value in db.execute(query):
                records[run_id]["params"][sys.intern(key)] = sys.intern(value)
            query = select(latest.c.run_uuid, latest.c.key, latest.c.value, latest.c.is_nan).where(
                latest.c.run_uuid.in_(finished)
            )
            for run_id, key, value, is_nan in db.execute(query):
                if keep_metric(key):
                    records[run_id]["metrics"][sys.intern(key)] = float("nan") if is_nan else value
            query = select(tags.c.run_uuid, tags.c.key, tags.c.value).where(
                tags.c.run_uuid.in_(finished), tags.c.key.in_(RECORD_TAGS)
            )
            for run_id, key, value in db.execute(query):
                records[run_id]["tags"][sys.intern(key)] = sys.intern(value)
    finally:
        engine.dispose()
    return sorted(records.values(), key=lambda r: r["run_id"])


TAG_WRITE_CHUNK = 500  # runs per statement: well inside every database's bound-parameter limit


def set_run_tags(tracking_uri: str, tags_by_run: Mapping[str, Mapping[str, str]]) -> None:
    """Set tags on many runs: in one transaction on a database store, else one call per run."""
    if is_database(tracking_uri):
        _sql_set_tags(tracking_uri, tags_by_run)
        return
    client = MlflowClient(tracking_uri)
    for run_id, tags in tags_by_run.items():
        client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def _sql_set_tags(tracking_uri: str, tags_by_run: Mapping[str, Mapping[str, str]]) -> None:
    """Replace the given tags of each run in bulk (MLflow's API sets tags one run at a time:
    minutes for 10,000 runs). Same rows as MLflow's `set_tag` writes: (key, value, run_uuid)."""
    from sqlalchemy import create_engine, delete, insert

    tags = _tables()[3]
    items = list(tags_by_run.items())
    engine = create_engine(tracking_uri)
    try:
        with engine.begin() as db:
            for start in range(0, len(items), TAG_WRITE_CHUNK):
                chunk = items[start : start + TAG_WRITE_CHUNK]
                keys = {key for _, run_tags in chunk for key in run_tags}
                run_ids = [run_id for run_id, _ in chunk]
                db.execute(delete(tags).where(tags.c.run_uuid.in_(run_ids), tags.c.key.in_(keys)))
                rows = [
                    {"key": key, "value": str(value), "run_uuid": run_id}
                    for run_id, run_tags in chunk
                    for key, value in run_tags.items()
                ]
                if rows:
                    db.execute(insert(tags), rows)
    finally:
        engine.dispose()


def log_to_parent(
    tracking_uri: str, parent_run_id: str, metrics: Mapping[str, float], files: Iterable[Path], folder: str
) -> None:
    """Metrics (one batch) and artifacts under `folder` on a sweep's parent run, finished or not."""
    client = MlflowClient(tracking_uri)
    now = int(time.time() * 1000)
    batch = [Metric(key, float(value), now, 0) for key, value in metrics.items()]
    for chunk in _chunks(batch, MAX_METRICS_PER_BATCH):
        client.log_batch(parent_run_id, metrics=chunk)
    for path in files:
        client.log_artifact(parent_run_id, str(path), artifact_path=folder)


def log_text_to_parent(tracking_uri: str, parent_run_id: str, texts: Mapping[str, str]) -> None:
    """Text artifacts (a results page) on a sweep's parent run, by artifact path."""
    client = MlflowClient(tracking_uri)
    for path, text in texts.items():
        client.log_text(parent_run_id, text, path)


def ui_base(tracking_uri: str) -> str:
    """Where a browser finds the runs: the server itself, or `mlflow ui` on a local store."""
    return tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else MLFLOW_UI_DEFAULT


# The MLflow UI (3.x) starts in its GenAI view unless the link asks for model training; the view
# is the UI's own setting, not the experiment's, so every link rnnprune prints asks for it.
TRAINING_VIEW = "?workflowType=machine_learning"


def _ui(base: str, page: str) -> str:
    return f"{base.rstrip('/')}/#/{page}{TRAINING_VIEW}"


def experiment_url(base: str, experiment_id: str) -> str:
    return _ui(base, f"experiments/{experiment_id}")


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    return _ui(base, f"experiments/{experiment_id}/runs/{run_id}")


def artifact_url(base: str, experiment_id: str, run_id: str, path: str) -> str:
    """The MLflow UI's page of one artifact of a run."""
    return _ui(base, f"experiments/{experiment_id}/runs/{run_id}/artifacts/{path}")


DESCRIPTION_TAG = "mlflow.note.content"  # what the MLflow UI shows as a run's description


def set_run_description(tracking_uri: str, run_id: str, markdown: str) -> None:
    MlflowClient(tracking_uri).set_tag(run_id, DESCRIPTION_TAG, markdown)


def log_run_model(
    tracking_uri: str, run_id: str, model: torch.nn.Module, example: torch.Tensor, name: str
) -> None:
    """Log `model` as an MLflow PyTorch model named `name` of a (finished) run."""
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(run_id=run_id):
        mlflow.pytorch.log_model(model, name=name, **_model_flavor_options(model, example))


def register_run_model(
    tracking_uri: str, run_id: str, name: str, tags: Mapping[str, str], alias: str, artifact: str = "model"
) -> str:
    """Register the run's logged model `artifact` and point `alias` at the new version; returns
    the version.

    MLflow 3 logs models as LoggedModels linked to the run; `runs:/<id>/<artifact>` still
    resolves to that model, so the registry entry is made from the run URI users already know.
    """
    mlflow.set_tracking_uri(tracking_uri)
    version = mlflow.register_model(f"runs:/{run_id}/{artifact}", name, tags=dict(tags))
    MlflowClient(tracking_uri).set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def download_run_artifact(tracking_uri: str, run_id: str, artifact: str, destination: Path) -> Path:
    return Path(
        MlflowClient(tracking_uri).download_artifacts(run_id, artifact, str(Path(destination).resolve()))
    )
