"""rnnprune: prune recurrent networks and compare methods on accuracy-sparsity fronts.

The Python API (`rnnprune.prune`, `train`, `sweep`, `front`) lives in `rnnprune.api`; it is
loaded on first use, so `import rnnprune` (and the CLI's start) stays free of torch and Ray.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["front", "prune", "sweep", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from rnnprune import api

        return getattr(api, name)
    raise AttributeError(f"module 'rnnprune' has no attribute {name!r}")
