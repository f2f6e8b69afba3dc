"""Sequential MNIST: each image read as a sequence, row by row or pixel by pixel.

Files are read by `torchvision.datasets.MNIST` from `<data root>/MNIST/raw/` (the four
uncompressed IDX files); with internet and `download: true` torchvision fetches them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from pydantic import Field

from rnnprune.data.base import DATA_DIR_ENV, Task, TaskData, TaskParams, carve_validation
from rnnprune.errors import DataError

if TYPE_CHECKING:
    from torchvision.datasets import MNIST

MEAN, STD = 0.1307, 0.3081
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class SeqMnistParams(TaskParams):
    variant: Literal["row", "pixel", "permuted_pixel"] = Field(
        default="row",
        description="row: 28 steps of 28 pixels; pixel: 784 steps of 1 pixel; "
        "permuted_pixel: pixel under a fixed permutation.",
    )
    val_fraction: float = Field(
        default=0.1, gt=0.0, lt=1.0, description="Training share held out for validation."
    )
    split_seed: int = Field(default=0, description="Seed of the validation split (shared by all trials).")
    permutation_seed: int = Field(default=0, description="Seed of the pixel permutation (permuted_pixel).")
    normalize: bool = Field(default=True, description="Standardise pixels with the MNIST mean and std.")
    max_train_examples: int | None = Field(
        default=None,
        ge=1,
        description="Use only the first N training images (smoke tests and quick runs).",
    )


def _missing_message(root: Path, reason: str) -> str:
    expected = "\n".join(f"  {root / 'MNIST' / 'raw' / name}" for name in RAW_FILES)
    return (
        f"MNIST not found under data root {root} ({reason}).\n"
        f"Fix: set `task.data_dir` in the config (or --set task.data_dir=PATH) or the "
        f"{DATA_DIR_ENV} environment variable to a folder holding MNIST/raw/, "
        f"or allow `task.download: true` on a machine with internet.\n"
        f"Expected layout (torchvision's):\n{expected}"
    )


def _read(root: Path, train: bool, download: bool) -> MNIST:
    if not download and not all((root / "MNIST" / "raw" / name).is_file() for name in RAW_FILES):
        raise DataError(_missing_message(root, "files missing and task.download is false"))
    try:
        from torchvision.datasets import MNIST  # loaded when data is read, not when a config is

        return MNIST(root=str(root), train=train, download=download)
    except (RuntimeError, OSError) as error:  # offline downloads and unreadable files
        raise DataError(_missing_message(root, str(error).splitlines()[0])) from error


def _as_sequences(images: torch.Tensor, params: SeqMnistParams) -> torch.Tensor:
    pixels = images.float().div_(255.0)
    if params.normalize:
        pixels = (pixels - MEAN) / STD
    if params.variant == "row":
        return pixels  # (N, 28 rows, 28 columns)
    flat = pixels.reshape(len(pixels), 28 * 28, 1)
    if params.variant == "permuted_pixel":
        permutation = torch.randperm(
            28 * 28, generator=torch.Generator().manual_seed(params.permutation_seed)
        )
        flat = flat[:, permutation]
    return flat


def check(params: SeqMnistParams, root: Path, download: bool) -> None:
    """Fail now, before any training, if the files cannot be had."""
    _read(root, train=True, download=download)


def load(params: SeqMnistParams, root: Path, download: bool) -> TaskData:
    train_set = _read(root, train=True, download=download)
    test_set = _read(root, train=False, download=download)
    images, labels = train_set.data, train_set.targets
    if params.max_train_examples is not None:
        images, labels = images[: params.max_train_examples], labels[: params.max_train_examples]
    train, val = carve_validation(
        _as_sequences(images, params), labels, params.val_fraction, params.split_seed
    )
    test = carve_validation(_as_sequences(test_set.data, params), test_set.targets, 0.0, 0)[0]
    return TaskData(train, val, test, input_size=28 if params.variant == "row" else 1, num_classes=10)


TASK = Task(
    name="seq_mnist",
    params=SeqMnistParams,
    check=check,  # type: ignore[arg-type]
    load=load,  # type: ignore[arg-type]
    description="Sequential MNIST (row-wise, pixel-wise or permuted), 10 classes.",
    chance={"accuracy": 0.1},  # ten balanced classes
)
