"""Model factory names -> factories. Adding a built-in network is one module plus one line here.

Installed packages add factories under the `rnnprune.models` entry-point group; a config may
also name one as `module:attribute`, a `ModelFactory` or a plain function (see
`rnnprune.models.base`).
"""

from __future__ import annotations

from rnnprune.models.base import ModelFactory, as_factory
from rnnprune.registry import Registry

BUILT_IN_FACTORY = "recurrent"

registered_models: Registry[ModelFactory] = Registry(
    "model factory",
    ModelFactory,
    {BUILT_IN_FACTORY: "rnnprune.models.recurrent:RECURRENT"},
    entry_point_group="rnnprune.models",
    adapt=as_factory,
)


def get(name: str) -> ModelFactory:
    return registered_models.lookup(name)


def names() -> list[str]:
    return registered_models.names()
