"""Benchmarks behind `python -m apps.bench`: each module's ``run(quick, options)`` returns table rows.

Every target is a ratio against a baseline measured in the same run, or an absolute figure
measured here; nothing is hard-coded. This folder sits at the repository's top level, beside
``tests/``, and is not installed: it needs a checkout (``apps.bench`` puts the root on the
path) and the ``bench`` extras (tonic, snntorch). ``BenchOptions`` carries what
``apps.bench`` was told (weights to use, the details file) as plain arguments.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]  # the checkout (configs/ is beside this folder)

# Modules of this package, run in this order by apps.bench.
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


@dataclass
class BenchOptions:
    """What the benchmark modules are told: ``checkpoints`` name -> checkpoint path (``apps.bench
    --checkpoint NAME=PATH``: weights for the "reference" or "fast" network instead of the
    shipped ones), ``details`` the Markdown file that modules append longer results to (None:
    none written)."""

    checkpoints: dict[str, Path] = field(default_factory=dict)
    details: Path | None = None

    def write_details(self, title: str, text: str) -> None:
        """Append a titled section to the details file (nothing without one)."""
        if self.details is None:
            return
        from evstereo.fileio import write_text_atomic

        old = Path(self.details).read_text() if Path(self.details).is_file() else ""
        write_text_atomic(self.details, old + f"## {title}\n\n```\n{text}\n```\n\n")


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
