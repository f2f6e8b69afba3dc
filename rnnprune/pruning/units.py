"""Unit (neuron) pruning: remove whole hidden units, so the pruned network is a smaller dense one.

A unit's group (`rnnprune.pruning.unit_groups`) is its gate rows in its layer's `weight_ih`
and `weight_hh`, its column in `weight_hh` and its columns in what reads the layer; it is
scored by the group's L2 norm (its pool weights, masked) and removed whole. Units removed at
an earlier event score -inf, so a rising target removes a superset of them.

Targets: with `unit_target: units` the target sparsity is the fraction of hidden units
removed (of every layer, or of all units pooled with `allocation: global`); with `parameters`
units go lowest score first until the pruned fraction of the pool reaches the target (the
fraction reached, a little above it, is what the accounting measures).

With `group_lasso` > 0 training adds coefficient · Σ_units ‖group‖₂ (Wen et al. 2018, intrinsic
sparse structures in LSTMs), in every phase, dense included, over the groups of the model's
ih, hh and readout weights whatever the pruning scope (the scope does not name the dense model).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import torch
from pydantic import Field

from rnnprune.pruning.base import MethodParams, PrunableWeight, PruningMethod, PruningResult
from rnnprune.pruning.selection import prune_count
from rnnprune.pruning.unit_groups import UnitLayer, drop_units, unit_layers
from rnnprune.regularization import Regularizer, RegularizerHook

if TYPE_CHECKING:  # methods read weights, never build models
    from rnnprune.models.masking import MaskedWeights

PENALISED_KINDS = ("ih", "hh", "readout")


class UnitParams(MethodParams):
    unit_target: Literal["units", "parameters"] = Field(
        default="units",
        description="units: the target sparsity is the fraction of hidden units removed; parameters: "
        "remove units, lowest group norm first, until that fraction of the pool is pruned.",
    )
    allocation: Literal["layerwise", "global"] = Field(
        default="layerwise",
        description="layerwise: every layer (and direction) loses the same fraction of its units; "
        "global: one ranking of all units by group norm (norms of layers with wider inputs are larger).",
    )
    group_lasso: float = Field(
        default=0.0,
        ge=0.0,
        description="Coefficient of the group-lasso penalty Σ_units ‖group‖₂ added to the loss in "
        "every phase, dense included (Wen et al. 2018); 0: no penalty, the plain dense model.",
    )


def _unit_scores(weights: Sequence[PrunableWeight], layers: Sequence[UnitLayer]) -> list[torch.Tensor]:
    """Per layer, every unit's group L2 norm; -inf for units whose group is already all pruned."""
    squares = {w.name: (w.weight.detach() * w.mask).float().square() for w in weights}
    live = {w.name: w.mask.float() for w in weights}
    return [
        layer.group_sums(squares).sqrt().masked_fill(layer.group_sums(live) == 0, float("-inf"))
        for layer in layers
    ]


def _ranks(scores: torch.Tensor) -> torch.Tensor:
    """Each unit's place in the lowest-first order (ties: earlier units first); the k lowest
    are those of rank < k, so removal sets grow nested with k."""
    order = torch.sort(scores, stable=True).indices
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(len(order), device=order.device)
    return ranks


def _removal(
    scores: Sequence[torch.Tensor], allocation: str
) -> tuple[int, Callable[[float], list[torch.Tensor]], list[float]]:
    """(number of units, removal set for a unit fraction, the fractions where the set grows)."""
    sizes = [len(s) for s in scores]
    if allocation == "global":
        ranks = _ranks(torch.cat(list(scores))).split(sizes)
        total = sum(sizes)

        def removed(fraction: float) -> list[torch.Tensor]:
            k = prune_count(total, fraction)
            return [r < k for r in ranks]

        return total, removed, [i / total for i in range(total + 1)]
    layer_ranks = [_ranks(s) for s in scores]

    def removed_per_layer(fraction: float) -> list[torch.Tensor]:
        return [r < prune_count(len(r), fraction) for r in layer_ranks]

    fractions = sorted({i / size for size in sizes for i in range(size + 1)})
    return sum(sizes), removed_per_layer, fractions


def _smallest_reaching(steps: int, pruned: Callable[[int], int], needed: int) -> int:
    """The first of steps 0..`steps` (each pruning at least as much as the one before) whose
    pruned count reaches `needed`; `steps` when none does."""
    low, high = 0, steps
    while low < high:
        middle = (low + high) // 2
        if pruned(middle) >= needed:
            high = middle
        else:
            low = middle + 1
    return low


