"""Where a generated page comes from: the command, the rnnprune commit, the machine and the date.

A leaf module (standard library only), so any page writer states the same facts the same way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import re
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Provenance:
    command: str  # as typed: `rnnprune report sweep-1 --baseline random`
    commit: str  # short git commit of the rnnprune checkout, or the installed package's version
    machine: str  # CPU model and cores
    date: str  # UTC, to the minute

    def line(self) -> str:
        return f"Commit {self.commit}; machine {self.machine}; {self.date}."


def cpu_description() -> str:
    """The CPU model (from /proc/cpuinfo on Linux) and the number of logical cores."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):  # not Linux, or a CPU that names no model
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return f"{model} ({os.cpu_count()} cores)"


def code_version() -> str:
    """The checkout's short commit ("+ uncommitted changes" when its tracked files differ), or
    `rnnprune <version>` when rnnprune runs from an installed package rather than a checkout."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):  # no git on this machine
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return f"rnnprune {metadata.version('rnnprune')}"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", str(PACKAGE_DIR))
    return f"{commit} + uncommitted changes" if changed else commit


# user:password@ in a URI (a tracking server's credentials) never reaches a published page.
_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def _without_secrets(argument: str) -> str:
    return _CREDENTIALS.sub("***@", argument)


def current(command: Sequence[str]) -> Provenance:
    """The provenance of a page written now by `command` (its argv, program name first)."""
    return Provenance(
        command=shlex.join(_without_secrets(part) for part in command),
        commit=code_version(),
        machine=cpu_description(),
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
