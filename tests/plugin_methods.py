"""Pruning methods from outside the package that break the method contract, for the tests of
the errors rnnprune gives before a sweep starts."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rnnprune.pruning.base import NoParams, PrunableWeight, PruningMethod


def _transposed(weights: Sequence[PrunableWeight], target: float, params: object, generator: torch.Generator):  # type: ignore[no-untyped-def]
    return {w.name: torch.ones(w.weight.shape[::-1], dtype=torch.bool) for w in weights}


def _scores(weights: Sequence[PrunableWeight], target: float, params: object, generator: torch.Generator):  # type: ignore[no-untyped-def]
    return {w.name: w.weight.abs() for w in weights}  # scores, not keep-masks


def _raises(weights: Sequence[PrunableWeight], target: float, params: object, generator: torch.Generator):  # type: ignore[no-untyped-def]
    raise IndexError("list index out of range")


WRONG_SHAPE = PruningMethod("wrong_shape", NoParams, _transposed, "Masks of the transposed shape.")
WRONG_DTYPE = PruningMethod("wrong_dtype", NoParams, _scores, "Float scores instead of masks.")
RAISES = PruningMethod("raises", NoParams, _raises, "Fails inside the mask function.")


def not_a_method() -> None:
    """A function where a PruningMethod is expected."""
