"""Reading the YAML files users write (trial configs, sweep specs), strictly.

PyYAML accepts a mapping that repeats a key and keeps the last value, so a spec with `methods:`
twice silently drops the first block; here a repeated key is an error naming both lines. A
file that is not UTF-8 text (a binary, a spreadsheet saved by mistake) gets a one-line error
instead of a UnicodeDecodeError traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rnnprune.errors import ConfigError


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses repeated keys in a mapping."""


class _RepeatedKey(yaml.YAMLError):
    def __init__(self, key: Any, first_line: int, line: int) -> None:
        super().__init__(f"key {key!r} appears twice (lines {first_line} and {line}); keep one of them")
        self.line = line


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)  # type: ignore[arg-type]
        line = key_node.start_mark.line + 1
        if key in seen:
            raise _RepeatedKey(key, seen[key], line)
        seen[key] = line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_text(path: Path, what: str) -> str:
    """The file's text; ConfigError if it is missing, a folder, binary or not UTF-8."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder; pass the path to a YAML file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as error:
        raise ConfigError(f"{what} {path} cannot be read ({error.strerror or error})") from None
    if b"\x00" in data:
        raise ConfigError(f"{what} {path} is a binary file, not YAML text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{what} {path} is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); "
            "save it as UTF-8"
        ) from None


def parse(text: str, source: str) -> Any:
    """YAML text -> Python data, repeated keys refused; ConfigError naming the line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except _RepeatedKey as error:
        raise ConfigError(f"{source}:{error.line}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{source}{where} is not valid YAML: {problem}") from None


def read_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping of fields at its top level (empty file: {})."""
    raw = parse(read_text(path, what), f"{what} {path}") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of fields at the top level")
    return raw
