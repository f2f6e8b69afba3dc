"""Block magnitude pruning: masks made of whole tiles of the requested shape, the lowest tiles
first, nested and tile-aligned under rising targets; bad block shapes fail before training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from rnnprune.config import validate_config
from rnnprune.errors import ConfigError
from rnnprune.models.recurrent import RecurrentNet
from rnnprune.pruning import registry
from rnnprune.pruning.base import PrunableWeight
from rnnprune.pruning.blocks import BlockParams
from rnnprune.training.preflight import check_plugins
from rnnprune.training.runner import run_trial

BLOCKS = registry.get("block_magnitude")


def _weights(seed: int = 0) -> list[PrunableWeight]:
    torch.manual_seed(seed)
    return RecurrentNet("lstm", input_size=8, hidden_size=16, num_layers=2, num_classes=3).prunable_weights(
        ("ih", "hh")
    )


def _tiles(mask: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """(tile rows, height, tile cols, width) view of a mask."""
    (rows, cols), (height, width) = mask.shape, block
    return mask.reshape(rows // height, height, cols // width, width)


def _assert_whole_tiles(mask: torch.Tensor, block: tuple[int, int]) -> None:
    tiles = _tiles(mask, block)
    kept, pruned = tiles.all(dim=3).all(dim=1), ~tiles.any(dim=3).any(dim=1)
    assert torch.equal(kept, ~pruned), "a tile is partly pruned"


@pytest.mark.parametrize("block", [(4, 4), (8, 1), (16, 1), (1, 8), (64, 8)])
@pytest.mark.parametrize("allocation", ["global", "layerwise"])
def test_masks_are_whole_tiles_of_the_requested_shape(block: tuple[int, int], allocation: str) -> None:
    weights = _weights()
    masks = BLOCKS(weights, 0.6, BlockParams(block=block, allocation=allocation), torch.Generator()).masks
    tile_size = block[0] * block[1]
    for weight in weights:
        _assert_whole_tiles(masks[weight.name], block)
        if allocation == "layerwise":
            assert int((~masks[weight.name]).sum()) == round(0.6 * weight.numel / tile_size) * tile_size
    tiles = sum(w.numel // tile_size for w in weights)
    if allocation == "global":
        assert sum(int((~m).sum()) for m in masks.values()) == round(0.6 * tiles) * tile_size


def test_the_lowest_l2_tiles_go_first_over_the_pool() -> None:
    values = torch.ones(8, 8)
    values[:4, :4] = 0.1  # the weakest tile
    values[4:, 4:] = torch.tensor([5.0, 0.0, 0.0, 0.0]).repeat(4, 1)  # one large entry per row: L2 = 10
    values[:4, 4:] = 3.0  # mean |w| 3, L2 = 12
    mask = torch.ones(8, 8, dtype=torch.bool)
    weight = PrunableWeight("w", 0, "hh", ("h",), values, mask)
    masks = BLOCKS([weight], 0.5, BlockParams(block=(4, 4)), torch.Generator()).masks
    # Tiles by L2: 0.4 (top left), 4 (bottom left, ones), 10 (bottom right), 12 (top right).
    assert masks["w"][:4, :4].sum() == 0 and masks["w"][4:, :4].sum() == 0
    assert masks["w"][:, 4:].all()


def test_rising_targets_keep_masks_nested_and_tile_aligned() -> None:
    model = RecurrentNet("gru", input_size=8, hidden_size=16, num_layers=2, num_classes=3)
    params = BlockParams(block=(8, 4))
    noise = torch.Generator().manual_seed(2)
    before = {name: mask.clone() for name, mask in model.masks().items()}
    for target in (0.2, 0.45, 0.7, 0.9):
        weights = model.prunable_weights(("ih", "hh"))
        model.set_masks(BLOCKS(weights, target, params, torch.Generator()).masks)
        pool = sum(w.numel for w in weights)
        assert sum(int((~w.mask).sum()) for w in weights) == pytest.approx(target * pool, abs=32)
        for weight in weights:
            _assert_whole_tiles(weight.mask, (8, 4))
            assert not (weight.mask & ~before[weight.name]).any(), "a pruned tile came back"
        before = {name: mask.clone() for name, mask in model.masks().items()}
        with torch.no_grad():  # training moves the surviving weights between events
            for parameter in model.parameters():
                parameter.add_(torch.randn(parameter.shape, generator=noise))
        model.apply_masks()


@pytest.mark.parametrize(
    "block, expected",
    [
        ([3, 4], r"\[3, 4\] does not divide rnn\.weight_hh_l0 \(64 × 16\) and 3 more; .*use e\.g\. \[2, 4\]"),
        (
            [4, 32],
            r"\[4, 32\] does not divide rnn\.weight_hh_l0 \(64 × 16\) and 2 more; .*use e\.g\. \[4, 16\]",
        ),
        ([0, 4], r"give \[rows, cols\], two positive integers such as \[4, 4\] or \[8, 1\] \(got \[0, 4\]\)"),
        ([4], r"give \[rows, cols\]"),
        ("4x4", r"give \[rows, cols\].*\(got '4x4'\)"),
        ([True, 4], r"give \[rows, cols\]"),
        ([4.5, 4], r"give \[rows, cols\]"),
    ],
)
def test_bad_block_shapes_fail_at_config_validation_naming_the_field_and_the_fix(
    block: Any, expected: str
) -> None:
    raw = {
        "model": {"cell": "lstm", "hidden_size": 16, "num_layers": 2},
        "pruning": {"method": "block_magnitude", "params": {"block": block}},
    }
    with pytest.raises(ConfigError, match=r"pruning\.params\.block: " + expected):
        validate_config(raw)


def test_the_shape_check_reads_every_pool_matrix() -> None:
    weights = _weights()  # layer 0 reads 8 inputs: (64, 8)
    assert BLOCKS.problems(weights, 0.5, BlockParams(block=(16, 8))) == []
    [(field, message)] = BLOCKS.problems(weights, 0.5, BlockParams(block=(16, 16)))
    assert field == "params.block"
    assert message.startswith("[16, 16] does not divide rnn.weight_ih_l0 (64 × 8); ")
    assert "use e.g. [16, 8]" in message


def test_a_block_the_input_width_does_not_take_fails_before_training(
    trial_dict: dict[str, Any], tmp_path: Path
) -> None:
    # Row-wise sequential MNIST reads 28 pixels a step: [4, 8] divides the hidden matrices only.
    trial_dict["pruning"].update(method="block_magnitude", params={"block": [4, 8]})
    config = validate_config(trial_dict)
    with pytest.raises(
        ConfigError,
        match=r"pruning\.params\.block: \[4, 8\] does not divide rnn\.weight_ih_l0 \(64 × 28\); .*"
        r"use e\.g\. \[4, 4\], .*\(task 'seq_mnist'\)",
    ):
        run_trial(config, tmp_path / "out")
    assert not (tmp_path / "cache").exists()  # nothing was trained


def test_a_block_a_plugin_model_does_not_take_fails_in_the_preflight(trial_dict: dict[str, Any]) -> None:
    trial_dict["model"] = {"factory": "tests.user_models:two_lstms", "params": {"hidden_size": 8}}
    trial_dict["pruning"].update(method="block_magnitude", params={"block": [4, 8]})
    config = validate_config(trial_dict)  # the config cannot know a plugin model's matrices
    with pytest.raises(
        ConfigError,
        match=r"pruning\.params\.block: \[4, 8\] does not divide first\.weight_ih_l0 \(32 × 28\) and 2 more; "
        r".*\(model tests\.user_models:two_lstms on task 'seq_mnist'\)",
    ):
        check_plugins([config])


def test_a_block_pruning_trial_reaches_the_target_in_whole_tiles(
    trial_dict: dict[str, Any], tmp_path: Path
) -> None:
    trial_dict["pruning"].update(method="block_magnitude", params={"block": [16, 4]})
    metrics = run_trial(validate_config(trial_dict), tmp_path / "out").metrics
    assert metrics["sparsity"] == pytest.approx(0.8, abs=64 / (64 * 28 + 64 * 16))
    state = torch.load(tmp_path / "out" / "model.pt", weights_only=False)["state_dict"]
    for name in ("rnn.weight_ih_l0", "rnn.weight_hh_l0"):
        _assert_whole_tiles(state[name + "_mask"], (16, 4))
        assert not state[name][~state[name + "_mask"]].any()
