"""Sequential CIFAR-10: each image read row by row (32 steps of 32 pixels × 3 channels).

Files are read by torchvision's `CIFAR10` from `<data root>/cifar-10-batches-py/` (the pickled
`data_batch_1..5` and `test_batch`); with internet and `download: true` torchvision fetches
them. Variants (expander.md §2.2.10): `row_rgb` (32 × 96, normalised per channel),
`row_gray` (32 × 32) and `pixel_gray` (1024 × 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from pydantic import Field

from rnnprune.data.base import DATA_DIR_ENV, Task, TaskData, TaskParams, carve_validation
from rnnprune.errors import DataError

if TYPE_CHECKING:
    from torchvision.datasets import CIFAR10

FOLDER = "cifar-10-batches-py"
BATCHES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma
INPUT_SIZE = {"row_rgb": 96, "row_gray": 32, "pixel_gray": 1}


class SeqCifarParams(TaskParams):
    variant: Literal["row_rgb", "row_gray", "pixel_gray"] = Field(
        default="row_rgb",
        description="row_rgb: 32 steps of 32 pixels × RGB; row_gray: 32 steps of 32 gray pixels; "
        "pixel_gray: 1024 steps of one gray pixel.",
    )
    val_fraction: float = Field(
        default=0.1, gt=0.0, lt=1.0, description="Training share held out for validation."
    )
    split_seed: int = Field(default=0, description="Seed of the validation split (shared by all trials).")
    max_train_examples: int | None = Field(
        default=None, ge=1, description="Use only the first N training images (quick runs)."
    )


def _missing_message(root: Path, reason: str) -> str:
    expected = "\n".join(f"  {root / FOLDER / name}" for name in BATCHES)
    return (
        f"CIFAR-10 not found under data root {root} ({reason}).\n"
        f"Fix: set `task.data_dir` (or --set task.data_dir=PATH) or {DATA_DIR_ENV} to a folder "
        f"holding {FOLDER}/, or allow `task.download: true` on a machine with internet.\n"
        f"Expected layout (torchvision's):\n{expected}"
    )


def _cifar_files() -> type[CIFAR10]:
    """torchvision's CIFAR-10 reader, imported when data is read (not when a config is)."""
    from torchvision.datasets import CIFAR10

    class _CifarFiles(CIFAR10):
        """torchvision's reader with its md5 checks reduced to presence checks.

        It hashes all 170 MB on every load, and rejects the small synthetic folders the tests
        write in the real layout; `download()` still checks the archive's md5 before extracting.
        """

        def _check_integrity(self) -> bool:
            return all((Path(self.root) / FOLDER / name).is_file() for name in BATCHES)

        def _load_meta(self) -> None:  # class names are not needed, only label indices
            self.classes = []

    return _CifarFiles


def _read(root: Path, train: bool, download: bool) -> CIFAR10:
    if not download and not all((root / FOLDER / name).is_file() for name in BATCHES):
        raise DataError(_missing_message(root, "files missing and task.download is false"))
    try:
        return _cifar_files()(root=str(root), train=train, download=download)
    except (RuntimeError, OSError) as error:
        raise DataError(_missing_message(root, str(error).splitlines()[0])) from error


def _gray(images: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255.0) @ torch.tensor(GRAY_WEIGHTS)


def as_sequences(images: torch.Tensor, variant: str, gray_stats: tuple[float, float]) -> torch.Tensor:
    """(N, 32, 32, 3) uint8 HWC images -> (N, steps, features) float sequences.

    RGB is normalised per channel with the CIFAR-10 statistics; gray with `gray_stats`
    (mean, std of the training images), so every split is scaled the same way.
    """
    if variant == "row_rgb":
        normalised = (images.float() / 255.0 - torch.tensor(MEAN)) / torch.tensor(STD)
        return normalised.reshape(len(images), 32, 96)  # a row: pixel 0 RGB, pixel 1 RGB, ...
    gray = (_gray(images) - gray_stats[0]) / gray_stats[1]
    return gray if variant == "row_gray" else gray.reshape(len(images), 1024, 1)


def check(params: SeqCifarParams, root: Path, download: bool) -> None:
    """Fail now, before any training, if the files cannot be had."""
    _read(root, train=False, download=download)


def load(params: SeqCifarParams, root: Path, download: bool) -> TaskData:
    train_set, test_set = _read(root, True, download), _read(root, False, download)
    images, labels = torch.from_numpy(train_set.data), torch.tensor(train_set.targets)
    if params.max_train_examples is not None:
        images, labels = images[: params.max_train_examples], labels[: params.max_train_examples]
    gray = _gray(images)
    stats = (float(gray.mean()), float(gray.std()))
    train, val = carve_validation(
        as_sequences(images, params.variant, stats), labels, params.val_fraction, params.split_seed
    )
    test_images = torch.from_numpy(test_set.data)
    test = carve_validation(
        as_sequences(test_images, params.variant, stats), torch.tensor(test_set.targets), 0.0, 0
    )[0]
    return TaskData(train, val, test, input_size=INPUT_SIZE[params.variant], num_classes=10)


TASK = Task(
    name="seq_cifar10",
    params=SeqCifarParams,
    check=check,  # type: ignore[arg-type]
    load=load,  # type: ignore[arg-type]
    description="CIFAR-10 read row by row (32 x 96 RGB, or gray rows / pixels), 10 classes.",
)
