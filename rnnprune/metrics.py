"""Exact sparsity accounting, the same for every method (ShrinkBench's reporting rules).

Everything is measured from the weights themselves (a weight counts as pruned when it is
exactly zero), never from the target or the masks, so a method that misreports its masks
cannot flatter itself.

- per tensor and per gate block (LSTM i/f/g/o, GRU r/z/n row blocks);
- over the prunable pool and over all parameters;
- compression ratio = total / non-zero parameters;
- theoretical speed-up = dense / non-zero multiply-adds of one time step of the recurrence
  (every `weight_ih_l*` and `weight_hh_l*`; the readout and the encoders are outside the
  recurrence: an embedding is a lookup, an initial-state encoder runs once per sequence).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from rnnprune.models.masking import MaskedWeights
from rnnprune.weights import ALL_KINDS


@dataclass(frozen=True)
class Count:
    total: int
    nonzero: int

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero / self.total if self.total else 0.0

    @property
    def compression_ratio(self) -> float:
        return self.total / self.nonzero if self.nonzero else float("inf")

    def __add__(self, other: Count) -> Count:
        return Count(self.total + other.total, self.nonzero + other.nonzero)


def count(tensor: torch.Tensor) -> Count:
    return Count(tensor.numel(), int(torch.count_nonzero(tensor.detach())))


def gate_counts(weight: torch.Tensor, gates: tuple[str, ...]) -> dict[str, Count]:
    """Counts of each gate's row block, in PyTorch's stacking order."""
    blocks = weight.detach().chunk(len(gates), dim=0)
    return {gate: count(block) for gate, block in zip(gates, blocks, strict=True)}


@dataclass(frozen=True)
class SparsityReport:
    pool: Count
    total: Count
    recurrent_macs: Count
    per_tensor: dict[str, Count] = field(default_factory=dict)
    per_gate: dict[str, dict[str, Count]] = field(default_factory=dict)

    @property
    def theoretical_speedup(self) -> float:
        return self.recurrent_macs.compression_ratio

    def summary(self) -> dict[str, float]:
        """Flat scalar metrics, named as trials report them."""
        return {
            "sparsity": self.pool.sparsity,
            "sparsity_total": self.total.sparsity,
            "nonzero_params": float(self.total.nonzero),
            "nonzero_params_pool": float(self.pool.nonzero),
            "total_params": float(self.total.total),
            "compression_ratio": self.total.compression_ratio,
            "compression_ratio_pool": self.pool.compression_ratio,
            "theoretical_speedup": self.theoretical_speedup,
        }

    def tables(self) -> dict[str, dict]:
        """Per-tensor and per-gate sparsity, for metrics.json and per-layer tables."""
        return {
            "per_tensor": {
                name: {"total": c.total, "nonzero": c.nonzero, "sparsity": c.sparsity}
                for name, c in self.per_tensor.items()
            },
            "per_gate": {
                name: {gate: c.sparsity for gate, c in gates.items()} for name, gates in self.per_gate.items()
            },
        }


def sparsity_report(model: MaskedWeights, pool_names: Iterable[str]) -> SparsityReport:
    """Measure `model`; `pool_names` are the full names of the prunable tensors."""
    pool_names = set(pool_names)
    matrices = model.prunable_weights(scope=ALL_KINDS)
    per_tensor = {w.name: count(w.weight) for w in matrices}
    per_gate = {w.name: gate_counts(w.weight, w.gates) for w in matrices if w.kind in ("ih", "hh")}
    total = sum((count(p) for p in model.parameters()), Count(0, 0))
    pool = sum((per_tensor[name] for name in sorted(pool_names)), Count(0, 0))
    # One multiply-add per weight entry per time step (batch of one).
    recurrent = sum((per_tensor[w.name] for w in matrices if w.kind in ("ih", "hh")), Count(0, 0))
    return SparsityReport(pool, total, recurrent, per_tensor, per_gate)
