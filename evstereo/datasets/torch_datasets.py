"""torch Datasets over recordings (on the fly) and over prepared caches; same sample dicts.

Each item: ``left``/``right`` float32 [T, C, H, W], ``disparity`` float32 [H, W] (0 invalid),
``valid`` bool [H, W], ``t_us`` and ``index``. Recordings are opened lazily in each worker
(h5py handles must not cross a fork). A cache that cannot be read is an InputError naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from evstereo.datasets.prepared import valid_frames
from evstereo.datasets.samples import SampleSpec, make_sample
from evstereo.errors import InputError
from evstereo.recordings import open_recording

_KEYS = ("left", "right", "disparity", "valid")


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
