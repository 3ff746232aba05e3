"""One live session: a recording replayed through a stereo model, shown in windows or written to files.

``LiveSession`` ties the streaming engine (``evstereo.inference``) to the viewer (composite
picture, OpenCV and Open3D windows, ``evstereo.viz``), the headless outputs
(``evstereo.live.outputs``) and the replay controls (``evstereo.live.controls``); ``run_live``
is a whole run as ``apps.live_depth`` makes it: open the recording, run, and always finalise
(video and timings.json), returning the report and whatever ended the run instead of raising,
so the caller prints the summary first. ``build_model`` is the one place that turns options
into a model (the shipped or a given checkpoint, or the SGBM baseline).

The network's input (representation, bins, time steps, window) comes from the network
(``model.input_spec``); ``LiveOptions.window_ms`` overrides only the window, ``scale`` sets the
input scale ("auto": the rig's rule, then fitted on the first frames; see
``evstereo.inference.prediction.Predictor``). Colours of
disparity span the network's range ``model.max_disparity`` (px). Pictures, the cloud window
and PLY files show the confident pixels only (confidence >= ``min_confidence``, see
``evstereo.inference.prediction``) unless ``show_all``; the disparity arrays keep every pixel,
with their confidence beside them. The report's metrics use evaluate's names and units
(``evstereo.metrics``), over every GT pixel.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from evstereo.errors import InputError
from evstereo.inference import DepthFrame, EngineConfig, StreamingEngine
from evstereo.inference.engine import percentiles
from evstereo.datasets.samples import SparseWindows
from evstereo.inference.prediction import (DEFAULT_EVENT_RADIUS, DEFAULT_MIN_CONFIDENCE, check_prediction_options,
                                           confident, sparse_windows)
from evstereo.live.controls import PlaybackControl, RateMeter, RunningMetrics
from evstereo.live.outputs import DEPTH_DIR, DISPARITY_DIR, HeadlessOutputs, frame_stem
from evstereo.metrics import METRIC_UNITS, format_metrics
from evstereo.recordings import open_recording
from evstereo.recordings.recording import Recording
from evstereo.viz.colors import colorize_depth, colorize_disparity, depth_legend, disparity_legend, event_image
from evstereo.viz.pointcloud import disparity_to_points, write_ply
from evstereo.viz.viewer import LiveWindow, compose_view, view_layout

BASELINES = ("sgbm",)
Info = Callable[..., None]


@dataclass
class LiveOptions:
    """How a session runs and draws (the options of ``apps.live_depth`` past the model)."""

    window_ms: float | None = None  # None: the network's window
    stride_ms: float | None = None  # None: the GT timestamps when the recording has GT, else the window
    max_speed: bool = False  # every window as fast as possible (else real-time pace, skipping)
    speed: float | None = None  # replay speed factor at real-time pace (None: 1)
    max_frames: int | None = None
    device: str = "cpu"
    compile: bool = False
    min_depth: float = 0.5  # m: the near end of the depth colours and clouds
    max_depth: float = 10.0  # m: the far end
    ply_every: int = 10  # headless: a PLY cloud every N frames (0: none)
    cloud: bool = False  # windows: also the Open3D point cloud window
    out: str | os.PathLike | None = None  # snapshots folder (None: ./snapshots)
    scale: str | float = "auto"  # input scale: "auto" or a factor (1: off)
    min_confidence: float = DEFAULT_MIN_CONFIDENCE  # pictures and clouds show pixels at least this confident
    event_radius: float = DEFAULT_EVENT_RADIUS  # confidence 0 farther than this from an event (0: off)
    show_all: bool = False  # show every pixel, confident or not
    min_event_density: float = SparseWindows.min_event_density  # sparse events: longer windows (0: off)
    max_window_factor: int = SparseWindows.max_window_factor  # the longest such window, in network windows

    def check(self) -> None:
        """InputError naming the option for a value out of range (``scale`` is parsed)."""
        check_prediction_options(self)
        for opt, v in (("--speed", self.speed), ("--window-ms", self.window_ms), ("--stride-ms", self.stride_ms),
                       ("--max-frames", self.max_frames)):
            if v is not None and v <= 0:
                raise InputError(None, f"{opt} {v:g}: must be positive")
        if self.ply_every < 0:
            raise InputError(None, f"--ply-every {self.ply_every}: must be 0 (no clouds) or positive")
        if not 0 < self.min_depth < self.max_depth:
            raise InputError(None, f"--min-depth {self.min_depth:g} --max-depth {self.max_depth:g}: "
                                   "need 0 < --min-depth < --max-depth")


def build_model(checkpoint: str | os.PathLike | None = None, baseline: str | None = None,
                max_disparity: int = 63) -> tuple[torch.nn.Module, str]:
    """The model to run and its printable name: ``baseline`` "sgbm" (searching up to
    ``max_disparity`` px), else the network of ``checkpoint`` (None: the one that ships)."""
    if baseline == "sgbm":
        from evstereo.models.sgbm import SGBMStereo

        name = f"sgbm (OpenCV StereoSGBM on event images, max disparity {max_disparity} px)"
        return SGBMStereo(max_disparity=max_disparity), name
    if baseline is not None:
        raise ValueError(f"baseline must be one of {BASELINES}, not {baseline!r}")
    from evstereo.models import load_checkpoint, shipped_checkpoint

    path = checkpoint if checkpoint is not None else shipped_checkpoint()
    return load_checkpoint(path), f"StereoNet ({path})"


class Quit(Exception):
    """The user asked to quit (q, Esc, or the window was closed)."""


class LiveSession:
    """One run: engine frames -> composite (window and/or headless outputs) -> report."""

    def __init__(self, options: LiveOptions, rec: Recording, model: torch.nn.Module, model_name: str,
                 headless: bool) -> None:
        self.options, self.rec, self.model_name, self.headless = options, rec, model_name, headless
        o = options
        self.config = EngineConfig(window_us=int(round(o.window_ms * 1000)) if o.window_ms else None,
                                   stride_us=int(round(o.stride_ms * 1000)) if o.stride_ms else None,
                                   max_speed=o.max_speed, speed=o.speed or 1.0, max_frames=o.max_frames,
                                   device=str(o.device), compile=o.compile, scale=o.scale,
                                   event_radius=o.event_radius, sparse=sparse_windows(o))
        self.control = PlaybackControl()
        self.engine = StreamingEngine(rec, model, self.config, clock=self.control.clock, sleep=self.control.sleep)
        self.config, self.spec = self.engine.config, self.engine.spec  # the window filled in
        if len(self.engine.schedule) == 0:
            raise InputError(rec.path, f"holds no complete {self.config.window_us / 1000:g} ms window of events")
        self.fB = rec.fB
        self.P = rec.calibration.left.P if rec.calibration is not None else None
        self.max_disparity = float(model.max_disparity)  # the network's range: the disparity colours
        self.with_gt = bool(rec.has_gt and self.fB is not None)
        self.metrics = RunningMetrics(fB=self.fB)
        self.rate = RateMeter()
        self.output_ms: list[float] = []
        self.confident_share: list[float] = []  # per frame: the share of pixels shown as confident
        self.t_start = rec.time_span()[0]
        self.window: LiveWindow | None = None
        self.cloud = None
        self.outputs: HeadlessOutputs | None = None
        self.last: tuple[DepthFrame, np.ndarray] | None = None  # newest (frame, composite): snapshots, redraws
        self.fps = 0.0

    # --- pieces -------------------------------------------------------------------------
    def overlay(self, frame: DepthFrame) -> list[str]:
        """The status text of the overlay panel."""
        c = self.control
        total = sum(frame.timings_ms.values())
        pace = "max speed" if self.options.max_speed else f"speed x{self.config.speed * c.rate:g}"
        lines = [
            f"t {(frame.t_us - self.t_start) / 1e6:7.2f} s   frame {frame.index}",
            f"{self.fps:5.1f} fps   latency {frame.latency_ms:5.0f} ms",
            f"model {frame.timings_ms['model']:4.0f} ms   total {total:4.0f} ms",
            f"{pace}   skipped {self.engine.stats.skipped}" + ("   PAUSED" if c.paused else ""),
            self._window_text(frame),
            f"scale x{self.engine.scale:g}   confident {100 * self.share(frame):3.0f}%"
            + ("   (all shown)" if self.options.show_all else ""),
        ]
        if self.with_gt:  # evaluate's metrics, names and units (px, fraction)
            m = self.metrics
            err, acc = m.mean_disparity_error, m.one_pixel_accuracy
            lines.append(f"mean disparity error {'-' if err is None else f'{err:.2f}'} px")
            lines.append(f"1-px accuracy {'-' if acc is None else f'{acc:.3f}'}")
        if self.fB is None:
            lines.append("no calibration: disparity shown")
        lines.append(self.model_name.split(" (")[0])
        if self.window is not None:
            lines += ["space pause  n step  +/- speed", "s snapshot  q quit"]
        return lines

    def _window_text(self, frame: DepthFrame) -> str:
        window = frame.window_us or self.config.window_us
        return f"window {window / 1000:g} ms" + ("   (sparse events)" if window > self.config.window_us else "")

    def share(self, frame: DepthFrame) -> float:
        """The share of ``frame``'s pixels that are confident."""
        c = frame.confidence
        return 1.0 if c is None else float(np.count_nonzero(c >= self.options.min_confidence)) / c.size

    def shown(self, frame: DepthFrame) -> np.ndarray:
        """The disparity the pictures and clouds show: the confident pixels (NaN elsewhere), or all."""
        if self.options.show_all:
            return frame.disparity
        return confident(frame.disparity, frame.confidence, self.options.min_confidence)

    def colour(self, frame: DepthFrame) -> np.ndarray:
        """The shown prediction coloured: depth with f*B, else disparity."""
        d = self.shown(frame)
        if self.fB:
            depth = frame.depth if d is frame.disparity else np.where(np.isfinite(d), frame.depth, np.nan)
            return colorize_depth(depth, self.options.min_depth, self.options.max_depth)
        return colorize_disparity(d, self.max_disparity)

    def caption(self) -> str:
        what = "predicted depth" if self.fB else "predicted disparity"
        return what if self.options.show_all else f"{what}, conf >= {self.options.min_confidence:g}"

    def compose(self, frame: DepthFrame, depth_bgr: np.ndarray | None = None) -> np.ndarray:
        """The composite picture of ``frame`` (``evstereo.viz.viewer.compose_view``)."""
        h, w = self.rec.height, self.rec.width
        left = event_image(frame.left.x, frame.left.y, frame.left.p, h, w)
        right = event_image(frame.right.x, frame.right.y, frame.right.p, h, w)
        return compose_view(left, right, frame.disparity, frame.gt_disparity, self.fB, self.overlay(frame),
                            with_gt=self.with_gt, max_disparity=self.max_disparity,
                            min_depth=self.options.min_depth, max_depth=self.options.max_depth,
                            prediction_bgr=self.colour(frame) if depth_bgr is None else depth_bgr,
                            prediction_caption=self.caption())

    def points(self, frame: DepthFrame, depth_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The shown pixels' points (confident ones unless ``show_all``) with their colours."""
        return disparity_to_points(self.shown(frame), self.P, self.fB, depth_bgr,
                                   min_depth=self.options.min_depth, max_depth=self.options.max_depth)

    def snapshot(self) -> None:
        """PNG of the newest composite (and its PLY cloud with f*B) into ``options.out`` or ./snapshots."""
        if self.last is None:
            return
        from evstereo.viz.cloud_viewer import write_image

        frame, composite = self.last
        out = Path(self.options.out or "snapshots")
        png = out / f"snapshot_{frame_stem(frame.t_us)}.png"
        write_image(png, composite)
        msg = f"snapshot: {png}"  # printed even with -q: the user pressed a key for it
        if self.fB is not None:
            ply = out / f"snapshot_{frame_stem(frame.t_us)}.ply"
            write_ply(ply, *self.points(frame, self.colour(frame)))
            msg += f", {ply}"
        print(msg, flush=True)

    # --- window mode ----------------------------------------------------------------------
    def open_windows(self, info: Info = print) -> None:
        """The OpenCV window, and with ``options.cloud`` the Open3D one beside it."""
        self.window = LiveWindow()
        if self.options.cloud:
            if self.fB is None:
                info("note: no calibration (f*B unknown), so no point cloud window", flush=True)
                return
            try:
                from evstereo.viz.cloud_viewer import CloudWindow

                lay = view_layout(self.rec.height, self.rec.width, self.with_gt)
                self.cloud = CloudWindow(left=lay.width + 60, top=40)  # beside the composite, not on top of it
            except (ImportError, RuntimeError) as exc:
                info(f"note: no point cloud window ({exc})", flush=True)

    def handle(self, action: str | None) -> bool:
        """Apply a key's action; True when the composite should be redrawn. "quit" raises Quit."""
        c = self.control
        if action == "quit":
            raise Quit
        if action == "pause":
            c.set_paused(not c.paused)
            return True
        if action in ("faster", "slower") and not self.options.max_speed:
            c.faster() if action == "faster" else c.slower()
            return True
        if action == "snapshot":
            self.snapshot()
        return False

    def wait_while_paused(self) -> None:
        """Serve keys while paused until resumed or a step is asked for."""
        while self.control.paused:
            action = self.window.poll(30)
            if self.cloud is not None:
                self.cloud.poll()
            if action == "step":
                return
            if self.handle(action) and self.last is not None:
                self.redraw()

    def redraw(self) -> None:
        frame, _ = self.last
        composite = self.compose(frame)
        self.last = (frame, composite)
        self.window.show(composite)

    # --- headless mode --------------------------------------------------------------------
    def open_outputs(self, out: str | os.PathLike) -> None:
        """Headless outputs into ``out``: depth pictures with their colour bar (m), or disparity
        pictures (px) when f*B is unknown."""
        h = self.rec.height
        if self.fB:
            image_dir, legend = DEPTH_DIR, depth_legend(h, self.options.min_depth, self.options.max_depth)
        else:
            image_dir, legend = DISPARITY_DIR, disparity_legend(h, self.max_disparity)
        self.outputs = HeadlessOutputs(out, video_fps(self.engine), self.options.ply_every, image_dir=image_dir,
                                       legend=legend)

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        """Every frame of the engine to the windows and/or the outputs."""
        for frame in self.engine.frames():
            self.fps = self.rate.tick()
            self.metrics.update(frame.disparity, frame.gt_disparity)
            self.confident_share.append(self.share(frame))
            t = time.perf_counter()
            depth_bgr = self.colour(frame)
            composite = self.compose(frame, depth_bgr)
            self.last = (frame, composite)
            if self.outputs is not None:
                writer = None
                if self.fB is not None:
                    writer = lambda path, f=frame, c=depth_bgr: write_ply(path, *self.points(f, c))  # noqa: E731
                self.outputs.add(frame.t_us, composite, depth_bgr, frame.disparity, writer, frame.confidence)
            if self.window is not None:
                self.window.show(composite)
                if self.cloud is not None and self.cloud.open:
                    self.cloud.update(*self.points(frame, depth_bgr))
                if self.handle(self.window.poll(1)):
                    self.redraw()
                self.wait_while_paused()
            self.output_ms.append((time.perf_counter() - t) * 1e3)

    def report(self, status: str, error: str | None, wall_s: float) -> dict:
        """The run's report (timings.json's contents before the outputs' own entry)."""
        s = self.engine.stats.summary()
        frames = s["frames_produced"]
        return {
            "recording": str(self.rec.path),
            "model": self.model_name,
            "device": str(self.options.device),
            "status": status,
            "error": error,
            "window_ms": self.config.window_us / 1000,
            "stride_ms": None if self.config.stride_us is None else self.config.stride_us / 1000,
            "schedule": self.engine.schedule_kind,
            "stateful": self.engine.stateful,
            "max_speed": self.options.max_speed,
            "speed": self.config.speed,
            "representation": self.spec.as_dict(),
            "sensor": {"height": self.rec.height, "width": self.rec.width},
            "scale": self.engine.scale,  # the input scale used (scale_option: what was asked for)
            "rule_scale": self.engine.predictor.rule_scale,  # "auto"'s rule, before its fit on the first frames
            "scale_rule": self.engine.predictor.rule,  # calibration, events, sensor size or fixed
            "typical_disparity": self.engine.predictor.typical_disparity,  # px, from the events (events rule)
            "scale_option": self.options.scale,
            "network_size": {"height": self.engine.network_size[0], "width": self.engine.network_size[1]},
            "min_confidence": self.options.min_confidence,
            "event_radius": self.options.event_radius,
            "min_event_density": self.options.min_event_density,
            "max_window_factor": self.options.max_window_factor,
            "show_all": self.options.show_all,
            "confident_share": percentiles(self.confident_share),
            "fB": self.fB,
            "frames_scheduled": int(len(self.engine.schedule)),
            **s,
            "output_ms": percentiles(self.output_ms),
            "wall_s": wall_s,
            "fps": frames / wall_s if wall_s > 0 else None,
            "metrics": self.metrics.as_dict() if self.with_gt else None,
            "metric_units": METRIC_UNITS,
        }

    def close(self) -> None:
        """Close the windows (the outputs are closed by ``run_live`` with the report)."""
        if self.window is not None:
            self.window.close()
        if self.cloud is not None:
            self.cloud.close()


def video_fps(engine: StreamingEngine) -> float:
    """Video frame rate = the windows' rate in recording time, so the video plays at real pace."""
    d = np.diff(engine.schedule)
    return float(np.clip(1e6 / np.median(d), 1.0, 120.0)) if len(d) else 20.0


@dataclass
class LiveResult:
    """What ``run_live`` ends with: the report (None when no session started), the paths written,
    and the exception that ended the run (None when it completed or the user quit)."""

    report: dict | None
    paths: dict
    failure: BaseException | None


def run_status(exc: BaseException) -> tuple[str, str | None]:
    """The run's status and error for timings.json when ``exc`` ended it."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", None
    if isinstance(exc, InputError):
        return "input error", str(exc)
    if isinstance(exc, OSError):  # an output cannot be written (disk full, permissions)
        return "output error", str(exc)
    return "error", f"{type(exc).__name__}: {exc}"


def run_live(recording: str | os.PathLike, model: torch.nn.Module, model_name: str, options: LiveOptions,
             headless: bool, out: str | os.PathLike | None = None, info: Info = print) -> LiveResult:
    """A whole run: open ``recording`` (stereo only), replay it into windows or, ``headless``,
    into ``out``; a bad window, an output error or Ctrl-C keeps what was written (the video and
    timings.json are finalised) and comes back as ``failure``. ``info`` prints progress notes."""
    rec = session = None
    status, error, failure = "completed", None, None
    t0 = time.perf_counter()
    try:
        rec = open_recording(recording)
        rec.check_stereo()  # a mono recording would give 'depth' from one camera
        session = LiveSession(options, rec, model, model_name, headless)
        nh, nw = session.engine.network_size
        info(f"recording: {rec.path} ({rec.width}x{rec.height}, {len(session.engine.schedule)} windows of "
             f"{session.config.window_us / 1000:g} ms{', with GT' if session.with_gt else ''}; input scale "
             f"x{session.engine.scale:g} -> {nw}x{nh})", flush=True)
        if session.fB is None:
            info("note: no calibration (f*B unknown): showing disparity, no depth or point clouds", flush=True)
        if headless:
            session.open_outputs(out)
            info(f"writing to {out}/ ({'max speed' if options.max_speed else 'real-time pace'})", flush=True)
        else:
            session.open_windows(info)
        session.engine.warm_up()
        t0 = time.perf_counter()
        session.run()
    except Quit:
        status = "quit"
    except BaseException as exc:  # noqa: BLE001 - finalise the outputs first; the caller re-raises
        (status, error), failure = run_status(exc), exc
    wall = time.perf_counter() - t0
    report, paths = None, {}
    if session is not None:
        report = session.report(status, error, wall)
        if session.outputs is not None:
            try:
                paths = session.outputs.close(report)
            except OSError as exc:  # a queued frame or the video could not be written; the rest is final
                failure = failure or exc
            report = session.outputs.timings or report
        session.close()
    if rec is not None:
        rec.close()
    return LiveResult(report, paths, failure)


def format_summary(report: dict, paths: dict) -> str:
    """The run's summary for the console: frames, rates, latency and stage medians, metrics, paths."""
    r = report
    lat, proc = r["latency_ms"], r["processing_ms"]
    lines = [f"{r['status']}: {r['frames_produced']} frames, {r['frames_skipped']} skipped, "
             f"{r['wall_s']:.1f} s wall, {r['fps'] or 0:.1f} frames/s"]
    if lat["p50"] is not None:
        lines.append(f"  latency p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, max {lat['max']:.0f} ms; "
                     f"processing p50 {proc['p50']:.0f} ms ("
                     + ", ".join(f"{k} {v['p50']:.0f}" for k, v in r["stages_ms"].items()) + ")")
    if r.get("scale") is not None:
        n = r["network_size"]
        share = r["confident_share"]["p50"]
        rule = r.get("scale_rule")
        why = (f"; bound by the events: typical disparity {r['typical_disparity']:g} px" if rule == "events"
               else f"; rule: {rule}" if rule and rule != "fixed" else "")
        lines.append(f"  scale {r['scale']:g} (network input {n['width']}x{n['height']}{why})"
                     + ("" if share is None else f"; confident pixels (confidence >= {r['min_confidence']:g}) "
                        f"p50 {100 * share:.0f} % of each frame" + (", all shown" if r["show_all"] else "")))
    m = r.get("metrics")
    if m and m["frames"]:
        lines.append(f"  {format_metrics(m)} over {m['frames']} GT frames")
    for k, v in paths.items():
        lines.append(f"  {k}: {v}")
    return "\n".join(lines)
