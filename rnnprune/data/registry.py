"""Task names -> loaders. Adding a task is one module plus one line here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rnnprune.data import adding, cifar, language_model, mnist, navigation, speech_commands
from rnnprune.data.base import TaskData, TaskParams
from rnnprune.objectives import Classification, LanguageModelling, MeanSquaredError, Objective


@dataclass(frozen=True)
class Task:
    name: str
    params: type[TaskParams]
    check: Callable[[TaskParams, Path, bool], None]
    load: Callable[[TaskParams, Path, bool], TaskData]
    description: str
    objective: type[Objective] = Classification  # what `load` hands the trainer, known up front

    def reported_metrics(self) -> tuple[str, ...]:
        """The task's metrics as trials report them every epoch."""
        return tuple(f"val_{name}" for name in self.objective.metrics)


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
        Task(
            "navigation",
            navigation.NavigationParams,
            navigation.check,  # type: ignore[arg-type]
            navigation.load,  # type: ignore[arg-type]
            "Path integration in a 2.2 m box: velocities in, place-cell logits out at every step.",
            navigation.PlaceCellDecoding,
        ),
        Task(
            "adding",
            adding.AddingParams,
            adding.check,  # type: ignore[arg-type]
            adding.load,  # type: ignore[arg-type]
            "The adding problem: sum the two marked values of a sequence (MSE; baseline 1/6).",
            MeanSquaredError,
        ),
        Task(
            "word_lm",
            language_model.WordLmParams,
            language_model.check,  # type: ignore[arg-type]
            language_model.load,  # type: ignore[arg-type]
            "Word-level language model on PTB or WikiText-2 files (perplexity).",
            LanguageModelling,
        ),
    )
}


def get(name: str) -> Task:
    try:
        return registered_tasks[name]
    except KeyError:
        known = ", ".join(sorted(registered_tasks))
        raise KeyError(f"unknown task {name!r}; registered tasks: {known}") from None
