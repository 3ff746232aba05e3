"""DVS pixel model: events from log-intensity changes crossing a contrast threshold (numba).

Each pixel remembers the log intensity of its last event (its reference). Between two rendered
frames the log intensity is taken to change linearly, and every time it moves one threshold
away from the reference an event fires at the interpolated time (rounded to the sensor's 1 us
clock) and the reference moves one threshold along. ON and OFF thresholds differ per pixel
(fixed-pattern mismatch, C ~ N(c, sigma)). A crossing within the refractory period of the
previous event is lost, as on a real sensor, but the reference still moves. Background
activity is added as uniform Poisson noise events. The output of a step is sorted by time.

Optional realism (:class:`SensorParams`; every one is off by default and then costs nothing):

- photoreceptor bandwidth (``bandwidth_hz``): the log intensity the pixel compares is a
  first-order low-pass of the rendered one, integrated exactly for the linear input between
  renders, with a cutoff proportional to intensity (``bandwidth_hz`` at radiance 1, a white
  surface in full light), so dark regions lag and smear as in low light;
- leak (``leak_rate_hz``): the reference drifts down by ``leak_rate_hz * threshold`` per
  second, so a static pixel fires ON events at about that rate; done as an equal upward ramp
  of the signal, rebased after every step so that the numbers stay small;
- hot pixels (``hot_pixel_fraction``): fixed pixels, each firing Poisson events of one fixed
  polarity at ``hot_pixel_rate_hz``;
- shot noise (``shot_noise_rate_hz``): Poisson events at ``shot_noise_rate_hz * I0 / (I + I0)``
  per pixel (I: radiance at the end of the step, I0 = ``SHOT_NOISE_I0``), so they gather
  where it is dark;
- timestamp jitter (``timestamp_jitter_us``): Gaussian, clipped at 4 sigma, re-sorted; events
  within 4 sigma of the end of a step are held back until the next step (or :meth:`flush`),
  so that the stream stays sorted across steps;
- latency (``latency_us``): a constant added to every timestamp of this camera.

Noise, hot-pixel and shot-noise events are independent of the pixel state (they do not reset
the reference or the refractory period).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numba
import numpy as np

SHOT_NOISE_I0 = 0.05  # radiance at which the shot-noise rate is half its rate in the dark


@dataclass(frozen=True)
class SensorParams:
    """Pixel model parameters of one camera (defaults in the range measured for DAVIS346
    sensors; the realism options after ``log_eps`` are off by default)."""

    threshold: float = 0.25  # mean contrast threshold (log units)
    threshold_sigma: float = 0.03  # pixel-to-pixel std of the threshold
    refractory_us: int = 200
    noise_rate_hz: float = 0.1  # background events per pixel per second
    log_eps: float = 0.01  # log(I + eps): dark pixels are compressed, as in the photoreceptor
    hot_pixel_fraction: float = 0.0  # share of pixels that are hot
    hot_pixel_rate_hz: float = 100.0  # events per second of each hot pixel
    leak_rate_hz: float = 0.0  # ON events per second of a static pixel from reference leak
    shot_noise_rate_hz: float = 0.0  # noise events per pixel per second in the dark
    bandwidth_hz: float = 0.0  # photoreceptor cutoff at radiance 1; 0: instantaneous
    timestamp_jitter_us: float = 0.0  # std of the Gaussian timestamp noise
    latency_us: float = 0.0  # constant delay of this camera's timestamps


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


@numba.njit(cache=True, parallel=True)
def _condition(logs, ts, raw_last, bandwidth_hz, leak_per_us):
    """In place on rows 1.. of ``logs`` (row 0 is the previous conditioned frame): the
    photoreceptor low-pass (``bandwidth_hz`` > 0), then the leak ramp ``leak_per_us * (t - ts[0])``.

    ``raw_last`` holds each pixel's unfiltered log intensity at ``ts[0]`` and is advanced to
    ``ts[-1]``. The filter dy/dt = (x - y) / tau is solved exactly for the input x rising
    linearly between renders; tau = 1 / (2 pi fc), fc = bandwidth_hz * min(I + eps, 1).
    """
    n_steps = logs.shape[0]
    for i in numba.prange(logs.shape[1]):
        x0 = np.float64(raw_last[i])
        y = np.float64(logs[0, i])
        t0 = ts[0]  # time of x0
        for s in range(1, n_steps):
            x1 = np.float64(logs[s, i])
            if not np.isfinite(x1):
                continue  # the pixel sees nothing (it stays NaN, so it fires nothing); the filter holds
            if bandwidth_hz > 0 and np.isfinite(x0) and np.isfinite(y):
                dt = (ts[s] - t0) * 1e-6
                fc = bandwidth_hz * min(np.exp(0.5 * (x0 + x1)), 1.0)
                tau = 1.0 / (2.0 * np.pi * fc)
                m_tau = (x1 - x0) / dt * tau
                y = x1 - m_tau + (y - x0 + m_tau) * np.exp(-dt / tau)
            else:
                y = x1  # no filter, or the first light the pixel sees: start there
            x0 = x1
            t0 = ts[s]
            logs[s, i] = y + leak_per_us * (ts[s] - ts[0])
        raw_last[i] = x0


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
    """One DVS camera: per-pixel thresholds and state; turns log-intensity frames into events.

    ``rng`` draws the threshold pattern, the start state and the background noise; ``aux_rng``
    (default: a child of ``rng``, which leaves ``rng``'s stream untouched) draws what the
    realism options add, so that switching one of them on changes no other draw.
    """

    def __init__(self, height: int, width: int, params: SensorParams, rng: np.random.Generator,
                 aux_rng: np.random.Generator | None = None):
        self.height, self.width = height, width
        self.params = params
        self.rng = rng
        self.aux = aux_rng if aux_rng is not None else _child(rng)
        n = height * width
        floor = 0.25 * params.threshold  # a threshold near 0 would fire without end
        self.c_on = np.maximum(rng.normal(params.threshold, params.threshold_sigma, n), floor)
        self.c_off = np.maximum(rng.normal(params.threshold, params.threshold_sigma, n), floor)
        self.ref = np.zeros(n)
        self.last = np.full(n, -(1 << 40), np.int64)
        n_hot = int(round(params.hot_pixel_fraction * n))
        self.hot_pixels = np.sort(self.aux.choice(n, n_hot, replace=False)) if n_hot else np.zeros(0, np.int64)
        self.hot_polarity = np.where(self.aux.random(n_hot) < 0.5, 1, -1).astype(np.int8)
        # Timestamp jitter moves events by at most this much; later ones wait for the next step.
        self.jitter_margin = int(np.ceil(4 * params.timestamp_jitter_us))
        self._held = _no_events()
        self._frame: np.ndarray | None = None
        self._raw: np.ndarray | None = None  # unfiltered last frame (the low-pass input)
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
        self._raw = self._frame.copy()
        self._t = int(t_us)
        self._held = _no_events()

    def advance(self, log_frames: np.ndarray, t_us: np.ndarray) -> tuple[np.ndarray, ...]:
        """Feed frames (S, P) at increasing times (S,) after the last one; return the events
        with t in (previous time, t_us[-1]] as (x int16, y int16, t int64 us, p int8), sorted.

        With timestamp jitter, the events of the last 4 sigma wait for the next call (or
        :meth:`flush`); latency is added to every returned time.
        """
        if self._frame is None:
            raise RuntimeError("EventSensor.start must be called first")
        prm = self.params
        t_us = np.asarray(t_us, np.int64)
        logs = np.concatenate([self._frame[None], np.asarray(log_frames, np.float32)], 0)
        ts = np.concatenate([[self._t], t_us]).astype(np.int64)
        if np.any(np.diff(ts) <= 0):
            raise ValueError("frame times must increase")
        span = int(ts[-1] - ts[0])
        leak = prm.leak_rate_hz * prm.threshold * 1e-6  # reference drift per us
        if prm.bandwidth_hz > 0 or leak > 0:
            _condition(logs, ts, self._raw, float(prm.bandwidth_hz), float(leak))
        refr = np.int64(prm.refractory_us)
        counts = _count(logs, ts, self.ref, self.last, self.c_on, self.c_off, refr, self.width)
        offsets = np.zeros(len(counts), np.int64)
        np.cumsum(counts[:-1], out=offsets[1:])
        total = int(counts.sum())
        x = np.empty(total, np.int16)
        y = np.empty(total, np.int16)
        t = np.empty(total, np.int64)
        p = np.empty(total, np.int8)
        _emit(logs, ts, self.ref, self.last, self.c_on, self.c_off, refr, self.width, offsets, x, y, t, p)
        parts = [(x, y, t, p)]
        # Background activity: Poisson in count, uniform over pixels, time and polarity.
        n_pix = self.height * self.width
        lam = prm.noise_rate_hz * n_pix * (ts[-1] - ts[0]) * 1e-6
        n_noise = int(self.rng.poisson(lam)) if lam > 0 else 0
        if n_noise:
            parts.append(self._events_at(self.rng.integers(0, n_pix, n_noise), ts, self.rng))
        if len(self.hot_pixels) and prm.hot_pixel_rate_hz > 0:
            k = self.aux.poisson(prm.hot_pixel_rate_hz * span * 1e-6, len(self.hot_pixels))
            parts.append(self._events_at(np.repeat(self.hot_pixels, k), ts, self.aux, np.repeat(self.hot_polarity, k)))
        if prm.shot_noise_rate_hz > 0:
            # The rendered light (``logs`` is a conditioned copy, the input is untouched).
            light = np.exp(np.asarray(log_frames[-1], np.float64)) - prm.log_eps
            rate = prm.shot_noise_rate_hz * SHOT_NOISE_I0 / (np.maximum(np.nan_to_num(light), 0.0) + SHOT_NOISE_I0)
            cum = np.cumsum(rate * (span * 1e-6))
            n_shot = int(self.aux.poisson(cum[-1]))
            pix = np.minimum(np.searchsorted(cum, self.aux.random(n_shot) * cum[-1], side="right"), n_pix - 1)
            parts.append(self._events_at(pix, ts, self.aux))
        if len(parts) > 1:
            x, y, t, p = (np.concatenate(a) for a in zip(*parts))
        # Ties keep pixel order, so the output is deterministic.
        order = _time_order(t, np.int64(ts[0]), np.int64(ts[-1] - ts[0]))
        x, y, t, p = x[order], y[order], t[order], p[order]
        if leak > 0:  # rebase: the ramp starts from 0 again at the next step
            drift = leak * span
            logs[-1] -= np.float32(drift)
            self.ref -= drift
        self._frame = logs[-1].copy()
        self._t = int(ts[-1])
        if self.jitter_margin:
            x, y, t, p = self._jitter(x, y, t, p, int(ts[-1]) - self.jitter_margin)
        return self._delayed(x, y, t, p)

    def flush(self) -> tuple[np.ndarray, ...]:
        """The events held back by timestamp jitter (call once after the last :meth:`advance`)."""
        held, self._held = self._held, _no_events()
        return self._delayed(*held)

    def _events_at(self, pix: np.ndarray, ts: np.ndarray, rng: np.random.Generator,
                   polarity: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """Events at pixels ``pix`` at uniform times in (ts[0], ts[-1]], of random polarity
        unless given (drawn from ``rng`` in this order: times, then polarities)."""
        n = len(pix)
        t = rng.integers(ts[0] + 1, ts[-1] + 1, n)
        if polarity is None:
            polarity = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
        return (pix % self.width).astype(np.int16), (pix // self.width).astype(np.int16), t, polarity

    def _jitter(self, x, y, t, p, cut: int) -> tuple[np.ndarray, ...]:
        """Jittered, re-sorted events up to ``cut``; the later ones are held for the next call."""
        m = self.jitter_margin
        shift = np.clip(np.rint(self.aux.normal(0.0, self.params.timestamp_jitter_us, len(t))), -m, m)
        x, y, t, p = (np.concatenate([h, a]) for h, a in
                      zip(self._held, (x, y, np.maximum(t + shift.astype(np.int64), 0), p)))
        if len(t):
            lo = int(t.min())
            order = _time_order(t, np.int64(lo), np.int64(int(t.max()) - lo))
            x, y, t, p = x[order], y[order], t[order], p[order]
        k = int(np.searchsorted(t, cut, side="right"))
        self._held = (x[k:], y[k:], t[k:], p[k:])
        return x[:k], y[:k], t[:k], p[:k]

    def _delayed(self, x, y, t, p) -> tuple[np.ndarray, ...]:
        lat = int(round(self.params.latency_us))
        return x, y, (t + lat if lat else t), p


def _child(rng: np.random.Generator) -> np.random.Generator:
    """A generator independent of ``rng`` that leaves ``rng``'s stream where it is."""
    if hasattr(rng, "spawn"):  # numpy >= 1.25
        return rng.spawn(1)[0]
    digest = hashlib.sha256(repr(rng.bit_generator.state).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def _no_events() -> tuple[np.ndarray, ...]:
    return np.zeros(0, np.int16), np.zeros(0, np.int16), np.zeros(0, np.int64), np.zeros(0, np.int8)
