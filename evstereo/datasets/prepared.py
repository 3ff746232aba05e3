"""Cache of per-frame representations for fast training (``data_tools.prepare``).

One HDF5 file per (recording, frames, SampleSpec), named by :func:`cache_path`
(``<stem>-<key>.h5``: ``data_tools.prepare`` writes that name and the DataModule reads it):
``left``/``right`` [N, T, C, H, W] (int8 for sbt/spikes, float16 for voxel/counts,
LZF-compressed, one chunk per frame), ``disparity`` [N, H, W] float32 (0 invalid), ``valid``
bool, optional ``disparity_right``/``valid_right``, ``frames`` and ``t_us``. The file is
filled under a ``.partial`` name whose ``done`` attribute counts finished frames, so an
interrupted (or killed) run resumes where it stopped; the final name appears only when every
frame is written. A partial or finished file that is damaged (cut short, unreadable) is
detected and rebuilt, never reused or crashed on. Runs that share the cache folder prepare
one recording at a time (an advisory lock on the folder), so the second reuses the first's file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
from tqdm import tqdm

from evstereo.datasets.samples import SampleSpec, make_sample
from evstereo.errors import InputError
from evstereo.fileio import check_writable, publish
from evstereo.recordings import open_recording
from evstereo.recordings.mvsec_writer import discard_hdf5, disk_error

_INT8_KINDS = ("sbt", "spikes")


def valid_frames(rec, spec: SampleSpec) -> np.ndarray:
    """GT frames whose whole window (t - window, t] lies inside the recording's events."""
    ts = rec.gt_timestamps()
    start, end = rec.time_span()
    ok = (ts - spec.window_us >= start) & (ts <= end)
    return np.flatnonzero(ok)


def cache_key(source: str | os.PathLike, frames: np.ndarray, spec: SampleSpec, with_right_gt: bool) -> str:
    """Short hash identifying what a cache holds (source path, frames, spec)."""
    h = hashlib.sha1()
    h.update(str(Path(source).resolve()).encode())
    h.update(np.asarray(frames, np.int64).tobytes())
    h.update(json.dumps(spec.as_dict(), sort_keys=True).encode())
    h.update(b"R" if with_right_gt else b"-")
    return h.hexdigest()[:12]


def cache_path(folder: str | os.PathLike, source: str | os.PathLike, spec: SampleSpec,
               frames: np.ndarray | None = None, with_right_gt: bool = False) -> Path:
    """The one name of a cache file: ``folder/<source stem>-<cache_key>.h5``.

    ``data_tools.prepare`` writes this name and the DataModule (``data.cache_dir``) looks for
    it, so a cache prepared beforehand is what training reads. ``frames`` None means every
    frame with a full window (``valid_frames``, opening the recording to find them), as both
    use for a list of recordings. The key covers the resolved source path, the frames, the
    spec and ``with_right_gt`` (training asks for the right GT on training recordings when
    ``flip`` > 0: prepare those with ``--right-gt``).
    """
    if frames is None:
        with open_recording(source) as rec:
            frames = valid_frames(rec, spec)
    return Path(folder) / f"{Path(source).stem}-{cache_key(source, frames, spec, with_right_gt)}.h5"


def _create(f: h5py.File, n: int, shape_tchw: tuple, spec: SampleSpec, right_gt: bool) -> None:
    dtype = np.int8 if spec.representation in _INT8_KINDS else np.float16
    for cam in ("left", "right"):
        f.create_dataset(cam, shape=(n,) + shape_tchw, dtype=dtype, chunks=(1,) + shape_tchw, compression="lzf")
    h, w = shape_tchw[-2:]
    keys = [("disparity", np.float32), ("valid", bool)]
    if right_gt:
        keys += [("disparity_right", np.float32), ("valid_right", bool)]
    for k, dt in keys:
        f.create_dataset(k, shape=(n, h, w), dtype=dt, chunks=(1, h, w), compression="lzf")
    f.create_dataset("t_us", shape=(n,), dtype=np.int64)


def _expected(f: h5py.File, n: int, right_gt: bool) -> bool:
    """Does ``f`` hold every dataset of a cache of ``n`` frames?"""
    keys = ["left", "right", "disparity", "valid", "t_us", "frames"] + (["disparity_right", "valid_right"] if right_gt else [])
    return all(k in f and isinstance(f[k], h5py.Dataset) and f[k].shape[:1] == (n,) for k in keys)


