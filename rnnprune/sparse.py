"""Sparse execution of a pruned network: its weight matrices stored as CSR or BSR, multiplied by
PyTorch's sparse kernels.

PyTorch's fused recurrent layers (`nn.LSTM`, `nn.GRU`, `nn.RNN`) take dense weights only, so a
recurrent layer runs here as an unrolled cell loop: the input projection of every step at once
(one product with `weight_ih`), then one product with `weight_hh` per step. State is kept
feature-major, (hidden, batch), so every product is sparse matrix times dense matrix, the form
the kernels take. Each matrix has its own format (dense, CSR, or BSR with a block size that
divides it): `rnnprune.deploy` chooses them by measuring. Inference only (no dropout, no
gradients); a layer with `proj_size` or two directions is left as it is.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping

import torch
from torch import nn

# Formats by name: the block of a BSR format. Non-square blocks are in the list because GPU
# kernels may take them; on CPU PyTorch's BSR product (MKL) takes square blocks only.
BLOCKS: dict[str, tuple[int, int]] = {
    "bsr4x4": (4, 4),
    "bsr8x8": (8, 8),
    "bsr16x16": (16, 16),
    "bsr8x1": (8, 1),
    "bsr16x1": (16, 1),
}
FORMATS: tuple[str, ...] = ("dense", "csr", *BLOCKS)
GATE_COUNT = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def stored(weight: torch.Tensor, fmt: str) -> torch.Tensor:
    """`weight` in format `fmt`, with 32-bit indices (what the kernels use: 64-bit ones are
    converted on every product, and files are smaller)."""
    weight = weight.detach()
    if fmt == "dense":
        return weight.clone()
    build = torch.sparse_csr_tensor if fmt == "csr" else torch.sparse_bsr_tensor
    with warnings.catch_warnings():
        # PyTorch marks its sparse layouts beta on first use (which kernels run is measured), and
        # warns that invariant checks are off: these indices are PyTorch's own, checks only cost.
        warnings.filterwarnings("ignore", message="Sparse (CSR|BSR) tensor support is in beta state")
        warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
        sparse = weight.to_sparse_csr() if fmt == "csr" else weight.to_sparse_bsr(BLOCKS[fmt])
        return build(
            sparse.crow_indices().int(),
            sparse.col_indices().int(),
            sparse.values(),
            sparse.shape,
            check_invariants=False,
        )


def fits(shape: torch.Size | tuple[int, ...], fmt: str) -> bool:
    """Whether a matrix of `shape` can be stored in `fmt` (a BSR block must divide it)."""
    if fmt not in BLOCKS:
        return True
    rows, columns = BLOCKS[fmt]
    return shape[0] % rows == 0 and shape[1] % columns == 0


def sparsity(weight: torch.Tensor) -> float:
    return float((weight == 0).sum()) / max(weight.numel(), 1)


def runs_unrolled(layer: nn.RNNBase) -> bool:
    """Whether `SparseRecurrent` computes this layer (one direction, no projection)."""
    return layer.mode in GATE_COUNT and not layer.bidirectional and layer.proj_size == 0


class SparseRecurrent(nn.Module):
    """An `nn.LSTM`/`nn.GRU`/`nn.RNN` (one direction, no projection) with each weight matrix in
    the format `formats` names (default dense); same call and outputs: (output, h_n) or
    (output, (h_n, c_n))."""

    def __init__(self, layer: nn.RNNBase, formats: Mapping[str, str]) -> None:
        super().__init__()
        if not runs_unrolled(layer):
            raise ValueError(f"{type(layer).__name__} with proj_size or two directions has no unrolled form")
        self.mode = layer.mode
        self.input_size, self.hidden_size = layer.input_size, layer.hidden_size
        self.num_layers = layer.num_layers
        self.batch_first = layer.batch_first
        self.formats = {name: formats.get(name, "dense") for name in self._weight_names()}
        gates = GATE_COUNT[self.mode]
        for index in range(self.num_layers):
            for kind in ("ih", "hh"):
                name = f"weight_{kind}_l{index}"
                self.register_buffer(name, stored(getattr(layer, name), self.formats[name]))
                bias = getattr(layer, f"bias_{kind}_l{index}") if layer.bias else None
                column = (
                    bias.detach().clone()
                    if bias is not None
                    else torch.zeros(gates * self.hidden_size, device=getattr(layer, name).device)
                )
                self.register_buffer(f"bias_{kind}_l{index}", column[:, None])  # broadcasts over the batch

    def _weight_names(self) -> list[str]:
        return [f"weight_{kind}_l{index}" for index in range(self.num_layers) for kind in ("ih", "hh")]

    def forward(
        self, inputs: torch.Tensor, hx: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        # 1) feature-major columns, step-major: column t * batch + b is step t of sequence b
        sequence = inputs.transpose(0, 1) if self.batch_first else inputs  # (time, batch, features)
        steps, batch = sequence.shape[:2]
        layer_input = sequence.reshape(steps * batch, -1).t()
        h0, c0 = (hx if isinstance(hx, tuple) else (hx, None)) if hx is not None else (None, None)
        finals_h, finals_c = [], []
        for index in range(self.num_layers):
            # 2) the input projection of every step in one product
            weight_ih, bias_ih = getattr(self, f"weight_ih_l{index}"), getattr(self, f"bias_ih_l{index}")
            weight_hh, bias_hh = getattr(self, f"weight_hh_l{index}"), getattr(self, f"bias_hh_l{index}")
            projected = (weight_ih @ layer_input + bias_ih).reshape(-1, steps, batch)
            zeros = inputs.new_zeros(self.hidden_size, batch)
            h = h0[index].t() if h0 is not None else zeros
            c = c0[index].t() if c0 is not None else zeros
            outputs = []
            # 3) one product with weight_hh per step, then the cell's gates
            for step in range(steps):
                recurrent = weight_hh @ h + bias_hh
                if self.mode == "LSTM":
                    i, f, g, o = (projected[:, step] + recurrent).chunk(4, 0)
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    h = torch.sigmoid(o) * torch.tanh(c)
                elif self.mode == "GRU":
                    x_r, x_z, x_n = projected[:, step].chunk(3, 0)
                    h_r, h_z, h_n = recurrent.chunk(3, 0)
                    reset, update = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
                    candidate = torch.tanh(x_n + reset * h_n)
                    h = candidate + update * (h - candidate)
                elif self.mode == "RNN_TANH":
                    h = torch.tanh(projected[:, step] + recurrent)
                else:
                    h = torch.relu(projected[:, step] + recurrent)
                outputs.append(h)
            layer_input = torch.stack(outputs, 1).reshape(self.hidden_size, steps * batch)
            finals_h.append(h.t())
            finals_c.append(c.t())
        # 4) back to the caller's layout
        output = layer_input.reshape(self.hidden_size, steps, batch)
        output = output.permute(2, 1, 0) if self.batch_first else output.permute(1, 2, 0)
        h_n = torch.stack(finals_h)
        return output, ((h_n, torch.stack(finals_c)) if self.mode == "LSTM" else h_n)


class SparseLinear(nn.Module):
    """`nn.Linear` with its weight in a sparse format."""

    def __init__(self, layer: nn.Linear, fmt: str) -> None:
        super().__init__()
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self.register_buffer("weight", stored(layer.weight, fmt))
        self.register_buffer("bias", layer.bias.detach().clone() if layer.bias is not None else None)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        flat = inputs.reshape(-1, self.in_features)
        outputs = (self.weight @ flat.t()).t()
        if self.bias is not None:
            outputs = outputs + self.bias
        return outputs.reshape(*inputs.shape[:-1], self.out_features)


def sparse_matrices(module: nn.Module) -> dict[str, torch.Tensor]:
    """The weight matrices sparse execution can take, by qualified name (`rnn.weight_hh_l0`,
    `readout.weight`): those of linear layers and of recurrent layers it can unroll."""
    found: dict[str, torch.Tensor] = {}
    for prefix, child in module.named_modules():
        dot = f"{prefix}." if prefix else ""
        if isinstance(child, nn.Linear):
            found[f"{dot}weight"] = child.weight
        elif isinstance(child, nn.RNNBase) and runs_unrolled(child):
            for index in range(child.num_layers):
                for kind in ("ih", "hh"):
                    found[f"{dot}weight_{kind}_l{index}"] = getattr(child, f"weight_{kind}_l{index}")
    return found


def with_formats(module: nn.Module, formats: Mapping[str, str]) -> nn.Module:
    """A copy of the (dense) `module` whose layers holding a matrix in `formats` run sparse."""
    result = copy.deepcopy(module)  # before any sparse tensor is made: those cannot be deep-copied
    layers = dict(result.named_modules())
    for prefix, child in list(layers.items()):
        dot = f"{prefix}." if prefix else ""
        own = {name.removeprefix(dot): fmt for name, fmt in formats.items() if name.startswith(dot)}
        if isinstance(child, nn.Linear) and own.get("weight", "dense") != "dense":
            replacement: nn.Module = SparseLinear(child, own["weight"])
        elif isinstance(child, nn.RNNBase) and any(own.get(n, "dense") != "dense" for n in own):
            replacement = SparseRecurrent(child, own)
        else:
            continue
        if not prefix:  # the module is itself one layer
            return replacement
        parent_name, _, attribute = prefix.rpartition(".")
        setattr(layers[parent_name] if parent_name else result, attribute, replacement)
    return result
