"""DSEC stereo sequences (Gehrig et al., RA-L 2021) as a ``Recording``.

A DSEC sequence folder (for example ``zurich_city_11_a``) holds::

    events/{left,right}/events.h5       events/{x,y,t,p}, t_offset, ms_to_idx (Blosc, hdf5plugin)
    events/{left,right}/rectify_map.h5  rectify_map (480, 640, 2): rectified x, y per raw pixel
    disparity/event/NNNNNN.png          uint16 disparity * 256 of the rectified left camera, 0 invalid
    disparity/timestamps.txt            one absolute timestamp (us) per disparity PNG
    calibration/cam_to_cam.yaml         intrinsics (camRect0 ...) and disparity_to_depth: cams_03 = Q

DSEC stores ``t`` in microseconds relative to ``t_offset``; this reader returns absolute
times ``t + t_offset`` (the clock of ``timestamps.txt``). ``ms_to_idx[k]`` is the index of
the first event with relative ``t >= k * 1000``, so any window is read as one small slice of
the (compressed) file: a whole events file is never loaded.

Q is OpenCV's disparity-to-depth matrix of the rectified event pair: Q[2, 3] = f and
Q[3, 2] = 1 / B, so depth = f * B / disparity (DSEC's Q[3, 3] is 0: both rectified cameras
share their principal point).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import cv2
import h5py
import numpy as np

from evstereo.errors import InputError
from evstereo.events.arrays import Events
from evstereo.events.rectify import rectify_events
from evstereo.fileio import read_yaml
from evstereo.geometry import CAMERAS, StereoCalibration, disparity_to_depth
from evstereo.recordings.recording import Recording

DSEC_HEIGHT, DSEC_WIDTH = 480, 640
EVENT_FIELDS = ("x", "y", "t", "p")
# Events sampled at open time to check that timestamps increase (cheaply: a few chunks only).
_SORT_CHECK_SAMPLES = 16


def _open_h5(path: Path) -> h5py.File:
    """Open an HDF5 file for reading (Blosc filters registered), or raise InputError."""
    import hdf5plugin  # noqa: F401  (registers the Blosc filter DSEC files are compressed with)

    if not path.is_file():
        raise InputError(path, "file does not exist")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"is not a readable HDF5 file (truncated or corrupt?): {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def _read(path: Path, ds: h5py.Dataset, sel=()) -> np.ndarray:
    """Read ``ds[sel]``; a damaged file becomes an InputError naming it."""
    try:
        return ds[sel]
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        raise InputError(path, f"dataset '{ds.name}' cannot be read (truncated or corrupt file?): {_short(exc)}") from None


def parse_cam_to_cam(path: str | os.PathLike) -> dict:
    """Read DSEC's ``cam_to_cam.yaml``: focal f, f*B, principal point and size of the rectified event pair."""
    path = Path(path)
    doc = read_yaml(path, "calibration file")
    if not isinstance(doc, dict):
        raise InputError(path, "is not a DSEC cam_to_cam calibration (not a YAML mapping)")
    try:
        Q = np.asarray(doc["disparity_to_depth"]["cams_03"], dtype=np.float64)
    except (KeyError, TypeError):
        raise InputError(path, "has no 'disparity_to_depth: cams_03' matrix (Q of the event cameras)") from None
    except ValueError:
        raise InputError(path, "'disparity_to_depth: cams_03' is not a numeric 4x4 matrix") from None
    if Q.shape != (4, 4) or not np.all(np.isfinite(Q)):
        raise InputError(path, f"'disparity_to_depth: cams_03' must be a finite 4x4 matrix, got shape {Q.shape}")
    f = float(Q[2, 3])
    inv_b = abs(float(Q[3, 2]))
    if f <= 0 or inv_b == 0:
        raise InputError(path, f"'disparity_to_depth: cams_03' has focal Q[2,3]={f} and 1/B Q[3,2]={Q[3, 2]}; "
                               "both must be non-zero (focal positive)")
    height, width = DSEC_HEIGHT, DSEC_WIDTH
    rect = (doc.get("intrinsics") or {}).get("camRect0") if isinstance(doc.get("intrinsics"), dict) else None
    if isinstance(rect, dict) and "resolution" in rect:
        try:
            width, height = (int(v) for v in rect["resolution"])
        except (TypeError, ValueError):
            raise InputError(path, "'intrinsics: camRect0: resolution' must be [width, height]") from None
    return {
        "Q": Q,
        "focal": f,
        "baseline": 1.0 / inv_b,
        "fB": f / inv_b,
        "cx": float(-Q[0, 3]),
        "cy": float(-Q[1, 3]),
        "height": height,
        "width": width,
    }


