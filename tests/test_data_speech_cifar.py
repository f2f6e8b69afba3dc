"""Speech Commands and sequential CIFAR-10 loaders on tiny synthetic folders in the real layouts."""

from __future__ import annotations

import math
import pickle
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnprune.data import cifar, speech_commands
from rnnprune.data import registry as task_registry
from rnnprune.data.speech_commands import ARCHIVE, SpeechCommandsParams, add_noise
from rnnprune.errors import DataError

WORDS = {"yes": 440.0, "no": 880.0, "cat": 1320.0}


def write_wav(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(16_000)
        clip.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


@pytest.fixture(scope="module")
def speech_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three words (a tone each), four speakers; speaker 2 is validation, speaker 3 test.
    Clips are 0.5-1.2 s long, so padding and cropping are both exercised."""
    root = tmp_path_factory.mktemp("speech")
    folder = root / ARCHIVE
    validation, testing = [], []
    rng = np.random.default_rng(0)
    for word, frequency in WORDS.items():
        for speaker in range(4):
            length = int(16_000 * (0.5 + 0.7 * speaker / 3))
            tone = 0.5 * np.sin(2 * math.pi * frequency * np.arange(length) / 16_000)
            relative = f"{word}/spk{speaker}_nohash_0.wav"
            write_wav(folder / relative, tone + 0.01 * rng.standard_normal(length))
            if speaker == 2:
                validation.append(relative)
            elif speaker == 3:
                testing.append(relative)
    (folder / "validation_list.txt").write_text("\n".join(validation) + "\n")
    (folder / "testing_list.txt").write_text("\n".join(testing) + "\n")
    write_wav(folder / "_background_noise_" / "hum.wav", 0.3 * rng.standard_normal(24_000))
    return root


def test_speech_commands_reads_the_standard_splits_as_mfcc_sequences(speech_root: Path) -> None:
    data = speech_commands.load(SpeechCommandsParams(), speech_root, download=False)
    assert data.input_size == 40 and data.num_classes == 3
    assert data.train.inputs.shape == (6, 101, 40)  # speakers 0 and 1 of each word
    assert len(data.val) == len(data.test) == 3
    assert sorted(data.test.targets.tolist()) == [0, 1, 2]  # cat, no, yes in sorted order
    # Features are standardised with training statistics.
    assert data.train.inputs.mean(dim=(0, 1)).abs().max() < 1e-4
    # The tones are told apart by their MFCCs: same word, closer features than across words.
    per_word = {int(t): x.mean(dim=0) for x, t in zip(data.train.inputs, data.train.targets, strict=True)}
    test_features = data.test.inputs.mean(dim=1)
    nearest = [min(per_word, key=lambda w: float((per_word[w] - f).norm())) for f in test_features]
    assert nearest == data.test.targets.tolist()


def test_keyword_labels_fold_other_words_into_unknown(speech_root: Path) -> None:
    data = speech_commands.load(SpeechCommandsParams(labels="keywords"), speech_root, download=False)
    assert data.num_classes == 11
    assert set(data.train.targets.tolist()) == {0, 1, 10}  # yes, no, unknown (cat)


def test_noise_at_a_set_snr_reaches_the_test_split_only(speech_root: Path) -> None:
    clean = speech_commands.load(SpeechCommandsParams(), speech_root, download=False)
    noisy = speech_commands.load(SpeechCommandsParams(noise_snr_db=0.0), speech_root, download=False)
    assert torch.equal(clean.train.inputs, noisy.train.inputs)
    assert not torch.allclose(clean.test.inputs, noisy.test.inputs)
    white = speech_commands.load(
        SpeechCommandsParams(noise_snr_db=0.0, noise_source="white", noise_splits="all"),
        speech_root,
        download=False,
    )
    assert not torch.allclose(clean.train.inputs, white.train.inputs)


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 20.0])
def test_add_noise_hits_the_requested_snr(snr_db: float) -> None:
    generator = torch.Generator().manual_seed(0)
    clean = torch.randn(4, 1000, generator=generator) * torch.tensor([[0.1], [1.0], [2.0], [0.5]])
    recording = torch.randn(5000, generator=generator) * 3
    mixed = add_noise(clean, recording, snr_db, generator)
    measured = 10 * torch.log10(clean.pow(2).mean(dim=1) / (mixed - clean).pow(2).mean(dim=1))
    assert measured.tolist() == pytest.approx([snr_db] * 4, abs=1e-3)


def test_missing_speech_commands_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"task\.data_dir"):
        speech_commands.check(SpeechCommandsParams(), tmp_path, download=False)


def write_cifar(root: Path, per_batch: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """The six pickled batches of `cifar-10-batches-py/` with random images and labels."""
    rng = np.random.default_rng(seed)
    folder = root / cifar.FOLDER
    folder.mkdir(parents=True)
    written = {}
    for name in cifar.BATCHES:
        images = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)  # CHW, flattened
        labels = rng.integers(0, 10, size=per_batch).tolist()
        with open(folder / name, "wb") as file:
            pickle.dump({"data": images, "labels": labels}, file)
        written[name] = images
    return written


def test_cifar_rows_hold_the_pixels_of_an_image_row(tmp_path: Path) -> None:
    written = write_cifar(tmp_path)
    data = cifar.load(cifar.SeqCifarParams(val_fraction=0.25), tmp_path, download=False)
    assert data.train.inputs.shape == (15, 32, 96) and data.input_size == 96
    assert data.test.inputs.shape == (4, 32, 96)
    image = written["test_batch"][0].reshape(3, 32, 32) / 255.0  # channel, row, column
    row = 5
    expected = (image[:, row, :].T - np.array(cifar.MEAN)) / np.array(cifar.STD)  # (pixel, channel)
    np.testing.assert_allclose(data.test.inputs[0, row].numpy(), expected.reshape(96), atol=1e-5)


@pytest.mark.parametrize(("variant", "shape"), [("row_gray", (32, 32)), ("pixel_gray", (1024, 1))])
def test_cifar_gray_variants(tmp_path: Path, variant: str, shape: tuple[int, int]) -> None:
    write_cifar(tmp_path)
    data = cifar.load(cifar.SeqCifarParams(variant=variant), tmp_path, download=False)  # type: ignore[arg-type]
    assert tuple(data.test.inputs.shape[1:]) == shape and data.input_size == shape[1]


def test_missing_cifar_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"task\.data_dir"):
        cifar.check(cifar.SeqCifarParams(), tmp_path, download=False)


def test_tasks_are_registered() -> None:
    assert {"speech_commands", "seq_cifar10"} <= set(task_registry.registered_tasks)
