"""Spread over seeds, computed one way everywhere (fronts, dashboard, results pages).

Convention: the mean, the sample standard deviation (ddof=1, dividing by n - 1: the seeds are
a sample of what the configuration would do with any seed) and n. One seed measures no
spread: its std is reported as 0.0 with n = 1, and every display shows "—" instead of a number
(`format_spread`), so a 0 from one seed is never read as "no variation".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SeedStats:
    mean: float
    std: float  # sample std (ddof=1); 0.0 when n == 1
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "std": self.std, "n": self.n}


def seed_stats(values: Iterable[float]) -> SeedStats:
    """Mean, sample std (ddof=1) and count of the finite values (NaN and inf are left out)."""
    finite = [float(v) for v in values if math.isfinite(v)]
    if not finite:
        raise ValueError("seed_stats needs at least one finite value")
    n = len(finite)
    mean = math.fsum(finite) / n
    if n == 1:
        return SeedStats(mean, 0.0, 1)
    variance = math.fsum((v - mean) ** 2 for v in finite) / (n - 1)
    return SeedStats(mean, math.sqrt(variance), n)


def format_spread(std: float, n: int, digits: int = 3, scale: float = 1.0) -> str:
    """The std for a table cell: "—" for one seed, whose spread is unmeasured."""
    return "—" if n < 2 else f"{scale * std:.{digits}f}"
