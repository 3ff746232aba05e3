"""Cache of per-frame representations for fast training (``data_tools.prepare``).

One HDF5 file per (recording, frames, SampleSpec): ``left``/``right`` [N, T, C, H, W]
(int8 for sbt/spikes, float16 for voxel/counts, LZF-compressed, one chunk per frame),
``disparity`` [N, H, W] float32 (0 invalid), ``valid`` bool, optional ``disparity_right``/
``valid_right``, ``frames`` and ``t_us``. The file is filled under a ``.partial`` name whose
``done`` attribute counts finished frames, so an interrupted run resumes where it stopped;
the final name appears only when every frame is written.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from evstereo.datasets import open_recording
from evstereo.datasets.samples import SampleSpec, make_sample
from evstereo.errors import InputError

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


def prepare_recording(source: str | os.PathLike, out: str | os.PathLike, spec: SampleSpec,
                      frames: np.ndarray | None = None, with_right_gt: bool = False, progress: bool = True) -> Path:
    """Write the cache for ``source`` to ``out`` (resuming a ``.partial`` file if one matches)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    with open_recording(source) as rec:
        if not rec.has_gt:
            raise InputError(source, "has no ground truth to prepare training samples from")
        frames = valid_frames(rec, spec) if frames is None else np.asarray(frames, np.int64)
        key = cache_key(source, frames, spec, with_right_gt)
        if out.exists():
            with h5py.File(out, "r") as f:
                if f.attrs.get("key") == key:
                    return out
        right_gt = with_right_gt and len(frames) > 0 and rec.depth_right(int(frames[0])) is not None
        done = 0
        if partial.exists():
            try:
                with h5py.File(partial, "r") as f:
                    if f.attrs.get("key") == key:
                        done = int(f.attrs["done"])
            except OSError:
                pass  # a partial file cut mid-write: start over
        mode = "a" if done else "w"
        with h5py.File(partial, mode) as f:
            if not done:
                f.attrs["key"] = key
                f.attrs["spec"] = json.dumps(spec.as_dict())
                f.attrs["source"] = str(source)
                f.attrs["done"] = 0
                f.attrs["fB"] = float("nan") if rec.fB is None else float(rec.fB)
                f.create_dataset("frames", data=frames)
                _create(f, len(frames), spec.shape_tc + (rec.height, rec.width), spec, right_gt)
            dtype = f["left"].dtype
            bar = tqdm(total=len(frames), initial=done, desc=f"prepare {Path(source).name}", unit="frame",
                       disable=not progress)
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
            bar.close()
    os.replace(partial, out)
    return out
