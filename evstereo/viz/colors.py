"""Colour coding for events, disparity/depth and errors (OpenCV BGR uint8 images).

Depth is coloured by inverse depth (the quantity stereo measures, evenly accurate in it), so
near objects are warm and far ones cool; invalid pixels are black. Every function has a
matching legend so a picture can be read without the code.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

CMAP = cv2.COLORMAP_TURBO


_EVENT_COLOURS = np.array([(255, 255, 255), (40, 40, 220), (220, 90, 30), (160, 40, 160)], np.uint8)


def event_image(x: np.ndarray, y: np.ndarray, p: np.ndarray, height: int, width: int) -> np.ndarray:
    """Events as a BGR picture: positive polarity red, negative blue, both magenta, none white."""
    code = np.zeros(height * width, np.uint8)  # bit 0: a positive event, bit 1: a negative one
    flat = np.asarray(y, np.int64) * width + np.asarray(x, np.int64)
    pos = np.asarray(p) > 0
    code[flat[pos]] = 1
    code[flat[~pos]] |= 2
    return _EVENT_COLOURS[code].reshape(height, width, 3)


def colorize_disparity(disparity: np.ndarray, max_disparity: float) -> np.ndarray:
    """Disparity (px, NaN or <= 0 invalid) -> BGR; 0 .. max_disparity spans the colour map."""
    d = np.asarray(disparity, np.float32)
    valid = np.isfinite(d) & (d > 0)
    v = np.clip(np.where(valid, d, 0) / max(max_disparity, 1e-6), 0, 1)
    img = cv2.applyColorMap((v * 255).astype(np.uint8), CMAP)
    img[~valid] = 0
    return img


def colorize_depth(depth: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """Depth (m, NaN invalid) -> BGR, coloured by inverse depth between min_depth and max_depth."""
    z = np.asarray(depth, np.float32)
    valid = np.isfinite(z) & (z > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(valid, 1.0 / z, 0)
    lo, hi = 1.0 / max_depth, 1.0 / min_depth
    v = np.clip((inv - lo) / (hi - lo), 0, 1)
    img = cv2.applyColorMap((v * 255).astype(np.uint8), CMAP)
    img[~valid] = 0
    return img


def colorize_error(error: np.ndarray, max_error: float = 3.0) -> np.ndarray:
    """Absolute error (px, NaN where not evaluated) -> BGR from black (0) to white-hot (max_error)."""
    e = np.asarray(error, np.float32)
    valid = np.isfinite(e)
    v = np.clip(np.where(valid, e, 0) / max_error, 0, 1)
    img = cv2.applyColorMap((v * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    img[~valid] = (60, 60, 60)
    return img


@functools.lru_cache(maxsize=8)
def depth_legend(height: int, min_depth: float, max_depth: float, width: int = 60) -> np.ndarray:
    """A vertical colour bar with depth labels (m), matching ``colorize_depth`` (cached, read-only)."""
    inv = np.linspace(1.0 / min_depth, 1.0 / max_depth, height, dtype=np.float32)[:, None]
    bar = colorize_depth(np.repeat(1.0 / inv, 16, axis=1), min_depth, max_depth)
    out = np.full((height, width, 3), 255, np.uint8)
    out[:, :16] = bar
    last_row = -100
    for z in _ticks(min_depth, max_depth):
        row = int(round((1.0 / min_depth - 1.0 / z) / (1.0 / min_depth - 1.0 / max_depth) * (height - 1)))
        row = min(max(row, 6), height - 3)
        if row - last_row < 12:  # far depths crowd together on an inverse scale: skip, don't overlap
            continue
        last_row = row
        cv2.line(out, (16, row), (20, row), (0, 0, 0), 1)
        cv2.putText(out, f"{z:g}m", (22, row + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1, cv2.LINE_AA)
    out.setflags(write=False)
    return out


def _ticks(lo: float, hi: float) -> list[float]:
    candidates = [0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50]
    return [c for c in candidates if lo <= c <= hi]


def label(img: np.ndarray, text: str) -> np.ndarray:
    """Write a caption in the top-left corner (on a copy) with a dark backing for contrast."""
    out = img.copy()
    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    cv2.rectangle(out, (0, 0), (w + 6, h + 8), (0, 0, 0), -1)
    cv2.putText(out, text, (3, h + 3), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out
