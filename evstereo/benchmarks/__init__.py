"""Benchmarks behind `python -m apps.bench`: each module's ``run(quick)`` returns table rows.

Every target is a ratio against a baseline measured in the same run, or an absolute figure
measured here; nothing is hard-coded.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

# Modules under evstereo.benchmarks, run in this order by apps.bench.
MODULES = ["representations", "reading", "snn", "models", "live"]


@dataclass
class Row:
    """One line of the benchmark table."""

    group: str  # what is measured, e.g. "voxel grid, 1 M events"
    name: str  # which implementation, e.g. "ours (numba)"
    value: float
    unit: str
    ratio: str = ""  # e.g. "9.3x faster than tonic"
    target: str = ""  # e.g. ">= 8x faster than tonic"
    met: bool | None = None
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def best_time(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Best wall time of ``fn`` in seconds over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best
