"""Recurrent models whose weight matrices carry pruning masks."""

from rnnprune.models.recurrent import GATES, RecurrentNet

__all__ = ["GATES", "RecurrentNet"]
