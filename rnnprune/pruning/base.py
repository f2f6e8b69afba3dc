"""The contract every pruning method fulfils.

A method answers one question (ShrinkBench's): *which weights stay?* It is a pure function
from the prunable weights, their current masks and a target sparsity to new masks. It never
trains, logs or saves; schedules, mask application and accounting are shared machinery.
A method may also hand the trainer a regularizer (`RegularizerHook`), a penalty the shared
loop adds to the loss; the mask function stays pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from pydantic import BaseModel, ConfigDict

from rnnprune.regularization import RegularizerHook
from rnnprune.weights import PrunableWeight, WeightKind

# PrunableWeight and WeightKind live in the leaf `rnnprune.weights`; methods import them from here.
__all__ = [
    "Masks",
    "MethodParams",
    "NoParams",
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
        """Run the method; the result's masks are nested in the current ones."""
        outcome = self.prune(weights, target_sparsity, params, generator)
        result = outcome if isinstance(outcome, PruningResult) else PruningResult(outcome)
        return PruningResult(nested(result.masks, weights), dict(result.diagnostics))

    name: str
    params: type[MethodParams]
    prune: PruneFunction
    description: str
    # Methods that shape training itself (a penalty in every phase, dense included).
    regularizer: RegularizerHook | None = None

    def regularizes(self, params: MethodParams) -> bool:
        return self.regularizer is not None and self.regularizer.active(params)


def nested(new_masks: Mapping[str, torch.Tensor], weights: Sequence[PrunableWeight]) -> Masks:
    """Intersect new masks with the current ones: a pruned weight never comes back."""
    return {w.name: new_masks[w.name].to(torch.bool) & w.mask.to(torch.bool) for w in weights}
