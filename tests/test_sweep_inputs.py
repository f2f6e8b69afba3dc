"""Bad input and bad starts fail before Ray starts, in one line, and leave nothing behind:
files that are not YAML text, resources the machine cannot give, a sweep already running, a
tracking file that is not a store. Also the pieces that keep a big sweep's terminal readable."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import ray

from rnnprune.cli import main
from rnnprune.errors import ConfigError
from rnnprune.sweep import resources
from rnnprune.sweep.lock import sweep_lock
from rnnprune.sweep.progress import ProgressLine
from rnnprune.sweep.runner import run_sweep, worker_env
from rnnprune.sweep.spec import load_spec
from rnnprune.tracking import TrackingError, prepare_local_store

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    (tmp_path / "trial.yaml").write_text((FIXTURES / "trial.yaml").read_text())
    return tmp_path


def _spec(directory: Path, extra: str = "") -> Path:
    path = directory / "spec.yaml"
    path.write_text(
        f"name: inputs\nbase: trial.yaml\nmethods: {{global_magnitude: {{}}}}\n"
        f"storage_path: {directory / 'storage'}\n{extra}"
    )
    return path


@pytest.mark.parametrize(
    "content, expected",
    [
        ("name: café\n".encode("latin-1"), r"is not UTF-8 text \(byte 0xe9 at offset 9\); save it as UTF-8"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00", "is a binary file, not YAML text"),
        (b"", "must hold a mapping of fields at the top level"),
    ],
)
def test_a_spec_that_is_not_yaml_text_is_one_line(
    tmp_path: Path, content: bytes, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=expected):
        load_spec(path)
    assert main(["sweep", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: sweep spec ") and error.count("\n") == 1
    assert not ray.is_initialized()


def test_a_folder_is_not_a_spec(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder; pass the path to a YAML file"):
        load_spec(tmp_path)


@pytest.mark.parametrize(
    "request_, cuda, expected",
    [
        ("{cpu: 64}", 0, r"resources\.cpu: 64 CPUs per trial, but the local Ray has 2; set resources\.cpu"),
        ("{gpu: 1}", 0, r"resources\.gpu: 1 GPUs per trial, but this machine has no CUDA device"),
        ("{gpu: 0.5}", 0, r"resources\.gpu: 0\.5 GPUs per trial, but this machine has no CUDA device"),
        ("{gpu: 2}", 1, r"resources\.gpu: 2 GPUs per trial, but this machine has 1; set resources\.gpu"),
        ("{memory_gb: 100000}", 0, r"resources\.memory_gb: 100000 GiB per trial, but this machine has"),
    ],
)
def test_resources_the_machine_cannot_give_fail_before_ray_starts(
    spec_dir: Path, monkeypatch: pytest.MonkeyPatch, request_: str, cuda: int, expected: str
) -> None:
    monkeypatch.setattr(resources, "cuda_devices", lambda: cuda)
    path = _spec(spec_dir, f"resources: {request_}\n")
    with pytest.raises(ConfigError, match=expected):
        run_sweep(path, workdir=spec_dir, num_cpus=2)
    assert not ray.is_initialized()
    assert not (spec_dir / "storage").exists() and not (spec_dir / "mlflow.db").exists()


def test_a_fractional_gpu_on_a_machine_with_one_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "cuda_devices", lambda: 1)
    resources.check_local_resources(load_spec_resources("{gpu: 0.25, cpu: 1}"), num_cpus=2)


def load_spec_resources(text: str) -> resources.Resources:
    import yaml

    return resources.Resources.model_validate(yaml.safe_load(text))


def test_a_sweep_already_running_is_named_not_raced(spec_dir: Path) -> None:
    # The adding problem generates its data: every check before the lock passes.
    (spec_dir / "trial.yaml").write_text((FIXTURES / "trial_adding.yaml").read_text())
    path = _spec(spec_dir)
    storage = spec_dir / "storage"
    with sweep_lock(storage, "inputs"):
        with pytest.raises(ConfigError) as raised:
            run_sweep(path, workdir=spec_dir, num_cpus=2)
        message = str(raised.value)
        assert message.startswith(f"sweep inputs is already running (process {os.getpid()} on ")
        assert socket.gethostname() in message and "continue with --resume" in message
        assert not ray.is_initialized() and not (storage / "inputs").exists()
    with sweep_lock(storage, "inputs"):  # released with the block, by the process that held it
        pass
    assert not (storage / "inputs.lock.owner.json").exists()


def _open_store(uri: str, database: str, start: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    start.wait()
    prepare_local_store(uri, Path(database))


def test_concurrent_first_opens_of_a_store_build_its_schema_once(tmp_path: Path) -> None:
    database = tmp_path / "mlflow.db"
    uri = f"sqlite:///{database}"
    context = mp.get_context("spawn")
    start = context.Event()
    openers = [context.Process(target=_open_store, args=(uri, str(database), start)) for _ in range(3)]
    for process in openers:
        process.start()
    start.set()  # all three open the new store at once
    for process in openers:
        process.join(timeout=120)
    assert [p.exitcode for p in openers] == [0, 0, 0]


def test_a_file_that_is_not_a_store_is_one_line(tmp_path: Path) -> None:
    database = tmp_path / "notes.db"
    database.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(TrackingError) as raised:
        prepare_local_store(f"sqlite:///{database}", database)
    assert "cannot be opened as an MLflow SQLite store" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_workers_get_relative_data_and_cache_paths_as_absolute_ones(
    spec_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RNNPRUNE_DATA_DIR", "../shared/data/mnist")
    monkeypatch.setenv("RNNPRUNE_CACHE_DIR", "/absolute/cache")
    env = worker_env(load_spec(_spec(spec_dir)).spec, "sqlite:///x.db", spec_dir)
    assert env["RNNPRUNE_DATA_DIR"] == str((spec_dir / "../shared/data/mnist").resolve())
    assert env["RNNPRUNE_CACHE_DIR"] == "/absolute/cache"


def _trial(trial_id: str, status: str, result: dict[str, float]) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, status=status, last_result=result)


def test_the_progress_line_counts_trials_failures_and_the_front(capsys: pytest.CaptureFixture[str]) -> None:
    line = ProgressLine(total=5, quality="test_accuracy", maximize=True)
    line.started, line.ended_here = -1e9, 7  # as unpickled by a restored sweep, from another process
    line.setup()
    line.on_trial_start(0, [], None)
    done = [
        _trial("a", "TERMINATED", {"test_accuracy": 0.97, "sparsity": 0.5}),
        _trial("b", "TERMINATED", {"test_accuracy": 0.95, "sparsity": 0.9}),
        _trial("c", "TERMINATED", {"test_accuracy": 0.90, "sparsity": 0.5}),  # dominated by a
    ]
    failed = _trial("d", "ERROR", {})
    current = _trial("e", "RUNNING", {"test_accuracy": 0.5, "sparsity": 0.98})
    line.on_trial_complete(1, [*done, failed, current], current)
    printed = capsys.readouterr().err
    assert printed.startswith("[5/5] e done, test_accuracy 0.5 | 1 failed | ")
    assert printed.rstrip().endswith("front: 3 trial(s)")  # a, b and the sparsest, e
    assert printed.count("\n") == 1
    assert " 0m00s elapsed" in printed  # the clock of this process, not the restored one


def test_on_an_autoscaling_cluster_a_request_no_node_type_can_hold_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resources, "_node_types", lambda: [{"CPU": 8.0}, {"CPU": 4.0, "GPU": 1.0}])
    resources.check_cluster_resources(load_spec_resources("{cpu: 4, gpu: 1}"))  # a GPU node fits: wait
    with pytest.raises(ConfigError) as raised:
        resources.check_cluster_resources(load_spec_resources("{cpu: 2, gpu: 2}"))
    assert str(raised.value) == (
        "resources: no node type of this cluster can run one trial (cpu 2, gpu 2); its node types "
        "offer CPU 8; CPU 4, GPU 1: lower resources.cpu / resources.gpu or add a node type"
    )


def test_on_a_static_cluster_a_node_that_joins_in_time_is_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resources, "_node_types", lambda: None)
    joined = iter([[{"CPU": 1.0}], [{"CPU": 1.0}, {"CPU": 4.0}]])  # the second look sees a new node
    monkeypatch.setattr(resources, "_alive_nodes", lambda: next(joined))
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    resources.check_cluster_resources(load_spec_resources("{cpu: 4}"), wait_s=60)
    monkeypatch.setattr(resources, "_alive_nodes", lambda: [{"CPU": 1.0}])
    with pytest.raises(ConfigError, match=r"no node of this cluster can run one trial \(cpu 4\) and it has"):
        resources.check_cluster_resources(load_spec_resources("{cpu: 4}"), wait_s=0)
