"""LightningDataModule for MVSEC splits and for lists of (synthetic or converted) recordings.

MVSEC: ``mvsec_root`` holds ``indoor_flying{1,2,3}_data.hdf5`` (+ ``_gt``, ``_calib``) and
``mvsec_split`` picks the split (PAPER.md section 6). Recordings: ``train``/``val``/``test``
are lists of files (globs allowed); every GT frame with a full event window is used. With
``cache_dir`` the samples are prepared once (``prepare_data``) and read from the cache.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from evstereo.datasets.prepared import cache_key, prepare_recording, valid_frames
from evstereo.datasets.samples import SampleSpec
from evstereo.datasets.splits import mvsec_split
from evstereo.datasets.torch_datasets import PreparedDataset, RecordingDataset
from evstereo.datasets.transforms import Compose, HorizontalFlipSwap, RandomCrop
from evstereo.errors import InputError

Items = list[tuple[Path, np.ndarray | None]]


def _expand(paths: list[str] | str | None) -> list[Path]:
    if not paths:
        return []
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = []
    for p in paths:
        hits = sorted(glob.glob(str(p)))
        if not hits:
            raise InputError(p, "no recording matches this path")
        out += [Path(h) for h in hits]
    return out


class StereoDataModule(L.LightningDataModule):
    def __init__(self, train: list[str] | str | None = None, val: list[str] | str | None = None,
                 test: list[str] | str | None = None, mvsec_root: str | None = None, mvsec_split: int | None = None,
                 spec: dict | None = None, crop: tuple[int, int] | None = None, flip: float = 0.0,
                 batch_size: int = 2, num_workers: int = 0, cache_dir: str | None = None, search_split: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.spec = SampleSpec(**(spec or {}))
        self.crop, self.flip = crop, flip
        self.batch_size, self.num_workers = batch_size, num_workers
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.search_split = search_split
        self.items: dict[str, Items] = {"train": [], "val": [], "test": []}
        if mvsec_split is not None:
            if mvsec_root is None:
                raise ValueError("mvsec_split needs mvsec_root")
            for stage, parts in mvsec_split_items(mvsec_root, mvsec_split).items():
                self.items[stage] = parts
        for stage, paths in (("train", train), ("val", val), ("test", test)):
            self.items[stage] += [(p, None) for p in _expand(paths)]
        self.datasets: dict[str, Dataset] = {}

    def _cache_path(self, path: Path, frames: np.ndarray | None, right_gt: bool) -> Path:
        from evstereo.datasets import open_recording

        if frames is None:
            with open_recording(path) as rec:
                frames = valid_frames(rec, self.spec)
        return self.cache_dir / f"{path.stem}-{cache_key(path, frames, self.spec, right_gt)}.h5"

    def prepare_data(self) -> None:
        if self.cache_dir is None:
            return
        for stage, items in self.items.items():
            for path, frames in items:
                right_gt = stage == "train" and self.flip > 0
                prepare_recording(path, self._cache_path(path, frames, right_gt), self.spec, frames, right_gt)

    def _transform(self, stage: str):
        if stage != "train":
            return None
        ts = []
        if self.crop:
            ts.append(RandomCrop(*self.crop))
        if self.flip > 0:
            ts.append(HorizontalFlipSwap(self.flip))
        return Compose(ts) if ts else None

    def _dataset(self, stage: str) -> Dataset | None:
        items = self.items[stage]
        if not items:
            return None
        tf = self._transform(stage)
        right_gt = stage == "train" and self.flip > 0
        parts = []
        for path, frames in items:
            if self.cache_dir is not None:
                parts.append(PreparedDataset(self._cache_path(path, frames, right_gt), transform=tf))
            else:
                parts.append(RecordingDataset(path, self.spec, frames, transform=tf, with_right_gt=right_gt))
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)

    def setup(self, stage: str | None = None) -> None:
        for s in ("train", "val", "test"):
            if s not in self.datasets:
                ds = self._dataset(s)
                if ds is not None:
                    self.datasets[s] = ds

    def _loader(self, stage: str, shuffle: bool) -> DataLoader:
        if stage not in self.datasets:
            raise ValueError(f"no {stage} recordings configured")
        return DataLoader(self.datasets[stage], batch_size=self.batch_size if stage == "train" else 1,
                          shuffle=shuffle, num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self):
        if not self.search_split:
            return self._loader("train", shuffle=True)
        # bi-level search: weights learn on one half of the training frames, the
        # architecture on the other (alternate frames, so both halves span every recording)
        full = self.datasets["train"]
        halves = {name: Subset(full, range(start, len(full), 2)) for name, start in (("weights", 0), ("arch", 1))}
        loaders = {k: DataLoader(v, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
                                 persistent_workers=self.num_workers > 0) for k, v in halves.items()}
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def mvsec_split_items(root: str | os.PathLike, split: int) -> dict[str, Items]:
    """MVSEC split -> {stage: [(data file, frame indices)]}; checks the files exist."""
    root = Path(root)
    out: dict[str, Items] = {}
    for stage, parts in mvsec_split(split).items():
        out[stage] = []
        for scene, frames in parts:
            path = root / f"{scene}_data.hdf5"
            if not path.exists():
                raise InputError(path, f"MVSEC split {split} needs this file ({stage} set)")
            out[stage].append((path, frames))
    return out
