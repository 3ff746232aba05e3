"""Offline evaluation: a model over the GT frames of recordings, with the MVSEC metrics.

Frames: for an MVSEC folder and a split, that split's test frames (PAPER.md section 6); for
other recordings, every GT frame whose whole window lies inside the recording. Each frame's
input is built exactly as in training (``make_sample``), the metrics come from
``evstereo.metrics`` (per frame, then averaged over frames), the energy per frame from
``EnergyMeter`` on the first frames, and frames/s from the model's forward time alone.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from evstereo.datasets import open_recording
from evstereo.datasets.datamodule import mvsec_split_items
from evstereo.datasets.prepared import valid_frames
from evstereo.datasets.samples import SampleSpec, make_sample
from evstereo.errors import InputError
from evstereo.metrics import MetricAccumulator
from evstereo.snn import EnergyMeter


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


def evaluation_items(data: str | os.PathLike, split: int | None = None) -> list[tuple[Path, np.ndarray | None]]:
    """(recording, frames or None = every valid GT frame) to evaluate."""
    data = Path(data)
    if split is not None:
        return mvsec_split_items(data, split)["test"]
    if data.is_file():
        return [(data, None)]
    if data.is_dir():
        if (data / "events" / "left" / "events.h5").exists():
            return [(data, None)]
        files = sorted(data.glob("*_data.hdf5"))
        if files:
            return [(f, None) for f in files]
    raise InputError(data, "holds no recording to evaluate (an MVSEC-layout *_data.hdf5, a folder of them, "
                           "a DSEC sequence, or an MVSEC folder with --split)")


def iterate_frames(items, spec: SampleSpec, max_frames: int | None = None) -> Iterator[tuple[str, float | None, dict]]:
    """(recording path, fB, sample) for every frame to evaluate, in order."""
    n = 0
    for path, frames in items:
        with open_recording(path) as rec:
            if not rec.has_gt:
                raise InputError(path, "has no ground truth to evaluate against")
            frames = valid_frames(rec, spec) if frames is None else frames
            for i in frames:
                if max_frames is not None and n >= max_frames:
                    return
                yield str(path), rec.fB, make_sample(rec, int(i), spec)
                n += 1


def evaluate(model: Callable, spec: SampleSpec, items, energy_frames: int = 5, max_frames: int | None = None,
             on_frame: Callable[[EvalFrame], None] | None = None, device: str = "cpu") -> EvalResult:
    """Run ``model`` over the frames of ``items``; ``on_frame`` sees every prediction."""
    acc: MetricAccumulator | None = None
    energies: list[dict] = []
    times: list[float] = []
    meter = EnergyMeter(model) if isinstance(model, torch.nn.Module) and any(True for _ in model.parameters()) else None
    if isinstance(model, torch.nn.Module):
        model = model.to(device).eval()
    with torch.no_grad():
        for k, (path, fB, s) in enumerate(iterate_frames(items, spec, max_frames)):
            if acc is None:
                acc = MetricAccumulator(fB=fB)
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
    if acc is None:
        raise InputError(None, "no frame to evaluate (recordings too short for the event window?)")
    energy = None
    if energies:
        energy = {k: float(np.mean([e[k] for e in energies])) for k in ("sops", "macs", "energy_mj")}
        energy["frames_measured"] = len(energies)
    return EvalResult(acc.compute(), energy, times[1:] if len(times) > 1 else times)  # first call warms up
