"""How far apart the two cameras see the scene: horizontal shifts between their event images.

Without ground truth or a calibration, the events themselves tell the typical disparity of a
recording: the left camera's event image, compared with the right one's shifted by s pixels,
correlates best at the disparity of whatever produced most events. ``shift_scores`` gives that
normalised correlation for every shift; ``best_shift`` the peak and whether it stands out;
``typical_disparity`` the median peak over windows spread across a recording.

Why windows of 250 ms: real sensors can be sparse (the real DVS128 pendulum has 500-1000
events per 50 ms); a longer window blurs a moving edge in both cameras alike, which the
correlation does not mind. Counts are clipped at 3 per pixel so a hot pixel cannot dominate,
and blurred by 1.5 px so a small vertical misalignment still correlates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from evstereo.recordings.recording import Recording

MIN_SCORE = 0.2  # a clear peak correlates at least this much ...
MIN_PROMINENCE = 0.1  # ... and this much above the median over all shifts
ESTIMATE_WINDOW_US = 250_000
ESTIMATE_WINDOWS = 12
MIN_CLEAR_WINDOWS = 3


def event_image(rec: "Recording", camera: str, t0_us: int, t1_us: int, clip: float = 3.0,
                sigma: float = 1.5) -> np.ndarray:
    """float32 (H, W): events of ``camera`` in (t0, t1] per pixel, clipped at ``clip``, blurred by ``sigma`` px."""
    ev = rec.events(camera, t0_us, t1_us)
    flat = ev.y.astype(np.intp) * rec.width + ev.x.astype(np.intp)
    img = np.bincount(flat, minlength=rec.height * rec.width).reshape(rec.height, rec.width).astype(np.float32)
    img = np.minimum(img, np.float32(clip))
    return cv2.GaussianBlur(img, (0, 0), sigma) if sigma > 0 else img


def shift_scores(left: np.ndarray, right: np.ndarray, max_shift: int, min_shift: int | None = None) -> dict[int, float]:
    """Normalised correlation of ``left`` with ``right`` moved s px to the right, for ``min_shift``
    (default ``-max_shift``) <= s <= ``max_shift``, over the columns both images cover at every
    shift (so every score uses the same pixels)."""
    w = left.shape[1]
    hi = int(max_shift)
    lo = -hi if min_shift is None else int(min_shift)
    if not (lo < hi and hi > 0 and hi - min(lo, 0) < w):
        raise ValueError(f"shifts {lo}..{hi} leave no column to compare in images {w} px wide")
    a = left[:, max(hi, 0):w + min(lo, 0)]
    a = a - a.mean()
    aa = float((a * a).sum())
    scores = {}
    for s in range(lo, hi + 1):
        b = right[:, max(hi, 0) - s:w + min(lo, 0) - s]
        b = b - b.mean()
        den = float(np.sqrt(aa * float((b * b).sum())))
        scores[s] = float((a * b).sum() / den) if den > 0 else 0.0
    return scores


def best_shift(scores: dict[int, float]) -> dict:
    """``{"shift_px", "score", "clear"}`` of the highest score; clear: it correlates at least
    MIN_SCORE, stands MIN_PROMINENCE above the median score, and is not at either end of the range."""
    best = max(scores, key=scores.get)
    median = float(np.median(np.fromiter(scores.values(), float)))
    clear = (scores[best] > MIN_SCORE and scores[best] - median > MIN_PROMINENCE
             and min(scores) < best < max(scores))
    return {"shift_px": int(best), "score": round(scores[best], 3), "clear": bool(clear)}


def window_shift(rec: "Recording", t1_us: int, window_us: int, max_shift: int, min_shift: int | None = None,
                 clip: float = 3.0) -> dict | None:
    """``best_shift`` of the two cameras' event images over (t1 - window, t1] (shifts as in
    ``shift_scores``), or None when a camera has no event there."""
    left, right = (event_image(rec, c, t1_us - window_us, t1_us, clip) for c in ("left", "right"))
    if left.max() == 0 or right.max() == 0:
        return None
    return best_shift(shift_scores(left, right, max_shift, min_shift))


def common_span(rec: "Recording", window_us: int) -> tuple[int, int] | None:
    """(first, last) us of the time both cameras recorded, or None when a camera has no events
    or that time is shorter than ``window_us``."""
    if rec.empty_cameras():
        return None
    (a0, a1), (b0, b1) = rec.time_range("left"), rec.time_range("right")
    lo, hi = max(a0, b0), min(a1, b1)
    return (lo, hi) if hi - lo >= window_us else None


def typical_disparity(rec: "Recording", windows: int = ESTIMATE_WINDOWS, window_us: int = ESTIMATE_WINDOW_US,
                      max_shift: int | None = None) -> float | None:
    """The median clear positive shift (px) over ``windows`` windows spread evenly across the time
    both cameras recorded; None when fewer than MIN_CLEAR_WINDOWS windows have a clear one (too
    few events, no texture, or the cameras swapped). Shifts from -1/16 to ``max_shift`` (default
    3/8) of the width are compared: a short negative side, enough to see a peak at 0."""
    span = common_span(rec, window_us)
    if span is None:
        return None
    lo, hi = span
    most = max_shift or max(2, rec.width * 3 // 8)
    least = -max(2, rec.width // 16)
    ends = np.linspace(lo + window_us, hi, windows).astype(np.int64)
    found = []
    for t1 in np.unique(ends):
        best = window_shift(rec, int(t1), window_us, most, least)
        if best is not None and best["clear"] and best["shift_px"] > 0:
            found.append(best["shift_px"])
    if len(found) < MIN_CLEAR_WINDOWS:
        return None
    return float(np.median(found))
