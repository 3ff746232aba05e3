"""Event rectification by lookup table: rectify, round, drop out-of-image events (numba)."""

from __future__ import annotations

import numba
import numpy as np

from evstereo.events.arrays import Events


@numba.njit(cache=True, nogil=True)
def _rectify_kernel(x, y, lut, out_x, out_y, keep):
    h, w = lut.shape[0], lut.shape[1]
    n = 0
    for i in range(x.shape[0]):
        xi, yi = x[i], y[i]
        if xi < 0 or yi < 0 or xi >= w or yi >= h:
            continue
        xr = np.floor(lut[yi, xi, 0] + 0.5)
        yr = np.floor(lut[yi, xi, 1] + 0.5)
        if xr < 0 or yr < 0 or xr >= w or yr >= h:
            continue
        out_x[n] = np.int16(xr)
        out_y[n] = np.int16(yr)
        keep[n] = i
        n += 1
    return n


def rectify_events(x: np.ndarray, y: np.ndarray, t: np.ndarray, p: np.ndarray, lut: np.ndarray | None,
                   height: int, width: int) -> Events:
    """Map raw pixel coordinates through ``lut`` ((H, W, 2) rectified x, y per raw pixel).

    Coordinates are rounded to the nearest pixel and events landing outside the image are
    dropped. With ``lut=None`` events are only bounds-checked (already rectified input).
    """
    x = np.ascontiguousarray(x, dtype=np.int16)
    y = np.ascontiguousarray(y, dtype=np.int16)
    if lut is None:
        ok = (x >= 0) & (y >= 0) & (x < width) & (y < height)
        return Events.create(x[ok], y[ok], t[ok], p[ok])
    out_x = np.empty(len(x), np.int16)
    out_y = np.empty(len(x), np.int16)
    keep = np.empty(len(x), np.int64)
    n = _rectify_kernel(x, y, np.ascontiguousarray(lut, np.float32), out_x, out_y, keep)
    keep = keep[:n]
    return Events.create(out_x[:n], out_y[:n], np.asarray(t)[keep], np.asarray(p)[keep])


def pack_lut(lut: np.ndarray, height: int, width: int) -> np.ndarray:
    """A rectification table ((H, W, 2) rectified x, y per raw pixel) as one int32 per raw
    pixel: the rounded rectified pixel ``y * width + x``, or -1 where it leaves the image.

    Window reads look each event up once in this table instead of rounding two floats.
    """
    lut = np.asarray(lut, np.float32)
    if lut.shape != (height, width, 2):
        raise ValueError(f"rectification table has shape {lut.shape}, expected {(height, width, 2)}")
    xr = np.floor(lut[..., 0].astype(np.float64) + 0.5)
    yr = np.floor(lut[..., 1].astype(np.float64) + 0.5)
    ok = np.isfinite(xr) & np.isfinite(yr) & (xr >= 0) & (yr >= 0) & (xr < width) & (yr < height)
    packed = np.full((height, width), -1, np.int32)
    packed[ok] = (yr[ok] * width + xr[ok]).astype(np.int32)
    return packed.ravel()


@numba.njit(cache=True, nogil=True)
def _rows_kernel(rows, t0_us, t1_us, packed, use_lut, height, width, out_x, out_y, out_t, out_p):
    n = 0
    for i in range(rows.shape[0]):
        t = np.int64(np.floor(rows[i, 2] * 1e6 + 0.5))
        if t <= t0_us:
            continue
        if t > t1_us:
            break
        xi = np.int64(rows[i, 0])
        yi = np.int64(rows[i, 1])
        if xi < 0 or yi < 0 or xi >= width or yi >= height:
            continue
        if use_lut:
            j = packed[yi * width + xi]
            if j < 0:
                continue
            yi = j // width
            xi = j - yi * width
        out_x[n] = xi
        out_y[n] = yi
        out_t[n] = t
        out_p[n] = 1 if rows[i, 3] > 0 else -1
        n += 1
    return n


_NO_LUT = np.full(1, -1, np.int32)


def rows_to_events(rows: np.ndarray, t0_us: int, t1_us: int, lut: np.ndarray | None, height: int, width: int) -> Events:
    """MVSEC event rows (N, 4) float64 x, y, t [s], p, sorted by t -> Events with t0 < t <= t1.

    One pass: seconds become integer microseconds, and with ``lut`` (an (H, W, 2) table or,
    faster, its :func:`pack_lut` form) the events are rectified, rounded and dropped when
    they leave the image (without, only bounds-checked).
    """
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    n = len(rows)
    out = Events(np.empty(n, np.int16), np.empty(n, np.int16), np.empty(n, np.int64), np.empty(n, np.int8))
    use_lut = lut is not None
    if not use_lut:
        packed = _NO_LUT
    elif lut.ndim == 1 and lut.dtype == np.int32:
        packed = lut
    else:
        packed = pack_lut(lut, height, width)
    k = _rows_kernel(rows, int(t0_us), int(t1_us), packed, use_lut, height, width, out.x, out.y, out.t, out.p)
    return out[:k]
