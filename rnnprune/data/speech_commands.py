"""Google Speech Commands (v0.02) as MFCC sequences, optionally with additive noise at a set SNR.

The file lists come from `torchaudio.datasets.SPEECHCOMMANDS` (`<root>/SpeechCommands/
speech_commands_v0.02/<label>/*_nohash_*.wav`, with the standard `validation_list.txt` and
`testing_list.txt`; training is the rest). Waveforms are read with the stdlib `wave` module:
torchaudio 2.11's `load` needs TorchCodec, which is not a dependency, and the clips are
plain 16-bit PCM. Clips are padded or cropped to 1 s and turned into MFCCs by torchaudio's
transform (expander.md §2.2.10: 40 coefficients, 25 ms window, 10 ms hop: 101 × 40).
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from pydantic import Field

from rnnprune.data.base import DATA_DIR_ENV, Split, Task, TaskData, TaskParams
from rnnprune.errors import DataError

if TYPE_CHECKING:
    from torchaudio.datasets import SPEECHCOMMANDS

SAMPLE_RATE = 16_000
ARCHIVE = Path("SpeechCommands") / "speech_commands_v0.02"
NOISE_FOLDER = "_background_noise_"
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SUBSETS = {"train": "training", "val": "validation", "test": "testing"}


class SpeechCommandsParams(TaskParams):
    labels: Literal["all", "keywords"] = Field(
        default="all",
        description="all: every word folder is a class (35 in v0.02); keywords: the 10 command "
        "words plus one 'unknown' class for the rest (no 'silence' class).",
    )
    n_mfcc: int = Field(default=40, ge=1, description="MFCC coefficients per frame (features).")
    window_ms: float = Field(default=25.0, gt=0.0, description="Analysis window length.")
    hop_ms: float = Field(default=10.0, gt=0.0, description="Frame hop (1 s / hop + 1 steps).")
    noise_snr_db: float | None = Field(
        default=None, description="Add noise at this signal-to-noise ratio (dB); None: clean."
    )
    noise_source: Literal["background", "white"] = Field(
        default="background",
        description="background: random excerpts of the _background_noise_ clips; white: Gaussian.",
    )
    noise_splits: Literal["test", "all"] = Field(
        default="test", description="Which splits get the noise (test only: a robustness study)."
    )
    noise_seed: int = Field(default=0, description="Seed of the noise excerpts and draws.")
    max_examples: int | None = Field(
        default=None, ge=1, description="Use only the first N clips of each split (quick runs)."
    )


def _missing_message(root: Path, reason: str) -> str:
    return (
        f"Speech Commands not found under data root {root} ({reason}).\n"
        f"Fix: set `task.data_dir` (or --set task.data_dir=PATH) or {DATA_DIR_ENV} to a folder "
        f"holding {ARCHIVE}/ (word folders of *_nohash_*.wav plus validation_list.txt and "
        f"testing_list.txt), or allow `task.download: true` on a machine with internet."
    )


def _dataset(root: Path, subset: str, download: bool) -> SPEECHCOMMANDS:
    folder = root / ARCHIVE
    lists = [folder / "validation_list.txt", folder / "testing_list.txt"]
    if not download and not all(path.is_file() for path in lists):
        raise DataError(_missing_message(root, "file lists missing and task.download is false"))
    try:
        from torchaudio.datasets import SPEECHCOMMANDS  # loaded when data is read

        return SPEECHCOMMANDS(str(root), download=download, subset=subset)
    except (RuntimeError, OSError) as error:
        raise DataError(_missing_message(root, str(error).splitlines()[0])) from error


def read_wav(path: Path) -> np.ndarray:
    """Mono float waveform in [-1, 1) from a 16-bit PCM WAV file, padded or cropped to 1 s."""
    with wave.open(str(path), "rb") as clip:
        if clip.getsampwidth() != 2 or clip.getframerate() != SAMPLE_RATE:
            raise DataError(f"{path}: expected 16-bit PCM at {SAMPLE_RATE} Hz")
        samples = np.frombuffer(clip.readframes(clip.getnframes()), dtype="<i2")
        samples = samples.reshape(-1, clip.getnchannels())[:, 0]
    waveform = np.zeros(SAMPLE_RATE, dtype=np.float32)
    waveform[: min(len(samples), SAMPLE_RATE)] = samples[:SAMPLE_RATE] / 32768.0
    return waveform


def add_noise(
    clean: torch.Tensor, noise: torch.Tensor, snr_db: float, generator: torch.Generator
) -> torch.Tensor:
    """Mix noise into each clip (rows of `clean`) at `snr_db`.

    `noise` is one long recording, from which each clip gets a random excerpt; an empty tensor
    means white Gaussian noise. The excerpt is scaled so that power(clean) / power(noise) is
    10^(snr/10) clip by clip.
    """
    if noise.numel() == 0:
        excerpts = torch.randn(clean.shape, generator=generator)
    else:
        starts = torch.randint(0, len(noise) - clean.shape[1] + 1, (len(clean),), generator=generator)
        excerpts = noise[starts[:, None] + torch.arange(clean.shape[1])]
    signal_power = clean.pow(2).mean(dim=1, keepdim=True)
    noise_power = excerpts.pow(2).mean(dim=1, keepdim=True).clamp_min(1e-12)
    scale = torch.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    return clean + scale * excerpts


def _background(root: Path) -> torch.Tensor:
    """All background-noise recordings, one after the other."""
    clips = sorted((root / ARCHIVE / NOISE_FOLDER).glob("*.wav"))
    if not clips:
        raise DataError(
            f"noise_source 'background' needs {root / ARCHIVE / NOISE_FOLDER}/*.wav; "
            f"use task.params.noise_source=white instead"
        )
    recordings = []
    for path in clips:
        with wave.open(str(path), "rb") as clip:
            frames = np.frombuffer(clip.readframes(clip.getnframes()), dtype="<i2")
        recordings.append(torch.from_numpy(frames / 32768.0).float())
    return torch.cat(recordings)


def _label_index(params: SpeechCommandsParams, words: list[str]) -> dict[str, int]:
    if params.labels == "all":
        return {word: index for index, word in enumerate(words)}
    unknown = len(KEYWORDS)
    return {word: KEYWORDS.index(word) if word in KEYWORDS else unknown for word in words}


def check(params: SpeechCommandsParams, root: Path, download: bool) -> None:
    """Fail now, before any training, if the files cannot be had."""
    _dataset(root, "validation", download)


def load(params: SpeechCommandsParams, root: Path, download: bool) -> TaskData:
    subsets = {name: _dataset(root, subset, download) for name, subset in SUBSETS.items()}
    metadata = {
        name: [dataset.get_metadata(i) for i in range(len(dataset))][: params.max_examples]
        for name, dataset in subsets.items()
    }
    words = sorted({meta[2] for meta in metadata["train"]})
    if not words:
        raise DataError(_missing_message(root, "no training clips found"))
    label_of = _label_index(params, words)
    from torchaudio.transforms import MFCC

    mfcc = MFCC(
        sample_rate=SAMPLE_RATE,
        n_mfcc=params.n_mfcc,
        melkwargs={
            "n_fft": round(SAMPLE_RATE * params.window_ms / 1000),
            "hop_length": round(SAMPLE_RATE * params.hop_ms / 1000),
            "n_mels": max(params.n_mfcc, 40),
        },
    )
    generator = torch.Generator().manual_seed(params.noise_seed)
    noise = torch.empty(0)
    if params.noise_snr_db is not None and params.noise_source == "background":
        noise = _background(root)
    splits: dict[str, Split] = {}
    for name, entries in metadata.items():
        unseen = [meta for meta in entries if meta[2] not in label_of]
        if unseen:
            raise DataError(f"{name} split has words absent from training: {sorted({m[2] for m in unseen})}")
        archive = Path(subsets[name]._archive)
        waveforms = torch.from_numpy(np.stack([read_wav(archive / meta[0]) for meta in entries]))
        if params.noise_snr_db is not None and (params.noise_splits == "all" or name == "test"):
            waveforms = add_noise(waveforms, noise, params.noise_snr_db, generator)
        features = mfcc(waveforms).transpose(1, 2)  # (clips, frames, coefficients)
        targets = torch.tensor([label_of[meta[2]] for meta in entries])
        splits[name] = Split(features, targets)
    # Standardise each coefficient with training statistics (MFCC scales differ by orders).
    mean = splits["train"].inputs.mean(dim=(0, 1))
    std = splits["train"].inputs.std(dim=(0, 1)).clamp_min(1e-6)
    normalised = {name: Split((s.inputs - mean) / std, s.targets) for name, s in splits.items()}
    num_classes = len(words) if params.labels == "all" else len(KEYWORDS) + 1
    return TaskData(normalised["train"], normalised["val"], normalised["test"], params.n_mfcc, num_classes)


TASK = Task(
    name="speech_commands",
    params=SpeechCommandsParams,
    check=check,  # type: ignore[arg-type]
    load=load,  # type: ignore[arg-type]
    description="Google Speech Commands v0.02 as MFCC sequences (101 x 40), optional noise at an SNR.",
)