def cache_state(path: Path, key: str, n: int, right_gt: bool) -> tuple[str, int]:
    """What a (finished or partial) cache file holds: ``("missing", 0)``, ``("other", 0)`` (a
    cache of other frames or another spec), ``("damaged", 0)`` (unreadable, truncated, datasets
    missing) or ``("ok", done)`` with the number of finished frames. Reading the last finished
    frame of every dataset catches a file cut short after its header."""
    if not path.exists():
        return "missing", 0
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("key") != key:
                return "other", 0
            done = int(f.attrs.get("done", -1))
            if not 0 <= done <= n or not _expected(f, n, right_gt):
                return "damaged", 0
            if done:
                for name, ds in f.items():
                    if isinstance(ds, h5py.Dataset) and ds.shape[:1] == (n,):
                        ds[done - 1]
            return "ok", done
    except (OSError, RuntimeError, KeyError, ValueError, TypeError):
        return "damaged", 0


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive advisory lock on the folder itself (no lock file left behind; released
    when the process ends, however it ends). Without fcntl (Windows) there is no lock."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def prepare_recording(source: str | os.PathLike, out: str | os.PathLike, spec: SampleSpec,
                      frames: np.ndarray | None = None, with_right_gt: bool = False, progress: bool = True) -> Path:
    """Write the cache for ``source`` to ``out`` (resuming a ``.partial`` file if one matches).

    A finished ``out`` for the same recording, frames and spec is reused; one that is damaged
    (truncated, unreadable) is rebuilt, with a warning. A read-only or full output folder fails
    before any work, and a disk that fills up midway raises ``OSError(ENOSPC, ..., out)`` and
    removes the partial file (its space is given back); after Ctrl-C it is kept for resuming.
    """
    out = Path(out)
    check_writable(out)
    partial = out.with_name(f".{out.name}.partial")
    # two runs sharing a cache folder (two trainings started together) take turns: the second
    # finds the first's finished cache instead of writing the same partial file at once
    with _folder_lock(out.parent), open_recording(source) as rec:
        if not rec.has_gt:
            raise InputError(source, "has no ground truth to prepare training samples from")
        rec.check_stereo()  # stereo samples from one camera would teach nothing
        frames = valid_frames(rec, spec) if frames is None else np.asarray(frames, np.int64)
        key = cache_key(source, frames, spec, with_right_gt)
        right_gt = with_right_gt and len(frames) > 0 and rec.depth_right(int(frames[0])) is not None
        state, done = cache_state(out, key, len(frames), right_gt)
        if state == "ok" and done == len(frames):
            return out
        if state in ("damaged", "ok"):
            warnings.warn(f"{out}: the training cache is damaged (truncated or unreadable); rebuilding it", stacklevel=2)
            out.unlink()
        state, done = cache_state(partial, key, len(frames), right_gt)
        if state != "ok":
            partial.unlink(missing_ok=True)  # another spec, or cut mid-write: start over
            done = 0
        f = None
        try:
            # No chunk cache: each frame goes straight to disk, so a full disk fails that write.
            f = h5py.File(partial, "a" if done else "w", rdcc_nbytes=0)
            if not done:
                f.attrs["key"] = key
                f.attrs["spec"] = json.dumps(spec.as_dict())
                f.attrs["source"] = str(source)
                f.attrs["done"] = 0
                f.attrs["fB"] = float("nan") if rec.fB is None else float(rec.fB)
                f.create_dataset("frames", data=frames)
                _create(f, len(frames), spec.shape_tc + (rec.height, rec.width), spec, right_gt)
                f.flush()
            dtype = f["left"].dtype
            bar = tqdm(total=len(frames), initial=done, desc=f"prepare {Path(source).name}", unit="frame",
                       disable=not progress)
            try:
                for i in range(done, len(frames)):
                    s = make_sample(rec, int(frames[i]), spec, with_right_gt=right_gt)
                    f["left"][i] = s["left"].astype(dtype)
                    f["right"][i] = s["right"].astype(dtype)
                    f["disparity"][i] = s["disparity"]
                    f["valid"][i] = s["valid"]
                    if right_gt:
                        f["disparity_right"][i] = s["disparity_right"]
                        f["valid_right"][i] = s["valid_right"]
                    f["t_us"][i] = s["t_us"]
                    if (i + 1) % 32 == 0 or i + 1 == len(frames):
                        f.attrs["done"] = i + 1
                        f.flush()
                    bar.update(1)
            finally:
                bar.close()
            f.close()
        except BaseException as exc:
            error = None
            if isinstance(exc, RuntimeError) or (isinstance(exc, OSError) and not exc.filename):
                error = disk_error(exc, out)  # h5py's errors name no file: name the cache
            full = isinstance(error or exc, OSError) and (error or exc).errno in (errno.ENOSPC, errno.EDQUOT)
            kept = False
            if f is not None and not full:  # a full disk gets its space back; otherwise resume next time
                try:
                    if f.id.valid:
                        f.close()
                    kept = True
                except Exception:  # noqa: BLE001  (HDF5 errors come as several types)
                    pass
            if not kept:
                discard_hdf5(f, partial)
            if error is not None:
                raise error from None
            raise
    publish(partial, out)  # an interrupt here keeps the finished partial: a rerun renames it
    return out
