"""The Recording interface every reader implements (MVSEC, DSEC, converted files), and
``open_recording``, which picks the reader from what a path holds.

A Recording gives, per camera, rectified in-bounds events for any window (t0, t1] in
microseconds, and for the rectified left camera the ground-truth depth/disparity frames with
their timestamps. Training batches and the live engine both read through this interface.
"""

from __future__ import annotations

import abc
import os
from pathlib import Path

import numpy as np

from evstereo.errors import InputError
from evstereo.events.arrays import Events
from evstereo.events.input_spec import DEFAULT_WINDOW_US
from evstereo.geometry import CAMERAS, StereoCalibration, depth_to_disparity
from evstereo.recordings import shift

# MVSEC peers treat disparities above this (depth below 0.55 m) as invalid (docs/method.md §6.2).
MVSEC_MAX_VALID_DISPARITY = 36.3
# Beyond these a recording's clock was almost surely read in the wrong unit (e.g. microseconds
# as seconds: 10 s become 116 days), or one event lies far from the others.
PLAUSIBLE_MAX_DURATION_S = 86_400.0
PLAUSIBLE_MAX_RATE = 1e9  # events/s per camera, averaged over the recording
PLAUSIBLE_MIN_RATE = 1.0


def plausibility_warnings(what: str, counts: dict[str, int], ranges_s: dict[str, tuple[float, float]],
                          unit_hint: str) -> list[str]:
    """Warnings for a recording that is most likely misread: a camera without events, a span
    longer than a day, or an average event rate that no event camera produces.

    ``counts``/``ranges_s``: events and (first, last) time in seconds per camera;
    ``unit_hint`` ends the time warnings, e.g. "the timestamps were read as s (--time-unit s);
    if they are in another unit, pass --time-unit ms, us or ns" (the converter).
    """
    out = []
    empty = [c for c in CAMERAS if counts.get(c, 0) == 0]
    if len(empty) == 1:
        full = CAMERAS[1 - CAMERAS.index(empty[0])]
        out.append(f"{what}: the {empty[0]} camera has no events (only the {full} camera has): "
                   "stereo depth needs both cameras")
    spans = [ranges_s[c] for c in CAMERAS if counts.get(c, 0) > 0]
    if not spans:
        return out
    start, end = min(r[0] for r in spans), max(r[1] for r in spans)
    if end - start > PLAUSIBLE_MAX_DURATION_S:
        out.append(f"{what}: the events span {_duration(end - start)} ({start:.6g} .. {end:.6g} s), not a plausible "
                   f"recording: {unit_hint} (or one event has a far outlying timestamp)")
        return out
    for c in CAMERAS:
        n = counts.get(c, 0)
        if n < 1000:
            continue
        t0, t1 = ranges_s[c]
        rate = n / (t1 - t0) if t1 > t0 else float("inf")
        if rate > PLAUSIBLE_MAX_RATE:
            out.append(f"{what}: the {c} camera has {n:,} events in {t1 - t0:.3g} s ({rate:.3g} events/s), more than "
                       f"any event camera produces: {unit_hint}")
        elif rate < PLAUSIBLE_MIN_RATE:
            out.append(f"{what}: the {c} camera has {n:,} events over {_duration(t1 - t0)} (under one event per "
                       f"second): {unit_hint}")
    return out


