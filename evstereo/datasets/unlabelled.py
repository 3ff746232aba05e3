"""Unlabelled stereo windows for self-supervised adaptation (``apps.adapt``); ground truth is never read.

``window_times(rec, spec)`` picks window ends at regular times (every ``stride_us``, default
one window) over the span both cameras record, keeping the windows (t - window, t] where each
camera has at least ``min_events`` events. ``UnlabelledDataset`` gives, per window:

- ``left``/``right`` float32 [T, C, h, w]: the network's input, built exactly as for
  inference (``represent`` with the checkpoint's InputSpec over ``window_events``: where the
  events are sparse, the longer window inference then uses, ``SparseWindows``; then resampled
  by the input scale, ``evstereo.datasets.scaling``);
- ``left_image``/``right_image`` float32 [3, h, w]: what the self-supervised loss compares
  (:func:`event_images`): negative and positive event counts and a time surface (the latest
  event's time in the window, 0 at its start, 1 at its end), resampled likewise, each
  Gaussian-blurred (raw event frames are too sparse to warp and compare) and divided by its
  99th percentile over the pixels with events, clipped to 1, per camera (two sensors need not
  have the same gain);
- ``t_us`` (window end) and ``recording`` (its index in the list).

(h, w) is the network's size: the sensor's resampled by the input scale, "auto" by default
(the rule inference uses, ``evstereo.datasets.scaling.resolve_scale``: from the rig's f*B when
the calibration gives it, else towards the sensor size the network is trained around; so a
network is adapted at the scale it then runs at), or a factor. An optional crop (in the network's pixels) takes the
same random window from all four (the offset drawn from torch's generator, so a seeded run
repeats). ``UnlabelledDataModule`` serves them to Lightning, with
``steps_per_epoch`` batches per epoch when given (cycling through every window in a fresh
order) or one pass over the windows.

Bad input is an :class:`InputError` naming the recording: a missing or unreadable file, a mono
recording or one without events, no window where both cameras have events, a crop larger
than a sensor, sensors of different sizes without a crop.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler
from tqdm import tqdm

from evstereo import events as ev
from evstereo.datasets.datamodule import _crop_size, _plain_paths
from evstereo.datasets.samples import SparseWindows, represent, window_bounds, window_events
from evstereo.datasets.scaling import parse_scale, resample_frames, resolve_scale, scaled_size
from evstereo.datasets.torch_datasets import _sample_rng
from evstereo.errors import InputError
from evstereo.events.input_spec import InputSpec
from evstereo.geometry import CAMERAS
from evstereo.recordings import open_recording
from evstereo.recordings.recording import Recording

__all__ = ["IMAGE_CHANNELS", "MIN_EVENTS", "UnlabelledDataModule", "UnlabelledDataset", "event_images",
           "window_times"]

MIN_EVENTS = 200  # per camera and window; sparser windows are skipped (the DVS128 pendulum: ~100-1700 per 50 ms)
IMAGE_CHANNELS = ("negative", "positive", "time_surface")


def window_times(rec: Recording, spec: InputSpec, stride_us: int | None = None, min_events: int = MIN_EVENTS,
                 progress: bool = False) -> np.ndarray:
    """Window ends (int64 us), every ``stride_us`` (default: one window) over the span both
    cameras record, where each camera has at least ``min_events`` events in (t - window, t]."""
    (a0, a1), (b0, b1) = (rec.time_range(c) for c in CAMERAS)
    lo, hi = max(a0, b0), min(a1, b1)
    ends = np.arange(lo + spec.window_us, hi + 1, stride_us or spec.window_us, dtype=np.int64)
    keep = [t for t in tqdm(ends, desc=f"windows of {rec.path.name}", unit="window", leave=False,
                            disable=not progress or len(ends) < 200, dynamic_ncols=True)
            if all(len(rec.events(c, *window_bounds(t, spec))) >= min_events for c in CAMERAS)]
    return np.asarray(keep, np.int64)


def _normalised(image: np.ndarray) -> np.ndarray:
    active = image[image > 1e-6]
    if not active.size:
        return image
    return np.minimum(image / max(float(np.quantile(active, 0.99)), 1e-6), 1.0)


def event_images(events: ev.Events, height: int, width: int, t_start: int, t_end: int, sigma: float = 1.5,
                 size: tuple[int, int] | None = None) -> np.ndarray:
    """One camera's window as float32 [3, h, w] in 0..1 (``IMAGE_CHANNELS``; see the module doc):
    resampled to ``size`` (default the sensor's H x W), then blurred by ``sigma`` px of that size."""
    counts = ev.event_counts(events.x, events.y, events.t, events.p, 1, height, width, t_start=t_start, t_end=t_end)[0]
    surface = np.zeros((height, width), np.float32)
    if len(events):
        age = (events.t - t_start) / max(t_end - t_start, 1)
        np.maximum.at(surface, (events.y.astype(np.intp), events.x.astype(np.intp)), age.astype(np.float32))
    raw = np.stack([counts[0], counts[1], surface])
    if size is not None:
        raw = resample_frames(raw, 0.0, size)
    out = np.empty_like(raw)
    for i, channel in enumerate(raw):
        out[i] = _normalised(cv2.GaussianBlur(np.ascontiguousarray(channel), (0, 0), sigma) if sigma > 0 else channel)
    return out


class UnlabelledDataset(Dataset):
    """The windows of one or more recordings, network input and event images (see the module doc)."""

    def __init__(self, paths: list[str | os.PathLike], spec: InputSpec, crop: tuple[int, int] | None = None,
                 stride_us: int | None = None, min_events: int = MIN_EVENTS, sigma: float = 1.5,
                 scale: str | float = "auto", nominal_hw: tuple[int, int] | None = None, progress: bool = False,
                 max_disparity: float | None = None, sparse: SparseWindows | None = None):
        if not paths:
            raise InputError(None, "no recording to adapt on")
        self.paths, self.spec, self.crop, self.sigma = [Path(p) for p in paths], spec, crop, float(sigma)
        self.sparse = sparse
        self.items: list[tuple[int, int]] = []  # (recording index, window end in us)
        self.scales: list[float] = []  # per recording: the input scale and the network's size
        sizes: list[tuple[int, int]] = []
        for i, path in enumerate(self.paths):
            with open_recording(path) as rec:
                rec.check_stereo()
                self.scales.append(resolve_scale(scale, rec.height, rec.width, nominal_hw, rec.fB,
                                                 rec.typical_disparity, max_disparity))
                sizes.append(scaled_size(rec.height, rec.width, self.scales[-1]))
                times = window_times(rec, spec, stride_us, min_events, progress)
            if not len(times):
                raise InputError(path, f"has no {spec.window_us / 1000:g} ms window where both cameras have at "
                                       f"least {min_events} events")
            self.items += [(i, int(t)) for t in times]
        for path, (h, w), s in zip(self.paths, sizes, self.scales):
            at = f"{h}x{w} frames (the sensor at input scale {s:g})"
            if crop is not None and (crop[0] > h or crop[1] > w):
                raise InputError(path, f"the crop {crop[0]}x{crop[1]} is larger than this recording's {at}")
            if crop is None and (h, w) != sizes[0]:
                raise InputError(path, f"gives {at}, {self.paths[0].name} {sizes[0][0]}x{sizes[0][1]}: "
                                       "give a crop to adapt on both")
        self.sizes = sizes
        self.windows_per_recording = [sum(1 for i, _ in self.items if i == k) for k in range(len(self.paths))]
        self._recs: dict[int, Recording] = {}

    def __len__(self) -> int:
        return len(self.items)

    def sample(self, index: int) -> dict[str, np.ndarray | int]:
        """Window ``index`` uncropped, as numpy arrays."""
        k, t = self.items[index]
        if k not in self._recs:  # opened lazily, in the worker that reads (h5py handles must not cross a fork)
            self._recs[k] = open_recording(self.paths[k])
        rec, scale, size = self._recs[k], self.scales[k], self.sizes[k]
        t0, both = window_events(rec, t, self.spec.window_us, self.sparse)
        out: dict[str, np.ndarray | int] = {"t_us": t, "recording": k}
        for cam, events in both.items():
            out[cam] = resample_frames(represent(events, self.spec, rec.height, rec.width, t0, t), scale, size)
            out[f"{cam}_image"] = event_images(events, rec.height, rec.width, t0, t, self.sigma, size)
        return out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        s = self.sample(index)
        if self.crop is not None:
            h, w = s["left"].shape[-2:]
            rng = _sample_rng()
            y, x = int(rng.integers(0, h - self.crop[0] + 1)), int(rng.integers(0, w - self.crop[1] + 1))
            for key in ("left", "right", "left_image", "right_image"):  # the same window from all four
                s[key] = s[key][..., y : y + self.crop[0], x : x + self.crop[1]]
        out = {k: torch.from_numpy(np.ascontiguousarray(v, np.float32))
               for k, v in s.items() if isinstance(v, np.ndarray)}
        out["t_us"] = torch.tensor(int(s["t_us"]), dtype=torch.int64)
        out["recording"] = torch.tensor(int(s["recording"]), dtype=torch.int64)
        return out

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_recs"] = {}
        return state


def _positive(name: str, value, kind: type = int, allow_none: bool = False):
    if value is None and allow_none:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else int) and value > 0
    if not ok:
        raise ValueError(f"{name} must be a positive {'number' if kind is float else 'integer'}, not {value!r}")
    return value


