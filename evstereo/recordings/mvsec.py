"""MVSEC reader: ``<scene><n>_data.hdf5`` + ``<scene><n>_gt.hdf5`` (+ calibration) -> Recording.

Never loads a whole event dataset: a per-camera millisecond time index (built once by one
streaming pass, cached beside the data as ``<data file>.tindex.npz``, written atomically,
rebuilt when the data file changes: its size, mtime, event dataset shapes and a few sampled
event rows must all match) turns any window (t0, t1] into one contiguous HDF5 slice. Events
are rectified, rounded and out-of-image events dropped here, once. The same reader opens
converted and synthetic files, which share the layout, compressed or not (hdf5plugin
registers the Blosc filter that compressed event datasets use).
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers Blosc: compressed event datasets)
import numpy as np

from evstereo.errors import InputError
from evstereo.events.arrays import Events, seconds_to_us
from evstereo.events.rectify import pack_lut, rows_to_events
from evstereo.events.time_index import MAX_ABS_US, TimeIndex, UnsortedTimestamps
from evstereo.fileio import atomic_path
from evstereo.geometry import CAMERAS, StereoCalibration, load_calibration
from evstereo.recordings.mvsec_writer import calibration_file, companion_paths
from evstereo.recordings.recording import Recording

INDEX_VERSION = 2  # 2: sparse index (keys + starts), keyed on content
_SCAN_ROWS = 1 << 20
_MAX_BUFFER_ROWS = 1 << 22  # 128 MB: larger reads get a buffer of their own
_CONTENT_SAMPLES = 5  # event rows per camera (first, last and between) that key the cache


def _open_h5(path: Path) -> h5py.File:
    if not path.exists():
        raise InputError(path, "file does not exist")
    try:
        # A 1 MB chunk cache: it holds a compressed event chunk (512 KB) that two windows share,
        # while the larger uncompressed chunks (2 MB) bypass it. HDF5 2.0's default of 8 MB
        # caches those too, and the extra copy made uncompressed window reads 1.6x slower (README).
        return h5py.File(path, "r", rdcc_nbytes=1 << 20, rdcc_nslots=10007)
    except OSError:
        raise InputError(path, "is not a readable HDF5 file (truncated or corrupt?)") from None


def _needs_lut(cam) -> bool:
    """Identity cameras (already rectified, e.g. converted DSEC) skip the lookup."""
    if cam.event_map is not None:
        return True
    if cam.distortion_model != "none":
        return True
    return not (np.allclose(cam.R, np.eye(3)) and np.allclose(cam.P[:3, :3], cam.K))


class MVSECRecording(Recording):
    """A recording in MVSEC's HDF5 layout (official, synthetic or converted)."""

    def __init__(self, data_path: str | os.PathLike, gt_path: str | os.PathLike | None = None,
                 calibration: StereoCalibration | str | os.PathLike | None = None, cache_index: bool = True):
        self.path = Path(data_path)
        self.name, default_gt, calib_dir = companion_paths(self.path)
        self._data = _open_h5(self.path)
        try:
            self._events_ds = {c: self._event_dataset(c) for c in CAMERAS}
            self.calibration = self._load_calibration(calibration, calib_dir)
            self.height, self.width = self._sensor_size()
            self._luts = {}
            if self.calibration is not None:
                for c in CAMERAS:
                    cam = self.calibration.camera(c)
                    self._luts[c] = pack_lut(cam.rectify_lut(), self.height, self.width) if _needs_lut(cam) else None
            self._buffers = threading.local()  # per-thread read buffer, reused across windows
            gt_path = Path(gt_path) if gt_path is not None else default_gt
            self.gt_path = gt_path if gt_path.exists() else None
            self._gt = _open_h5(gt_path) if self.gt_path is not None else None
            self._gt_ts = self._read_gt_timestamps()
            self._gt_right_ts = self._read_right_timestamps()
            self._index = self._load_or_build_index(cache_index)
        except BaseException:
            self.close()
            raise

    # --- opening ----------------------------------------------------------------------
    def _event_dataset(self, camera: str) -> h5py.Dataset:
        key = f"davis/{camera}/events"
        if key not in self._data:
            raise InputError(self.path, f"has no dataset '{key}' (not an MVSEC-layout data file)")
        ds = self._data[key]
        if ds.ndim != 2 or ds.shape[1] != 4:
            raise InputError(self.path, f"dataset '{key}' has shape {ds.shape}, expected (N, 4) = x, y, t, p")
        if ds.dtype.kind != "f":
            raise InputError(self.path, f"dataset '{key}' has dtype {ds.dtype}, expected float64 (t in seconds)")
        return ds

    def _load_calibration(self, calibration, calib_dir: Path) -> StereoCalibration | None:
        if isinstance(calibration, StereoCalibration):
            return calibration
        if calibration is not None:
            return load_calibration(calibration)
        if calib_dir.is_dir():
            return load_calibration(calib_dir)
        if calibration_file(self.path.parent, self.name).exists():
            return load_calibration(calibration_file(self.path.parent, self.name))
        return None

    def _sensor_size(self) -> tuple[int, int]:
        size = None
        attrs = self._data.attrs
        if "sensor_height" in attrs and "sensor_width" in attrs:
            size = (int(attrs["sensor_height"]), int(attrs["sensor_width"]))
        elif "davis/left/image_raw" in self._data and self._data["davis/left/image_raw"].ndim == 3:
            size = tuple(int(v) for v in self._data["davis/left/image_raw"].shape[1:])
        if self.calibration is not None:
            cal_size = self.calibration.size
            if size is not None and size != cal_size:
                raise InputError(
                    self.calibration.source or self.path,
                    f"calibration resolution {cal_size[1]}x{cal_size[0]} does not match the recording's "
                    f"{size[1]}x{size[0]} sensor ({self.path.name})",
                )
            size = cal_size
        return size if size is not None else (260, 346)

    def _read_gt_timestamps(self) -> np.ndarray:
        if self._gt is None:
            return np.zeros(0, np.int64)
        key = "davis/left/depth_image_rect"
        if key not in self._gt or f"{key}_ts" not in self._gt:
            raise InputError(self.gt_path, f"has no dataset '{key}' with '{key}_ts'")
        ds, ts = self._gt[key], self._gt[f"{key}_ts"]
        if ds.ndim != 3 or tuple(ds.shape[1:]) != (self.height, self.width):
            raise InputError(self.gt_path, f"'{key}' has shape {ds.shape}, expected (N, {self.height}, {self.width})")
        if ts.shape != (ds.shape[0],):
            raise InputError(self.gt_path, f"'{key}_ts' has {ts.shape[0] if ts.ndim else 0} entries for {ds.shape[0]} frames")
        t_us = seconds_to_us(ts[:])
        if np.any(np.diff(t_us) < 0):
            raise InputError(self.gt_path, f"'{key}_ts' timestamps are not sorted")
        return t_us

    def _read_right_timestamps(self) -> np.ndarray | None:
        key = "davis/right/depth_image_rect_ts"
        if self._gt is None or key not in self._gt or "davis/right/depth_image_rect" not in self._gt:
            return None
        return seconds_to_us(self._gt[key][:])

    # --- time index -------------------------------------------------------------------
    def _index_path(self) -> Path:
        return self.path.with_name(self.path.name + ".tindex.npz")

    def _stamp(self) -> np.ndarray:
        st = self.path.stat()
        return np.array([INDEX_VERSION, st.st_size, st.st_mtime_ns], np.int64)

    def _content_key(self) -> np.ndarray:
        """Shapes and a few rows (first, last, evenly between) of both event datasets: a file
        rewritten with the same size and mtime but other events no longer matches its cache."""
        parts = []
        for c in CAMERAS:
            ds = self._events_ds[c]
            n = ds.shape[0]
            parts.append(np.array([n, ds.shape[1]], np.float64))
            if n:
                rows = np.unique(np.linspace(0, n - 1, _CONTENT_SAMPLES).astype(np.int64))
                try:
                    parts.append(np.asarray(ds[rows], np.float64).ravel())
                except (OSError, ValueError):
                    raise InputError(self.path, f"'davis/{c}/events' cannot be read (truncated or corrupt file?)") from None
        return np.concatenate(parts)

    def _load_or_build_index(self, cache: bool) -> dict[str, TimeIndex]:
        cache_path = self._index_path()
        stamp = self._stamp()
        content = self._content_key()
        if cache and cache_path.exists():
            try:
                with np.load(cache_path, allow_pickle=False) as z:
                    if (np.array_equal(z["stamp"], stamp)
                            and np.array_equal(z["content"], content, equal_nan=True)):
                        return {c: TimeIndex.from_arrays({k: z[f"{c}_{k}"] for k in ("keys", "starts", "meta")})
                                for c in CAMERAS}
            except (OSError, KeyError, ValueError, EOFError):
                pass  # stale, old-format or damaged cache: rebuild below
        index = {c: self._build_index(c) for c in CAMERAS}
        if cache:
            arrays = {"stamp": stamp, "content": content}
            for c, idx in index.items():
                arrays.update({f"{c}_{k}": v for k, v in idx.to_arrays().items()})
            try:
                with atomic_path(cache_path) as tmp:
                    with open(tmp, "wb") as fh:
                        np.savez(fh, **arrays)
            except (OSError, InputError):
                pass  # read-only folder, full disk, a folder in the way: keep the index in memory only
        return index

    def _build_index(self, camera: str) -> TimeIndex:
        """One streaming pass: millisecond index plus checks of order, time range and sensor bounds."""
        ds = self._events_ds[camera]
        n = ds.shape[0]
        key = f"davis/{camera}/events"
        max_s = MAX_ABS_US / 1e6

        def chunks():
            for s in range(0, n, _SCAN_ROWS):
                try:
                    rows = ds[s : s + _SCAN_ROWS]
                except OSError:
                    raise InputError(self.path, f"'{key}' cannot be read past event {s} (truncated file?)") from None
                x, y, t = rows[:, 0], rows[:, 1], rows[:, 2]
                bad = (x < 0) | (y < 0) | (x >= self.width) | (y >= self.height) | ~np.isfinite(t)
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise InputError(
                        self.path,
                        f"'{key}' event {s + i} at (x={x[i]:g}, y={y[i]:g}, t={t[i]:g}) lies outside the "
                        f"{self.width}x{self.height} sensor or has no valid time",
                    )
                far = np.flatnonzero(np.abs(t) > max_s)
                if len(far):
                    i = int(far[0])
                    raise InputError(self.path, f"'{key}' event {s + i} has t = {t[i]:g} s, too large for "
                                                "int64 microseconds (were the timestamps converted with the "
                                                "wrong unit?)")
                yield seconds_to_us(t)

        try:
            return TimeIndex.build(chunks(), n)
        except UnsortedTimestamps as exc:
            raise InputError(self.path, f"'{key}' timestamps are not sorted (they decrease at event {exc.index})") from None

    # --- Recording interface --------------------------------------------------------------
    def num_events(self, camera: str) -> int:
        return int(self._events_ds[camera].shape[0])

    def time_range(self, camera: str) -> tuple[int, int]:
        idx = self._index[camera]
        return (idx.t_first_us, idx.t_last_us) if idx.num_events else (0, 0)

    def _rows(self, camera: str, t0_us: int, t1_us: int) -> np.ndarray:
        """The stored rows of the coarse slice, read into a reused buffer (valid until this
        thread's next read: callers turn them into new arrays at once)."""
        lo, hi = self._index[camera].coarse_slice(t0_us, t1_us)
        if hi <= lo:
            return np.zeros((0, 4))
        n = hi - lo
        buf = getattr(self._buffers, camera, None)
        if n > _MAX_BUFFER_ROWS:  # a read of much of the file: do not keep that much memory
            buf = np.empty((n, 4), np.float64)
        elif buf is None or len(buf) < n:
            buf = np.empty((max(n, 1 << 16), 4), np.float64)  # fresh pages cost more than the copy
            setattr(self._buffers, camera, buf)
        rows = buf[:n]
        try:
            self._events_ds[camera].read_direct(rows, np.s_[lo:hi], np.s_[0:n])
            return rows
        except OSError:
            raise InputError(self.path, f"events of the {camera} camera cannot be read at {lo}..{hi} (truncated file?)") from None

    def raw_events(self, camera: str, t0_us: int, t1_us: int) -> Events:
        """Unrectified events with t0 < t <= t1, as stored (pixel coordinates of the raw sensor)."""
        return rows_to_events(self._rows(camera, t0_us, t1_us), t0_us, t1_us, None, self.height, self.width)

    def events(self, camera: str, t0_us: int, t1_us: int) -> Events:
        return rows_to_events(self._rows(camera, t0_us, t1_us), t0_us, t1_us, self._luts.get(camera),
                              self.height, self.width)

    def gt_timestamps(self) -> np.ndarray:
        return self._gt_ts

    def _depth_frame(self, key: str, index: int) -> np.ndarray:
        try:
            d = np.asarray(self._gt[key][index], np.float32)
        except OSError:
            raise InputError(self.gt_path, f"'{key}' frame {index} cannot be read (truncated file?)") from None
        if np.isinf(d).any() or (d < 0).any():
            raise InputError(self.gt_path, f"'{key}' frame {index} holds infinite or negative depth (NaN marks invalid pixels)")
        return d

    def depth(self, index: int) -> np.ndarray:
        if self._gt is None:
            raise InputError(self.path, "has no ground-truth file beside it (expected " + str(companion_paths(self.path)[1].name) + ")")
        return self._depth_frame("davis/left/depth_image_rect", index)

    def depth_right(self, index: int) -> np.ndarray | None:
        """Rectified right depth of GT frame ``index`` (for flip augmentation), or None if absent.

        Matched to the left frame by timestamp (within 1 ms), never by index.
        """
        ts = self._gt_right_ts
        if ts is None or len(ts) == 0:
            return None
        j = int(np.argmin(np.abs(ts - self._gt_ts[index])))
        if abs(int(ts[j]) - int(self._gt_ts[index])) > 1000:
            return None
        return self._depth_frame("davis/right/depth_image_rect", j)

    def depth_raw(self, camera: str, index: int) -> tuple[int, np.ndarray]:
        """(timestamp us, unrectified depth) of raw depth frame ``index`` of ``camera``."""
        key = f"davis/{camera}/depth_image_raw"
        if self._gt is None or key not in self._gt:
            raise InputError(self.gt_path or self.path, f"has no dataset '{key}'")
        return int(seconds_to_us(self._gt[f"{key}_ts"][index])), self._depth_frame(key, index)

    def close(self) -> None:
        for f in (getattr(self, "_data", None), getattr(self, "_gt", None)):
            if f is not None and f.id.valid:
                f.close()


def open_mvsec(data_path: str | os.PathLike, **kwargs) -> MVSECRecording:
    """Open an MVSEC-layout recording; warns when no calibration is found (events used as stored)."""
    rec = MVSECRecording(data_path, **kwargs)
    if rec.calibration is None:
        warnings.warn(f"{data_path}: no calibration found beside it; events are used unrectified", stacklevel=2)
    return rec
