"""Latency of several ways of computing one thing, measured against each other in one process.

Calls take turns in blocks (every candidate runs a block of calls, then the next one does), so
load drift on a shared machine hits all of them alike; the figure of each is the median of its
per-call times. Ratios between candidates measured together are the robust result: absolute
times move with the machine's load. CPU work runs on one thread (restored afterwards), the
way a single deployed request runs; on a GPU every call is synchronised, so a time is the
whole latency of the call.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

Call = Callable[[], object]


@dataclass(frozen=True)
class Repeats:
    """How much timing: `blocks` turns per candidate, `calls` timed calls each turn, after
    `warmup` untimed calls per candidate (first-call allocations, lazy kernel choices)."""

    blocks: int = 10
    calls: int = 5
    warmup: int = 2


DEFAULT_REPEATS = Repeats()


def _synchronizer(device: torch.device | None) -> Callable[[], None]:
    if device is not None and device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def median_ms(
    calls: Mapping[str, Call], repeats: Repeats = DEFAULT_REPEATS, device: torch.device | None = None
) -> dict[str, float]:
    """Median milliseconds per call of each candidate, measured interleaved on one CPU thread."""
    synchronize = _synchronizer(device)
    times: dict[str, list[float]] = {name: [] for name in calls}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            for call in calls.values():
                for _ in range(repeats.warmup):
                    call()
            synchronize()
            order = list(calls)
            for block in range(repeats.blocks):
                # Who goes first rotates: the first after a switch runs with the others' data in cache.
                for name in order[block % len(order) :] + order[: block % len(order)]:
                    call = calls[name]
                    for _ in range(repeats.calls):
                        start = time.perf_counter()
                        call()
                        synchronize()
                        times[name].append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}
