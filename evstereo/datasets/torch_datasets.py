"""torch Datasets over recordings (on the fly) and over prepared caches; same sample dicts.

Each item: ``left``/``right`` float32 [T, C, H, W], ``disparity`` float32 [H, W] (0 invalid),
``valid`` bool [H, W], ``t_us`` and ``index``. Recordings are opened lazily in each worker
(h5py handles must not cross a fork). A cache that cannot be read is an InputError naming it.
:class:`SparseEventMix` replaces a share of another dataset's samples by sparse ones built from
the recording's events (thinned, then windowed as inference windows sparse events).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from evstereo.datasets.prepared import valid_frames
from evstereo.datasets.samples import EventThinning, SampleSpec, SparseWindows, make_sample
from evstereo.errors import InputError
from evstereo.geometry import CAMERAS
from evstereo.recordings import open_recording

_KEYS = ("left", "right", "disparity", "valid")
# events per pixel in the network's window of a sparse training sample: around a real DVS128's
# 0.02, mostly below the 0.1 under which inference lengthens the window (the training rig's
# recordings hold 0.2-2.7)
SPARSE_DENSITY = (0.005, 0.2)


def _to_torch(sample: dict) -> dict:
    out = {k: torch.from_numpy(np.ascontiguousarray(sample[k])) for k in _KEYS}
    out["left"], out["right"] = out["left"].float(), out["right"].float()
    out["t_us"] = torch.tensor(int(sample["t_us"]), dtype=torch.int64)
    out["index"] = torch.tensor(int(sample["index"]), dtype=torch.int64)
    out["fB"] = torch.tensor(float(sample["fB"]), dtype=torch.float32)  # NaN when unknown
    return out


def _sample_rng() -> np.random.Generator:
    # Drawn from torch's generator so Lightning's seed_everything makes augmentation repeatable.
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


class RecordingDataset(Dataset):
    """Samples straight from a recording (no cache)."""

    def __init__(self, path: str | os.PathLike, spec: SampleSpec, frames: np.ndarray | None = None,
                 transform=None, with_right_gt: bool = False):
        self.path, self.spec, self.transform, self.with_right_gt = Path(path), spec, transform, with_right_gt
        with open_recording(self.path) as rec:
            self.frames = valid_frames(rec, spec) if frames is None else np.asarray(frames, np.int64)
            self.height, self.width = rec.height, rec.width
        self._rec = None

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict:
        if self._rec is None:
            self._rec = open_recording(self.path)
        s = make_sample(self._rec, int(self.frames[i]), self.spec, with_right_gt=self.with_right_gt)
        if self.transform is not None:
            s = self.transform(s, _sample_rng())
        return _to_torch(s)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_rec"] = None
        return state


class PreparedDataset(Dataset):
    """Samples from a cache written by ``prepare_recording``."""

    def __init__(self, path: str | os.PathLike, transform=None):
        self.path, self.transform = Path(path), transform
        if not self.path.is_file():
            raise InputError(self.path, "training cache does not exist")
        try:
            with h5py.File(self.path, "r") as f:
                self.frames = f["frames"][:]
                self.has_right_gt = "disparity_right" in f
                self.fB = float(f.attrs.get("fB", float("nan")))
        except (OSError, KeyError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(self.path, f"cannot be read as a training cache (damaged or truncated: {reason})") from None
        self._f = None

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict:
        if self._f is None:
            self._f = h5py.File(self.path, "r")
        f = self._f
        s = {k: f[k][i] for k in _KEYS}
        if self.has_right_gt:
            s["disparity_right"], s["valid_right"] = f["disparity_right"][i], f["valid_right"][i]
        s["t_us"], s["index"], s["fB"] = f["t_us"][i], self.frames[i], self.fB
        if self.transform is not None:
            s = self.transform(s, _sample_rng())
        return _to_torch(s)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_f"] = None
        return state


def check_sparse_mix(p, density) -> None:
    """ValueError naming ``data.augment``'s option when p_sparse_windows or sparse_density is wrong."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"data.augment.p_sparse_windows must be a number from 0 to 1, not {p!r}")
    ok = isinstance(density, (list, tuple)) and len(density) == 2 and all(
        isinstance(d, (int, float)) and not isinstance(d, bool) for d in density)
    if not (ok and 0 < density[0] <= density[1]):
        raise ValueError(f"data.augment.sparse_density must be [low, high] events per pixel with 0 < low <= high, "
                         f"not {density!r}")


class SparseEventMix(Dataset):
    """``base``'s samples, each replaced with probability ``p`` by one from the same GT frame of
    ``path`` whose events are thinned to a density drawn log-uniform in ``density`` (events per
    pixel in the network's window; each camera its own events and a density up to ~30 % apart;
    never more than the recording has), then windowed by ``sparse`` as inference windows them:
    so the network learns on the longer windows it gets on sparse recordings. ``transform``
    (crop, flip, ...) applies to the sparse samples as to the base's."""

    def __init__(self, base: Dataset, path: str | os.PathLike, spec: SampleSpec, p: float,
                 density: tuple[float, float] = SPARSE_DENSITY, sparse: SparseWindows | None = None,
                 transform=None, with_right_gt: bool = False):
        check_sparse_mix(p, density)
        self.base, self.path, self.spec, self.p = base, Path(path), spec, float(p)
        self.density = tuple(float(d) for d in density)
        self.sparse = sparse or SparseWindows()
        self.transform, self.with_right_gt = transform, with_right_gt
        self.frames = base.frames
        self._rec = None

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        rng = _sample_rng()
        if rng.random() >= self.p:
            return self.base[i]
        if self._rec is None:
            self._rec = open_recording(self.path)
        rec, index = self._rec, int(self.frames[i])
        t = int(rec.gt_timestamps()[index])
        target = float(np.exp(rng.uniform(np.log(self.density[0]), np.log(self.density[1])))) * rec.height * rec.width
        keep = {}
        for cam in CAMERAS:
            n = len(rec.events(cam, t - self.spec.window_us, t))
            keep[cam] = min(1.0, target * float(np.exp(rng.uniform(-0.3, 0.3))) / max(n, 1))
        thinning = EventThinning(keep, seed=int(rng.integers(0, 2**47)))
        s = make_sample(rec, index, self.spec, with_right_gt=self.with_right_gt,
                        sparse=self.sparse, thinning=thinning)
        if self.transform is not None:
            s = self.transform(s, rng)
        return _to_torch(s)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_rec"] = None
        return state