class UnlabelledDataModule(L.LightningDataModule):
    """Training batches of :class:`UnlabelledDataset` (no validation: there is no ground truth).

    ``spec``: the network's InputSpec fields; ``stride_ms``: time between window ends (default
    one window); ``sigma``: Gaussian blur of the event images in px (0: none); ``scale``: the
    input scale ("auto" or a factor), towards ``nominal_hw`` (the network's ``nominal_size``;
    None: NOMINAL_HW) within the network's ``max_disparity`` (None: not capped);
    ``min_event_density``/``max_window_factor``: the longer windows of sparse events, as
    inference uses them (``SparseWindows``; 0 or 1: off). Bad values are
    ValueErrors naming the option, raised here; the recordings are scanned here too.
    """

    def __init__(self, recordings: list[str | os.PathLike], spec: dict, crop: list[int] | None = None,
                 batch_size: int = 2, num_workers: int = 0, steps_per_epoch: int | None = None,
                 stride_ms: float | None = None, min_events: int = MIN_EVENTS, sigma: float = 1.5,
                 scale: str | float = "auto", nominal_hw: list[int] | None = None, progress: bool = True,
                 max_disparity: float | None = None, min_event_density: float = SparseWindows.min_event_density,
                 max_window_factor: int = SparseWindows.max_window_factor):
        super().__init__()
        sparse = SparseWindows(min_event_density, max_window_factor)  # a ValueError naming the key
        self.crop = _crop_size(crop)
        _positive("batch_size", batch_size)
        _positive("steps_per_epoch", steps_per_epoch, allow_none=True)
        _positive("stride_ms", stride_ms, float, allow_none=True)
        _positive("min_events", min_events)
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, not {num_workers!r}")
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or sigma < 0:
            raise ValueError(f"sigma must be a number >= 0 (px), not {sigma!r}")
        scale = parse_scale(scale)
        # plain data only: Lightning saves these in every checkpoint (read with weights_only=True)
        self.save_hyperparameters({"recordings": _plain_paths(list(recordings)), "spec": dict(spec),
                                   "crop": None if self.crop is None else list(self.crop), "batch_size": batch_size,
                                   "num_workers": num_workers, "steps_per_epoch": steps_per_epoch,
                                   "stride_ms": stride_ms, "min_events": min_events, "sigma": sigma,
                                   "scale": scale, "nominal_hw": None if nominal_hw is None else list(nominal_hw),
                                   "max_disparity": max_disparity, "min_event_density": min_event_density,
                                   "max_window_factor": max_window_factor})
        self.batch_size, self.num_workers, self.steps_per_epoch = batch_size, num_workers, steps_per_epoch
        stride_us = None if stride_ms is None else max(int(round(stride_ms * 1000)), 1)
        self.dataset = UnlabelledDataset(recordings, InputSpec(**spec), self.crop, stride_us, min_events, sigma, scale,
                                         None if nominal_hw is None else tuple(nominal_hw), progress, max_disparity,
                                         sparse)

    def train_dataloader(self) -> DataLoader:
        n = None if self.steps_per_epoch is None else self.steps_per_epoch * self.batch_size
        # without replacement: num_samples beyond the windows cycles through fresh permutations
        sampler = RandomSampler(self.dataset, num_samples=n)
        return DataLoader(self.dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)
