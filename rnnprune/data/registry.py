"""Task names -> tasks. Adding a task is one module (defining `TASK`) plus one line here.

Entries are `module:attribute` references imported on first use, so naming a task in a config
loads only that task's libraries; installed packages add tasks under the `rnnprune.tasks`
entry-point group (see `rnnprune.registry`).
"""

from __future__ import annotations

from rnnprune.data.base import Task
from rnnprune.registry import Registry

registered_tasks: Registry[Task] = Registry(
    "task",
    Task,
    {
        "seq_mnist": "rnnprune.data.mnist:TASK",
        "speech_commands": "rnnprune.data.speech_commands:TASK",
        "seq_cifar10": "rnnprune.data.cifar:TASK",
        "navigation": "rnnprune.data.navigation:TASK",
        "adding": "rnnprune.data.adding:TASK",
        "word_lm": "rnnprune.data.language_model:TASK",
    },
    entry_point_group="rnnprune.tasks",
)


def get(name: str) -> Task:
    return registered_tasks.lookup(name)


def names() -> list[str]:
    return registered_tasks.names()
