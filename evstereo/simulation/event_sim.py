"""DVS pixel model: events from log-intensity changes crossing a contrast threshold (numba).

Each pixel remembers the log intensity of its last event (its reference). Between two rendered
frames the log intensity is taken to change linearly, and every time it moves one threshold
away from the reference an event fires at the interpolated time (rounded to the sensor's 1 us
clock) and the reference moves one threshold along. ON and OFF thresholds differ per pixel
(fixed-pattern mismatch, C ~ N(c, sigma)). A crossing within the refractory period of the
previous event is lost, as on a real sensor, but the reference still moves. Background
activity is added as uniform Poisson noise events. The output of a step is sorted by time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np


@dataclass(frozen=True)
class SensorParams:
    """Pixel model parameters (defaults in the range measured for DAVIS346 sensors)."""

    threshold: float = 0.25  # mean contrast threshold (log units)
    threshold_sigma: float = 0.03  # pixel-to-pixel std of the threshold
    refractory_us: int = 200
    noise_rate_hz: float = 0.1  # background events per pixel per second
    log_eps: float = 0.01  # log(I + eps): dark pixels are compressed, as in the photoreceptor


@numba.njit(cache=True, inline="always")
def _pixel(i, logs, ts, ref, last, cp, cn, refr, width, write, base, ox, oy, ot, op):
    """Simulate pixel ``i`` over the frames ``logs[:, i]``; return its number of events.

    With ``write`` the events go to ``o*[base:]`` and the pixel state is updated; without it
    nothing is written, so the same function counts (pass 1) and then emits (pass 2).
    """
    r = ref[i]
    lt = last[i]
    n = 0
    c_on = cp[i]
    c_off = cn[i]
    for s in range(logs.shape[0] - 1):
        a = logs[s, i]
        b = logs[s + 1, i]
        if not (np.isfinite(a) and np.isfinite(b)) or a == b:
            continue
        t0 = ts[s]
        dt = ts[s + 1] - t0
        inv = 1.0 / (b - a)
        if b > a:
            lev = r + c_on
            while lev <= b:
                step = np.int64(np.floor((lev - a) * inv * dt + 0.5))
                tq = t0 + min(max(step, 1), dt)  # inside (t0, t1]
                r = lev
                if tq - lt >= refr:
                    if write:
                        ox[base + n] = i % width
                        oy[base + n] = i // width
                        ot[base + n] = tq
                        op[base + n] = 1
                    n += 1
                    lt = tq
                lev = r + c_on
        else:
            lev = r - c_off
            while lev >= b:
                step = np.int64(np.floor((lev - a) * inv * dt + 0.5))
                tq = t0 + min(max(step, 1), dt)
                r = lev
                if tq - lt >= refr:
                    if write:
                        ox[base + n] = i % width
                        oy[base + n] = i // width
                        ot[base + n] = tq
                        op[base + n] = -1
                    n += 1
                    lt = tq
                lev = r - c_off
    if write:
        ref[i] = r
        last[i] = lt
    return n


@numba.njit(cache=True, parallel=True)
def _count(logs, ts, ref, last, cp, cn, refr, width):
    n_pix = logs.shape[1]
    counts = np.empty(n_pix, np.int64)
    dummy16 = np.empty(0, np.int16)
    dummy64 = np.empty(0, np.int64)
    dummy8 = np.empty(0, np.int8)
    for i in numba.prange(n_pix):
        counts[i] = _pixel(i, logs, ts, ref, last, cp, cn, refr, width, False, 0,
                           dummy16, dummy16, dummy64, dummy8)
    return counts


@numba.njit(cache=True, parallel=True)
def _emit(logs, ts, ref, last, cp, cn, refr, width, offsets, ox, oy, ot, op):
    for i in numba.prange(logs.shape[1]):
        _pixel(i, logs, ts, ref, last, cp, cn, refr, width, True, offsets[i], ox, oy, ot, op)


@numba.njit(cache=True)
def _time_order(t, t0, span):
    """Stable counting sort of integer times in [t0, t0 + span]: O(n + span), no comparisons."""
    pos = np.zeros(span + 2, np.int64)
    for i in range(t.shape[0]):
        pos[t[i] - t0 + 1] += 1
    for k in range(1, span + 2):
        pos[k] += pos[k - 1]
    order = np.empty(t.shape[0], np.int64)
    for i in range(t.shape[0]):
        k = t[i] - t0
        order[pos[k]] = i
        pos[k] += 1
    return order


class EventSensor:
    """One DVS camera: per-pixel thresholds and state; turns log-intensity frames into events."""

    def __init__(self, height: int, width: int, params: SensorParams, rng: np.random.Generator):
        self.height, self.width = height, width
        self.params = params
        self.rng = rng
        n = height * width
        floor = 0.25 * params.threshold  # a threshold near 0 would fire without end
        self.c_on = np.maximum(rng.normal(params.threshold, params.threshold_sigma, n), floor)
        self.c_off = np.maximum(rng.normal(params.threshold, params.threshold_sigma, n), floor)
        self.ref = np.zeros(n)
        self.last = np.full(n, -(1 << 40), np.int64)
        self._frame: np.ndarray | None = None
        self._t: int = 0

    def log(self, radiance: np.ndarray) -> np.ndarray:
        """Log intensity as the photoreceptor sees it (float32)."""
        return np.log(radiance + np.float32(self.params.log_eps)).astype(np.float32)

    def start(self, log_frame: np.ndarray, t_us: int) -> None:
        """Set the initial state: references at the first frame, jittered within a threshold,
        so that the pixels do not all fire in step at the beginning."""
        u = self.rng.uniform(-0.5, 0.5, log_frame.shape)
        self.ref = log_frame.astype(np.float64) + u * np.where(u > 0, self.c_on, self.c_off)
        self._frame = np.asarray(log_frame, np.float32)
        self._t = int(t_us)

    def advance(self, log_frames: np.ndarray, t_us: np.ndarray) -> tuple[np.ndarray, ...]:
        """Feed frames (S, P) at increasing times (S,) after the last one; return the events
        with t in (previous time, t_us[-1]] as (x int16, y int16, t int64 us, p int8), sorted."""
        if self._frame is None:
            raise RuntimeError("EventSensor.start must be called first")
        t_us = np.asarray(t_us, np.int64)
        logs = np.concatenate([self._frame[None], np.asarray(log_frames, np.float32)], 0)
        ts = np.concatenate([[self._t], t_us]).astype(np.int64)
        if np.any(np.diff(ts) <= 0):
            raise ValueError("frame times must increase")
        refr = np.int64(self.params.refractory_us)
        counts = _count(logs, ts, self.ref, self.last, self.c_on, self.c_off, refr, self.width)
        offsets = np.zeros(len(counts), np.int64)
        np.cumsum(counts[:-1], out=offsets[1:])
        total = int(counts.sum())
        x = np.empty(total, np.int16)
        y = np.empty(total, np.int16)
        t = np.empty(total, np.int64)
        p = np.empty(total, np.int8)
        _emit(logs, ts, self.ref, self.last, self.c_on, self.c_off, refr, self.width, offsets, x, y, t, p)
        # Background activity: Poisson in count, uniform over pixels, time and polarity.
        n_pix = self.height * self.width
        lam = self.params.noise_rate_hz * n_pix * (ts[-1] - ts[0]) * 1e-6
        n_noise = int(self.rng.poisson(lam)) if lam > 0 else 0
        if n_noise:
            pix = self.rng.integers(0, n_pix, n_noise)
            x = np.concatenate([x, (pix % self.width).astype(np.int16)])
            y = np.concatenate([y, (pix // self.width).astype(np.int16)])
            t = np.concatenate([t, self.rng.integers(ts[0] + 1, ts[-1] + 1, n_noise)])
            p = np.concatenate([p, np.where(self.rng.random(n_noise) < 0.5, 1, -1).astype(np.int8)])
        # Ties keep pixel order, so the output is deterministic.
        order = _time_order(t, np.int64(ts[0]), np.int64(ts[-1] - ts[0]))
        self._frame = logs[-1].copy()
        self._t = int(ts[-1])
        return x[order], y[order], t[order], p[order]
