"""Old spellings of user-facing keys, accepted with a warning so existing configs keep working."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any


def rename_deprecated(raw: Any, aliases: Mapping[str, str], where: str) -> Any:
    """`raw` with each old key (alias -> current name) renamed, warning once per key.

    Giving both spellings is an error: which value was meant cannot be known.
    """
    if not isinstance(raw, Mapping) or not any(old in raw for old in aliases):
        return raw
    renamed = dict(raw)
    for old, new in aliases.items():
        if old not in renamed:
            continue
        if new in renamed:
            raise ValueError(f"{where}: give {new} only ({old} is its deprecated spelling)")
        warnings.warn(f"{where}.{old} is deprecated; write {new}", FutureWarning, stacklevel=2)
        renamed[new] = renamed.pop(old)
    return renamed
