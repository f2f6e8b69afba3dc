"""Exporting a pruned model: a plain state dict, or a compact model.

The built-in classifier's compact form is a smaller dense model without dead units
(`rnnprune.compact`), written as a pickled module, TorchScript or ONNX
(`rnnprune.deploy_files`). A plugin model's wiring is the user's own code, so rnnprune cannot
remove its units; its compact form keeps the pruned matrices as sparse (CSR) tensors, the
nonzeros only, and `load_compact` rebuilds the user's module from its factory.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnprune.compact import parameter_count
from rnnprune.data.base import Architecture
from rnnprune.deploy_files import export_compact
from rnnprune.models import registry as model_registry
from rnnprune.models.base import ModelInputs
from rnnprune.models.recurrent import MASK_SUFFIX, RecurrentNet
from rnnprune.weights import ALL_KINDS

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
    if fmt == "compact" and not isinstance(model, RecurrentNet):
        torch.save(
            {
                "config": config.model_dump(mode="json"),
                "inputs": vars(model_inputs_of(model_pt)),
                "state_dict": sparse_state_dict(model),
            },
            destination,
        )
        restored = load_compact(destination)
        with torch.no_grad():
            difference = (restored(example) - model(example)).abs().max().item()
        summary.update(
            compact_params=sum(int((p != 0).sum()) for p in model.parameters()),
            bytes=destination.stat().st_size,
            max_abs_difference_on_example=difference,
        )
        return summary
    return {**summary, **export_compact(model, example, destination, fmt)}


def sparse_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The plain state dict with every pruned matrix as a sparse CSR tensor of its nonzeros."""
    pruned = {w.name for w in model.prunable_weights(ALL_KINDS) if not bool(w.mask.all())}  # type: ignore[operator]
    with warnings.catch_warnings():  # CSR storage is stable; PyTorch flags the layout as beta
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        return {
            name: tensor.to_sparse_csr() if name in pruned else tensor
            for name, tensor in plain_state_dict(model).items()
        }


def model_inputs_of(model_pt: Path) -> ModelInputs:
    """What the task fixed about a trial's model, as its model.pt recorded it."""
    saved = torch.load(Path(model_pt), weights_only=False, map_location="cpu")
    return ModelInputs(saved["input_size"], saved["num_outputs"], saved.get("architecture") or Architecture())


def load_compact(path: Path) -> nn.Module:
    """A plugin model's compact export as the user's own module (dense weights, no masks)."""
    from rnnprune.config import TrialConfig

    # Invariant checks on: a damaged file fails here instead of reading out of bounds.
    with torch.sparse.check_sparse_tensor_invariants(enable=True):
        saved = torch.load(Path(path), weights_only=False, map_location="cpu")
    config = TrialConfig.model_validate(saved["config"])
    inputs = ModelInputs(**saved["inputs"])
    module = model_registry.get(config.model.factory).build(config.model.typed_params, inputs)
    dense = {
        name: t.to_dense() if t.layout != torch.strided else t for name, t in saved["state_dict"].items()
    }
    module.load_state_dict(dense)
    return module.eval()
