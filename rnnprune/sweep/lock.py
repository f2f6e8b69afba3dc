"""One running copy of a sweep at a time.

A sweep holds an exclusive lock on `<storage>/<name>.lock` while it runs (an OS file lock: it
goes with the process, so a crashed sweep leaves nothing to clean up) and writes who holds it
beside it. A second `rnnprune sweep` of the same sweep then says which process runs it, where
and since when, instead of racing it for Tune's state and the MLflow parent run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from rnnprune.errors import ConfigError


def _owner_path(lock_path: Path) -> Path:
    return lock_path.with_name(lock_path.name + ".owner.json")


@contextmanager
def sweep_lock(storage: Path, name: str) -> Iterator[None]:
    """Hold the sweep's lock for the `with` block; ConfigError if another process holds it."""
    storage.mkdir(parents=True, exist_ok=True)
    lock_path = storage / f"{name}.lock"
    lock = FileLock(str(lock_path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(_already_running(name, _owner_path(lock_path))) from None
    owner = _owner_path(lock_path)
    try:
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        owner.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": started}))
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()


def _already_running(name: str, owner: Path) -> str:
    try:
        holder = json.loads(owner.read_text())
        who = f"process {holder['pid']} on {holder['host']} since {holder['since']}"
    except (OSError, ValueError, KeyError):  # the holder is between taking the lock and saying so
        who = "another process"
    return (
        f"sweep {name} is already running ({who}); wait for it to finish, or stop it and "
        f"continue with --resume"
    )