def _duration(seconds: float) -> str:
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds:.3g} s"


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

    def empty_cameras(self) -> list[str]:
        """The cameras that have no events (a mono recording has one)."""
        return [c for c in CAMERAS if self.num_events(c) == 0]

    def check_stereo(self) -> None:
        """Raise InputError naming the recording unless both cameras have events.

        Call it before running stereo depth: a mono recording (AEDAT4, one text file without
        a camera column, or every event on camera 0) would give depth from nothing.
        """
        empty = self.empty_cameras()
        if len(empty) == 2:
            raise InputError(self.path, "holds no events in either camera")
        if empty:
            full = CAMERAS[1 - CAMERAS.index(empty[0])]
            raise InputError(self.path, f"has no events for the {empty[0]} camera (only the {full} camera has events: "
                                        "a mono recording?); stereo depth needs both cameras")

    def warnings(self) -> list[str]:
        """Plausibility warnings (one sentence each): a camera without events, a time span of
        days, an impossible event rate. Empty for a sound recording."""
        counts = {c: self.num_events(c) for c in CAMERAS}
        ranges = {c: tuple(v / 1e6 for v in self.time_range(c)) for c in CAMERAS}
        return plausibility_warnings(str(self.path), counts, ranges,
                                     "its timestamps were probably converted with the wrong --time-unit")

    def stereo_shift(self, window_us: int = DEFAULT_WINDOW_US, max_shift: int = 64) -> dict | None:
        """How far right of the right camera's events the left camera's lie, in one window at the
        middle of the recording: ``{"shift_px", "score", "clear"}``, or None without events.

        For a correctly ordered (rectified) pair the shift is the typical disparity, positive;
        a clear negative shift means left and right are swapped. ``score`` is the normalised
        correlation of the two event images at that shift; ``clear`` says it stands out.
        """
        span = shift.common_span(self, window_us)
        if span is None:
            return None
        t1 = (span[0] + span[1]) // 2 + window_us // 2
        return shift.window_shift(self, t1, window_us, min(max_shift, self.width // 4), clip=np.inf)

    def typical_disparity(self) -> float | None:
        """The recording's typical disparity in px, from its events alone (the median clear shift
        between the two cameras' event images over windows across the recording,
        ``evstereo.recordings.shift``), or None when the events do not show one. Computed once."""
        if not hasattr(self, "_typical_disparity"):
            self._typical_disparity = shift.typical_disparity(self)
        return self._typical_disparity

    def summary(self) -> dict:
        """Facts for `data_tools.inspect`: sensor, duration, events and rates, GT, calibration, warnings."""
        start, end = self.time_span()
        duration = (end - start) / 1e6
        cams = {}
        for c in CAMERAS:
            n = self.num_events(c)
            t0, t1 = self.time_range(c)
            span = (t1 - t0) / 1e6
            rate = n / span if span > 0 else 0.0
            cams[c] = {"events": n, "rate_mev_s": rate / 1e6, "t_first_us": t0, "t_last_us": t1,
                       # what a network's window sees on average (raw events, before rectification)
                       "events_per_pixel_per_window": rate * DEFAULT_WINDOW_US / 1e6 / (self.height * self.width)}
        gt = self.gt_timestamps()
        out = {
            "path": str(self.path),
            "format": type(self).__name__.replace("Recording", ""),
            "sensor": {"height": self.height, "width": self.width},
            "duration_s": duration,
            "cameras": cams,
            "gt_frames": int(len(gt)),
            "gt_rate_hz": float((len(gt) - 1) / ((gt[-1] - gt[0]) / 1e6)) if len(gt) > 1 and gt[-1] > gt[0] else 0.0,
            "warnings": self.warnings(),
            "stereo_shift": self.stereo_shift(),
            "typical_disparity_px": self.typical_disparity(),
        }
        sh = out["stereo_shift"]
        if sh is not None and sh["clear"] and sh["shift_px"] < 0:
            out["warnings"].append(f"{self.path}: the left camera's events match the right camera's shifted by "
                                   f"{sh['shift_px']} px; a correctly ordered stereo pair shifts them by a positive "
                                   "disparity, so left and right look swapped (swap the inputs; text with a camera column: "
                                   "--left-camera 1)")
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


def open_recording(path: str | os.PathLike, **kwargs) -> Recording:
    """Open any supported recording: an MVSEC-layout ``.hdf5`` (official, synthetic or
    converted) or a DSEC sequence folder."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist")
    if path.is_dir():
        if (path / "events" / "left" / "events.h5").exists():
            from evstereo.recordings.dsec import DSECRecording

            return DSECRecording(path, **kwargs)
        data = sorted(path.glob("*_data.hdf5"))
        if len(data) == 1:
            path = data[0]
        else:
            raise InputError(path, "folder holds neither a DSEC sequence (events/left/events.h5) nor exactly one *_data.hdf5")
    if path.suffix in (".hdf5", ".h5"):
        from evstereo.recordings.mvsec import MVSECRecording

        return MVSECRecording(path, **kwargs)
    raise InputError(path, "unsupported recording (expected an MVSEC-layout .hdf5 or a DSEC sequence folder; "
                           "convert other formats with `python -m data_tools.convert`)")
