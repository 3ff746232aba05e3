"""Dense event representations built by numba kernels: voxel grid, SBT, counts, spikes.

Every function takes four 1-D event arrays ``x, y, t, p``, a number of time ``bins``, the image
``height`` and ``width`` and optional window bounds ``t_start``/``t_end`` and returns a new
float32 array. The conventions are shared:

- ``x``, ``y``: integer pixel coordinates of any integer dtype (int16 normally).
- ``t``: timestamps of any numeric dtype (int64 microseconds normally).
- ``p``: polarity; anything > 0 is +1, anything else (0, -1, False) is -1.
- ``t_start``/``t_end``: the window that normalises time. By default the first and the last
  event (``t[0]`` and ``t[-1]``: events are sorted by time by convention). Pass the same bounds
  to the left and the right camera of one stereo sample, so that their bins line up.
- Events with ``t`` outside ``[t_start, t_end]`` or with a pixel outside the image are
  ignored. An empty input gives all zeros. ``t_end == t_start`` is allowed: every event at
  that instant has normalised time 0 (bin 0); ``t_end < t_start`` keeps no event.

Time binning. ``sbt``, ``event_counts`` and ``spike_tensor`` split the window into ``bins``
equal sub-windows; an event falls in ``floor(bins * (t - t_start) / (t_end - t_start))``,
clamped to ``bins - 1`` so that an event at ``t_end`` falls in the last one. ``voxel_grid``
spreads each event over two neighbouring bins instead (see its docstring).

Each kernel is one pass over the events (``numba.njit(cache=True, nogil=True)``, compiled once
per input dtype combination and cached on disk); the Python wrappers only check arguments,
pick the window bounds and allocate the output. Since the kernels release the GIL, several
windows (e.g. the two cameras of a stereo pair) may be built concurrently from threads.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["voxel_grid", "sbt", "event_counts", "spike_tensor"]

_JIT = dict(cache=True, nogil=True)


# --------------------------------------------------------------------------------------------
# kernels: one pass over the events, writing into a zeroed flat float32 output
# --------------------------------------------------------------------------------------------


@numba.njit(**_JIT)
def _voxel_kernel(x, y, t, p, bins, height, width, t0, t1, out):  # pragma: no cover - jitted
    span = t1 - t0
    # a multiplication, not a division, per event: the weights are continuous in t, so the
    # last-bit difference to (bins - 1) * (t - t0) / span does not matter
    scale = (bins - 1) / span if span > 0.0 else 0.0
    last = bins - 1
    plane = height * width
    for i in range(t.shape[0]):
        ti = t[i]
        if not (ti >= t0 and ti <= t1):  # also drops NaN timestamps
            continue
        xi = np.int64(x[i])
        yi = np.int64(y[i])
        if xi < 0 or xi >= width or yi < 0 or yi >= height:
            continue
        tn = (ti - t0) * scale  # in [0, bins - 1]
        b = min(np.int64(tn), last)  # min: a rounding step past t_end stays in the last bin
        frac = np.float32(tn - b)  # 0 at t_end (up to that rounding step)
        pol = np.float32(2 * (p[i] > 0) - 1)
        k = b * plane + yi * width + xi
        out[k] += pol - pol * frac
        # right neighbour; in the last bin (frac ~ 0) the remainder goes back into the same
        # cell, so the event's weight stays whole (an index select instead of a branch)
        out[k + plane * (b < last)] += pol * frac


@numba.njit(inline="always")
def _bin_of(ti, t0, span, fbins, bins):  # pragma: no cover - jitted
    if span > 0.0:
        b = np.int64((fbins * (ti - t0)) / span)
        if b >= bins:
            b = bins - 1
        return b
    return np.int64(0)


@numba.njit(**_JIT)
def _sbt_kernel(x, y, t, p, bins, height, width, t0, t1, acc, out):  # pragma: no cover
    span = t1 - t0
    fbins = float(bins)
    plane = height * width
    for i in range(t.shape[0]):
        ti = t[i]
        if not (ti >= t0 and ti <= t1):  # also drops NaN timestamps
            continue
        xi = np.int64(x[i])
        yi = np.int64(y[i])
        if xi < 0 or xi >= width or yi < 0 or yi >= height:
            continue
        b = _bin_of(ti, t0, span, fbins, bins)
        acc[b * plane + yi * width + xi] += 1 if p[i] > 0 else -1
    for k in range(acc.shape[0]):
        v = acc[k]
        if v > 0:
            out[k] = 1.0
        elif v < 0:
            out[k] = -1.0


@numba.njit(**_JIT)
def _counts_kernel(x, y, t, p, bins, height, width, t0, t1, binary, out):  # pragma: no cover
    span = t1 - t0
    fbins = float(bins)
    plane = height * width
    for i in range(t.shape[0]):
        ti = t[i]
        if not (ti >= t0 and ti <= t1):  # also drops NaN timestamps
            continue
        xi = np.int64(x[i])
        yi = np.int64(y[i])
        if xi < 0 or xi >= width or yi < 0 or yi >= height:
            continue
        b = _bin_of(ti, t0, span, fbins, bins)
        c = 1 if p[i] > 0 else 0
        k = (2 * b + c) * plane + yi * width + xi
        if binary:
            out[k] = 1.0
        else:
            out[k] += 1.0


# --------------------------------------------------------------------------------------------
# wrappers: argument checks, dtype handling, window bounds, output allocation
# --------------------------------------------------------------------------------------------


def _prepare(x, y, t, p, bins, height, width, t_start, t_end):
    x = np.asarray(x)
    y = np.asarray(y)
    t = np.asarray(t)
    p = np.asarray(p)
    if not (x.ndim == y.ndim == t.ndim == p.ndim == 1):
        raise ValueError("event arrays x, y, t, p must be 1-D")
    if not (len(x) == len(y) == len(t) == len(p)):
        raise ValueError(
            f"event arrays x, y, t, p must have the same length, got {len(x)}, {len(y)}, {len(t)}, {len(p)}"
        )
    if int(bins) < 1 or int(height) < 1 or int(width) < 1:
        raise ValueError(f"bins, height and width must be >= 1, got {bins}, {height}, {width}")
    if x.dtype.kind not in "iu" or y.dtype.kind not in "iu":
        if len(x):
            raise ValueError(f"x and y must be integer pixel coordinates, got {x.dtype} and {y.dtype}")
        x = x.astype(np.int64)
        y = y.astype(np.int64)
    if t.dtype.kind not in "iuf":
        if len(t):
            raise ValueError(f"t must be numeric, got {t.dtype}")
        t = t.astype(np.int64)
    if p.dtype.kind not in "iuf":
        p = p.view(np.uint8) if p.dtype == np.bool_ else p.astype(np.int8)
    if len(t):
        t0 = float(t[0]) if t_start is None else float(t_start)
        t1 = float(t[-1]) if t_end is None else float(t_end)
    else:
        t0 = 0.0 if t_start is None else float(t_start)
        t1 = t0 if t_end is None else float(t_end)
    if not (np.isfinite(t0) and np.isfinite(t1)):
        raise ValueError(f"window bounds must be finite, got t_start={t0}, t_end={t1}")
    return x, y, t, p, int(bins), int(height), int(width), t0, t1


def voxel_grid(
    x: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    p: np.ndarray,
    bins: int,
    height: int,
    width: int,
    t_start: float | None = None,
    t_end: float | None = None,
) -> np.ndarray:
    """Voxel grid with bilinear weighting in time (Zhu et al. 2019), float32 ``[bins, H, W]``.

    The normalised time is ``tn = (bins - 1) * (t - t_start) / (t_end - t_start)``, in
    ``[0, bins - 1]``. An event adds ``p * (1 - frac)`` to bin ``floor(tn)`` and ``p * frac``
    to bin ``floor(tn) + 1`` (``frac = tn - floor(tn)``), so every in-window, in-image event
    lands with its full weight: an event at ``t_start`` lands fully in bin 0, one at ``t_end``
    fully in bin ``bins - 1``, and the grid sums to the sum of their polarities (up to float32
    rounding). With ``bins == 1`` the grid is the polarity sum per pixel.

    This differs from tonic's ``tonic.functional.to_voxel_grid_numpy`` (tonic 1.7.0, code from
    rpg_e2vid), which scales by ``bins`` instead: ``tn = bins * (t - t[0]) / (t[-1] - t[0])``
    in ``[0, bins]``, adds the left part ``p * (1 - frac)`` only where ``floor(tn) < bins`` and
    the right part ``p * frac`` only where ``floor(tn) + 1 < bins``. So (a) the right part of
    every event in the last ``1/bins`` of the window (``tn`` in ``[bins - 1, bins)``) is
    dropped, which for events spread evenly in time loses about ``1/(2 * bins)`` of the total
    weight (10 % with 5 bins); (b) events at exactly ``t[-1]`` (``tn == bins``) are dropped
    entirely; (c) bin centres are not at the window ends. It also always uses the first and
    last event as bounds, returns float64 ``[bins, 1, H, W]``, divides by zero when all events
    share one timestamp, does not check pixel bounds (an out-of-image event raises or lands on
    a wrong pixel) and writes ``-1`` into the caller's ``p`` field where it was 0. evlib is
    said to use the same ``bins`` scaling; it is not installed here and that was not checked.
    """
    x, y, t, p, bins, height, width, t0, t1 = _prepare(x, y, t, p, bins, height, width, t_start, t_end)
    out = np.zeros(bins * height * width, np.float32)
    if len(t):
        _voxel_kernel(x, y, t, p, bins, height, width, t0, t1, out)
    return out.reshape(bins, height, width)


def sbt(
    x: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    p: np.ndarray,
    bins: int,
    height: int,
    width: int,
    t_start: float | None = None,
    t_end: float | None = None,
) -> np.ndarray:
    """Stacked binary time (SBT) frames, float32 ``[bins, H, W]`` with values -1, 0, +1.

    The window is split into ``bins`` equal sub-windows (see the module docstring for the
    binning); channel ``b`` holds the sign of the summed polarity of the events of sub-window
    ``b`` at each pixel. The stereo reference input is 5 bins of 10 ms in a 50 ms window.
    """
    x, y, t, p, bins, height, width, t0, t1 = _prepare(x, y, t, p, bins, height, width, t_start, t_end)
    out = np.zeros(bins * height * width, np.float32)
    if len(t):
        acc = np.zeros(bins * height * width, np.int32)
        _sbt_kernel(x, y, t, p, bins, height, width, t0, t1, acc, out)
    return out.reshape(bins, height, width)


def event_counts(
    x: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    p: np.ndarray,
    bins: int,
    height: int,
    width: int,
    t_start: float | None = None,
    t_end: float | None = None,
) -> np.ndarray:
    """Event counts per sub-window and polarity, float32 ``[bins, 2, H, W]``.

    Channel 0 counts negative events, channel 1 positive ones; the binning is that of
    :func:`sbt`.
    """
    x, y, t, p, bins, height, width, t0, t1 = _prepare(x, y, t, p, bins, height, width, t_start, t_end)
    out = np.zeros(bins * 2 * height * width, np.float32)
    if len(t):
        _counts_kernel(x, y, t, p, bins, height, width, t0, t1, False, out)
    return out.reshape(bins, 2, height, width)


def spike_tensor(
    x: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    p: np.ndarray,
    bins: int,
    height: int,
    width: int,
    t_start: float | None = None,
    t_end: float | None = None,
) -> np.ndarray:
    """Binary spike tensor, float32 ``[bins, 2, H, W]``: 1 where that polarity fired at least
    once in that time step (channel 0 negative, 1 positive), else 0; the binning is that of
    :func:`sbt`. Equal to ``event_counts(...) > 0``.
    """
    x, y, t, p, bins, height, width, t0, t1 = _prepare(x, y, t, p, bins, height, width, t_start, t_end)
    out = np.zeros(bins * 2 * height * width, np.float32)
    if len(t):
        _counts_kernel(x, y, t, p, bins, height, width, t0, t1, True, out)
    return out.reshape(bins, 2, height, width)
