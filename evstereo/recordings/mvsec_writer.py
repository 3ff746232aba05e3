"""Write recordings in the exact MVSEC HDF5 layout (used by the simulator and the converters).

``<name>_data.hdf5``: ``davis/{left,right}/events`` (N, 4) float64 x, y, t [s], p +-1;
``image_raw`` (N, H, W) uint8 with ``image_raw_ts`` and ``image_raw_event_inds``; ``imu``
(N, 6) with ``imu_ts``. ``<name>_gt.hdf5``: ``davis/{left,right}/depth_image_{raw,rect}``
(N, H, W) float32 metres, NaN invalid, with ``_ts``; ``davis/left/{pose,odometry}`` (N, 4, 4)
with ``_ts``. Root attributes ``sensor_height``/``sensor_width`` record the sensor size for
recordings that have no images (converted ones).

Compression changes no dataset name, dtype or shape (readers decompress transparently):
APS frames and depth are gzip-compressed (lossless, readable by any HDF5 reader), one chunk
per frame; events optionally (``compress_events``) with Blosc LZ4HC + byte shuffle, lossless
and fast to decompress, which other programs read after ``import hdf5plugin``.

Both files are written under temporary names (:func:`evstereo.fileio.temp_path`) and renamed
on close, so an interrupted run leaves nothing half-written, and a run killed outright leaves
a temporary that the next write of the same file removes. Every dataset is written in whole
chunks straight to disk (no HDF5 chunk cache), so a full disk fails the very write that hit
it, as ``OSError(ENOSPC, ..., <final file name>)``, and the temporaries are removed.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from evstereo.errors import check_interrupted
from evstereo.fileio import check_writable, publish, temp_path
from evstereo.geometry import CAMERAS

EVENT_CHUNK_ROWS = 1 << 16  # rows per chunk of uncompressed events (2 MB)
# Compressed: 512 KB chunks, so a 50 ms window decompresses little more than it needs.
COMPRESSED_EVENT_CHUNK_ROWS = 1 << 14
# Off by default: decompressing costs a 50 ms window read about 0.2 ms at 0.8 M ev/s
# (simulated) to 0.6 ms at 1.6 M ev/s (random), 1.2-1.3x its time (benchmarks/reading.py
# measures both layouts); on, a recording's events take about 5x less disk.
COMPRESS_EVENTS = False
# byte shuffle: measured both smaller and about 1.8x faster to read than bit shuffle on events
_EVENT_FILTER = hdf5plugin.Blosc(cname="lz4hc", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)
_FRAME_FILTER = {"compression": "gzip", "compression_opts": 4}
_DEPTH_FILTER = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


def disk_error(exc: BaseException, path: str | os.PathLike) -> OSError:
    """An h5py write failure as ``OSError(errno, reason, path)`` naming the user's file.

    HDF5 reports the system error inside its message (``errno = 28``); without one the
    failure is reported as an I/O error with HDF5's first line.
    """
    code = getattr(exc, "errno", None)
    if not code:
        m = re.search(r"errno = (\d+)", str(exc))
        code = int(m.group(1)) if m else None
    if code:
        return OSError(code, os.strerror(code), str(path))
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return OSError(errno.EIO, f"write failed ({first})", str(path))


class _Series:
    """One growing dataset, written in whole chunks (rows are held until a chunk is full)."""

    def __init__(self, group: h5py.Group, name: str, dtype, row_shape: tuple, chunk_rows: int, filters: dict):
        self.group, self.name, self.dtype = group, name, np.dtype(dtype)
        self.row_shape, self.chunk_rows = tuple(row_shape), max(1, int(chunk_rows))
        self.pending: list[np.ndarray] = []
        self.held = 0
        if name in group:
            self.ds = group[name]
        else:
            self.ds = group.create_dataset(name, shape=(0,) + self.row_shape, maxshape=(None,) + self.row_shape,
                                           dtype=self.dtype, chunks=(self.chunk_rows,) + self.row_shape, **filters)

    def append(self, data: np.ndarray) -> None:
        data = np.asarray(data, dtype=self.dtype)
        if data.shape[1:] != self.row_shape:
            raise ValueError(f"{self.name}: rows of shape {data.shape[1:]}, expected {self.row_shape}")
        if len(data) == 0:
            return
        self.pending.append(data)
        self.held += len(data)
        if self.held >= self.chunk_rows:
            self._write(final=False)

    def _write(self, final: bool) -> None:
        if not self.held:
            return
        block = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        n_write = len(block) if final else len(block) // self.chunk_rows * self.chunk_rows
        rest = block[n_write:]
        self.pending, self.held = ([rest], len(rest)) if len(rest) else ([], 0)
        if n_write:
            n = self.ds.shape[0]
            self.ds.resize(n + n_write, axis=0)
            self.ds[n : n + n_write] = block[:n_write]

    def finish(self) -> None:
        self._write(final=True)

    @property
    def rows(self) -> int:
        return self.ds.shape[0] + self.held


class MVSECWriter:
    """Stream events, images, IMU, depth and poses into MVSEC-layout files.

    ``compress``: gzip APS frames and depth (lossless). ``compress_events``: Blosc LZ4HC for
    the events (default :data:`COMPRESS_EVENTS`).
    """

    def __init__(self, data_path: str | os.PathLike, gt_path: str | os.PathLike | None = None,
                 height: int = 260, width: int = 346, attrs: dict | None = None,
                 compress: bool = True, compress_events: bool | None = None):
        self.data_path = Path(data_path)
        self.gt_path = None if gt_path is None else Path(gt_path)
        self.height, self.width = height, width
        self.compress = bool(compress)
        self.compress_events = COMPRESS_EVENTS if compress_events is None else bool(compress_events)
        self._tmp: dict[Path, Path] = {}
        self._files: dict[Path, h5py.File] = {}
        self._series: dict[tuple[int, str], _Series] = {}
        self.data = self.gt = None
        try:
            for p in (self.data_path, self.gt_path):
                if p is not None:
                    check_writable(p)  # a read-only or full disk fails here, before any work
            self.data = self._open(self.data_path)
            self.data.attrs["sensor_height"] = height
            self.data.attrs["sensor_width"] = width
            for k, v in (attrs or {}).items():
                self.data.attrs[k] = v
            self.gt = self._open(self.gt_path) if self.gt_path is not None else None
        except BaseException as exc:
            self.abort()
            if isinstance(exc, RuntimeError) or (isinstance(exc, OSError) and exc.filename is None):
                raise self._error(exc, self.data_path if self.data is None else self.gt_path) from None
            raise
        self._last_t = {c: -np.inf for c in CAMERAS}

    def _open(self, final: Path) -> h5py.File:
        tmp = temp_path(final)
        self._tmp[final] = tmp
        # No chunk cache: whole chunks go straight to disk, so a failing write raises at once
        # instead of in a destructor, or at interpreter exit.
        f = h5py.File(tmp, "w", rdcc_nbytes=0)
        self._files[final] = f
        for c in CAMERAS:
            f.require_group(f"davis/{c}")
        return f

    def _error(self, exc: BaseException, final: Path | None) -> OSError:
        return disk_error(exc, final if final is not None else self.data_path)

    def _final_of(self, f: h5py.File) -> Path:
        return self.data_path if f is self.data else self.gt_path

    def _append(self, f: h5py.File, group: str, name: str, data, dtype, chunk_rows: int, filters: dict | None = None) -> None:
        data = np.asarray(data, dtype=dtype)
        key = (id(f), f"{group}/{name}")
        try:
            s = self._series.get(key)
            if s is None:
                s = self._series[key] = _Series(f[group], name, dtype, data.shape[1:], chunk_rows, filters or {})
            s.append(data)
        except (OSError, RuntimeError) as exc:
            raise self._error(exc, self._final_of(f)) from None

    def _add_event_rows(self, camera: str, rows: np.ndarray) -> None:
        if self.compress_events:
            self._append(self.data, f"davis/{camera}", "events", rows, np.float64, COMPRESSED_EVENT_CHUNK_ROWS,
                         _EVENT_FILTER)
        else:
            self._append(self.data, f"davis/{camera}", "events", rows, np.float64, EVENT_CHUNK_ROWS)

    def ensure_events(self, camera: str) -> None:
        """Create an empty events dataset for ``camera`` if it has none (readers expect both)."""
        self._add_event_rows(camera, np.zeros((0, 4)))

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
        self._add_event_rows(camera, rows)

    def add_images(self, camera: str, images: np.ndarray, ts_s: np.ndarray) -> None:
        """Append APS frames (N, H, W) uint8; their event indices are filled in on close."""
        g = f"davis/{camera}"
        self._append(self.data, g, "image_raw", images, np.uint8, 1, _FRAME_FILTER if self.compress else None)
        self._append(self.data, g, "image_raw_ts", ts_s, np.float64, 4096)

    def add_imu(self, camera: str, imu: np.ndarray, ts_s: np.ndarray) -> None:
        """Append IMU rows (N, 6): linear acceleration xyz, angular velocity xyz."""
        g = f"davis/{camera}"
        self._append(self.data, g, "imu", imu, np.float64, 4096)
        self._append(self.data, g, "imu_ts", ts_s, np.float64, 4096)

    def add_depth(self, camera: str, kind: str, depth: np.ndarray, ts_s: np.ndarray) -> None:
        """Append depth frames; ``kind`` is 'raw' or 'rect' (metres, NaN invalid)."""
        if self.gt is None:
            raise ValueError("this writer has no ground-truth file")
        if kind not in ("raw", "rect"):
            raise ValueError("kind must be 'raw' or 'rect'")
        g = f"davis/{camera}"
        self._append(self.gt, g, f"depth_image_{kind}", depth, np.float32, 1, _DEPTH_FILTER if self.compress else None)
        self._append(self.gt, g, f"depth_image_{kind}_ts", ts_s, np.float64, 4096)

    def add_pose(self, name: str, poses: np.ndarray, ts_s: np.ndarray, camera: str = "left") -> None:
        """Append (N, 4, 4) poses under ``pose`` or ``odometry`` of the GT file."""
        if self.gt is None:
            raise ValueError("this writer has no ground-truth file")
        g = f"davis/{camera}"
        self._append(self.gt, g, name, poses, np.float64, 4096)
        self._append(self.gt, g, f"{name}_ts", ts_s, np.float64, 4096)

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
            self._append(self.data, f"davis/{c}", "image_raw_event_inds", inds, np.int64, 4096)
            self._series[(id(self.data), f"davis/{c}/image_raw_event_inds")].finish()

    def close(self) -> None:
        """Finish both files and move them to their final names (on failure: remove them)."""
        if not self._files:
            return
        current = self.data_path
        try:
            for (fid, _), s in self._series.items():
                current = self.data_path if fid == id(self.data) else self.gt_path
                s.finish()
            current = self.data_path
            self._fill_image_event_inds()
            for final, f in self._files.items():
                current = final
                f.close()
            check_interrupted()  # before the first rename: both files or neither
        except BaseException as exc:
            self.abort()
            if isinstance(exc, (OSError, RuntimeError)):
                raise self._error(exc, current) from None
            raise
        for final, tmp in self._tmp.items():
            publish(tmp, final)
        self._tmp.clear()
        self._files.clear()
        self._series.clear()

    def abort(self) -> None:
        """Drop the temporary files; existing files under the final names stay untouched.

        Safe after any failure, a full disk included: each temporary is emptied first, which
        frees the space HDF5 needs to close it (whatever it still writes lands in a file that
        is removed next), so no HDF5 file is left open for the interpreter's exit.
        """
        self._series.clear()
        for final, f in list(self._files.items()):
            tmp = self._tmp.pop(final, None)
            if tmp is not None:
                discard_hdf5(f, tmp)
        for tmp in self._tmp.values():  # temporaries whose file never opened
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
        self._tmp.clear()
        self._files.clear()

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


def discard_hdf5(f: h5py.File | None, path: Path) -> None:
    """Close ``f`` (however it went) and delete its file ``path``. Emptying the file first frees
    the space a full disk needs for HDF5's last writes, so no file is left open at interpreter
    exit (h5py would crash there)."""
    try:
        os.truncate(path, 0)
    except OSError:
        pass
    if f is not None:
        for _ in range(2):
            try:
                if f.id.valid:
                    f.close()
                break
            except Exception:  # noqa: BLE001  (HDF5 errors come as several types)
                continue
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def add_event_storage_options(parser) -> None:
    """``--compress-events`` / ``--no-compress-events`` (default: :data:`COMPRESS_EVENTS`), the
    same in every tool that writes recordings; the parsed value is ``compress_events``."""
    events = parser.add_mutually_exclusive_group()
    events.add_argument("--compress-events", dest="compress_events", action="store_true", default=None,
                        help="store the events compressed (Blosc LZ4HC + byte shuffle: about 5x smaller, window "
                             "reads 1.2-1.3x slower; other programs need `import hdf5plugin` to read them)")
    events.add_argument("--no-compress-events", dest="compress_events", action="store_false",
                        help="store the events uncompressed (the fastest window reads)")
