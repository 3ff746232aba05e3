"""Write recordings in the exact MVSEC HDF5 layout (used by the simulator and the converters).

``<name>_data.hdf5``: ``davis/{left,right}/events`` (N, 4) float64 x, y, t [s], p +-1;
``image_raw`` (N, H, W) uint8 with ``image_raw_ts`` and ``image_raw_event_inds``; ``imu``
(N, 6) with ``imu_ts``. ``<name>_gt.hdf5``: ``davis/{left,right}/depth_image_{raw,rect}``
(N, H, W) float32 metres, NaN invalid, with ``_ts``; ``davis/left/{pose,odometry}`` (N, 4, 4)
with ``_ts``. Both files are written under temporary names and renamed on close, so an
interrupted run leaves nothing half-written. Root attributes ``sensor_height``/``sensor_width``
record the sensor size for recordings that have no images (converted ones).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import h5py
import numpy as np

from evstereo.fileio import publish
from evstereo.geometry import CAMERAS

EVENT_CHUNK_ROWS = 1 << 16


def _append(group: h5py.Group, name: str, data: np.ndarray, dtype, chunk_rows: int) -> None:
    data = np.asarray(data, dtype=dtype)
    if name not in group:
        chunks = (max(1, min(chunk_rows, 1 << 20)),) + data.shape[1:]
        group.create_dataset(name, shape=(0,) + data.shape[1:], maxshape=(None,) + data.shape[1:],
                             dtype=dtype, chunks=chunks)
    ds = group[name]
    if len(data) == 0:
        return
    n = ds.shape[0]
    ds.resize(n + len(data), axis=0)
    ds[n:] = data


class MVSECWriter:
    """Stream events, images, IMU, depth and poses into MVSEC-layout files."""

    def __init__(self, data_path: str | os.PathLike, gt_path: str | os.PathLike | None = None,
                 height: int = 260, width: int = 346, attrs: dict | None = None):
        self.data_path = Path(data_path)
        self.gt_path = None if gt_path is None else Path(gt_path)
        self.height, self.width = height, width
        self._tmp: dict[Path, Path] = {}
        self.data = self._open(self.data_path)
        self.data.attrs["sensor_height"] = height
        self.data.attrs["sensor_width"] = width
        for k, v in (attrs or {}).items():
            self.data.attrs[k] = v
        self.gt = self._open(self.gt_path) if self.gt_path is not None else None
        self._last_t = {c: -np.inf for c in CAMERAS}

    def _open(self, final: Path) -> h5py.File:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        self._tmp[final] = Path(tmp)
        f = h5py.File(tmp, "w")
        for c in CAMERAS:
            f.require_group(f"davis/{c}")
        return f

    def add_events(self, camera: str, x: np.ndarray, y: np.ndarray, t_s: np.ndarray, p: np.ndarray) -> None:
        """Append events (t in seconds, sorted, after all earlier ones; p +-1 or 0/1)."""
        t_s = np.asarray(t_s, np.float64)
        if len(t_s) == 0:
            return
        if t_s[0] < self._last_t[camera] or np.any(np.diff(t_s) < 0):
            raise ValueError(f"events for {camera} must be appended in time order")
        self._last_t[camera] = t_s[-1]
        p = np.where(np.asarray(p) > 0, 1.0, -1.0)
        rows = np.stack([np.asarray(x, np.float64), np.asarray(y, np.float64), t_s, p], 1)
        _append(self.data[f"davis/{camera}"], "events", rows, np.float64, EVENT_CHUNK_ROWS)

    def add_images(self, camera: str, images: np.ndarray, ts_s: np.ndarray) -> None:
        """Append APS frames (N, H, W) uint8; their event indices are filled in on close."""
        g = self.data[f"davis/{camera}"]
        _append(g, "image_raw", images, np.uint8, 8)
        _append(g, "image_raw_ts", ts_s, np.float64, 4096)

    def add_imu(self, camera: str, imu: np.ndarray, ts_s: np.ndarray) -> None:
        """Append IMU rows (N, 6): linear acceleration xyz, angular velocity xyz."""
        g = self.data[f"davis/{camera}"]
        _append(g, "imu", imu, np.float64, 4096)
        _append(g, "imu_ts", ts_s, np.float64, 4096)

    def add_depth(self, camera: str, kind: str, depth: np.ndarray, ts_s: np.ndarray) -> None:
        """Append depth frames; ``kind`` is 'raw' or 'rect' (metres, NaN invalid)."""
        if self.gt is None:
            raise ValueError("this writer has no ground-truth file")
        if kind not in ("raw", "rect"):
            raise ValueError("kind must be 'raw' or 'rect'")
        g = self.gt[f"davis/{camera}"]
        _append(g, f"depth_image_{kind}", depth, np.float32, 4)
        _append(g, f"depth_image_{kind}_ts", ts_s, np.float64, 4096)

    def add_pose(self, name: str, poses: np.ndarray, ts_s: np.ndarray, camera: str = "left") -> None:
        """Append (N, 4, 4) poses under ``pose`` or ``odometry`` of the GT file."""
        if self.gt is None:
            raise ValueError("this writer has no ground-truth file")
        g = self.gt[f"davis/{camera}"]
        _append(g, name, poses, np.float64, 4096)
        _append(g, f"{name}_ts", ts_s, np.float64, 4096)

    def _fill_image_event_inds(self) -> None:
        for c in CAMERAS:
            g = self.data[f"davis/{c}"]
            if "image_raw_ts" not in g:
                continue
            ts = g["image_raw_ts"][:]
            inds = np.zeros(len(ts), np.int64)
            if "events" in g and g["events"].shape[0]:
                ev = g["events"]
                step = 1 << 20
                found = np.zeros(len(ts), bool)
                for s in range(0, ev.shape[0], step):
                    t = ev[s : s + step, 2]
                    pos = np.searchsorted(t, ts, side="left")
                    hit = (~found) & (pos < len(t))
                    inds[hit] = s + pos[hit]
                    found |= hit
                inds[~found] = ev.shape[0] - 1
            _append(g, "image_raw_event_inds", inds, np.int64, 4096)

    def close(self) -> None:
        """Finish both files and move them to their final names."""
        self._fill_image_event_inds()
        for f in (self.data, self.gt):
            if f is not None:
                f.close()
        for final, tmp in self._tmp.items():
            publish(tmp, final)
        self._tmp.clear()

    def abort(self) -> None:
        """Drop the temporary files; existing files under the final names stay untouched."""
        for f in (self.data, self.gt):
            if f is not None and f.id.valid:
                f.close()
        for tmp in self._tmp.values():
            tmp.unlink(missing_ok=True)
        self._tmp.clear()

    def __enter__(self) -> "MVSECWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def companion_paths(data_path: str | os.PathLike) -> tuple[str, Path, Path]:
    """(name, gt file, calibration folder) that belong to an MVSEC-layout data file.

    ``DIR/NAME_data.hdf5`` -> ``DIR/NAME_gt.hdf5`` and ``DIR/NAME_calib/`` (MVSEC's naming);
    any other ``DIR/NAME.hdf5`` -> ``DIR/NAME_gt.hdf5`` and ``DIR/NAME_calib/``.
    """
    data_path = Path(data_path)
    stem = data_path.name
    for suffix in (".hdf5", ".h5"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    name = stem[: -len("_data")] if stem.endswith("_data") else stem
    return name, data_path.with_name(f"{name}_gt.hdf5"), data_path.with_name(f"{name}_calib")


def calibration_file(calib_dir: Path, name: str) -> Path:
    """MVSEC's name for the camchain file inside a calibration folder."""
    return calib_dir / f"camchain-imucam-{name}.yaml"
