"""Word-level language modelling (the PyTorch word_language_model example the moduli paper
builds on): predict the next word at every step of a chunk of text.

Files are the standard three-file layout, `<data root>/<corpus>/<train|valid|test file>`:
Penn Treebank (ptb.train.txt, ptb.valid.txt, ptb.test.txt) or WikiText-2 (wiki.train.tokens,
wiki.valid.tokens, wiki.test.tokens). Text is split on whitespace with `<eos>` appended to
every line, as in the reference. The vocabulary is the words of the training stream in
order of first occurrence (deterministic); validation and test words outside it read as
`<unk>`, which is added to the vocabulary if the training text lacks it.

With `valid_file: null` the last `val_fraction` of the training tokens is held out for
validation (and left out of the vocabulary): machines that hold only PTB's valid and test
files train on ptb.valid.txt, choose models on its tail, and report on ptb.test.txt.

Simplification: the reference batchifies each stream into columns and carries the hidden
state from one 35-token chunk to the next (truncated backpropagation through a stream).
Here each chunk is an independent example starting from a zero state, so that batches are
shuffled and evaluated like every other task's. Chunks advance by `bptt` tokens and share
one token with the next (inputs tokens i..i+bptt-1, targets i+1..i+bptt), so every token of
a stream is predicted exactly once; the last tokens that do not fill a chunk are dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from rnnprune.data.base import DATA_DIR_ENV, Architecture, Split, Task, TaskData, TaskParams
from rnnprune.errors import DataError
from rnnprune.objectives import LanguageModelling

END_OF_SENTENCE = "<eos>"
UNKNOWN = "<unk>"
LAYOUTS: dict[str, dict[str, str]] = {
    "ptb": {"train_file": "ptb.train.txt", "valid_file": "ptb.valid.txt", "test_file": "ptb.test.txt"},
    "wikitext2": {
        "train_file": "wiki.train.tokens",
        "valid_file": "wiki.valid.tokens",
        "test_file": "wiki.test.tokens",
    },
}


class WordLmParams(TaskParams):
    corpus: str = Field(default="ptb", description="Folder of the corpus under the data root.")
    layout: Literal["ptb", "wikitext2"] = Field(
        default="ptb", description="File-name preset for train_file, valid_file and test_file."
    )
    train_file: str = Field(description="Training text in the corpus folder (default: the layout's).")
    valid_file: str | None = Field(
        description="Validation text (default: the layout's); null holds out the training tail."
    )
    test_file: str = Field(description="Test text in the corpus folder (default: the layout's).")
    val_fraction: float = Field(
        default=0.1,
        gt=0.0,
        lt=1.0,
        description="Share of the training tokens held out for validation when valid_file is null.",
    )
    bptt: int = Field(default=35, ge=1, description="Tokens per example (backpropagation length).")
    embedding_size: int = Field(default=650, ge=1, description="Word-embedding dimensions (RNN input).")
    init_range: float | None = Field(
        default=0.1,
        gt=0.0,
        description="Embedding and decoder weights start uniform in ±init_range, decoder bias at 0, as in "
        "PyTorch's word_language_model example that the reference builds on (None: PyTorch's defaults, "
        "N(0, 1) embeddings, which dwarf the recurrent weights under global magnitude pruning).",
    )
    max_train_tokens: int | None = Field(
        default=None, ge=2, description="Train on the first N training tokens only (quick runs)."
    )

    @model_validator(mode="before")
    @classmethod
    def _layout_file_names(cls, raw: Any) -> Any:
        """File names left out come from the layout; an explicit `valid_file: null` stays."""
        if isinstance(raw, dict) and raw.get("layout", "ptb") in LAYOUTS:
            return {**LAYOUTS[raw.get("layout", "ptb")], **raw}
        return raw


def _paths(params: WordLmParams, root: Path) -> dict[str, Path]:
    files = {"train_file": params.train_file, "valid_file": params.valid_file, "test_file": params.test_file}
    return {field: root / params.corpus / name for field, name in files.items() if name is not None}


def check(params: WordLmParams, root: Path, download: bool) -> None:
    """Fail now, before any training, naming every missing file and the options that place it."""
    paths = _paths(params, root)
    missing = {field: path for field, path in paths.items() if not path.is_file()}
    if missing:
        expected = "\n".join(
            f"  {path}  (task.params.{field}){'  MISSING' if field in missing else ''}"
            for field, path in paths.items()
        )
        raise DataError(
            f"word_lm corpus not found under data root {root}.\n"
            f"Fix: set `task.data_dir` in the config (or --set task.data_dir=PATH) or the "
            f"{DATA_DIR_ENV} environment variable to the folder holding the corpus folder "
            f"task.params.corpus={params.corpus!r}, and name its files with task.params.layout "
            f"(ptb or wikitext2) or task.params.train_file / valid_file / test_file "
            f"(valid_file: null holds out the last val_fraction of the training text). "
            f"This task never downloads (task.download is ignored).\n"
            f"Expected files:\n{expected}"
        )


def read_tokens(path: Path) -> list[str]:
    """Whitespace-split words with `<eos>` closing every line (blank lines too, as in the reference)."""
    with path.open(encoding="utf-8") as text:
        return [word for line in text for word in [*line.split(), END_OF_SENTENCE]]


def build_vocabulary(tokens: list[str]) -> dict[str, int]:
    """Word -> id in order of first occurrence, with `<unk>` appended if the text lacks it."""
    vocabulary = {word: index for index, word in enumerate(dict.fromkeys(tokens))}
    vocabulary.setdefault(UNKNOWN, len(vocabulary))
    return vocabulary


def encode(tokens: list[str], vocabulary: dict[str, int]) -> torch.Tensor:
    unknown = vocabulary[UNKNOWN]
    return torch.tensor([vocabulary.get(word, unknown) for word in tokens], dtype=torch.long)


def chunk(ids: torch.Tensor, bptt: int) -> Split:
    """inputs (N, bptt) and targets (N, bptt), the same stream one token later."""
    count = (len(ids) - 1) // bptt
    return Split(ids[: count * bptt].reshape(count, bptt), ids[1 : count * bptt + 1].reshape(count, bptt))


def load(params: WordLmParams, root: Path, download: bool) -> TaskData:
    check(params, root, download)
    paths = _paths(params, root)
    train_tokens = read_tokens(paths["train_file"])
    if params.valid_file is None:
        cut = len(train_tokens) - round(params.val_fraction * len(train_tokens))
        train_tokens, val_tokens = train_tokens[:cut], train_tokens[cut:]
    else:
        val_tokens = read_tokens(paths["valid_file"])
    if params.max_train_tokens is not None:
        train_tokens = train_tokens[: params.max_train_tokens]
    vocabulary = build_vocabulary(train_tokens)
    splits = {
        name: chunk(encode(tokens, vocabulary), params.bptt)
        for name, tokens in (
            ("train", train_tokens),
            ("val", val_tokens),
            ("test", read_tokens(paths["test_file"])),
        )
    }
    empty = [name for name, split in splits.items() if len(split) == 0]
    if empty:
        raise DataError(
            f"word_lm: the {', '.join(empty)} token stream(s) hold fewer than bptt+1="
            f"{params.bptt + 1} tokens.\nFix: lower task.params.bptt, or give longer files "
            "(task.params.train_file / valid_file / test_file, val_fraction, max_train_tokens)."
        )
    return TaskData(
        splits["train"],
        splits["val"],
        splits["test"],
        input_size=params.embedding_size,
        num_classes=len(vocabulary),
        objective=LanguageModelling(),
        architecture=Architecture(readout="all", vocab_size=len(vocabulary), init_range=params.init_range),
    )


TASK = Task(
    name="word_lm",
    params=WordLmParams,
    check=check,  # type: ignore[arg-type]
    load=load,  # type: ignore[arg-type]
    description="Word-level language model on PTB or WikiText-2 files (perplexity).",
    objective=LanguageModelling,
)