def calibration_from_cam_to_cam(info: dict) -> StereoCalibration:
    """Rectified, undistorted pair with DSEC's focal, baseline and principal point."""
    calib = StereoCalibration.identity(height=info["height"], width=info["width"], fB=info["fB"], focal=info["focal"])
    for cam in (calib.left, calib.right):
        cam.K[0, 2] = cam.P[0, 2] = info["cx"]
        cam.K[1, 2] = cam.P[1, 2] = info["cy"]
    calib.source = "dsec cam_to_cam.yaml"
    return calib


class _EventFile:
    """One ``events.h5``: datasets, time index and offset, read in slices only."""

    def __init__(self, path: Path):
        self.path = path
        self.h5 = _open_h5(path)
        try:
            self._load()
        except BaseException:
            self.h5.close()
            raise

    def _load(self) -> None:
        h5, path = self.h5, self.path
        self.ds = {}
        for name in EVENT_FIELDS:
            key = f"events/{name}"
            if key not in h5 or not isinstance(h5[key], h5py.Dataset):
                raise InputError(path, f"has no dataset '{key}' (not a DSEC events file?)")
            ds = h5[key]
            if ds.ndim != 1:
                raise InputError(path, f"dataset '{key}' must be 1-D, has shape {ds.shape}")
            self.ds[name] = ds
        lengths = {name: ds.shape[0] for name, ds in self.ds.items()}
        if len(set(lengths.values())) != 1:
            raise InputError(path, f"event datasets have different lengths {lengths}")
        self.n = lengths["t"]
        if "ms_to_idx" not in h5:
            raise InputError(path, "has no dataset 'ms_to_idx' (the millisecond time index DSEC files carry)")
        ms = np.asarray(_read(path, h5["ms_to_idx"]), dtype=np.int64).ravel()
        if len(ms) and (ms[0] < 0 or ms[-1] > self.n or np.any(np.diff(ms) < 0)):
            raise InputError(path, "'ms_to_idx' is not a valid time index (it must increase and stay within the events)")
        self.ms_to_idx = ms
        self.t_offset = 0
        if "t_offset" in h5:
            off = np.asarray(_read(path, h5["t_offset"])).ravel()
            if off.size != 1 or not np.issubdtype(off.dtype, np.number):
                raise InputError(path, f"'t_offset' must be one number, has shape {h5['t_offset'].shape}")
            self.t_offset = int(off[0])
        if self.n:
            self.t_first = int(_read(path, self.ds["t"], 0))
            self.t_last = int(_read(path, self.ds["t"], self.n - 1))
            self._check_sorted_sample()
        else:
            self.t_first = self.t_last = 0

    def _check_sorted_sample(self) -> None:
        """Cheap monotonicity check: timestamps at a few ms_to_idx bins must agree with the index."""
        ms = self.ms_to_idx
        if self.t_last < self.t_first:
            raise InputError(self.path, f"timestamps are not sorted: the last event (t={self.t_last}) "
                                        f"is earlier than the first (t={self.t_first})")
        if len(ms) == 0:
            return
        ks = np.unique(np.linspace(0, len(ms) - 1, min(len(ms), _SORT_CHECK_SAMPLES)).astype(np.int64))
        prev = self.t_first
        for k in ks:
            i = int(ms[k])
            if i >= self.n:
                break
            t = int(_read(self.path, self.ds["t"], i))
            before = int(_read(self.path, self.ds["t"], i - 1)) if i > 0 else None
            # ms_to_idx[k] is the first event with t >= k ms: t[i] >= k ms > t[i - 1]
            if t < prev or t < k * 1000 or (before is not None and before >= k * 1000):
                raise InputError(self.path, f"timestamps are not sorted, or disagree with 'ms_to_idx', "
                                            f"near event {i} (ms {k}, t={t} us)")
            prev = t

    # ----------------------------------------------------------------------------------
    def _lower(self, r: int) -> int:
        """An index such that every event before it has relative t < r."""
        ms = self.ms_to_idx
        if r <= 0 or len(ms) == 0:
            return 0
        k = min(r // 1000, len(ms) - 1)
        return int(ms[k])

    def _upper(self, r: int) -> int:
        """An index such that every event from it on has relative t >= r."""
        ms = self.ms_to_idx
        if r <= 0:
            return 0
        k = -(-r // 1000)
        return int(ms[k]) if k < len(ms) else self.n

    def read(self, lo: int, hi: int) -> dict[str, np.ndarray]:
        out = {name: np.asarray(_read(self.path, self.ds[name], slice(lo, hi))) for name in EVENT_FIELDS}
        out["t"] = out["t"].astype(np.int64)
        return out

    def check_sorted(self, t: np.ndarray, start: int, prev: int | None = None) -> None:
        if prev is not None and len(t) and t[0] < prev:
            raise InputError(self.path, f"timestamps are not sorted: event {start} (t={int(t[0])} us) "
                                        f"is earlier than the one before it (t={prev} us)")
        bad = np.flatnonzero(np.diff(t) < 0)
        if len(bad):
            i = int(bad[0]) + 1
            raise InputError(self.path, f"timestamps are not sorted: event {start + i} (t={int(t[i])} us) "
                                        f"is earlier than the one before it (t={int(t[i - 1])} us)")

    def window(self, t0_abs: int, t1_abs: int) -> dict[str, np.ndarray]:
        """Raw events with t0 < t + t_offset <= t1 (t returned absolute)."""
        r0, r1 = int(t0_abs) - self.t_offset, int(t1_abs) - self.t_offset
        if self.n == 0 or r1 <= r0:
            return self.read(0, 0)
        lo, hi = self._lower(r0 + 1), self._upper(r1 + 1)
        if hi <= lo:
            return self.read(0, 0)
        t = np.asarray(_read(self.path, self.ds["t"], slice(lo, hi)), dtype=np.int64)
        self.check_sorted(t, lo)
        i0, i1 = np.searchsorted(t, [r0, r1], side="right")
        out = self.read(lo + int(i0), lo + int(i1))
        out["t"] += self.t_offset
        return out

    def close(self) -> None:
        if self.h5.id.valid:
            self.h5.close()


def _load_rectify_map(path: Path, height: int, width: int) -> np.ndarray:
    with _open_h5(path) as h5:
        if "rectify_map" not in h5 or not isinstance(h5["rectify_map"], h5py.Dataset):
            raise InputError(path, "has no dataset 'rectify_map'")
        ds = h5["rectify_map"]
        if ds.shape != (height, width, 2):
            raise InputError(path, f"'rectify_map' has shape {ds.shape}, expected {(height, width, 2)}")
        lut = np.asarray(_read(path, ds), dtype=np.float32)
    if not np.all(np.isfinite(lut)):
        raise InputError(path, "'rectify_map' holds non-finite values")
    return lut


class DSECRecording(Recording):
    """A DSEC sequence folder: rectified events of both event cameras and left disparity GT."""

    def __init__(self, path: str | os.PathLike, rectify: bool = True):
        self.path = Path(path)
        if not self.path.is_dir():
            raise InputError(self.path, "is not a DSEC sequence folder (folder does not exist)")
        if not (self.path / "events").is_dir():
            raise InputError(self.path, "is not a DSEC sequence folder (it has no events/ folder)")
        self.name = self.path.name
        self.rectify = rectify
        calib_path = self.path / "calibration" / "cam_to_cam.yaml"
        self._calib_path = calib_path
        if calib_path.is_file():
            info = parse_cam_to_cam(calib_path)
            self.calibration = calibration_from_cam_to_cam(info)
            self.height, self.width = info["height"], info["width"]
        else:
            self.calibration = None
            self.height, self.width = DSEC_HEIGHT, DSEC_WIDTH
        self._files: dict[str, _EventFile] = {}
        self._luts: dict[str, np.ndarray | None] = {}
        try:
            for cam in CAMERAS:
                folder = self.path / "events" / cam
                self._files[cam] = _EventFile(folder / "events.h5")
                self._luts[cam] = _load_rectify_map(folder / "rectify_map.h5", self.height, self.width) if rectify else None
            self._load_gt()
        except BaseException:
            self.close()
            raise

    # --- ground truth -------------------------------------------------------------------
    def _load_gt(self) -> None:
        disp_dir = self.path / "disparity"
        png_dir = disp_dir / "event"
        self._gt_ts = np.zeros(0, np.int64)
        self._gt_files: list[Path] = []
        if not png_dir.is_dir():
            return  # DSEC test sequences ship without disparity
        ts_path = disp_dir / "timestamps.txt"
        files = sorted(png_dir.glob("*.png"))
        if not ts_path.is_file():
            raise InputError(ts_path, "is missing (the disparity maps need their timestamps)")
        try:
            ts = np.loadtxt(ts_path, dtype=np.int64, comments="#", ndmin=1)
        except ValueError as exc:
            raise InputError(ts_path, f"is not a list of integer timestamps (us): {_short(exc)}") from None
        if len(ts) != len(files):
            raise InputError(ts_path, f"has {len(ts)} timestamps but {png_dir} holds {len(files)} disparity PNGs")
        bad = np.flatnonzero(np.diff(ts) <= 0)
        if len(bad):
            raise InputError(ts_path, f"timestamps must increase, but line {int(bad[0]) + 2} ({int(ts[bad[0] + 1])}) "
                                      f"is not after the line before ({int(ts[bad[0]])})")
        self._gt_ts, self._gt_files = ts, files

    def gt_timestamps(self) -> np.ndarray:
        return self._gt_ts

    def disparity(self, index: int) -> np.ndarray:
        """Left rectified disparity (px) of GT frame ``index``: PNG value / 256, NaN where 0."""
        path = self._gt_files[index]
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise InputError(path, "cannot be read as a PNG image (missing, truncated or not a PNG)")
        if img.ndim != 2 or img.dtype != np.uint16:
            raise InputError(path, f"must be a single-channel 16-bit disparity PNG, got {img.dtype} with shape {img.shape}")
        if img.shape != (self.height, self.width):
            raise InputError(path, f"disparity map has shape {img.shape}, expected {(self.height, self.width)}")
        disp = img.astype(np.float32) / np.float32(256.0)
        disp[img == 0] = np.nan
        return disp

    def depth(self, index: int) -> np.ndarray:
        """Left rectified depth (m) = fB / disparity, NaN invalid."""
        fB = self.fB
        if fB is None:
            raise InputError(self._calib_path, "is missing, so disparity cannot be turned into depth")
        return disparity_to_depth(self.disparity(index), fB)

    # --- events -------------------------------------------------------------------------
    def _file(self, camera: str) -> _EventFile:
        if camera not in CAMERAS:
            raise ValueError(f"camera must be 'left' or 'right', not {camera!r}")
        return self._files[camera]

    def _to_events(self, camera: str, raw: dict[str, np.ndarray]) -> Events:
        return rectify_events(raw["x"], raw["y"], raw["t"], raw["p"], self._luts[camera], self.height, self.width)

    def events(self, camera: str, t0_us: int, t1_us: int) -> Events:
        return self._to_events(camera, self._file(camera).window(t0_us, t1_us))

    def raw_events(self, camera: str, t0_us: int, t1_us: int) -> dict[str, np.ndarray]:
        """Unrectified events (x, y, t absolute us, p 0/1) of the window (t0, t1]."""
        return self._file(camera).window(t0_us, t1_us)

    def iter_events(self, camera: str, chunk_events: int = 1 << 20) -> Iterator[tuple[Events, int]]:
        """All (rectified) events of ``camera`` in file order, chunk by chunk: (events, raw count)."""
        f = self._file(camera)
        prev = None
        for lo in range(0, f.n, chunk_events):
            hi = min(f.n, lo + chunk_events)
            raw = f.read(lo, hi)
            f.check_sorted(raw["t"], lo, prev)
            prev = int(raw["t"][-1])
            raw["t"] += f.t_offset
            yield self._to_events(camera, raw), hi - lo

    def num_events(self, camera: str) -> int:
        return self._file(camera).n

    def time_range(self, camera: str) -> tuple[int, int]:
        f = self._file(camera)
        if f.n == 0:
            return 0, 0
        return f.t_first + f.t_offset, f.t_last + f.t_offset

    def close(self) -> None:
        for f in self._files.values():
            f.close()
