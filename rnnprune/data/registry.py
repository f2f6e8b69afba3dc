"""Task names -> loaders. Adding a task is one module plus one line here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rnnprune.data import cifar, mnist, speech_commands
from rnnprune.data.base import TaskData, TaskParams


@dataclass(frozen=True)
class Task:
    name: str
    params: type[TaskParams]
    check: Callable[[TaskParams, Path, bool], None]
    load: Callable[[TaskParams, Path, bool], TaskData]
    description: str


registered_tasks: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "seq_mnist",
            mnist.SeqMnistParams,
            mnist.check,
            mnist.load,  # type: ignore[arg-type]
            "Sequential MNIST (row-wise, pixel-wise or permuted), 10 classes.",
        ),
        Task(
            "speech_commands",
            speech_commands.SpeechCommandsParams,
            speech_commands.check,
            speech_commands.load,  # type: ignore[arg-type]
            "Google Speech Commands v0.02 as MFCC sequences (101 x 40), optional noise at an SNR.",
        ),
        Task(
            "seq_cifar10",
            cifar.SeqCifarParams,
            cifar.check,
            cifar.load,  # type: ignore[arg-type]
            "CIFAR-10 read row by row (32 x 96 RGB, or gray rows / pixels), 10 classes.",
        ),
    )
}


def get(name: str) -> Task:
    try:
        return registered_tasks[name]
    except KeyError:
        known = ", ".join(sorted(registered_tasks))
        raise KeyError(f"unknown task {name!r}; registered tasks: {known}") from None
