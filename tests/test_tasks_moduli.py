"""The moduli paper's tasks (navigation, adding problem, word-level language model) on tiny
generated data: the generators follow the spec, the objectives score what they should, and
each task runs a whole trial."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rnnprune.config import validate_config
from rnnprune.data import adding, language_model, navigation
from rnnprune.data import registry as task_registry
from rnnprune.data.base import DATA_DIR_ENV, Split
from rnnprune.data.navigation import (
    SPEED_SCALE,
    TIME_STEP,
    NavigationParams,
    PlaceCellDecoding,
    PlaceCells,
    generate_trajectories,
    wall_turn,
)
from rnnprune.errors import DataError
from rnnprune.models.recurrent import RecurrentNet
from rnnprune.objectives import MeanSquaredError
from rnnprune.training.runner import run_trial

HALF_BOX = 1.1


@pytest.fixture(scope="module")
def walks() -> Split:
    return generate_trajectories(1000, 50, 2 * HALF_BOX, np.random.default_rng(0))


@pytest.fixture(scope="module")
def cells() -> PlaceCells:
    return PlaceCells(512, 0.12, 2.0, 2 * HALF_BOX, seed=0)


# --- navigation --------------------------------------------------------------------------


def test_velocities_integrate_to_the_target_positions(walks: Split) -> None:
    assert walks.inputs.shape == (1000, 51, 2) and walks.targets.shape == (1000, 50, 2)
    positions = torch.cat([walks.inputs[:, :1], walks.targets], dim=1)  # positions 1..T+1
    torch.testing.assert_close(positions[:, :-1] + walks.inputs[:, 1:], positions[:, 1:], atol=1e-5, rtol=0)


def test_walks_stay_in_the_box_up_to_one_step(walks: Split) -> None:
    """The reference turns only once within 3 cm of a wall, so one full-speed step can overshoot
    it (faithfully kept); the walk then turns back instead of drifting away."""
    positions = torch.cat([walks.inputs[:, :1], walks.targets], dim=1)
    longest_step = walks.inputs[:, 1:].norm(dim=-1).max()
    assert positions.abs().max() <= HALF_BOX + longest_step
    assert (positions.abs() > HALF_BOX).float().mean() < 0.01


def test_speeds_are_rayleigh_distributed(walks: Split) -> None:
    speeds = walks.inputs[:, 1:].norm(dim=-1) / TIME_STEP
    rayleigh_mean = SPEED_SCALE * math.sqrt(math.pi / 2)
    # Slightly below the Rayleigh mean: steps near a wall are slowed to a quarter.
    assert 0.93 * rayleigh_mean < speeds.mean() < 1.01 * rayleigh_mean
    rayleigh_median = SPEED_SCALE * math.sqrt(2 * math.log(2))
    assert speeds.median() == pytest.approx(rayleigh_median, rel=0.05)


def test_the_wall_rule_turns_along_the_wall_and_only_towards_it() -> None:
    positions = np.array([[1.09, 0.0], [1.09, 0.0], [0.0, 1.09], [0.0, 0.0], [1.0, 0.0]])
    headings = np.array([0.3, math.pi, math.pi / 2 + 0.2, 0.3, 0.3])
    near_wall, turn = wall_turn(positions, headings, HALF_BOX)
    assert near_wall.tolist() == [True, False, True, False, False]
    np.testing.assert_allclose(headings[near_wall] + turn[near_wall], [math.pi / 2, math.pi])
    assert (turn[~near_wall] == 0).all()


def test_place_cell_codes_are_distributions_peaking_at_the_nearest_centre(
    cells: PlaceCells, walks: Split
) -> None:
    positions = walks.targets[:20]
    codes = cells(positions)
    assert codes.shape == (20, 50, 512)
    assert (codes >= 0).all()
    torch.testing.assert_close(codes.sum(-1), torch.ones(20, 50))
    nearest = torch.cdist(positions.reshape(-1, 2), cells.centres).argmin(-1)
    assert (codes.reshape(-1, 512).argmax(-1) == nearest).all()
    assert "centres" in cells.state_dict()


def test_the_reference_place_cell_layout_is_kept(cells: PlaceCells) -> None:
    np.random.seed(0)  # what the reference's PlaceCells does before drawing x then y
    x, y = np.random.uniform(-HALF_BOX, HALF_BOX, 512), np.random.uniform(-HALF_BOX, HALF_BOX, 512)
    np.testing.assert_allclose(cells.centres.numpy(), np.stack([x, y], 1), rtol=1e-6)


def test_decoding_the_nearest_centres_gives_a_small_error(cells: PlaceCells, walks: Split) -> None:
    objective = PlaceCellDecoding(cells)
    positions = walks.targets[:20]
    sharp = -torch.cdist(positions.reshape(-1, 2), cells.centres).reshape(20, 50, 512) * 100
    good = objective.summarise(objective.totals(sharp, positions))
    chance = objective.summarise(objective.totals(torch.randn(20, 50, 512), positions))
    assert good["error_cm"] < 8.0 and chance["error_cm"] > 50.0
    # The loss is smallest for the logits of the true code, and totals agree with loss.
    matched = cells(positions).clamp_min(1e-12).log()  # one cell per code is exactly 0
    assert objective.loss(matched, positions) < objective.loss(torch.zeros_like(matched), positions)
    summary = objective.summarise(objective.totals(matched, positions))
    assert summary["loss"] == pytest.approx(objective.loss(matched, positions).item(), rel=1e-5)


def test_navigation_data_follow_the_seed_and_the_layout() -> None:
    params = NavigationParams(
        sequence_length=4, place_cells=8, train_trajectories=30, val_trajectories=6, test_trajectories=5
    )
    first, again = navigation.load(params, Path("."), False), navigation.load(params, Path("."), False)
    other = navigation.load(params.model_copy(update={"data_seed": 1}), Path("."), False)
    assert torch.equal(first.train.inputs, again.train.inputs)
    assert not torch.equal(first.train.inputs, other.train.inputs)
    assert not torch.equal(first.val.inputs, first.test.inputs[:6])
    assert (len(first.train), len(first.val), len(first.test)) == (30, 6, 5)
    assert first.test.inputs.shape == (5, 5, 2) and first.test.targets.shape == (5, 4, 2)
    assert first.num_classes == 8 and first.input_size == 2
    assert first.architecture.readout == "all" and not first.architecture.bias
    assert first.architecture.initial_code_size == 8


def test_navigation_check_rejects_data_that_cannot_fit_in_memory() -> None:
    navigation.check(NavigationParams(), Path("."), False)
    with pytest.raises(DataError, match="train_trajectories"):
        navigation.check(NavigationParams(train_trajectories=10**12), Path("."), False)


# --- adding problem ----------------------------------------------------------------------


def test_adding_targets_are_the_sums_of_the_two_marked_values() -> None:
    split = adding.generate_sequences(500, 20, np.random.default_rng(0))
    values, markers = split.inputs[..., 0], split.inputs[..., 1]
    assert split.inputs.shape == (500, 20, 2) and split.targets.shape == (500,)
    assert ((values >= 0) & (values < 1)).all()
    assert ((markers == 0) | (markers == 1)).all() and (markers.sum(1) == 2).all()
    torch.testing.assert_close((values * markers).sum(1), split.targets)


def test_predicting_one_scores_the_one_sixth_baseline() -> None:
    split = adding.generate_sequences(100_000, 10, np.random.default_rng(1))
    objective = MeanSquaredError()
    summary = objective.summarise(objective.totals(torch.ones(len(split), 1), split.targets))
    assert summary["mse"] == pytest.approx(1 / 6, abs=0.003)


def test_adding_data_follow_the_seed() -> None:
    params = adding.AddingParams(sequence_length=6, train_examples=20, val_examples=5, test_examples=5)
    first, again = adding.load(params, Path("."), False), adding.load(params, Path("."), False)
    assert torch.equal(first.train.inputs, again.train.inputs)
    assert not torch.equal(first.val.inputs, first.test.inputs)
    assert first.num_classes == 1 and first.architecture.readout == "last"


# --- word-level language model -----------------------------------------------------------


def write_corpus(root: Path, files: dict[str, str], corpus: str = "ptb") -> Path:
    (root / corpus).mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / corpus / name).write_text(text)
    return root


def test_vocabulary_and_unknown_words() -> None:
    tokens = ["the", "cat", "sat", "<eos>", "the", "dog", "<eos>"]
    vocabulary = language_model.build_vocabulary(tokens)
    assert list(vocabulary) == ["the", "cat", "sat", "<eos>", "dog", "<unk>"]
    assert language_model.encode(["dog", "bird"], vocabulary).tolist() == [4, 5]
    assert list(language_model.build_vocabulary(["a", "<unk>", "b"])) == ["a", "<unk>", "b"]


def test_lines_end_with_eos_and_chunks_predict_every_next_token(tmp_path: Path) -> None:
    (tmp_path / "text").write_text(" a b c\n\nd e \n")
    assert language_model.read_tokens(tmp_path / "text") == [
        "a",
        "b",
        "c",
        "<eos>",
        "<eos>",
        "d",
        "e",
        "<eos>",
    ]
    split = language_model.chunk(torch.arange(12), bptt=3)
    assert split.inputs.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert torch.equal(split.targets, split.inputs + 1)  # the same stream, one token later


def test_the_training_tail_is_held_out_when_there_is_no_validation_file(tmp_path: Path) -> None:
    lines = [" ".join(f"w{i}" for i in range(line, line + 4)) for line in range(20)]  # 100 tokens
    root = write_corpus(
        tmp_path, {"ptb.valid.txt": "\n".join(lines) + "\n", "ptb.test.txt": "w0 zzz w3\n" * 10}
    )
    params = language_model.WordLmParams(train_file="ptb.valid.txt", valid_file=None, bptt=4)
    data = language_model.load(params, root, False)
    vocabulary = language_model.build_vocabulary(
        language_model.read_tokens(root / "ptb" / "ptb.valid.txt")[:90]
    )
    assert data.num_classes == len(vocabulary) == data.architecture.vocab_size
    assert (len(data.train), len(data.val), len(data.test)) == (89 // 4, 9 // 4, 39 // 4)
    held_out = language_model.read_tokens(root / "ptb" / "ptb.valid.txt")[90:]
    assert data.val.inputs[0].tolist() == language_model.encode(held_out[:4], vocabulary).tolist()
    assert (data.test.inputs == vocabulary["<unk>"]).any()  # "zzz" is not in the training text
    assert data.input_size == 650 and data.objective.quality == "perplexity"
    quick = language_model.load(params.model_copy(update={"max_train_tokens": 20}), root, False)
    assert len(quick.train) == 19 // 4


def test_layout_presets_fill_only_the_file_names_left_out() -> None:
    wiki = language_model.WordLmParams.model_validate({"layout": "wikitext2", "corpus": "wikitext-2"})
    assert (wiki.train_file, wiki.valid_file, wiki.test_file) == (
        "wiki.train.tokens",
        "wiki.valid.tokens",
        "wiki.test.tokens",
    )
    scarce = language_model.WordLmParams.model_validate({"train_file": "ptb.valid.txt", "valid_file": None})
    assert (scarce.train_file, scarce.valid_file, scarce.test_file) == ("ptb.valid.txt", None, "ptb.test.txt")


def test_missing_files_fail_fast_naming_the_options(tmp_path: Path) -> None:
    root = write_corpus(tmp_path, {"ptb.test.txt": "a b\n"})
    with pytest.raises(DataError) as error:
        language_model.check(language_model.WordLmParams(), root, True)
    message = str(error.value)
    for name in ("task.data_dir", DATA_DIR_ENV, "corpus", "train_file", "valid_file", "layout"):
        assert name in message
    assert str(root / "ptb" / "ptb.train.txt") in message and "MISSING" in message


def test_streams_too_short_for_one_chunk_are_an_error(tmp_path: Path) -> None:
    root = write_corpus(
        tmp_path, {"ptb.train.txt": "a b c d e f\n", "ptb.valid.txt": "a\n", "ptb.test.txt": "a b c d\n"}
    )
    with pytest.raises(DataError, match="val"):
        language_model.load(language_model.WordLmParams(bptt=2), root, False)


# --- whole trials ------------------------------------------------------------------------


def tiny_trial(tmp_path: Path, task: dict[str, Any]) -> dict[str, Any]:
    return {
        "task": {"download": False, **task},
        "model": {"cell": "rnn_relu", "hidden_size": 8},
        "training": {"epochs": 1, "batch_size": 16, "lr": 0.01},
        "pruning": {
            "method": "global_magnitude",
            "target_sparsity": 0.5,
            "schedule": {"kind": "one_shot", "finetune_epochs": 1},
        },
        "seed": 0,
        "device": "cpu",
        "cache_dir": str(tmp_path / "cache"),
    }


@pytest.mark.parametrize(
    ("task", "quality"),
    [
        (
            {
                "name": "navigation",
                "params": {
                    "sequence_length": 5,
                    "place_cells": 16,
                    "train_trajectories": 64,
                    "val_trajectories": 16,
                    "test_trajectories": 16,
                },
            },
            "error_cm",
        ),
        (
            {
                "name": "adding",
                "params": {
                    "sequence_length": 6,
                    "train_examples": 64,
                    "val_examples": 16,
                    "test_examples": 16,
                },
            },
            "mse",
        ),
        ({"name": "word_lm", "params": {"bptt": 5, "embedding_size": 8}}, "perplexity"),
    ],
    ids=["navigation", "adding", "word_lm"],
)
def test_each_task_runs_a_whole_trial(tmp_path: Path, task: dict[str, Any], quality: str) -> None:
    if task["name"] == "word_lm":
        text = "".join(f"the cat {word} on the mat\n" for word in ("sat", "lay", "slept") * 10)
        task["data_dir"] = str(
            write_corpus(
                tmp_path / "data", {"ptb.train.txt": text, "ptb.valid.txt": text, "ptb.test.txt": text}
            )
        )
    metrics = run_trial(validate_config(tiny_trial(tmp_path, task)), tmp_path / "out").metrics
    assert math.isfinite(metrics[f"test_{quality}"]) and math.isfinite(metrics[f"val_{quality}"])
    assert metrics["sparsity"] == pytest.approx(0.5, abs=1e-2)
    # The objective the registry declares (what sweep specs are checked against) is the one
    # the loaded task trains with.
    declared = task_registry.get(task["name"]).objective
    assert metrics["quality_metric"] == declared.quality
    assert {f"val_{name}" for name in declared.metrics} <= set(metrics["history"][-1])


def test_language_model_starts_from_the_word_language_model_initialisation(tmp_path: Path) -> None:
    text = "".join(f"a b {word} c\n" for word in ("x", "y", "z") * 20)
    root = write_corpus(
        tmp_path / "data", {"ptb.train.txt": text, "ptb.valid.txt": text, "ptb.test.txt": text}
    )
    params = language_model.WordLmParams(bptt=4, embedding_size=6)
    data = language_model.load(params, root, download=False)
    model = RecurrentNet("rnn_tanh", 6, 5, 1, data.num_classes, architecture=data.architecture)
    for weight in (model.embedding.weight, model.readout.weight):  # type: ignore[union-attr]
        assert weight.abs().max() <= 0.1 and weight.std() > 0.03  # U(±0.1), not N(0, 1)
    assert not model.readout.bias.any()
