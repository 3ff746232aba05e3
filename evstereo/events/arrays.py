"""Event arrays in memory: four 1-D arrays x, y (int16), t (int64 microseconds), p (int8 +-1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Events:
    """A batch of events, sorted by time. Files keep their own units; readers convert once."""

    x: np.ndarray
    y: np.ndarray
    t: np.ndarray
    p: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.t)
        if not (len(self.x) == len(self.y) == len(self.p) == n):
            raise ValueError("event arrays x, y, t, p must have the same length")

    @classmethod
    def create(cls, x, y, t, p) -> "Events":
        """Build from array-likes, casting to the canonical dtypes (p: 0 is read as -1)."""
        p = np.asarray(p)
        p = np.where(p > 0, 1, -1).astype(np.int8)
        return cls(
            np.asarray(x).astype(np.int16, copy=False),
            np.asarray(y).astype(np.int16, copy=False),
            np.asarray(t).astype(np.int64, copy=False),
            p,
        )

    @classmethod
    def empty(cls) -> "Events":
        return cls(np.zeros(0, np.int16), np.zeros(0, np.int16), np.zeros(0, np.int64), np.zeros(0, np.int8))

    def __len__(self) -> int:
        return len(self.t)

    def __getitem__(self, index) -> "Events":
        return Events(self.x[index], self.y[index], self.t[index], self.p[index])

    def window(self, t0: int, t1: int) -> "Events":
        """Events with t0 < t <= t1 (the MVSEC sample convention)."""
        i0, i1 = np.searchsorted(self.t, [t0, t1], side="right")
        return self[i0:i1]

    @staticmethod
    def concatenate(parts: "list[Events]") -> "Events":
        if not parts:
            return Events.empty()
        return Events(*(np.concatenate([getattr(e, f) for e in parts]) for f in "xytp"))


def seconds_to_us(t_s: np.ndarray) -> np.ndarray:
    """Float seconds (MVSEC) -> int64 microseconds, rounding halves up.

    Every reader path uses this one rule (the numba window kernel repeats it), so an event's
    microsecond time is the same whichever way it was read.
    """
    return np.floor(np.asarray(t_s, np.float64) * 1e6 + 0.5).astype(np.int64)
