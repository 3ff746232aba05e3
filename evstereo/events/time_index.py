"""Millisecond time index over a sorted event stream: any window (t0, t1] -> one contiguous slice.

``ms_to_idx[k]`` is the index of the first event with ``t >= base + k * 1000`` (us), the same
idea as DSEC's ``ms_to_idx``. A window read takes the coarse slice from the index and trims
it with a binary search on the (small) slice that was read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np


class UnsortedTimestamps(ValueError):
    """Raised while building an index when timestamps decrease; carries the event index."""

    def __init__(self, index: int):
        self.index = index
        super().__init__(f"timestamps decrease at event {index}")


@dataclass
class TimeIndex:
    base_us: int  # time of ms 0
    ms_to_idx: np.ndarray  # int64, len = number of ms bins + 1
    num_events: int
    t_first_us: int
    t_last_us: int

    @classmethod
    def build(cls, chunks: Iterable[np.ndarray], num_events: int) -> "TimeIndex":
        """Build from consecutive chunks of int64 microsecond timestamps covering all events."""
        edges: list[np.ndarray] = []
        base = None
        start = 0
        prev_last = None
        first = last = 0
        next_edge_ms = 0
        for t in chunks:
            if len(t) == 0:
                continue
            t = np.asarray(t, np.int64)
            if prev_last is not None and t[0] < prev_last:
                raise UnsortedTimestamps(start)
            d = np.diff(t)
            bad = np.flatnonzero(d < 0)
            if len(bad):
                raise UnsortedTimestamps(start + int(bad[0]) + 1)
            if base is None:
                base = int(t[0])
                first = base
            last_ms = (int(t[-1]) - base) // 1000
            # bins next_edge_ms .. last_ms start inside this chunk (or before it)
            if last_ms >= next_edge_ms:
                ks = np.arange(next_edge_ms, last_ms + 1, dtype=np.int64)
                edges.append(start + np.searchsorted(t, base + ks * 1000, side="left"))
                next_edge_ms = last_ms + 1
            prev_last = int(t[-1])
            last = prev_last
            start += len(t)
        if base is None:
            return cls(0, np.zeros(1, np.int64), 0, 0, 0)
        ms_to_idx = np.concatenate(edges + [np.array([num_events], np.int64)])
        return cls(base, ms_to_idx.astype(np.int64), num_events, first, last)

    def coarse_slice(self, t0_us: int, t1_us: int) -> tuple[int, int]:
        """Index range [lo, hi) that contains every event with t0 < t <= t1 (maybe a few more)."""
        n_bins = len(self.ms_to_idx) - 1
        k0 = int(np.clip((t0_us - self.base_us) // 1000, 0, n_bins))
        k1 = int(np.clip((t1_us - self.base_us) // 1000 + 1, 0, n_bins))
        return int(self.ms_to_idx[k0]), int(self.ms_to_idx[k1])

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "ms_to_idx": self.ms_to_idx,
            "meta": np.array([self.base_us, self.num_events, self.t_first_us, self.t_last_us], np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays) -> "TimeIndex":
        base, n, first, last = (int(v) for v in arrays["meta"])
        return cls(base, np.asarray(arrays["ms_to_idx"], np.int64), n, first, last)
