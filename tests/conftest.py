"""Shared fixtures: tiny MNIST-format data written on the fly, and small trial configs."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml


def write_idx_images(path: Path, images: np.ndarray) -> None:
    path.write_bytes(struct.pack(">IIII", 0x803, len(images), 28, 28) + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    path.write_bytes(struct.pack(">II", 0x801, len(labels)) + labels.astype(np.uint8).tobytes())


def tiny_mnist(root: Path, num_train: int = 240, num_test: int = 80, seed: int = 0) -> Path:
    """MNIST-layout IDX files whose class is written as a bright row and as a bright block in
    the last row (so a small LSTM reading rows learns it in a few steps)."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", num_train), ("t10k", num_test)):
        labels = rng.integers(0, 10, size=count)
        images = rng.integers(0, 60, size=(count, 28, 28))
        for index, label in enumerate(labels):
            images[index, 2 + 2 * label, :] = 255
            images[index, 27, 2 * label : 2 * label + 3] = 255
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture(autouse=True)
def isolated_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test inherits or leaks a tracking URI: `mlflow.set_tracking_uri` exports
    MLFLOW_TRACKING_URI, which later tests and their subprocesses would silently use.
    monkeypatch restores the variable's absence after each test, whatever the test set."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture
def trial_dict(mnist_root: Path, tmp_path: Path) -> dict[str, Any]:
    """A trial that runs in about a second on CPU."""
    return {
        "task": {
            "name": "seq_mnist",
            "data_dir": str(mnist_root),
            "download": False,
            "params": {"val_fraction": 0.25},
        },
        "model": {"cell": "lstm", "hidden_size": 16},
        "training": {"epochs": 3, "batch_size": 16, "lr": 0.02},
        "pruning": {
            "method": "global_magnitude",
            "target_sparsity": 0.8,
            "schedule": {
                "kind": "gradual",
                "prune_epochs": 2,
                "frequency_steps": 2,
                "finetune_epochs": 1,
            },
        },
        "seed": 0,
        "device": "cpu",
        # Timing the finished model is tested on its own (tests/test_deploy.py); resumed and
        # straight trials compare every other metric exactly.
        "latency": {"measure": False},
        "cache_dir": str(tmp_path / "cache"),
    }


@pytest.fixture
def sweep_dir(tmp_path: Path, mnist_root: Path) -> Path:
    """A folder holding `trial.yaml`: a trial of a few seconds for real sweeps."""
    trial = {
        "task": {
            "name": "seq_mnist",
            "data_dir": str(mnist_root),
            "download": False,
            "params": {"val_fraction": 0.25},
        },
        "model": {"cell": "lstm", "hidden_size": 12},
        "training": {"epochs": 2, "batch_size": 16, "lr": 0.02},
        "pruning": {
            "method": "global_magnitude",
            "target_sparsity": 0.5,
            "schedule": {"kind": "gradual", "prune_epochs": 2, "frequency_steps": 3, "finetune_epochs": 1},
        },
        "device": "cpu",
        "cache_dir": str(tmp_path / "cache"),
    }
    (tmp_path / "trial.yaml").write_text(yaml.safe_dump(trial))
    return tmp_path


def write_spec(directory: Path, name: str, targets: list[float], methods: list[str], **extra: object) -> Path:
    spec = {
        "name": name,
        "base": "trial.yaml",
        "axes": {"pruning.target_sparsity": targets},
        "methods": {m: {} for m in methods},
        "storage_path": str(directory / "storage"),
        **extra,
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def headless_chromium(window: str = "920,860"):  # type: ignore[no-untyped-def]
    """A Selenium driver of headless Chromium (Debian's chromium and chromium-driver); skips the
    test where they are not installed (.ci/run installs them)."""
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("headless browser test needs Debian packages chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={window}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_path), options=options)
