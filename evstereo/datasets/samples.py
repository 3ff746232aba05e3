"""One stereo training/evaluation sample: events of (t - window, t] -> representation tensors + GT.

``SampleSpec`` is a network's ``InputSpec`` (``evstereo.events.input_spec``: representation,
bins, time steps, window; build it with ``SampleSpec.for_input(model.input_spec)``) plus what
the ground truth needs: ``gt_max_disparity``, the protocol's validity cap (MVSEC: 36.3 px;
larger GT disparities are invalid, whatever range the network predicts), and the optional
``disparity_quantum``. ``make_sample`` turns a Recording and a GT frame index into numpy arrays:
``left``/``right`` [T, C, H, W] float32, ``disparity`` [H, W] float32 (0 where invalid),
``valid`` [H, W] bool, and ``disparity_right`` when the right GT exists (flip augmentation).
The live engine uses ``represent`` with the same spec, so training and inference agree.

``SparseWindows`` is the policy for sparse input (evaluate and live depth use it by default;
training only on the thinned samples of ``data.augment.p_sparse_windows``): where a camera
saw fewer than ``min_event_density`` events per pixel in the network's window, the window
reaches further back (2x, 4x, ... up to ``max_window_factor`` times) until both cameras have
that many, and the representation's bins span the longer window.
Why: the network learned on windows with about 0.4-0.9 events per pixel; on sparse validation
recordings (randomised rigs and the MVSEC rig, whole and thinned to 30-1 %) a window of 2-8x
had a lower error on 14 of the 15 below 0.1 events per pixel, and 4-8x cost accuracy on the
dense ones, where the scene moves more within it (docs/experiments.md, "Sparse events").
``EventThinning`` keeps a share of each camera's events, the same events whichever window
reads them (a hash of each event, not a draw per read), so training can show the network
sparse recordings through the same longer windows that inference gives them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from evstereo import events as ev
from evstereo.recordings.recording import MVSEC_MAX_VALID_DISPARITY, Recording
from evstereo.events.input_spec import REPRESENTATIONS, InputSpec
from evstereo.geometry import CAMERAS, depth_to_disparity

__all__ = ["REPRESENTATIONS", "SampleSpec", "SparseWindows", "EventThinning", "represent", "gt_disparity",
           "window_bounds", "window_events", "make_sample"]


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


@dataclass(frozen=True)
class SparseWindows:
    """Longer windows where the events are sparse (see the module doc); ``min_event_density`` 0: off."""

    min_event_density: float = 0.1  # events per pixel, per camera
    max_window_factor: int = 8  # the longest window, in network windows

    def __post_init__(self) -> None:
        if not (np.isfinite(self.min_event_density) and self.min_event_density >= 0):
            raise ValueError(f"min_event_density must be 0 (off) or positive, not {self.min_event_density!r}")
        factor = self.max_window_factor
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"max_window_factor must be a positive integer, not {self.max_window_factor!r}")

    @property
    def enabled(self) -> bool:
        return self.min_event_density > 0 and self.max_window_factor > 1


@dataclass(frozen=True)
class EventThinning:
    """Keep the share ``keep[camera]`` of each camera's events, chosen by a hash of each event
    (time, position, polarity) and ``seed``: a longer window keeps the shorter one's events."""

    keep: dict[str, float]
    seed: int = 0

    def __call__(self, camera: str, events: ev.Events) -> ev.Events:
        keep = float(self.keep.get(camera, 1.0))
        if keep >= 1 or not len(events):
            return events
        # splitmix64's finaliser over the event's fields: uniform bits, no state between reads
        h = (events.t.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
             ^ (events.x.astype(np.uint64) << np.uint64(40)) ^ (events.y.astype(np.uint64) << np.uint64(20))
             ^ (events.p > 0).astype(np.uint64) ^ (np.uint64(self.seed & 0xFFFFFFFFFFFF) << np.uint64(1)))
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
        return events[(h >> np.uint64(11)).astype(np.float64) * 2.0**-53 < keep]


def window_events(rec: Recording, t_us: int, window_us: int, sparse: SparseWindows | None = None,
                  thinning: EventThinning | None = None) -> tuple[int, dict[str, ev.Events]]:
    """(t0, {camera: events of (t0, t_us]}): the window ``window_us`` before ``t_us``, or with
    ``sparse`` the shortest of 2, 4, ... ``max_window_factor`` times it in which both cameras reach
    ``min_event_density`` events per pixel (the longest when none does; a window is only doubled when
    it began after the recording's first event). A dense window costs one read, as without
    ``sparse``. ``thinning``: only that share of the events, before the density is counted."""
    def read(cam: str, start: int) -> ev.Events:
        events = rec.events(cam, start, t_us)
        return events if thinning is None else thinning(cam, events)

    t0 = int(t_us) - int(window_us)
    events = {cam: read(cam, t0) for cam in CAMERAS}
    if sparse is None or not sparse.enabled:
        return t0, events
    need = sparse.min_event_density * rec.height * rec.width
    if min(len(e) for e in events.values()) >= need:
        return t0, events
    start = rec.time_span()[0]
    factors, f = [], 2
    while f <= sparse.max_window_factor and int(t_us) - (f // 2) * int(window_us) > start:
        factors.append(f)  # a longer window only while the shorter one began after the first event
        f *= 2
    if not factors:
        return t0, events
    longest = {cam: read(cam, int(t_us) - factors[-1] * int(window_us)) for cam in CAMERAS}
    for f in factors:
        t0 = int(t_us) - f * int(window_us)
        events = {cam: e.window(t0, int(t_us)) for cam, e in longest.items()}
        if min(len(e) for e in events.values()) >= need:
            break
    return t0, events


def make_sample(rec: Recording, index: int, spec: SampleSpec, with_right_gt: bool = False,
                sparse: SparseWindows | None = None, thinning: EventThinning | None = None) -> dict:
    """Build the sample for GT frame ``index``: events paired with GT by timestamp. ``sparse``:
    longer windows where the events are sparse; ``window_us`` is the one used. ``thinning``: a
    share of each camera's events only."""
    t = int(rec.gt_timestamps()[index])
    t0, events = window_events(rec, t, spec.window_us, sparse, thinning)
    out = {"t_us": t, "index": index, "fB": float("nan") if rec.fB is None else float(rec.fB),
           "window_us": t - t0}
    for cam in CAMERAS:
        out[cam] = represent(events[cam], spec, rec.height, rec.width, t0, t)
    out["disparity"], out["valid"] = gt_disparity(rec.disparity(index), spec)
    if with_right_gt:
        depth_right = rec.depth_right(index)
        if depth_right is not None and rec.fB is not None:
            out["disparity_right"], out["valid_right"] = gt_disparity(depth_to_disparity(depth_right, rec.fB), spec)
    return out
