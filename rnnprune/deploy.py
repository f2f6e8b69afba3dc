"""The deployable form of a trained pruned model, and its measured speed and size.

The built-in classifier deploys as its compact model (`rnnprune.compact`: hidden units that
nothing reads removed); any other network as itself (`plain`). Then each weight
matrix sparse enough to have a chance (`MIN_SPARSITY`, below which no sparse kernel wins in
BENCHMARKS.md's crossover table) is timed as the product the model makes with it, at the
model's own shapes, dense against each sparse format (`rnnprune.sparse`). When some matrix is
faster sparse, the whole model with those matrices sparse is timed against the model without,
and kept only if it is faster: a form is chosen for a gain measured on this machine, never for
a kernel's promise. Speeds are geometric means over batch 1 and batch 64, so neither decides
alone.

A trial's figures (`trial_metrics`): the deployable form against the trial's dense model,
interleaved in one process (`rnnprune.latency`), at batch 1 and 64; `speedup_b*` is their
ratio, the robust figure on a loaded machine. `model_bytes` is the size of the deployable file
(`torch.save` of the module).
"""

from __future__ import annotations

import copy
import io
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rnnprune.compact import compact, compactable
from rnnprune.latency import DEFAULT_REPEATS, Repeats, median_ms
from rnnprune.models.recurrent import MASK_SUFFIX
from rnnprune.sparse import FORMATS, fits, sparse_matrices, sparsity, stored, with_formats

BATCHES = (1, 64)
MIN_SPARSITY = 0.5


@dataclass(frozen=True)
class Deployable:
    module: nn.Module
    form: str  # "compact" or "dense", "+sparse" when some matrices run sparse
    formats: dict[str, str] = field(default_factory=dict)  # the matrices stored sparse, and how


def _named_class(cls: type[nn.Module]) -> type[nn.Module]:
    """The nearest class pickle can find by name: a user's model made maskable
    (`rnnprune.models.masking.with_masks`) has a class made at run time over the user's own."""
    while getattr(sys.modules.get(cls.__module__), cls.__qualname__, None) is not cls:
        cls = cls.__bases__[-1]
    return cls


def plain(model: nn.Module) -> nn.Module:
    """A copy of `model` to deploy (masks are folded into the weights): a user's model as its
    own class without mask buffers; the built-in network, whose masks are its own buffers,
    as it is."""
    result = copy.deepcopy(model).eval()
    own = _named_class(type(result))
    if own is not type(result):
        result.__class__ = own
        for module in result.modules():
            for name in [n for n in module._buffers if n.endswith(MASK_SUFFIX)]:
                del module._buffers[name]
    return result


def batch_of(example: torch.Tensor, size: int) -> torch.Tensor:
    """`size` copies of the first example: the batch latency is measured on."""
    return example[:1].expand(size, *example.shape[1:]).contiguous()


