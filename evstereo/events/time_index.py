"""Millisecond time index over a sorted event stream: any window (t0, t1] -> one contiguous slice.

The index is sparse: ``keys`` are millisecond bins (``(t - base) // 1000``, sorted) and
``starts[j]`` is the index of the first event with ``t >= base + keys[j] * 1000``; every bin
that holds events has an entry (busy stretches list their empty bins too, which costs nothing
there). The first event with ``t >= base + k * 1000`` is then ``starts[searchsorted(keys, k)]``
(DSEC's ``ms_to_idx[k]``, found by a binary search instead of a dense table). Its size is
bounded by twice the number of events, not by the time span: one event an hour (or a year)
late costs one entry, where a dense table would take one int64 per millisecond of the gap and
exhaust memory. A window
read takes the coarse slice from the index and trims it on the (small) slice that was read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

# |t| in us beyond which int64 arithmetic on the index (t - base, bin * 1000) could overflow.
MAX_ABS_US = 2**62


class UnsortedTimestamps(ValueError):
    """Raised while building an index when timestamps decrease; carries the event index."""

    def __init__(self, index: int):
        self.index = index
        super().__init__(f"timestamps decrease at event {index}")


@dataclass
class TimeIndex:
    base_us: int  # time of ms bin 0 (the first event's time)
    keys: np.ndarray  # int64, sorted ms bins (every bin that holds events, maybe some empty ones)
    starts: np.ndarray  # int64: index of the first event at or after each bin's start
    num_events: int
    t_first_us: int
    t_last_us: int

    @classmethod
    def build(cls, chunks: Iterable[np.ndarray], num_events: int) -> "TimeIndex":
        """Build from consecutive chunks of int64 microsecond timestamps covering all events.

        Raises :class:`UnsortedTimestamps` where timestamps decrease, and ``OverflowError``
        for timestamps beyond +-2**62 us (about 146,000 years: not microseconds of a real clock).
        """
        keys: list[np.ndarray] = []
        starts: list[np.ndarray] = []
        base = None
        start = 0
        prev_last = None
        next_key = 0  # bins before this one already have their entry
        for t in chunks:
            if len(t) == 0:
                continue
            t = np.asarray(t, np.int64)
            if int(t[0]) < -MAX_ABS_US or int(t[-1]) > MAX_ABS_US:
                raise OverflowError(f"timestamp beyond +-2**62 us near event {start}")
            if prev_last is not None and t[0] < prev_last:
                raise UnsortedTimestamps(start)
            bad = np.flatnonzero(np.diff(t) < 0)
            if len(bad):
                raise UnsortedTimestamps(start + int(bad[0]) + 1)
            if base is None:
                base = int(t[0])
            k_first, k_last = (int(t[0]) - base) // 1000, (int(t[-1]) - base) // 1000
            lo = max(k_first, next_key)
            if k_last >= lo:
                if k_last - lo < 2 * len(t):
                    # dense: every bin of the chunk's span, found by binary search (empty ones
                    # point at the next event, which is what a lookup needs)
                    ks = np.arange(lo, k_last + 1, dtype=np.int64)
                    keys.append(ks)
                    starts.append(start + np.searchsorted(t, base + ks * 1000, side="left"))
                else:
                    # sparse (gaps of many ms): only the bins that hold events
                    k = (t - base) // 1000
                    new = np.flatnonzero(np.diff(k)) + 1
                    if k[0] >= next_key:
                        new = np.concatenate([[0], new])
                    keys.append(k[new])
                    starts.append(start + new)
                next_key = k_last + 1
            prev_last = int(t[-1])
            start += len(t)
        if base is None:
            return cls.empty()
        return cls(base, np.concatenate(keys).astype(np.int64), np.concatenate(starts).astype(np.int64),
                   num_events, base, prev_last)

    @classmethod
    def empty(cls) -> "TimeIndex":
        return cls(0, np.zeros(0, np.int64), np.zeros(0, np.int64), 0, 0, 0)

    def _first_at_or_after(self, k: int) -> int:
        """Index of the first event with t >= base + k ms."""
        j = int(np.searchsorted(self.keys, k, side="left"))
        return int(self.starts[j]) if j < len(self.starts) else self.num_events

    def coarse_slice(self, t0_us: int, t1_us: int) -> tuple[int, int]:
        """Index range [lo, hi) that contains every event with t0 < t <= t1 (maybe a few more)."""
        if self.num_events == 0 or t1_us < self.t_first_us or t0_us >= self.t_last_us or t1_us <= t0_us:
            return (0, 0)
        k0 = (int(t0_us) - self.base_us) // 1000
        k1 = (int(t1_us) - self.base_us) // 1000 + 1
        return self._first_at_or_after(k0), self._first_at_or_after(k1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "keys": self.keys,
            "starts": self.starts,
            "meta": np.array([self.base_us, self.num_events, self.t_first_us, self.t_last_us], np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays) -> "TimeIndex":
        base, n, first, last = (int(v) for v in arrays["meta"])
        keys = np.asarray(arrays["keys"], np.int64)
        starts = np.asarray(arrays["starts"], np.int64)
        if keys.shape != starts.shape or keys.ndim != 1:
            raise ValueError("time index arrays do not match")
        return cls(base, keys, starts, n, first, last)
