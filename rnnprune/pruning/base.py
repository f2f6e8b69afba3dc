"""The contract every pruning method fulfils.

A method answers one question (ShrinkBench's): *which weights stay?* It is a pure function
from the prunable weights, their current masks and a target sparsity to new masks. It never
trains, logs or saves; schedules, mask application and accounting are shared machinery.
A method may also hand the trainer a regularizer (`RegularizerHook`), a penalty the shared
loop adds to the loss, or a rule that moves masks while the pruning phase trains
(`DynamicSparsity`: drop and regrow); the mask function stays pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from pydantic import BaseModel, ConfigDict

from rnnprune.errors import PluginError
from rnnprune.regularization import RegularizerHook
from rnnprune.weights import PrunableWeight, WeightKind

# PrunableWeight and WeightKind live in the leaf `rnnprune.weights`; methods import them from here.
__all__ = [
    "DynamicSparsity",
    "Masks",
    "MethodParams",
    "NoParams",
    "PoolCheck",
    "PrunableWeight",
    "PruningMethod",
    "PruningResult",
    "WeightKind",
]


class MethodParams(BaseModel):
    """Base of every method's typed parameter block (unknown fields are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(MethodParams):
    """For methods without parameters."""


Masks = dict[str, torch.Tensor]
"""Boolean keep-masks by full parameter name (True = the weight stays)."""


@dataclass(frozen=True)
class PruningResult:
    """New masks, and what the method wants reported about how it chose them.

    `diagnostics` are scalars (e.g. `layer0.meet_irreducible`); the runner logs those of
    the latest pruning event with every epoch and in the final metrics as `prune.<key>`.
    """

    masks: Masks
    diagnostics: dict[str, float] = field(default_factory=dict)


PruneFunction = Callable[
    [Sequence[PrunableWeight], float, MethodParams, torch.Generator], Masks | PruningResult
]

PoolCheck = Callable[[Sequence[PrunableWeight], float, MethodParams], list[tuple[str, str]]]
"""(pool, target sparsity, params) -> problems, each (field under `pruning`, message with the fix).

It reads shapes and structure only, never values: the config validation calls it with the
matrices the model group fixes (shape-only tensors), the runner with the task's network
before any training."""


MaskUpdateFunction = Callable[
    [Sequence[PrunableWeight], MethodParams, int, int, torch.Generator], Masks | PruningResult
]


@dataclass(frozen=True)
class DynamicSparsity:
    """How a method moves masks while the pruning phase trains (dynamic sparse training).

    `due(params, step, phase_steps)` says whether the masks change at optimizer step `step`
    of a phase of `phase_steps` steps; then `update(weights, params, step, phase_steps,
    generator)` returns the new masks, read from the weights, their current masks and their
    dense gradients (`weight.weight.grad`, before clipping). Unlike `prune`, an update may
    regrow pruned weights (they come back at zero, with zero optimizer moments), but it keeps
    the number of kept weights over the pool: the trainer refuses an update that does not.
    """

    due: Callable[[MethodParams, int, int], bool]
    update: MaskUpdateFunction


@dataclass(frozen=True)
class PruningMethod:
    """A registered method: its typed parameters and its mask function.

    `prune(weights, target_sparsity, params, generator)` returns a keep-mask for every weight
    in `weights` (or a `PruningResult` with diagnostics) such that the fraction of pruned
    entries over the whole pool is `target_sparsity` (methods whose reading fixes the
    sparsity themselves say so in `description`; the accounting measures what they reached).
    """

    def __call__(
        self,
        weights: Sequence[PrunableWeight],
        target_sparsity: float,
        params: MethodParams,
        generator: torch.Generator,
    ) -> PruningResult:
        """Run the method; the result's masks are nested in the current ones.

        Raises PluginError when the method returns something other than one boolean mask of
        each weight's shape (a plugin's mistake must not become a silently wrong mask).
        """
        outcome = self.prune(weights, target_sparsity, params, generator)
        result = outcome if isinstance(outcome, PruningResult) else PruningResult(outcome)
        check_masks(self.name, result.masks, weights)
        return PruningResult(nested(result.masks, weights), dict(result.diagnostics))

    name: str
    params: type[MethodParams]
    prune: PruneFunction
    description: str
    # Methods that shape training itself (a penalty in every phase, dense included).
    regularizer: RegularizerHook | None = None
    # Methods that cannot prune every pool or reach every target (a block shape must divide).
    check: PoolCheck | None = None
    # Methods that also move masks between the schedule's events (drop and regrow).
    dynamic: DynamicSparsity | None = None

    def regularizes(self, params: MethodParams) -> bool:
        return self.regularizer is not None and self.regularizer.active(params)

    def problems(
        self, weights: Sequence[PrunableWeight], target_sparsity: float, params: MethodParams
    ) -> list[tuple[str, str]]:
        """What keeps this method from pruning `weights` to the target (empty: nothing)."""
        return self.check(weights, target_sparsity, params) if self.check is not None else []


def check_masks(method: str, masks: object, weights: Sequence[PrunableWeight]) -> None:
    """Fail, naming the method and the weight, unless `masks` holds a boolean tensor of each
    weight's shape for every weight."""
    where = f"pruning.method: {method} returned"
    if not isinstance(masks, Mapping):
        raise PluginError(f"{where} a {type(masks).__name__}; return a dict of masks by weight name")
    missing = [w.name for w in weights if w.name not in masks]
    if missing:
        raise PluginError(
            f"{where} no mask for {', '.join(missing)}; return one for every weight it is given"
        )
    for w in weights:
        mask = masks[w.name]
        if not isinstance(mask, torch.Tensor):
            raise PluginError(f"{where} a {type(mask).__name__} for {w.name}; return a torch.bool tensor")
        if tuple(mask.shape) != tuple(w.weight.shape):
            raise PluginError(
                f"{where} a mask of shape {tuple(mask.shape)} for {w.name}, whose weight is "
                f"{tuple(w.weight.shape)}; return masks of the weights' shapes"
            )
        if mask.dtype != torch.bool:
            raise PluginError(
                f"{where} a {mask.dtype} mask for {w.name}; return torch.bool masks (True = keep), "
                "e.g. scores > threshold"
            )


def nested(new_masks: Mapping[str, torch.Tensor], weights: Sequence[PrunableWeight]) -> Masks:
    """Intersect new masks with the current ones: a pruned weight never comes back."""
    return {w.name: new_masks[w.name].to(torch.bool) & w.mask.to(torch.bool) for w in weights}
