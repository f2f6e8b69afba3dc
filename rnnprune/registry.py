"""Names -> implementations, resolved when first asked for.

A registry maps each short name to a `module:attribute` reference and imports the module only
when that name is used, so validating a config or listing names never loads a task's data
libraries (torchvision, torchaudio) or a method it does not run. Tests and plugins add entries
with `register` (or item assignment) and take them away again with `del`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Generic, TypeVar

T = TypeVar("T")


def resolve_reference(reference: str) -> object:
    """The object a `package.module:attribute` reference names."""
    module_name, _, attribute = reference.partition(":")
    target: object = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


class Registry(MutableMapping[str, T], Generic[T]):
    """A mapping of names to implementations whose built-in entries load lazily."""

    def __init__(self, kind: str, references: dict[str, str]) -> None:
        self.kind = kind
        self._references: dict[str, str] = dict(references)
        self._loaded: dict[str, T] = {}

    def names(self) -> list[str]:
        return sorted(self._references.keys() | self._loaded.keys())

    def register(self, name: str, implementation: T) -> None:
        self._loaded[name] = implementation

    def lookup(self, name: str) -> T:
        """The implementation of `name`; a KeyError that lists the registered names."""
        try:
            return self[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())}") from None

    def __getitem__(self, name: str) -> T:
        if name not in self._loaded:
            reference = self._references[name]  # KeyError for an unknown name
            self._loaded[name] = resolve_reference(reference)  # type: ignore[assignment]
        return self._loaded[name]

    def __setitem__(self, name: str, implementation: T) -> None:
        self.register(name, implementation)

    def __delitem__(self, name: str) -> None:
        found = name in self._loaded or name in self._references
        self._loaded.pop(name, None)
        self._references.pop(name, None)
        if not found:
            raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return name in self._loaded or name in self._references

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
