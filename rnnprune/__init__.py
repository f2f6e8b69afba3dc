"""rnnprune: prune recurrent networks and compare methods on accuracy-sparsity fronts."""

__version__ = "0.1.0"
