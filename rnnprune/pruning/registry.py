"""Method names -> methods. Adding a method is one module plus one line here.

Entries are `module:attribute` references imported on first use; installed packages add methods
under the `rnnprune.methods` entry-point group (see `rnnprune.registry`).
"""

from __future__ import annotations

from rnnprune.pruning.base import PruningMethod
from rnnprune.registry import Registry

registered_methods: Registry[PruningMethod] = Registry(
    "pruning method",
    PruningMethod,
    {
        "global_magnitude": "rnnprune.pruning.magnitude:GLOBAL_MAGNITUDE",
        "layerwise_magnitude": "rnnprune.pruning.magnitude:LAYERWISE_MAGNITUDE",
        "random": "rnnprune.pruning.random:RANDOM",
        "expander": "rnnprune.pruning.expander:EXPANDER",
        "lattice": "rnnprune.pruning.lattice:LATTICE",
        "moduli": "rnnprune.pruning.moduli:MODULI",
        "units": "rnnprune.pruning.units:UNITS",
        "block_magnitude": "rnnprune.pruning.blocks:BLOCK_MAGNITUDE",
        "rigl": "rnnprune.pruning.rigl:RIGL",
    },
    entry_point_group="rnnprune.methods",
)


def get(name: str) -> PruningMethod:
    return registered_methods.lookup(name)


def names() -> list[str]:
    return registered_methods.names()
