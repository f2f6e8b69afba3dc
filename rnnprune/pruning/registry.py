"""Method names -> implementations. Adding a method is one module plus one line here."""

from __future__ import annotations

from rnnprune.pruning.base import PruningMethod
from rnnprune.pruning.expander import EXPANDER
from rnnprune.pruning.lattice import LATTICE
from rnnprune.pruning.magnitude import GLOBAL_MAGNITUDE, LAYERWISE_MAGNITUDE
from rnnprune.pruning.moduli import MODULI
from rnnprune.pruning.random import RANDOM

registered_methods: dict[str, PruningMethod] = {
    method.name: method
    for method in (GLOBAL_MAGNITUDE, LAYERWISE_MAGNITUDE, RANDOM, EXPANDER, LATTICE, MODULI)
}


def get(name: str) -> PruningMethod:
    try:
        return registered_methods[name]
    except KeyError:
        known = ", ".join(sorted(registered_methods))
        raise KeyError(f"unknown pruning method {name!r}; registered methods: {known}") from None
