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
``METRIC_NAMES``/``METRIC_UNITS``, and DSEC's ``DSEC_METRIC_NAMES``), the energy per frame
from ``EnergyMeter`` (on every frame unless ``energy_frames`` limits it: one more forward
pass each, at the Predictor's current scale), and frames/s from the prediction's time alone.

Where the events are sparse, ``sparse`` (a ``SparseWindows``: evaluate's default, off in
training) lets a frame's window reach further back; the windows used are reported per
recording (``windows_ms``, as live depth's timings.json has them: ``engine.window_summary``).

Each frame runs through a ``Predictor`` (``evstereo.inference.prediction``) made for its
recording: the input scale ("auto" by default) resamples the event tensors to the network's
size and the disparity and confidence come back at the sensor's, where they are scored
against the ground truth as it is. The metrics are reported twice: over every valid GT pixel,
and over the confident ones (confidence >= ``min_confidence``) with their ``coverage``, the
share of valid GT pixels kept (pooled over the pixels of all frames); for all recordings
together and for each one.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from evstereo.recordings import open_recording
from evstereo.datasets.prepared import valid_frames
from evstereo.recordings.recording import Recording
from evstereo.datasets.samples import SampleSpec, SparseWindows, gt_disparity, make_sample
from evstereo.events.input_spec import sample_input
from evstereo.datasets.splits import mvsec_split
from evstereo.errors import InputError
from evstereo.inference.engine import Model, window_summary
from evstereo.inference.prediction import (DEFAULT_EVENT_RADIUS, DEFAULT_MIN_CONFIDENCE, Predictor, is_stateful,
                                           streamed)
from evstereo.metrics import MetricAccumulator, coverage
from evstereo.snn import EnergyMeter
from evstereo.snn.layers import folded_for_inference

Items = list[tuple[Path, "np.ndarray | None"]]


@dataclass
class EvalFrame:
    recording: str
    index: int
    t_us: int
    prediction: np.ndarray  # float32 px
    sample: dict  # the numpy sample (left/right tensors, disparity, valid)
    confidence: np.ndarray | None = None  # float32 in [0, 1]
    scale: float = 1.0  # the input scale the prediction was made at


class Scores:
    """The metrics of a set of frames over every valid GT pixel and over the confident ones."""

    def __init__(self, min_confidence: float) -> None:
        self.min_confidence = min_confidence
        self.all = MetricAccumulator(dsec=True)
        self.confident = MetricAccumulator(dsec=True)
        self.kept = self.total = 0

    def update(self, pred: np.ndarray, confidence: np.ndarray, gt: np.ndarray, valid: np.ndarray,
               fB: float | None) -> None:
        """One frame (``fB``: its recording's, for the depth metrics; None: disparity metrics only)."""
        self.all.fB = self.confident.fB = fB
        self.all.update(pred, gt, valid)
        keep = confidence >= self.min_confidence
        self.confident.update(pred, gt, valid & keep)
        kept, total = coverage(valid, keep)
        self.kept, self.total = self.kept + kept, self.total + total

    def as_dict(self) -> dict:
        """The metrics over all pixels, with ``confident``: the same over confident pixels and ``coverage``."""
        return {**self.all.compute(), "confident": {**self.confident.compute(),
                                                    "coverage": self.kept / self.total if self.total else None}}


@dataclass
class EvalResult:
    metrics: dict  # over every valid GT pixel (MVSEC and DSEC metrics, "frames")
    energy: dict | None
    forward_ms: list[float] = field(default_factory=list)
    confident: dict | None = None  # the same over confident pixels, and "coverage"
    recordings: dict = field(default_factory=dict)  # path -> {"sensor", "scale", metrics..., "confident"}
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    windows_ms: dict | None = None  # the event windows used (``window_summary``), all recordings together

    @property
    def scale(self) -> float | None:
        """The input scale, when every recording ran at the same one (else None: see ``recordings``)."""
        scales = {r["scale"] for r in self.recordings.values()}
        return scales.pop() if len(scales) == 1 else None

    def as_dict(self) -> dict:
        out = dict(self.metrics)
        out.update(scale=self.scale, min_confidence=self.min_confidence, confident=self.confident,
                   windows_ms=self.windows_ms, recordings=self.recordings)
        if self.energy is not None:
            out.update({"sops": self.energy["sops"], "macs": self.energy["macs"], "energy_mj": self.energy["energy_mj"],
                        "energy": {k: self.energy[k] for k in ("frames_measured", "time_steps", "energy_memory_mj",
                                                                  "ann_equivalent", "layers")}})
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


def iterate_frames(plan: Items, spec: SampleSpec,
                   sparse: SparseWindows | None = None) -> Iterator[tuple[str, Recording, dict]]:
    """(recording path, the open recording, sample) for every frame of a ``plan_frames`` plan, in order."""
    for path, frames in plan:
        with open_recording(path) as rec:
            for i in frames:
                yield str(path), rec, make_sample(rec, int(i), spec, sparse=sparse)


def streamed_energy(measure: Callable[[Tensor, Tensor], dict], model: torch.nn.Module, left: Tensor,
                    right: Tensor) -> dict:
    """``measure``'s report for one frame (``EnergyMeter.measure`` or ``.ann_equivalent``); for
    a stateful network's context input, the report of its last window after the earlier ones
    were streamed (one output's energy when streaming)."""
    reports = []
    streamed(model, left, right, lambda l, r: reports.append(measure(l, r)))
    return reports[0]


def energy_summary(reports: list[dict]) -> dict:
    """Means over frames of ``EnergyMeter`` reports: ``sops``, ``macs``, ``energy_mj``,
    ``energy_memory_mj`` (with memory accesses), ``frames_measured``, and ``layers`` (each
    layer's or function's mean energy, its share of the total and its mean input spike rate;
    None for analog parts)."""
    out = {k: float(np.mean([e[k] for e in reports])) for k in ("sops", "macs", "energy_mj", "energy_memory_mj")}
    out["frames_measured"] = len(reports)
    layers: dict[str, dict] = {}
    for report in reports:
        for layer in report["layers"]:
            row = layers.setdefault(layer["name"], {"name": layer["name"], "kind": layer["kind"], "type": layer["type"],
                                                    "energy": [], "rates": []})
            row["energy"].append(layer["energy_mj"])
            if layer["input_spike_rate"] is not None:
                row["rates"].append(layer["input_spike_rate"])
    total = out["energy_mj"] or 1.0
    out["layers"] = [{"name": r["name"], "kind": r["kind"], "type": r["type"],
                      "energy_mj": float(np.sum(r["energy"]) / len(reports)),
                      "share": float(np.sum(r["energy"]) / len(reports) / total),
                      "input_spike_rate": float(np.mean(r["rates"])) if r["rates"] else None} for r in layers.values()]
    return out


def evaluate(model: Model, plan: Items, energy_frames: int | None = None,
             on_frame: Callable[[EvalFrame], None] | None = None, device: str | torch.device = "cpu",
             progress: str | None = None, scale: str | float = "auto",
             min_confidence: float = DEFAULT_MIN_CONFIDENCE, event_radius: float = DEFAULT_EVENT_RADIUS,
             sparse: SparseWindows | None = None) -> EvalResult:
    """Run ``model`` over the frames of ``plan`` (from ``plan_frames``), its input built from
    ``model.input_spec`` and resampled by ``scale`` ("auto" or a factor, per recording);
    ``sparse``: longer windows where the events are sparse (module doc; not for a stateful network);
    ``on_frame`` sees every prediction; ``progress``: the label of a progress bar on stderr
    (None: no bar). Confident pixels: confidence >= ``min_confidence`` (see the module doc)."""
    spec = SampleSpec.for_input(sample_input(model))
    # a stateful network's input holds its context windows, streamed one by one: each a full output
    per_output = spec.window_us / model.input_spec.window_us
    scores = Scores(min_confidence)
    per_recording: dict[str, tuple[Scores, Predictor]] = {}
    windows: dict[str, list[int]] = {}
    if is_stateful(model):
        sparse = None  # its windows follow one another: one length
    energies: list[dict] = []
    ann: dict | None = None
    times: list[float] = []
    if isinstance(model, torch.nn.Module):
        model = folded_for_inference(model.to(device))  # a copy: the caller's model is kept
    meter = EnergyMeter(model) if isinstance(model, torch.nn.Module) and any(True for _ in model.parameters()) else None
    total = sum(len(frames) for _, frames in plan)
    with torch.no_grad(), tqdm(total=total, desc=progress, unit="frame", disable=progress is None,
                               dynamic_ncols=True) as bar:
        for k, (path, rec, s) in enumerate(iterate_frames(plan, spec, sparse)):
            fB = rec.fB
            if path not in per_recording:  # the scale follows each recording's sensor
                h, w = s["left"].shape[-2:]
                per_recording[path] = (Scores(min_confidence), Predictor(model, h, w, scale, event_radius, fB=fB,
                                                                         disparity=rec.typical_disparity))
            rec_scores, predictor = per_recording[path]
            windows.setdefault(path, []).append(int(s["window_us"]))
            left = torch.from_numpy(s["left"])[None].to(device)
            right = torch.from_numpy(s["right"])[None].to(device)
            t = time.perf_counter()
            pred, conf = predictor(left, right)
            pred, conf = pred[0].cpu().numpy(), conf[0].cpu().numpy()
            times.append((time.perf_counter() - t) * 1e3 / per_output)
            for sc in (scores, rec_scores):
                sc.update(pred, conf, s["disparity"], s["valid"], fB)
            if meter is not None and (energy_frames is None or k < energy_frames):
                # a stateful network: its last window's, after the earlier ones were streamed
                inputs = predictor.network_input(left, right)
                energies.append(streamed_energy(meter.measure, model, *inputs))
                if ann is None:  # dense counts do not depend on the input: once is enough
                    ann = streamed_energy(meter.ann_equivalent, model, *inputs)
            if on_frame is not None:
                on_frame(EvalFrame(path, int(s["index"]), int(s["t_us"]), pred, s, conf, predictor.scale))
            bar.update()
    if not scores.all.frames:
        raise InputError(None, "no frame to evaluate (recordings too short for the event window?)")
    energy = None
    if energies:
        energy = energy_summary(energies)
        energy["ann_equivalent"] = {k: ann[k] for k in ("macs", "energy_mj", "energy_memory_mj")}
        energy["time_steps"] = int(getattr(model, "time_steps", 1))
    overall = scores.as_dict()
    recordings = {path: {"sensor": list(p.size), "scale": p.scale, "rule_scale": p.rule_scale, "scale_rule": p.rule,
                         "typical_disparity": p.typical_disparity,
                         "network_size": list(p.network_size),
                         "windows_ms": window_summary(windows[path], spec.window_us),
                         **sc.as_dict()} for path, (sc, p) in per_recording.items()}
    return EvalResult({k: v for k, v in overall.items() if k != "confident"}, energy,
                      times[1:] if len(times) > 1 else times,  # the first call warms up
                      overall["confident"], recordings, min_confidence,
                      window_summary([w for ws in windows.values() for w in ws], spec.window_us))
