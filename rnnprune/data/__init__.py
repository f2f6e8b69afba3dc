"""Tasks: data sets split into train/validation/test tensors."""

from rnnprune.data.base import Split, TaskData, resolve_data_root

__all__ = ["Split", "TaskData", "resolve_data_root"]
