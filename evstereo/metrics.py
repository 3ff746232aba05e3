"""MVSEC stereo metrics, exactly as the peers compute them (docs/method.md §6.4).

Per frame, over the pixels whose ground truth is valid (finite, and inside the protocol's
disparity range — the caller's mask): mean absolute disparity error (px), 1-px accuracy
(share of pixels with error < 1 px), mean and median absolute depth error (m) with
depth = fB / disparity. Then each metric is averaged over frames (not over pixels), and
frames without a valid pixel are left out. Predicted disparities below 0.1 px are read as
0.1 px for depth (depth <= 200 m with MVSEC's fB), so a zero prediction is a large but
finite depth error — the public record does not say how the peers guard this division.

Names and units are the same everywhere a metric appears (``apps.evaluate``'s results.json
and console, ``apps.live_depth``'s timings.json, console and overlay; training logs them as
``val/<name>``): ``METRIC_NAMES`` with ``METRIC_UNITS``, the one place units are defined:

    mean_disparity_error   px
    one_pixel_accuracy     fraction (0..1, not percent)
    mean_depth_error       m
    median_depth_error     m

DSEC's disparity metrics (``DSEC_METRIC_NAMES``), over the same pixels, also per frame and
then averaged over frames (like the four above, so that both read the same frames alike):

    1pe                    % of pixels with |error| > 1 px
    2pe                    % of pixels with |error| > 2 px
    mae                    px, mean |error|
    rmse                   px, root of the mean squared error

``format_metrics`` writes them for people, with the same names and units.
``MetricAccumulator(dsec=True)`` collects both sets; ``coverage`` (the share of valid ground
truth a confidence mask keeps, pooled over pixels) is what evaluations over confident
pixels report beside their metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MIN_PRED_DISPARITY = 0.1
METRIC_NAMES = ("mean_disparity_error", "one_pixel_accuracy", "mean_depth_error", "median_depth_error")
DSEC_METRIC_NAMES = ("1pe", "2pe", "mae", "rmse")
METRIC_UNITS = {"mean_disparity_error": "px", "one_pixel_accuracy": "fraction",
                "mean_depth_error": "m", "median_depth_error": "m",
                "1pe": "%", "2pe": "%", "mae": "px", "rmse": "px"}


def format_metrics(values: dict, digits: int = 3) -> str:
    """``"mean_disparity_error 1.259 px, one_pixel_accuracy 0.737, ..."`` for the metrics present
    in ``values`` (None or missing ones are left out); fractions carry no unit word."""
    parts = []
    for name in (*METRIC_NAMES, *DSEC_METRIC_NAMES):
        v = values.get(name)
        if v is not None:
            unit = METRIC_UNITS[name]
            parts.append(f"{name} {v:.{digits}f}" + {"fraction": "", "%": " %"}.get(unit, f" {unit}"))
    return ", ".join(parts)


def _valid_pixels(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(prediction, ground truth) at the valid pixels as float64, non-finite predictions read as
    0 px; None when no pixel is valid. Valid: finite positive GT, and ``valid`` where given."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    mask = np.isfinite(gt) & (gt > 0)
    if valid is not None:
        mask &= np.asarray(valid, bool)
    if not mask.any():
        return None
    # select first, then widen: float64 only for the valid pixels
    p = pred[mask].astype(np.float64)
    p[~np.isfinite(p)] = 0.0
    return p, gt[mask].astype(np.float64)


def frame_metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None,
                  fB: float | None = None) -> dict[str, float] | None:
    """The MVSEC metrics of one frame (disparities in px); None when no pixel is valid."""
    sel = _valid_pixels(pred, gt, valid)
    if sel is None:
        return None
    p, g = sel
    err = np.abs(p - g)
    out = {"mean_disparity_error": float(err.mean()), "one_pixel_accuracy": float((err < 1.0).mean())}
    if fB is not None:
        depth_err = np.abs(fB / np.maximum(p, MIN_PRED_DISPARITY) - fB / g)
        out["mean_depth_error"] = float(depth_err.mean())
        out["median_depth_error"] = float(np.median(depth_err))
    return out


def dsec_frame_metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float] | None:
    """DSEC's metrics of one frame (``1pe``, ``2pe`` in %, ``mae``, ``rmse`` in px) over the same
    pixels as ``frame_metrics``; None when no pixel is valid."""
    sel = _valid_pixels(pred, gt, valid)
    if sel is None:
        return None
    err = np.abs(sel[0] - sel[1])
    return {"1pe": float(100.0 * (err > 1.0).mean()), "2pe": float(100.0 * (err > 2.0).mean()),
            "mae": float(err.mean()), "rmse": float(np.sqrt(np.mean(err * err)))}


def coverage(valid: np.ndarray, keep: np.ndarray) -> tuple[int, int]:
    """(valid GT pixels kept by the mask ``keep``, valid GT pixels): the two counts behind a
    coverage, so that it can be pooled over frames. Valid as in ``frame_metrics``' ``valid``."""
    valid = np.asarray(valid, bool)
    return int(np.count_nonzero(valid & np.asarray(keep, bool))), int(np.count_nonzero(valid))


@dataclass
class MetricAccumulator:
    """Collects per-frame metrics and averages them over frames (``dsec``: DSEC's too)."""

    fB: float | None = None
    frames: list[dict[str, float]] = field(default_factory=list)
    dsec: bool = False

    def update(self, pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float] | None:
        m = frame_metrics(pred, gt, valid, self.fB)
        if m is not None:
            if self.dsec:
                m.update(dsec_frame_metrics(pred, gt, valid))
            self.frames.append(m)
        return m

    def compute(self) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {"frames": len(self.frames)}
        for name in (*METRIC_NAMES, *(DSEC_METRIC_NAMES if self.dsec else ())):
            values = [f[name] for f in self.frames if name in f]
            out[name] = float(np.mean(values)) if values else None
        return out
