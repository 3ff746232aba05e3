"""Offline evaluation: a model over the GT frames of recordings, with the MVSEC metrics.

Frames: for an MVSEC folder and a split, that split's test frames (docs/method.md §6.3), which
need only the test sequence's files (``indoor_flyingN_data.hdf5`` and ``_gt.hdf5``); for other
recordings, every GT frame whose whole window lies inside the recording. ``plan_frames``
checks every recording before any model runs: it has ground truth, its events overlap the
ground-truth times (else an InputError naming the file and both time ranges), and the frames
to score hold at least one valid ground-truth pixel (else an InputError naming the GT file).
Each frame's input is built exactly as in training (``make_sample``) from the model's own
``input_spec`` (``SampleSpec.for_input(model.input_spec)``: the GT validity cap is the
protocol's ``gt_max_disparity``, not the network's range), the metrics come from
``evstereo.metrics`` (per frame, then averaged over frames; names and units
``METRIC_NAMES``/``METRIC_UNITS``), the energy per frame from ``EnergyMeter`` on the first
frames, and frames/s from the model's forward time alone.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from evstereo.recordings import open_recording
from evstereo.datasets.prepared import valid_frames
from evstereo.recordings.recording import Recording
from evstereo.datasets.samples import SampleSpec, gt_disparity, make_sample
from evstereo.datasets.splits import mvsec_split
from evstereo.errors import InputError
from evstereo.inference.engine import Model
from evstereo.metrics import MetricAccumulator
from evstereo.snn import EnergyMeter

Items = list[tuple[Path, "np.ndarray | None"]]


@dataclass
class EvalFrame:
    recording: str
    index: int
    t_us: int
    prediction: np.ndarray  # float32 px
    sample: dict  # the numpy sample (left/right tensors, disparity, valid)


@dataclass
class EvalResult:
    metrics: dict
    energy: dict | None
    forward_ms: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        out = dict(self.metrics)
        if self.energy is not None:
            out.update({"sops": self.energy["sops"], "macs": self.energy["macs"], "energy_mj": self.energy["energy_mj"]})
        t = np.asarray(self.forward_ms)
        out["forward_ms_median"] = float(np.median(t)) if len(t) else None
        out["frames_per_s"] = float(1000.0 / np.median(t)) if len(t) else None
        return out


def split_test_items(root: str | os.PathLike, split: int) -> Items:
    """The test frames of MVSEC split ``split`` under ``root``: only the test sequence is needed
    (``mvsec_split_items`` of the datamodule checks the training files too)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, f"is not a folder; --split {split} needs the folder holding "
                               f"indoor_flying{split}_data.hdf5 and indoor_flying{split}_gt.hdf5")
    items: Items = []
    for scene, frames in mvsec_split(split)["test"]:
        path = root / f"{scene}_data.hdf5"
        if not path.exists():
            raise InputError(path, f"MVSEC split {split} tests on this file, and it does not exist")
        items.append((path, frames))
    return items


def evaluation_items(data: str | os.PathLike, split: int | None = None) -> Items:
    """(recording, frames or None = every valid GT frame) to evaluate."""
    data = Path(data)
    if split is not None:
        return split_test_items(data, split)
    if data.is_file():
        return [(data, None)]
    if data.is_dir():
        if (data / "events" / "left" / "events.h5").exists():
            return [(data, None)]
        files = sorted(data.glob("*_data.hdf5"))
        if files:
            return [(f, None) for f in files]
    if not data.exists():
        raise InputError(data, "does not exist")
    raise InputError(data, "holds no recording to evaluate (an MVSEC-layout *_data.hdf5, a folder of them, "
                           "a DSEC sequence, or an MVSEC folder with --split)")


def _seconds(a: float, b: float) -> str:
    return f"{a / 1e6:.3f}-{b / 1e6:.3f} s"


def _frames_to_score(rec: Recording, frames: np.ndarray | None, spec: SampleSpec) -> np.ndarray:
    """The GT frames of ``rec`` to score; InputError (file and both time ranges) when the event
    windows of those frames are not inside the recording's events."""
    ts = rec.gt_timestamps()
    ok = valid_frames(rec, spec)
    if frames is not None:
        frames = np.asarray(frames, np.int64)
        if len(frames) and (frames.min() < 0 or frames.max() >= len(ts)):
            raise InputError(rec.path, f"has {len(ts)} ground-truth frames, but frame {int(frames.max())} is asked for")
        bad = np.setdiff1d(frames, ok)
    else:
        frames, bad = ok, np.zeros(0, np.int64) if len(ok) else np.arange(len(ts))
    if len(frames) == 0 or len(bad):
        start, end = rec.time_span()
        window = f"{spec.window_us / 1000:g} ms"
        what = ("its events do not overlap its ground-truth times" if end <= ts[0] or start >= ts[-1]
                else f"{len(bad)} ground-truth frames have no whole {window} event window before them")
        raise InputError(rec.path, f"{what} (events {_seconds(start, end)}, ground truth {_seconds(ts[0], ts[-1])})")
    return frames


