"""``npz`` input: arrays ``left`` and ``right``, each (N, 4) = t [us], x, y, p (0/1).

As in the SpikingStereoMatching DVS128 recordings (128x128 unless ``sensor`` says otherwise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evstereo.errors import InputError
from evstereo.geometry import CAMERAS
from evstereo.recordings.convert.options import ConvertOptions, first_unsorted, polarity_ok
from evstereo.recordings.convert.sink import Sink, write_sorted

NPZ_DEFAULT_SENSOR = (128, 128)  # (width, height): DVS128


def _load_npz_camera(path: Path, npz, key: str) -> np.ndarray:
    if key not in npz.files:
        raise InputError(path, f"has no array '{key}' (expected arrays 'left' and 'right', each (N, 4) = t, x, y, p); "
                               f"found {sorted(npz.files)}")
    try:
        arr = npz[key]
    except Exception as exc:  # zlib.error, BadZipFile, ValueError, OSError: a damaged archive
        raise InputError(path, f"array '{key}' cannot be read (truncated or corrupt file?): {exc}") from None
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise InputError(path, f"array '{key}' has shape {arr.shape}, expected (N, 4) = t, x, y, p")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(path, f"array '{key}' has dtype {arr.dtype}, expected numbers")
    return arr


def convert_npz(inputs: list[Path], out: Path, opts: ConvertOptions) -> dict:
    if len(inputs) != 1:
        raise InputError(None, f"the npz format takes one file, not {len(inputs)}")
    path = inputs[0]
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x93NUMPY"):
        raise InputError(path, "is a single .npy array, not an .npz archive with arrays 'left' and 'right'")
    if not magic.startswith(b"PK"):
        raise InputError(path, "is not an .npz archive (a zip of .npy arrays 'left' and 'right')")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:  # BadZipFile, OSError, EOFError, ValueError: a damaged archive
        raise InputError(path, f"is not a readable .npz archive (truncated or corrupt?): {exc}") from None
    with npz:
        arrays = {c: _load_npz_camera(path, npz, c) for c in CAMERAS}
    sensor = opts.sensor or NPZ_DEFAULT_SENSOR
    source = "given with --sensor" if opts.sensor else "assumed for npz input (DVS128)"
    unit = opts.time_unit
    with Sink("npz", inputs, out, gt=False, sensor=sensor, sensor_source=source, opts=opts) as sink:
        for cam in CAMERAS:
            a = arrays[cam]
            t, x, y, p = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
            if len(a) == 0:
                continue
            if not np.issubdtype(a.dtype, np.integer):
                bad = np.flatnonzero((x != np.floor(x)) | (y != np.floor(y)))
                if len(bad):
                    raise InputError(path, f"{cam} event {int(bad[0])} has a coordinate that is not a whole pixel number")
            bad = np.flatnonzero(~polarity_ok(p))
            if len(bad):
                raise InputError(path, f"{cam} event {int(bad[0])} has polarity {p[bad[0]]}; expected 0/1 or -1/+1")
            bad = np.flatnonzero(~np.isfinite(t.astype(np.float64)))
            if len(bad):
                raise InputError(path, f"{cam} event {int(bad[0])} has time {t[bad[0]]}, not a finite number")
            dx, dy = getattr(opts, f"{cam}_offset")
            x, y = x.astype(np.int64) + dx, y.astype(np.int64) + dy
            sink.check_coords(cam, x, y, path)
            i = first_unsorted(t)
            if i is not None:
                if not opts.sort:
                    raise InputError(path, f"timestamps of the {cam} camera are not sorted: event {i} (t={t[i]}) is "
                                           f"earlier than event {i - 1} (t={t[i - 1]}); pass --sort to sort them")
                order = np.argsort(t, kind="stable")
                t, x, y, p = t[order], x[order], y[order], p[order]
            write_sorted(sink, cam, t, x, y, p, unit, opts)
        sink.finish()
    return sink.summary()
