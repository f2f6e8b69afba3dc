"""Errors raised at the edge (config, data, paths) before any work starts.

Each one names the offending field or path and the fix, so that a user reading a failed
trial or sweep knows what to change without reading a traceback.
"""


class RnnpruneError(Exception):
    """Base class for errors a user can fix by changing their input."""


class ConfigError(RnnpruneError, ValueError):
    """A trial config (or a `--set` override) is invalid; the message names each field."""


class DataError(RnnpruneError, FileNotFoundError):
    """A data set cannot be found or read; the message names the option and expected layout."""


class PluginError(RnnpruneError, ValueError):
    """A plugin (task, model factory or method) misbehaves; the message names the config field
    that chose it and what it did wrong."""
