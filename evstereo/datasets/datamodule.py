"""LightningDataModule for MVSEC splits and for lists of (synthetic or converted) recordings.

MVSEC: ``mvsec_root`` holds ``indoor_flying{1,2,3}_data.hdf5`` (+ ``_gt``, ``_calib``) and
``mvsec_split`` picks the split (docs/method.md §6.3). Recordings: ``train``/``val``/``test``
are lists of files (globs allowed); every GT frame with a full event window is used. With
``cache_dir`` the samples are prepared once (``prepare_data``) and read from the cache; a cache
file that cannot be read (cut short by a full disk or a copy) is an InputError naming it, or
with ``rebuild_damaged_cache`` is prepared again. A ``crop`` larger than a training
recording's sensor is an InputError naming the recording, raised at construction, unless
``augment.scale_jitter`` resamples every sample to hold the crop (small sensors in a mix).
``augment.p_sparse_windows`` replaces that share of the training samples by sparse ones built
from the recording's thinned events (``augment.sparse_density``: events per pixel in the
network's window, log-uniform in [low, high]), windowed as inference windows sparse events
(:class:`SparseEventMix`).

The hyper-parameters (saved in every Lightning checkpoint) are plain data: paths as strings,
so checkpoints load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import h5py
import lightning as L
import numpy as np
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from evstereo.datasets.prepared import cache_path, prepare_recording
from evstereo.datasets.samples import SampleSpec
from evstereo.datasets.splits import mvsec_split, search_halves
from evstereo.datasets.torch_datasets import (SPARSE_DENSITY, PreparedDataset, RecordingDataset, SparseEventMix,
                                              check_sparse_mix)
from evstereo.datasets.transforms import CameraRealism, Compose, HorizontalFlipSwap, RandomCrop, RandomScale
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


def _plain_paths(paths):
    """Paths as strings (a PosixPath in a checkpoint would not load with weights_only=True)."""
    if isinstance(paths, (list, tuple)):
        return [os.fspath(p) for p in paths]
    return None if paths is None else os.fspath(paths)


def _crop_size(crop) -> tuple[int, int] | None:
    if crop is None:
        return None
    if (not isinstance(crop, (list, tuple)) or len(crop) != 2
            or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in crop)):
        raise ValueError(f"crop must be [height, width] in pixels, not {crop!r}")
    return int(crop[0]), int(crop[1])


_REALISM_KEYS = ("p_sparse", "keep", "p_noise", "noise_fraction", "p_offset", "max_offset_px")
_SPARSE_KEYS = ("p_sparse_windows", "sparse_density")


def _augment_options(augment: dict | None) -> dict:
    """``data.augment``: ``scale_jitter: [low, high]`` (multi-scale training around each
    sensor's automatic scale), ``p_lowres`` (low-resolution look, see :class:`RandomScale`)
    the :class:`CameraRealism` options, and ``p_sparse_windows`` / ``sparse_density`` (sparse
    samples with the inference's longer windows, :class:`SparseEventMix`); unknown keys are errors."""
    augment = dict(augment or {})
    unknown = set(augment) - {"scale_jitter", "p_lowres", *_REALISM_KEYS, *_SPARSE_KEYS}
    if unknown:
        raise ValueError(f"unknown data.augment options: {', '.join(sorted(unknown))} "
                         f"(known: scale_jitter, p_lowres, {', '.join(_REALISM_KEYS + _SPARSE_KEYS)})")
    if "p_sparse_windows" in augment or "sparse_density" in augment:
        check_sparse_mix(augment.get("p_sparse_windows", 0.0), augment.get("sparse_density", SPARSE_DENSITY))
    return augment


class StereoDataModule(L.LightningDataModule):
    def __init__(self, train: list[str] | str | None = None, val: list[str] | str | None = None,
                 test: list[str] | str | None = None, mvsec_root: str | None = None, mvsec_split: int | None = None,
                 spec: dict | None = None, crop: tuple[int, int] | None = None, flip: float = 0.0,
                 batch_size: int = 2, num_workers: int = 0, cache_dir: str | None = None, search_split: bool = False,
                 progress: bool = True, rebuild_damaged_cache: bool = False, augment: dict | None = None,
                 arch_batches: int = 1):
        super().__init__()
        self.crop = _crop_size(crop)
        self.augment = _augment_options(augment)
        self.save_hyperparameters({
            "train": _plain_paths(train), "val": _plain_paths(val), "test": _plain_paths(test),
            "mvsec_root": _plain_paths(mvsec_root), "mvsec_split": mvsec_split, "spec": dict(spec or {}),
            "crop": None if self.crop is None else list(self.crop), "flip": flip, "batch_size": batch_size,
            "num_workers": num_workers, "cache_dir": _plain_paths(cache_dir), "search_split": search_split,
            "augment": dict(augment or {}), "arch_batches": arch_batches})
        self.spec = SampleSpec(**(spec or {}))
        self.flip = flip
        self.batch_size, self.num_workers = batch_size, num_workers
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.search_split = search_split
        self.arch_batches = arch_batches  # a search's architecture step averages this many batches
        self.progress, self.rebuild_damaged_cache = progress, rebuild_damaged_cache
        self.items: dict[str, Items] = {"train": [], "val": [], "test": []}
        if mvsec_split is not None:
            if mvsec_root is None:
                raise ValueError("mvsec_split needs mvsec_root")
            for stage, parts in mvsec_split_items(mvsec_root, mvsec_split).items():
                self.items[stage] = parts
        for stage, paths in (("train", train), ("val", val), ("test", test)):
            self.items[stage] += [(p, None) for p in _expand(paths)]
        self.datasets: dict[str, Dataset] = {}
        if self.crop is not None and self.augment.get("scale_jitter") is None:
            self._check_crop()  # with scale_jitter, RandomScale enlarges a small sensor to hold the crop

    def _check_crop(self) -> None:
        # here rather than in the first training batch, deep inside the fit loop
        from evstereo.recordings import open_recording

        ch, cw = self.crop
        for path, _ in self.items["train"]:
            with open_recording(path) as rec:
                if ch > rec.height or cw > rec.width:
                    raise InputError(path, f"the crop {ch}x{cw} (data.crop) is larger than this recording's "
                                           f"{rec.height}x{rec.width} sensor")

    def _cache_path(self, path: Path, frames: np.ndarray | None, right_gt: bool) -> Path:
        return cache_path(self.cache_dir, path, self.spec, frames, right_gt)  # the name data_tools.prepare writes

    def prepare_data(self) -> None:
        if self.cache_dir is None:
            return
        for stage, items in self.items.items():
            for path, frames in items:
                right_gt = stage == "train" and self.flip > 0
                cache = self._cache_path(path, frames, right_gt)
                self._check_cache(cache)
                prepare_recording(path, cache, self.spec, frames, right_gt, progress=self.progress)

    def _check_cache(self, cache: Path) -> None:
        """A finished cache file that cannot be read: removed to be rebuilt, or an InputError."""
        if not cache.exists():
            return
        try:
            with h5py.File(cache, "r") as f:
                f.attrs.get("key")
        except OSError as exc:
            if not self.rebuild_damaged_cache:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise InputError(cache, f"is a damaged or truncated training cache ({reason}); delete it, or run "
                                        "the same command with --no-resume, to rebuild it") from None
            cache.unlink()

    def _transform(self, stage: str):
        if stage != "train":
            return None
        ts = []
        aug = self.augment
        if aug.get("scale_jitter") is not None:  # before the crop: the crop then sees the scaled image
            ts.append(RandomScale(tuple(aug["scale_jitter"]), self.spec.gt_max_disparity, self.crop,
                                  p_lowres=float(aug.get("p_lowres", 0.0))))
        if self.crop:
            ts.append(RandomCrop(*self.crop))
        if self.flip > 0:
            ts.append(HorizontalFlipSwap(self.flip))
        realism = {k: aug[k] for k in _REALISM_KEYS if k in aug}
        if realism:
            ts.append(CameraRealism(**realism))
        return Compose(ts) if ts else None

    def _dataset(self, stage: str) -> Dataset | None:
        items = self.items[stage]
        if not items:
            return None
        tf = self._transform(stage)
        right_gt = stage == "train" and self.flip > 0
        p_sparse = float(self.augment.get("p_sparse_windows", 0.0)) if stage == "train" else 0.0
        density = tuple(self.augment.get("sparse_density", SPARSE_DENSITY))
        parts = []
        for path, frames in items:
            if self.cache_dir is not None:
                part = PreparedDataset(self._cache_path(path, frames, right_gt), transform=tf)
            else:
                part = RecordingDataset(path, self.spec, frames, transform=tf, with_right_gt=right_gt)
            if p_sparse > 0:
                part = SparseEventMix(part, path, self.spec, p_sparse, density, transform=tf, with_right_gt=right_gt)
            parts.append(part)
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
        # bi-level search: weights learn on one half of the training frames, the architecture
        # on the other, split by time blocks (evstereo.datasets.splits.search_halves)
        full = self.datasets["train"]
        parts = full.datasets if isinstance(full, ConcatDataset) else [full]
        weights, arch = search_halves([len(p) for p in parts])
        halves = {"weights": Subset(full, weights), "arch": Subset(full, arch)}
        sizes = {"weights": self.batch_size, "arch": self.batch_size * self.arch_batches}
        loaders = {k: DataLoader(v, batch_size=sizes[k], shuffle=True, num_workers=self.num_workers,
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
