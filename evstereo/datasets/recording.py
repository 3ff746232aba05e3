"""The Recording interface every reader implements (MVSEC, DSEC, converted files).

A Recording gives, per camera, rectified in-bounds events for any window (t0, t1] in
microseconds, and for the rectified left camera the ground-truth depth/disparity frames with
their timestamps. Training batches and the live engine both read through this interface.
"""

from __future__ import annotations

import abc
from pathlib import Path

import numpy as np

from evstereo.errors import InputError
from evstereo.events.arrays import Events
from evstereo.geometry import CAMERAS, StereoCalibration, depth_to_disparity

# MVSEC peers treat disparities above this (depth below 0.55 m) as invalid (PAPER.md section 6).
MVSEC_MAX_VALID_DISPARITY = 36.3


class Recording(abc.ABC):
    """A stereo event recording. Subclasses implement the abstract methods; times are int64 us."""

    path: Path
    name: str
    height: int
    width: int
    calibration: StereoCalibration | None

    # --- events -----------------------------------------------------------------------
    @abc.abstractmethod
    def events(self, camera: str, t0_us: int, t1_us: int) -> Events:
        """Rectified, in-image events of ``camera`` with t0 < t <= t1 (an empty window is fine)."""

    @abc.abstractmethod
    def num_events(self, camera: str) -> int:
        """Number of raw events stored for ``camera``."""

    @abc.abstractmethod
    def time_range(self, camera: str) -> tuple[int, int]:
        """(first, last) event timestamp of ``camera`` in us; (0, 0) when it has none."""

    # --- ground truth -----------------------------------------------------------------
    def gt_timestamps(self) -> np.ndarray:
        """Timestamps (int64 us) of the left camera's ground-truth frames; empty without GT."""
        return np.zeros(0, np.int64)

    def depth(self, index: int) -> np.ndarray:
        """Rectified left depth (m) of GT frame ``index``, float32 (H, W), NaN invalid."""
        raise InputError(self.path, "has no ground-truth depth")

    def depth_right(self, index: int) -> np.ndarray | None:
        """Rectified right depth at GT frame ``index``'s time (flip augmentation), or None if absent."""
        return None

    def disparity(self, index: int) -> np.ndarray:
        """Rectified left disparity (px) of GT frame ``index``, float32 (H, W), NaN invalid."""
        fB = self.fB
        if fB is None:
            raise InputError(self.path, "has no calibration (f*B unknown), so depth cannot become disparity")
        return depth_to_disparity(self.depth(index), fB)

    # --- derived ----------------------------------------------------------------------
    @property
    def fB(self) -> float | None:
        """f * baseline (px*m) of the rectified pair, or None when unknown."""
        if self.calibration is None or self.calibration.fB <= 0:
            return None
        return self.calibration.fB

    @property
    def has_gt(self) -> bool:
        return len(self.gt_timestamps()) > 0

    @property
    def sensor_size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.height, self.width

    def gt_index_at(self, t_us: int) -> int:
        """Index of the GT frame nearest in time to ``t_us`` (pairing by timestamp, never index)."""
        ts = self.gt_timestamps()
        if len(ts) == 0:
            raise ValueError(f"{self.path}: recording has no ground truth")
        i = int(np.searchsorted(ts, t_us))
        if i == len(ts) or (i > 0 and t_us - ts[i - 1] <= ts[i] - t_us):
            i -= 1
        return i

    def time_span(self) -> tuple[int, int]:
        """(start, end) in us over both cameras."""
        ranges = [self.time_range(c) for c in CAMERAS if self.num_events(c) > 0]
        if not ranges:
            return 0, 0
        return min(r[0] for r in ranges), max(r[1] for r in ranges)

    def summary(self) -> dict:
        """Facts for `data_tools.inspect`: sensor, duration, events and rates, GT, calibration."""
        start, end = self.time_span()
        duration = (end - start) / 1e6
        cams = {}
        for c in CAMERAS:
            n = self.num_events(c)
            t0, t1 = self.time_range(c)
            span = (t1 - t0) / 1e6
            cams[c] = {"events": n, "rate_mev_s": (n / span / 1e6) if span > 0 else 0.0, "t_first_us": t0, "t_last_us": t1}
        gt = self.gt_timestamps()
        out = {
            "path": str(self.path),
            "format": type(self).__name__.replace("Recording", ""),
            "sensor": {"height": self.height, "width": self.width},
            "duration_s": duration,
            "cameras": cams,
            "gt_frames": int(len(gt)),
            "gt_rate_hz": float((len(gt) - 1) / ((gt[-1] - gt[0]) / 1e6)) if len(gt) > 1 and gt[-1] > gt[0] else 0.0,
        }
        if self.calibration is not None:
            cal = self.calibration
            out["calibration"] = {
                "source": cal.source,
                "distortion": cal.left.distortion_model,
                "focal_px": cal.focal,
                "fB_px_m": cal.fB,
                "baseline_m": cal.baseline if cal.focal else None,
            }
        return out

    def close(self) -> None:
        """Release open files."""

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
