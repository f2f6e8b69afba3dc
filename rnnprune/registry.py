"""Names -> implementations, resolved when first asked for.

A registry maps each short name to a `module:attribute` reference and imports the module only
when that name is used, so validating a config or listing names never loads a task's data
libraries (torchvision, torchaudio) or a method it does not run. Three kinds of entry:

- built-in names, listed by the package's own registry modules;
- names that installed packages declare under an entry-point group (`rnnprune.tasks`,
  `rnnprune.methods`), the way pytest and MLflow find their plugins;
- a reference given in place of a name (`mypkg.tasks:KEYWORDS`), so code outside any
  package plugs in with no registration at all.

Tests add entries with `register` (or item assignment) and take them away with `del`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from importlib import metadata
from typing import Generic, TypeVar

T = TypeVar("T")

BUILT_IN = "built-in"


class UnknownName(KeyError):
    """A name that is neither registered nor an importable reference; the message says which."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class _Entry:
    reference: str
    origin: str  # "built-in", "entry point of <distribution>", or "registered in code"


class Registry(MutableMapping[str, T], Generic[T]):
    """A mapping of names to implementations whose entries load lazily."""

    def __init__(
        self,
        kind: str,
        expected: type,
        built_in: dict[str, str],
        entry_point_group: str | None = None,
        adapt: Callable[[object], T] | None = None,
    ) -> None:
        """`adapt` turns a found object that is not an `expected` into one (a model factory from
        a plain function), or raises TypeError saying why it cannot."""
        self.kind, self.expected, self.entry_point_group = kind, expected, entry_point_group
        self.adapt = adapt
        self._entries: dict[str, _Entry] = {n: _Entry(r, BUILT_IN) for n, r in built_in.items()}
        self._clashes: dict[str, list[str]] = {}  # name -> every declaration, when declared twice
        self._discovered = entry_point_group is None
        self._loaded: dict[str, T] = {}
        self._references: dict[str, T] = {}

    def _discover(self) -> None:
        """Read the entry-point group once; a name declared twice is kept as a clash."""
        if self._discovered:
            return
        self._discovered = True
        for point in metadata.entry_points(group=self.entry_point_group):
            where = f"entry point of {point.dist.name if point.dist else 'an unknown distribution'}"
            declared = f"{point.value} ({where})"
            if point.name in self._entries or point.name in self._clashes:
                first = self._entries.pop(point.name, None)
                clashes = self._clashes.setdefault(point.name, [])
                if first is not None:
                    clashes.append(f"{first.reference} ({first.origin})")
                clashes.append(declared)
                continue
            self._entries[point.name] = _Entry(point.value, where)

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries.keys() | self._loaded.keys() | self._clashes.keys())

    def origin(self, name: str) -> str:
        """Where a name comes from: built-in, an installed package's entry point, or code."""
        self._discover()
        entry = self._entries.get(name)
        return entry.origin if entry is not None else "registered in code"

    def register(self, name: str, implementation: T) -> None:
        self._loaded[name] = implementation

    def lookup(self, name: str) -> T:
        """The implementation of a registered name or of a `module:attribute` reference.

        Raises UnknownName with a one-line message that says what is wrong and what exists.
        """
        self._discover()
        if name in self._loaded:
            return self._loaded[name]
        if name in self._clashes:
            raise UnknownName(
                f"{self.kind} {name!r} is declared twice: {' and '.join(sorted(self._clashes[name]))}; "
                "uninstall one of the packages or rename its entry point"
            )
        if name in self._entries:
            found = self._resolve(self._entries[name].reference, name)
        elif ":" in name:
            # A reference is not a name: it is cached apart, so listings show registered names only.
            if name not in self._references:
                self._references[name] = self._resolve(name, name)
            return self._references[name]
        else:
            raise UnknownName(
                f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())} "
                "(or give a plugin as module:attribute)"
            )
        self._loaded[name] = found
        return found

    def _resolve(self, reference: str, name: str) -> T:
        module_name, _, attribute = reference.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # a plugin module may fail in any way while it imports
            raise UnknownName(
                f"{self.kind} {name!r}: module {module_name!r} does not import "
                f"({type(error).__name__}: {error})"
            ) from None
        found: object = module
        for part in attribute.split(".") if attribute else ():
            if not hasattr(found, part):
                raise UnknownName(f"{self.kind} {name!r}: module {module_name!r} has no {attribute!r}")
            found = getattr(found, part)
        if isinstance(found, self.expected):
            return found  # type: ignore[return-value]
        if self.adapt is not None:
            try:
                return self.adapt(found)
            except TypeError as error:
                raise UnknownName(f"{self.kind} {name!r}: {error}") from None
        raise UnknownName(f"{self.kind} {name!r} is a {type(found).__name__}, not a {self.expected.__name__}")

    def __getitem__(self, name: str) -> T:
        return self.lookup(name)

    def __setitem__(self, name: str, implementation: T) -> None:
        self.register(name, implementation)

    def __delitem__(self, name: str) -> None:
        found = name in self._loaded or name in self._entries
        self._loaded.pop(name, None)
        self._entries.pop(name, None)
        if not found:
            raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        """A registered name, or a `module:attribute` reference that resolves (as `lookup`)."""
        self._discover()
        if name in self._loaded or name in self._entries:
            return True
        if isinstance(name, str) and ":" in name:
            try:
                self.lookup(name)
            except UnknownName:
                return False
            return True
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
