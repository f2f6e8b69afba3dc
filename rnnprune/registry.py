"""Names -> implementations, resolved when first asked for.

A registry maps each short name to a `module:attribute` reference and imports the module only
when that name is used, so validating a config or listing names never loads a task's data
libraries (torchvision, torchaudio) or a method it does not run. A name that is itself a
reference (`mypkg.tasks:KEYWORDS`) is imported the same way, so code outside the package plugs
in without an entry here. Tests add entries with `register` (or item assignment) and take them
away again with `del`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(KeyError):
    """A name that is neither registered nor an importable reference; the message says which."""

    def __str__(self) -> str:
        return str(self.args[0])


def resolve_reference(reference: str) -> object:
    """The object a `package.module:attribute` reference names."""
    module_name, _, attribute = reference.partition(":")
    target: object = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


class Registry(MutableMapping[str, T], Generic[T]):
    """A mapping of names to implementations whose built-in entries load lazily."""

    def __init__(self, kind: str, expected: type, references: dict[str, str]) -> None:
        self.kind, self.expected = kind, expected
        self._references: dict[str, str] = dict(references)
        self._loaded: dict[str, T] = {}

    def names(self) -> list[str]:
        return sorted(self._references.keys() | self._loaded.keys())

    def register(self, name: str, implementation: T) -> None:
        self._loaded[name] = implementation

    def lookup(self, name: str) -> T:
        """The implementation of a registered name or of a `module:attribute` reference.

        Raises UnknownName with a one-line message that says what is wrong and what exists.
        """
        if name in self:
            return self[name]
        if ":" not in name:
            raise UnknownName(
                f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())} "
                "(or give a plugin as module:attribute)"
            )
        module_name, _, attribute = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # a plugin module may fail in any way while it imports
            raise UnknownName(
                f"{self.kind} {name!r}: module {module_name!r} does not import "
                f"({type(error).__name__}: {error})"
            ) from None
        found: object = module
        for part in attribute.split("."):
            if not hasattr(found, part):
                raise UnknownName(f"{self.kind} {name!r}: module {module_name!r} has no {attribute!r}")
            found = getattr(found, part)
        if not isinstance(found, self.expected):
            raise UnknownName(
                f"{self.kind} {name!r} is a {type(found).__name__}, not a {self.expected.__name__}"
            )
        self._loaded[name] = found  # type: ignore[assignment]
        return found  # type: ignore[return-value]

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