def _columns(module: nn.Module, inputs: torch.Tensor) -> dict[str, int]:
    """Per matrix of `sparse_matrices`, the columns of the operand it multiplies on `inputs`."""
    columns: dict[str, int] = {}
    hooks = []
    for prefix, child in module.named_modules():
        dot = f"{prefix}." if prefix else ""

        def record(layer: nn.Module, args: tuple[Any, ...], dot: str = dot) -> None:
            given = args[0]
            if not isinstance(given, torch.Tensor):  # a packed sequence: not run unrolled
                return
            if isinstance(layer, nn.Linear):
                columns[f"{dot}weight"] = given.numel() // layer.in_features
                return
            assert isinstance(layer, nn.RNNBase)
            batch, steps = given.shape[:2] if layer.batch_first else given.shape[1::-1]
            for index in range(layer.num_layers):
                columns[f"{dot}weight_ih_l{index}"] = batch * steps
                columns[f"{dot}weight_hh_l{index}"] = batch

        if isinstance(child, nn.Linear | nn.RNNBase):
            hooks.append(child.register_forward_pre_hook(record))
    try:
        with torch.inference_mode():
            module(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return columns


def _runs(weight: torch.Tensor, operand: torch.Tensor) -> bool:
    """Whether this machine's kernels multiply `weight`'s layout (CPU BSR: square blocks only)."""
    try:
        weight @ operand[:, :1]
    except (RuntimeError, NotImplementedError):
        return False
    return True


def _geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def screening(repeats: Repeats) -> Repeats:
    """The timing that chooses a form: a third of the blocks of the one that reports it (a
    choice needs only which is faster; the figures logged are measured afresh)."""
    return Repeats(blocks=max(1, repeats.blocks // 3), calls=repeats.calls, warmup=1)


def fastest_formats(
    module: nn.Module, batches: Sequence[torch.Tensor], repeats: Repeats, device: torch.device
) -> dict[str, str]:
    """The matrices of `module` whose product is faster in a sparse format at the model's own
    shapes, with that format (a matrix faster dense is not listed)."""
    matrices = {n: w for n, w in sparse_matrices(module).items() if sparsity(w) >= MIN_SPARSITY}
    if not matrices:
        return {}
    shapes = [_columns(module, inputs) for inputs in batches]
    chosen: dict[str, str] = {}
    for name, weight in matrices.items():
        if any(name not in columns for columns in shapes):  # not used by the forward pass
            continue
        operands = [torch.randn(weight.shape[1], columns[name], device=device) for columns in shapes]
        candidates = {fmt: stored(weight, fmt) for fmt in FORMATS if fits(weight.shape, fmt)}
        candidates = {fmt: w for fmt, w in candidates.items() if _runs(w, operands[0])}
        times: dict[str, list[float]] = {fmt: [] for fmt in candidates}
        for operand in operands:
            calls = {fmt: (lambda w=w, x=operand: w @ x) for fmt, w in candidates.items()}
            for fmt, milliseconds in median_ms(calls, repeats, device).items():
                times[fmt].append(milliseconds)
        best = min(times, key=lambda fmt: _geometric_mean(times[fmt]))
        if best != "dense":
            chosen[name] = best
    return chosen


def deployable(
    model: nn.Module,
    example: torch.Tensor,
    repeats: Repeats = DEFAULT_REPEATS,
    device: torch.device | None = None,
) -> Deployable:
    """The form `model` deploys as on this machine: compact (or plain), with the matrices whose
    sparse product is faster run sparse when that makes the whole model faster. `repeats` is
    the timing that reports figures; choosing takes its `screening`."""
    device = device or example.device
    # Compaction reads the weights on the CPU (its index sets are CPU tensors); the form then
    # moves to the device it is timed on.
    base, form = (compact(plain(model).cpu()), "compact") if compactable(model) else (plain(model), "dense")
    base = base.to(device).eval()
    batches = [batch_of(example, size).to(device) for size in BATCHES]
    repeats = screening(repeats)
    formats = fastest_formats(base, batches, repeats, device)
    if not formats:
        return Deployable(base, form)
    candidate = with_formats(base, formats).eval()
    ratios = []
    for inputs in batches:
        times = median_ms(
            {"base": lambda x=inputs: base(x), "sparse": lambda x=inputs: candidate(x)}, repeats, device
        )
        ratios.append(times["sparse"] / times["base"])
    if _geometric_mean(ratios) < 1:
        return Deployable(candidate, f"{form}+sparse", formats)
    return Deployable(base, form)


def file_bytes(module: nn.Module) -> int:
    """Size of the module's file (`torch.save` of the whole module, as `rnnprune export` writes)."""
    buffer = io.BytesIO()
    torch.save(module, buffer)
    return buffer.getbuffer().nbytes


def speed_against(
    reference: Callable[[torch.Tensor], object],
    candidate: Callable[[torch.Tensor], object],
    example: torch.Tensor,
    repeats: Repeats,
    device: torch.device | None = None,
    reference_name: str = "dense",
) -> dict[str, float]:
    """`latency_ms_b*` of `candidate`, `<reference_name>_latency_ms_b*` of `reference` and
    `speedup_b*` (reference time / candidate time), measured interleaved at each batch size."""
    metrics: dict[str, float] = {}
    for size in BATCHES:
        inputs = batch_of(example, size)
        if device is not None:
            inputs = inputs.to(device)
        times = median_ms(
            {"reference": lambda x=inputs: reference(x), "candidate": lambda x=inputs: candidate(x)},
            repeats,
            device,
        )
        metrics[f"latency_ms_b{size}"] = times["candidate"]
        metrics[f"{reference_name}_latency_ms_b{size}"] = times["reference"]
        metrics[f"speedup_b{size}"] = times["reference"] / times["candidate"]
    return metrics


def trial_metrics(
    model: nn.Module, dense_state: Mapping[str, torch.Tensor], example: torch.Tensor, repeats: Repeats
) -> dict[str, Any]:
    """A finished trial's deployable form timed against its dense model (the same network with
    `dense_state`, the dense phase's final weights), on the model's device, and its file size."""
    start = time.perf_counter()
    device = next(model.parameters()).device
    dense = copy.deepcopy(model)
    dense.load_state_dict(dense_state)
    dense.eval()
    chosen = deployable(model, example.to(device), repeats, device)
    return {
        **speed_against(dense, chosen.module, example, repeats, device),
        "model_bytes": file_bytes(chosen.module),
        "deployable_form": chosen.form,
        "latency_measurement_s": time.perf_counter() - start,
    }
