"""Recurrent models whose weight matrices carry pruning masks."""

from rnnprune.models.recurrent import GATES, RecurrentClassifier

__all__ = ["GATES", "RecurrentClassifier"]
