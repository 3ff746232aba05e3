"""Streaming engine: recording -> windows -> representation -> model -> disparity/depth frames.

A replay clock drives it. At real-time pace (``speed`` x wall clock) the engine waits for a
window's end time to arrive and, when the model falls behind, jumps to the newest complete
window and counts the skipped ones; with ``max_speed`` it processes every window as fast as
it can. Windows end on the recording's GT timestamps when it has GT (so predictions can be
scored) or on a regular grid of ``stride_us``. It reads one window at a time, so memory stays
flat however long the recording is. Per-stage timings are kept for every frame.

The model's input comes from the model: ``model.input_spec`` (an ``InputSpec``: representation,
bins, time steps, window); ``EngineConfig.window_us`` overrides only the window (None: the
network's). Where the events are sparse, ``EngineConfig.sparse`` (``SparseWindows``, on by
default; None: off) lets a window reach further back than that (``DepthFrame.window_us``);
a stateful network always keeps its own window. GT disparities are masked with ``SampleSpec``'s ground-truth rules
(``gt_max_disparity``), which belong to the data, not to the network.

Each window runs through a ``Predictor`` (``evstereo.inference.prediction``): the frames are
resampled by the input scale (``EngineConfig.scale``, "auto" by default; ``self.scale`` is the
factor used), and every frame carries its disparity and confidence at the sensor's size.

A stateful network (``NetConfig.stateful``) streams: its windows follow one another without
gaps (``stride_us`` defaults to the window), its membranes carry from one to the next, and
they are reset to rest wherever a window does not start where the last one ended (the first
window, a seek, a skip when the model falls behind; counted in ``state_resets``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator, Protocol

import numpy as np
import torch

from evstereo.recordings.recording import Recording
from evstereo.datasets.samples import SampleSpec, SparseWindows, gt_disparity, represent, window_events
from evstereo.events.arrays import Events
from evstereo.events.input_spec import InputSpec
from evstereo.geometry import disparity_to_depth
from evstereo.inference.prediction import DEFAULT_EVENT_RADIUS, Predictor, is_stateful
from evstereo.inference.readout import FusedReadoutNet
from evstereo.snn.layers import folded_for_inference

STAGES = ("read", "represent", "model", "post")


@dataclass
class EngineConfig:
    window_us: int | None = None  # None: the network's window (model.input_spec.window_us)
    stride_us: int | None = None  # None: GT timestamps when the recording has GT, else window_us
    max_speed: bool = False
    speed: float = 1.0  # replay speed factor at real-time pace
    start_us: int | None = None
    end_us: int | None = None
    max_frames: int | None = None
    device: str = "cpu"
    compile: bool = False
    fused_readout: bool = True  # CPU: upsampling + disparity head in one numba pass (see readout.py)
    scale: str | float = "auto"  # input scale: "auto" (towards the network's nominal size) or a factor
    event_radius: float = DEFAULT_EVENT_RADIUS  # confidence 0 farther than this from an event (0: off)
    sparse: SparseWindows | None = SparseWindows()  # longer windows where the events are sparse (None: off)


@dataclass
class DepthFrame:
    """One output frame. ``disparity``/``depth`` are (H, W) float32 with NaN where invalid;
    ``confidence`` (H, W) float32 in [0, 1], 0 where the disparity is invalid."""

    index: int  # window number in the schedule (gaps are skipped windows)
    t_us: int  # window end (the frame's timestamp)
    disparity: np.ndarray
    depth: np.ndarray | None
    left: Events
    right: Events
    timings_ms: dict[str, float]
    latency_ms: float  # from the window's end on the replay clock to the frame being ready
    gt_disparity: np.ndarray | None = None  # NaN where invalid
    skipped: int = 0  # windows dropped right before this one to keep pace
    confidence: np.ndarray | None = None
    window_us: int | None = None  # the event window used (longer than the network's where events are sparse)


def window_summary(windows_us: list[int], window_us: int) -> dict:
    """The event windows a set of frames used, in ms: the network's (``network``), their mean,
    median, p95 and longest, and the share longer than the network's (sparse events)."""
    w = np.asarray(windows_us, np.float64) / 1000
    if not len(w):
        return {"network": window_us / 1000, "mean": None, "p50": None, "p95": None, "max": None,
                "extended_share": None}
    return {"network": window_us / 1000, "mean": float(w.mean()), "p50": float(np.percentile(w, 50)),
            "p95": float(np.percentile(w, 95)), "max": float(w.max()),
            "extended_share": float((w > window_us / 1000).mean())}


