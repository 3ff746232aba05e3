"""One stereo training/evaluation sample: events of (t - window, t] -> representation tensors + GT.

``SampleSpec`` is a network's ``InputSpec`` (``evstereo.events.input_spec``: representation,
bins, time steps, window; build it with ``SampleSpec.for_input(model.input_spec)``) plus what
the ground truth needs: ``gt_max_disparity``, the protocol's validity cap (MVSEC: 36.3 px;
larger GT disparities are invalid, whatever range the network predicts), and the optional
``disparity_quantum``. ``make_sample`` turns a Recording and a GT frame index into numpy arrays:
``left``/``right`` [T, C, H, W] float32, ``disparity`` [H, W] float32 (0 where invalid),
``valid`` [H, W] bool, and ``disparity_right`` when the right GT exists (flip augmentation).
The live engine uses ``represent`` with the same spec, so training and inference agree.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from evstereo import events as ev
from evstereo.recordings.recording import MVSEC_MAX_VALID_DISPARITY, Recording
from evstereo.events.input_spec import REPRESENTATIONS, InputSpec
from evstereo.geometry import depth_to_disparity

__all__ = ["REPRESENTATIONS", "SampleSpec", "represent", "gt_disparity", "window_bounds", "make_sample"]


@dataclass(frozen=True)
class SampleSpec(InputSpec):
    """A network's input (the ``InputSpec`` fields) plus the ground truth's validity rules."""

    gt_max_disparity: float | None = MVSEC_MAX_VALID_DISPARITY  # larger GT disparities are invalid
    disparity_quantum: int | None = None  # e.g. 7: peers round GT disparity to 1/7 px

    @classmethod
    def for_input(cls, spec: InputSpec, **ground_truth) -> "SampleSpec":
        """The samples of a network's input ``spec``; ``ground_truth``: gt_max_disparity, disparity_quantum."""
        return cls(**{f.name: getattr(spec, f.name) for f in fields(InputSpec)}, **ground_truth)

    @property
    def input(self) -> InputSpec:
        """The network-input part alone."""
        return InputSpec(**{f.name: getattr(self, f.name) for f in fields(InputSpec)})


_FUNCS = {"sbt": "sbt", "voxel": "voxel_grid", "counts": "event_counts", "spikes": "spike_tensor"}


def represent(events: ev.Events, spec: InputSpec, height: int, width: int, t_start: int, t_end: int) -> np.ndarray:
    """Events of one camera -> [T, C, H, W] float32 with the window bounds shared by both cameras."""
    fn = getattr(ev, _FUNCS[spec.representation])
    out = fn(events.x, events.y, events.t, events.p, spec.bins, height, width, t_start=t_start, t_end=t_end)
    return out.reshape(*spec.shape_tc, height, width)


def gt_disparity(disparity: np.ndarray, spec: SampleSpec) -> tuple[np.ndarray, np.ndarray]:
    """(disparity with 0 where invalid, valid mask) after the protocol's masking and quantisation."""
    d = np.asarray(disparity, np.float32)
    if spec.disparity_quantum:
        d = np.round(d * spec.disparity_quantum) / spec.disparity_quantum
    valid = np.isfinite(d) & (d > 0)
    if spec.gt_max_disparity is not None:
        valid &= d <= spec.gt_max_disparity
    return np.where(valid, d, 0).astype(np.float32), valid


def window_bounds(t_us: int, spec: InputSpec) -> tuple[int, int]:
    """The sample window (t - window, t] for a GT timestamp."""
    return int(t_us) - spec.window_us, int(t_us)


def make_sample(rec: Recording, index: int, spec: SampleSpec, with_right_gt: bool = False) -> dict:
    """Build the sample for GT frame ``index``: events paired with GT by timestamp."""
    t = int(rec.gt_timestamps()[index])
    t0, t1 = window_bounds(t, spec)
    out = {"t_us": t, "index": index, "fB": float("nan") if rec.fB is None else float(rec.fB)}
    for cam in ("left", "right"):
        out[cam] = represent(rec.events(cam, t0, t1), spec, rec.height, rec.width, t0, t1)
    out["disparity"], out["valid"] = gt_disparity(rec.disparity(index), spec)
    if with_right_gt:
        depth_right = rec.depth_right(index)
        if depth_right is not None and rec.fB is not None:
            out["disparity_right"], out["valid_right"] = gt_disparity(depth_to_disparity(depth_right, rec.fB), spec)
    return out
