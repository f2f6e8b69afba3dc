"""Exporting a pruned model: a plain state dict, or its compact dense model without dead units
(`rnnprune.compact`) as a pickled module, TorchScript or ONNX (`rnnprune.deploy_files`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rnnprune.compact import parameter_count
from rnnprune.deploy_files import export_compact
from rnnprune.models.recurrent import MASK_SUFFIX, RecurrentNet

STATE_DICT = "state_dict"


def plain_state_dict(model: RecurrentNet) -> dict[str, torch.Tensor]:
    """The weights with masks folded in and the mask buffers dropped (loads into a plain model)."""
    return {
        name: tensor.clone() for name, tensor in model.state_dict().items() if not name.endswith(MASK_SUFFIX)
    }


def export_model(model_pt: Path, destination: Path, fmt: str) -> dict[str, Any]:
    """Write `fmt` ("state_dict", or a compact model's file: "compact", "torchscript", "onnx")
    of a trial's model.pt; returns a summary with the file's size and, for a compact model's
    file, its outputs' difference from the masked model's and its measured latency."""
    from rnnprune.training.runner import load_model

    config, model, example = load_model(model_pt)
    summary: dict[str, Any] = {
        "format": fmt,
        "path": str(destination),
        "dense_params": parameter_count(model),
    }
    if fmt == STATE_DICT:
        torch.save(
            {"config": config.model_dump(mode="json"), "state_dict": plain_state_dict(model)}, destination
        )
        return {**summary, "bytes": destination.stat().st_size}
    return {**summary, **export_compact(model, example, destination, fmt)}