def percentiles(values: list[float]) -> dict:
    """{"p50", "p95", "max"} of ``values`` (None each when there are none)."""
    if not values:
        return {"p50": None, "p95": None, "max": None}
    a = np.asarray(values)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "max": float(a.max())}


@dataclass
class EngineStats:
    frames: int = 0
    skipped: int = 0
    state_resets: int = 0  # a stateful network's membranes set to rest (first window, seeks, skips)
    timings_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    latency_ms: list[float] = field(default_factory=list)
    windows_us: list[int] = field(default_factory=list)  # the event window of every frame produced
    window_us: int = 0  # the network's window (the engine's config)

    def summary(self) -> dict:
        total = [sum(x) for x in zip(*self.timings_ms.values())] if self.frames else []
        return {
            "frames_produced": self.frames,
            "frames_skipped": self.skipped,
            "state_resets": self.state_resets,
            "stages_ms": {s: percentiles(v) for s, v in self.timings_ms.items()},
            "processing_ms": percentiles(total),
            "latency_ms": percentiles(self.latency_ms),
            "windows_ms": window_summary(self.windows_us, self.window_us),
        }


class Model(Protocol):
    """What the engine runs: forward(left, right) -> [B, H, W] disparity, and the input it needs.

    Optional: ``disparity_with_confidence(left, right)`` (else the confidence is 1),
    ``nominal_size`` (h, w) for the automatic scale, ``native_resolution`` (never resampled)."""

    input_spec: InputSpec

    def __call__(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor: ...


class StreamingEngine:
    """Replays ``recording`` through ``model`` (forward(left, right) -> [B, H, W] disparity).

    ``spec`` (a ``SampleSpec``) is the model's ``input_spec`` with the configured window and the
    ground truth's rules; ``config.window_us`` is filled in with the window used. ``scale`` is
    the input scale used and ``network_size`` the (h, w) the network sees.
    """

    def __init__(self, recording: Recording, model: Model, config: EngineConfig | None = None,
                 clock: Callable[[], float] = time.perf_counter, sleep: Callable[[float], None] = time.sleep):
        self.rec = recording
        config = config or EngineConfig()
        spec = model.input_spec
        if config.window_us is not None:
            spec = replace(spec, window_us=int(config.window_us))
        self.spec = SampleSpec.for_input(spec)
        self.config = replace(config, window_us=self.spec.window_us)
        self.clock, self.sleep = clock, sleep
        self.device = torch.device(self.config.device)
        # a stateful network streams with its membranes carried, reset wherever the windows are not contiguous
        self._stateful = is_stateful(model)
        self._last_end: int | None = None
        if isinstance(model, torch.nn.Module):
            model = folded_for_inference(model.to(self.device))  # a copy: the caller's model is kept
        if self._stateful:
            model.streaming(True)
            self._net = model
        if isinstance(model, torch.nn.Module):
            if not self.config.compile and self.config.fused_readout and self.device.type == "cpu" \
                    and hasattr(model, "coarse_cost"):
                model = FusedReadoutNet(model)
        self.model = model
        self.predictor = Predictor(model, recording.height, recording.width, self.config.scale,
                                   self.config.event_radius, compile=self.config.compile, fB=recording.fB,
                                   disparity=recording.typical_disparity)
        self.stats = EngineStats(window_us=self.config.window_us)
        self.schedule = self._schedule()
        self._warm = False

    @property
    def scale(self) -> float:
        return self.predictor.scale  # "auto" may lower it on the first frames (Predictor)

    @property
    def stateful(self) -> bool:
        """Whether the model streams with its membranes carried (contiguous windows)."""
        return self._stateful

    @property
    def schedule_kind(self) -> str:
        """"gt timestamps" or "regular grid": where the windows end (see ``_schedule``)."""
        on_gt = self.config.stride_us is None and self.rec.has_gt and not self._stateful
        return "gt timestamps" if on_gt else "regular grid"

    @property
    def network_size(self) -> tuple[int, int]:
        return self.predictor.network_size

    def _schedule(self) -> np.ndarray:
        """Window end times (us)."""
        cfg = self.config
        start, end = self.rec.time_span()
        first = start + cfg.window_us
        if cfg.start_us is not None:
            first = max(first, cfg.start_us)
        last = end if cfg.end_us is None else min(end, cfg.end_us)
        if self.schedule_kind == "gt timestamps":
            ts = self.rec.gt_timestamps()
            ends = ts[(ts >= first) & (ts <= last)]
        else:
            stride = cfg.stride_us or cfg.window_us  # a stateful network: contiguous windows
            ends = np.arange(first, last + 1, stride, dtype=np.int64)
        if cfg.max_frames is not None:
            ends = ends[: cfg.max_frames]
        return ends.astype(np.int64)

    def _gt(self, t_us: int) -> np.ndarray | None:
        if not self.rec.has_gt or self.rec.fB is None:
            return None
        i = self.rec.gt_index_at(t_us)
        if abs(int(self.rec.gt_timestamps()[i]) - t_us) > self.config.window_us // 2:
            return None
        d, valid = gt_disparity(self.rec.disparity(i), self.spec)
        return np.where(valid, d, np.nan).astype(np.float32)

    @torch.no_grad()
    def process(self, index: int, t_us: int) -> DepthFrame:
        """Run one window ending at ``t_us`` through every stage."""
        timings = {}
        t = time.perf_counter()
        if self._stateful:
            if self._last_end != t_us - self.config.window_us:  # a seek, a skipped window or the first one: from rest
                self._net.reset_state()
                self.stats.state_resets += 1
            self._last_end = t_us
        sparse = None if self._stateful else self.config.sparse
        t0, events = window_events(self.rec, t_us, self.config.window_us, sparse)
        left, right = events["left"], events["right"]
        timings["read"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        h, w = self.rec.height, self.rec.width
        xl = torch.from_numpy(represent(left, self.spec, h, w, t0, t_us))[None].to(self.device)
        xr = torch.from_numpy(represent(right, self.spec, h, w, t0, t_us))[None].to(self.device)
        timings["represent"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        disp, conf = self.predictor(xl, xr)
        disp, conf = disp[0].cpu().numpy(), conf[0].cpu().numpy()
        timings["model"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        ok = np.isfinite(disp) & (disp > 0)
        disp = np.where(ok, disp, np.nan).astype(np.float32)
        conf = np.where(ok, conf, 0).astype(np.float32)
        depth = disparity_to_depth(disp, self.rec.fB) if self.rec.fB else None
        gt = self._gt(t_us)
        timings["post"] = (time.perf_counter() - t) * 1e3
        return DepthFrame(index, int(t_us), disp, depth, left, right, timings, 0.0, gt, confidence=conf,
                          window_us=int(t_us - t0))

    def warm_up(self) -> None:
        """Run the first window once, untimed: first calls compile and load (numba kernels, the
        model), and at real-time pace that delay would otherwise count as skipped windows. The
        scale fit forgets it, so that it sees the first windows once each, as evaluate does."""
        if len(self.schedule) and not self._warm:
            fit = self.predictor.fit_state()
            self.process(0, int(self.schedule[0]))
            self.predictor.restore_fit(fit)
            self._warm = True

    def frames(self) -> Iterator[DepthFrame]:
        """Yield frames in time order, pacing and skipping by the replay clock unless max_speed."""
        sched = self.schedule
        if len(sched) == 0:
            return
        cfg = self.config
        if not cfg.max_speed:
            self.warm_up()
        rec_origin = int(sched[0])  # replay time of the first window end = clock origin
        wall_origin = self.clock()

        def replay_now() -> float:
            return rec_origin + (self.clock() - wall_origin) * 1e6 * cfg.speed

        k = 0
        while k < len(sched):
            skipped = 0
            if not cfg.max_speed:
                now = replay_now()
                if now < sched[k]:
                    self.sleep((sched[k] - now) / 1e6 / cfg.speed)
                else:
                    # the newest window that has already ended: everything before it is stale
                    newest = int(np.searchsorted(sched, now, side="right")) - 1
                    if newest > k:
                        skipped = newest - k
                        k = newest
            frame = self.process(k, int(sched[k]))
            frame.skipped = skipped
            frame.latency_ms = (replay_now() - sched[k]) / 1e3 / cfg.speed if not cfg.max_speed else sum(frame.timings_ms.values())
            self.stats.frames += 1
            self.stats.skipped += skipped
            for s in STAGES:
                self.stats.timings_ms[s].append(frame.timings_ms[s])
            self.stats.latency_ms.append(frame.latency_ms)
            self.stats.windows_us.append(frame.window_us)
            yield frame
            k += 1
