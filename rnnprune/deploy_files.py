"""Deployable files of a pruned classifier's compact model: the pickled module, TorchScript and
ONNX. Each file is read back the way a user would run it (`torch.load`, `torch.jit.load`, an
onnxruntime session on one thread), checked against the masked model and timed against it.

ONNX goes through PyTorch's TorchScript-based exporter: it writes the recurrent layers as
ONNX's own LSTM/GRU/RNN operators with the batch and the number of steps left free, where
the torch.export-based one (PyTorch's default since 2.9) fixes the number of steps to the
example's and unrolls the loop.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnprune.compact import compact, compactable, parameter_count
from rnnprune.deploy import speed_against
from rnnprune.errors import RnnpruneError
from rnnprune.latency import DEFAULT_REPEATS, Repeats
from rnnprune.models.recurrent import RecurrentNet

Runner = Callable[[torch.Tensor], torch.Tensor]


class ExportError(RnnpruneError, ValueError):
    """A model that has no file of the asked format, or a format whose runtime is not installed."""


@dataclass(frozen=True)
class FileFormat:
    suffix: str  # of the default file name
    write: Callable[[nn.Module, torch.Tensor, Path], None]
    load: Callable[[Path], Runner]  # the file, read back as a function of inputs
    needs: str | None = None  # a module the format's runtime imports


def _write_module(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    # The whole module is pickled: its widths differ per layer, so a state dict alone cannot rebuild it.
    torch.save(module, path)


def _load_module(path: Path) -> Runner:
    module: nn.Module = torch.load(path, weights_only=False).eval()
    return module


# TorchScript is deprecated since PyTorch 2.11 in favour of torch.export, which fixes the number
# of steps (module docstring); it is still what C++ and mobile runtimes load.
TORCHSCRIPT_DEPRECATION = r"`torch\.jit\.(script|load)` is deprecated"


def _write_torchscript(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=TORCHSCRIPT_DEPRECATION, category=DeprecationWarning)
        torch.jit.script(module).save(str(path))


def _load_torchscript(path: Path) -> Runner:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=TORCHSCRIPT_DEPRECATION, category=DeprecationWarning)
        module: Runner = torch.jit.load(str(path)).eval()
    return module


def _write_onnx(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of one that cannot leave the
        # number of steps free (module docstring); its tracer warns of shape checks that the
        # ONNX operators make themselves, and its batch-size warning is about h0/c0 inputs,
        # which this model does not take.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
        torch.onnx.export(
            module,
            (example[:1],),
            str(path),
            input_names=["inputs"],
            output_names=["outputs"],
            dynamic_axes={"inputs": {0: "batch", 1: "steps"}, "outputs": {0: "batch"}},
            dynamo=False,
        )


def _load_onnx(path: Path) -> Runner:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # latency is compared on one thread, as PyTorch's is
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(inputs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {"inputs": inputs.numpy()})[0])

    return run


FILE_FORMATS: dict[str, FileFormat] = {
    "compact": FileFormat("compact.pt", _write_module, _load_module),
    "torchscript": FileFormat("torchscript.pt", _write_torchscript, _load_torchscript),
    "onnx": FileFormat("onnx", _write_onnx, _load_onnx, needs="onnxruntime"),
}


def check_exportable(model: nn.Module, fmt: str) -> None:
    """One line naming the fix when `model` has no `fmt` file here (before anything is written)."""
    needs = FILE_FORMATS[fmt].needs
    if needs is not None and importlib.util.find_spec(needs) is None:
        raise ExportError(f"--format {fmt} needs {needs}: pip install 'rnnprune[deploy]'")
    if not compactable(model):
        # A user's own network has a compact file of its own: its pruned matrices stored sparse.
        other = "compact or state_dict" if not isinstance(model, RecurrentNet) else "state_dict"
        raise ExportError(
            f"--format {fmt}: only the built-in classifier (no embedding, initial-state encoder or "
            f"every-step readout) has a compact dense model; use --format {other}"
        )


def export_compact(
    model: nn.Module, example: torch.Tensor, destination: Path, fmt: str, repeats: Repeats = DEFAULT_REPEATS
) -> dict[str, Any]:
    """Write the compact model of `model` as `fmt`; read it back, compare its outputs with the
    masked model's and time it against the masked model (dense kernels over the full size)."""
    check_exportable(model, fmt)
    small = compact(model)
    file_format = FILE_FORMATS[fmt]
    file_format.write(small, example, destination)
    run = file_format.load(destination)
    with torch.no_grad():
        difference = (run(example) - model(example)).abs().max().item()
    return {
        "compact_params": parameter_count(small),
        "widths": [layer.hidden_size for layer in small.layers],
        "max_abs_difference_on_example": difference,
        "bytes": destination.stat().st_size,
        **speed_against(model, run, example, repeats, reference_name="masked"),
    }