def prune_units(
    weights: Sequence[PrunableWeight],
    target_sparsity: float,
    params: MethodParams,
    generator: torch.Generator,
) -> PruningResult:
    assert isinstance(params, UnitParams)
    layers = unit_layers(weights)
    scores = _unit_scores(weights, layers)
    units, removal, fractions = _removal(scores, params.allocation)
    if params.unit_target == "units":
        removed = removal(target_sparsity)
    else:
        needed = prune_count(sum(w.numel for w in weights), target_sparsity)

        def pruned(step: int) -> int:
            masks = drop_units(weights, layers, removal(fractions[step]))
            return sum(int((~mask).sum()) for mask in masks.values())

        removed = removal(fractions[_smallest_reaching(len(fractions) - 1, pruned, needed)])
    # A target the earlier removals already reach removes none of them again; they stay removed.
    removed = [now | (score == float("-inf")) for now, score in zip(removed, scores, strict=True)]
    diagnostics = {
        f"{layer.label}.units_kept": float(len(r) - int(r.sum()))
        for layer, r in zip(layers, removed, strict=True)
    }
    diagnostics["units_removed"] = sum(int(r.sum()) for r in removed) / units if units else 0.0
    return PruningResult(drop_units(weights, layers, removed), diagnostics)


def check_units(
    weights: Sequence[PrunableWeight], target_sparsity: float, params: MethodParams
) -> list[tuple[str, str]]:
    """No recurrent matrix in the pool, or a target that would remove every unit."""
    assert isinstance(params, UnitParams)
    layers = unit_layers(weights)
    if not layers:
        return [
            ("scope", "unit pruning removes hidden units of recurrent layers; add ih and hh to the scope")
        ]
    if params.unit_target == "units":
        if params.allocation == "global":
            counts = {"of all recurrent layers": sum(layer.hidden_size for layer in layers)}
        else:
            smallest = min(layers, key=lambda layer: layer.hidden_size)
            counts = {f"of {smallest.label}": smallest.hidden_size}
        for where, units in counts.items():
            if prune_count(units, target_sparsity) >= units:
                return [
                    (
                        "target_sparsity",
                        f"{target_sparsity} of the units removes all {units} hidden units {where} "
                        f"(unit_target: units); use a target below {(units - 0.5) / units:.4g}",
                    )
                ]
        return []
    # Shapes only: which entries of the pool some unit's group holds.
    shapes_only = [dataclasses.replace(w, mask=torch.ones(w.weight.shape, dtype=torch.bool)) for w in weights]
    everything = drop_units(
        shapes_only, layers, [torch.ones(layer.hidden_size, dtype=torch.bool) for layer in layers]
    )
    pool = sum(w.numel for w in weights)
    grouped = sum(int((~mask).sum()) for mask in everything.values())
    if prune_count(pool, target_sparsity) >= grouped:
        outside = ", ".join(w.name for w in weights if bool(everything[w.name].any())) or "none"
        return [
            (
                "target_sparsity",
                f"{target_sparsity} of the pool needs every hidden unit removed: the units' groups hold "
                f"{grouped / pool:.4g} of it (weights partly outside them: {outside}); lower the "
                "target, or take the weights outside the groups out of the scope",
            )
        ]
    return []


def _group_norm(squares: torch.Tensor) -> torch.Tensor:
    """sqrt with a zero gradient at zero (a pruned unit's group), where sqrt's is infinite."""
    tiny = torch.finfo(squares.dtype).tiny
    return torch.where(squares > 0, squares.clamp_min(tiny).sqrt(), torch.zeros_like(squares))


class GroupLasso(Regularizer):
    """coefficient · Σ over hidden units of the L2 norm of the unit's group of weights."""

    def __init__(self, coefficient: float) -> None:
        super().__init__()
        self.coefficient = coefficient

    def penalty(self, model: torch.nn.Module) -> torch.Tensor:
        weights = model.prunable_weights(PENALISED_KINDS)  # type: ignore[operator]
        squares = {w.name: w.weight.square() for w in weights}
        norms = [_group_norm(layer.group_sums(squares)) for layer in unit_layers(weights)]
        return self.coefficient * torch.cat(norms).sum()


def _penalises(params: MethodParams) -> bool:
    assert isinstance(params, UnitParams)
    return params.group_lasso > 0


def _build_group_lasso(params: MethodParams, model: MaskedWeights, generator: torch.Generator) -> GroupLasso:
    assert isinstance(params, UnitParams)
    return GroupLasso(params.group_lasso)


UNITS = PruningMethod(
    name="units",
    params=UnitParams,
    prune=prune_units,
    description="Remove whole hidden units of LSTM/GRU/RNN layers, lowest group L2 norm first: a unit's "
    "gate rows in weight_ih and weight_hh, its weight_hh column and its columns in the next layer's "
    "weight_ih, or in the readout for the last layer (only when the readout is in the scope and reads "
    "that layer's outputs exactly; otherwise only rows and the recurrent column go, and the readout "
    "still reads a bias-driven signal). The target is the fraction of units removed (unit_target: "
    "units) or of the pool, reached in whole units (parameters); the accounting measures the pool. "
    "Optional group-lasso penalty on the same groups (group_lasso).",
    regularizer=RegularizerHook(
        active=_penalises,
        build=_build_group_lasso,
        defining=lambda params: {"group_lasso": params.group_lasso},
    ),
    check=check_units,
)