def _check_ground_truth(rec: Recording, frames: np.ndarray, spec: SampleSpec) -> None:
    """InputError naming the GT file when none of ``frames`` has a valid pixel (it stops at the first
    frame that has one, so a good recording costs one extra GT read)."""
    for i in frames:
        if gt_disparity(rec.disparity(int(i)), spec)[1].any():
            return
    gt_file = getattr(rec, "gt_path", None) or rec.path
    limit = f", disparity <= {spec.gt_max_disparity:g} px" if spec.gt_max_disparity is not None else ""
    raise InputError(gt_file, f"ground truth has no valid pixel (finite, positive depth{limit}) in any of the "
                              f"{len(frames)} frames to evaluate")


def plan_frames(items: Items, spec: SampleSpec, max_frames: int | None = None) -> Items:
    """(recording, frame indices) to score, at most ``max_frames`` in all, every recording checked
    (see the module doc) before any model runs."""
    plan: Items = []
    left = max_frames
    for path, frames in items:
        if left is not None and left <= 0:
            break
        with open_recording(path) as rec:
            if not rec.has_gt:
                raise InputError(path, "has no ground truth to evaluate against")
            rec.check_stereo()
            frames = _frames_to_score(rec, frames, spec)
            if left is not None:
                frames = frames[:left]
                left -= len(frames)
            _check_ground_truth(rec, frames, spec)
        plan.append((Path(path), frames))
    return plan


def iterate_frames(plan: Items, spec: SampleSpec) -> Iterator[tuple[str, float | None, dict]]:
    """(recording path, fB, sample) for every frame of a ``plan_frames`` plan, in order."""
    for path, frames in plan:
        with open_recording(path) as rec:
            for i in frames:
                yield str(path), rec.fB, make_sample(rec, int(i), spec)


def evaluate(model: Model, plan: Items, energy_frames: int = 5,
             on_frame: Callable[[EvalFrame], None] | None = None, device: str | torch.device = "cpu",
             progress: str | None = None) -> EvalResult:
    """Run ``model`` over the frames of ``plan`` (from ``plan_frames``), its input built from
    ``model.input_spec``; ``on_frame`` sees every prediction; ``progress``: the label of a
    progress bar on stderr (None: no bar)."""
    spec = SampleSpec.for_input(model.input_spec)
    acc = MetricAccumulator()
    energies: list[dict] = []
    times: list[float] = []
    meter = EnergyMeter(model) if isinstance(model, torch.nn.Module) and any(True for _ in model.parameters()) else None
    if isinstance(model, torch.nn.Module):
        model = model.to(device).eval()
    total = sum(len(frames) for _, frames in plan)
    with torch.no_grad(), tqdm(total=total, desc=progress, unit="frame", disable=progress is None,
                               dynamic_ncols=True) as bar:
        for k, (path, fB, s) in enumerate(iterate_frames(plan, spec)):
            left = torch.from_numpy(s["left"])[None].to(device)
            right = torch.from_numpy(s["right"])[None].to(device)
            t = time.perf_counter()
            pred = model(left, right)[0].float().cpu().numpy()
            times.append((time.perf_counter() - t) * 1e3)
            acc.fB = fB
            acc.update(pred, s["disparity"], s["valid"])
            if meter is not None and k < energy_frames:
                energies.append(meter.measure(left, right))
            if on_frame is not None:
                on_frame(EvalFrame(path, int(s["index"]), int(s["t_us"]), pred, s))
            bar.update()
    if not acc.frames:
        raise InputError(None, "no frame to evaluate (recordings too short for the event window?)")
    energy = None
    if energies:
        energy = {k: float(np.mean([e[k] for e in energies])) for k in ("sops", "macs", "energy_mj")}
        energy["frames_measured"] = len(energies)
    return EvalResult(acc.compute(), energy, times[1:] if len(times) > 1 else times)  # first call warms up
