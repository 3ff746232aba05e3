"""Live depth from a recorded event file: replay it through a stereo model and show or save depth.

    python -m apps.live_depth RECORDING [--checkpoint CKPT] [--baseline sgbm] [--max-speed | --real-time]
        [--speed X] [--window-ms 50] [--stride-ms MS] [--headless --out DIR] [--cloud] [--ply-every N]
        [--max-frames N] [--device cpu|cuda|cuda:N|auto] [--compile] [--json] [-q]

RECORDING is anything ``open_recording`` opens (an MVSEC-layout .hdf5, official, synthetic or
converted, or a DSEC sequence folder). With a display it opens an OpenCV window (left and
right events, colour-coded depth with its legend, FPS/latency overlay; GT depth, error and
running metrics when the recording has GT) and, with --cloud, an Open3D window with the live
point cloud. Keys: space pause/resume, n or . step while paused, + / - faster / slower,
s snapshot (PNG + PLY into --out or ./snapshots), q or Esc quit.

Pace: with windows the replay keeps real time (windows the model cannot keep up with are
skipped and counted); headless, or with no display, it processes every window as fast as it
can. ``--real-time`` and ``--max-speed`` choose either explicitly. ``--baseline sgbm`` runs
OpenCV's StereoSGBM instead of a network (``--model sgbm``, its old spelling, still works).

--headless, or no display: writes into --out (default ./live_out) live_depth.mp4,
depth/<t_us>.png (disparity/<t_us>.png without calibration), disparity_npy/<t_us>.npy,
clouds/<t_us>.ply and timings.json (see evstereo.inference.headless); the folder is checked
for writability before the model loads. Metrics use evaluate's names and units
(``evstereo.metrics``). Bad or corrupt input: one line naming the file, exit code 2,
everything written so far kept (the video and timings.json are finalised). Ctrl-C: one
line, exit code 130, the same.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from evstereo.datasets import open_recording
from evstereo.datasets.recording import Recording
from evstereo.datasets.samples import SampleSpec
from evstereo.devices import add_device_option, resolve_device
from evstereo.errors import InputError, run_tool
from evstereo.fileio import check_writable
from evstereo.inference import DepthFrame, EngineConfig, StreamingEngine
from evstereo.inference.engine import percentiles
from evstereo.inference.headless import DEPTH_DIR, DISPARITY_DIR, HeadlessOutputs, frame_stem, report_json
from evstereo.metrics import METRIC_UNITS, format_metrics
from evstereo.runtime import keep_freed_memory
from evstereo.viz.colors import colorize_depth, colorize_disparity, depth_legend, disparity_legend, event_image
from evstereo.viz.pointcloud import disparity_to_points, write_ply
from evstereo.viz.viewer import (HELP, LiveWindow, PlaybackControl, RateMeter, RunningMetrics, compose_view,
                                 display_available, view_layout)

BASELINES = ("sgbm",)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m apps.live_depth", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Keys: " + HELP)
    ap.add_argument("recording", metavar="RECORDING",
                    help="MVSEC-layout .hdf5 (incl. converted) or DSEC sequence folder")
    ap.add_argument("--checkpoint", metavar="CKPT", default=None,
                    help="trained model checkpoint (default: the one that ships with the package)")
    ap.add_argument("--baseline", choices=BASELINES, default=None,
                    help="run this classical baseline instead of a network (sgbm: OpenCV's StereoSGBM on event images)")
    ap.add_argument("--model", choices=BASELINES, dest="model_alias", default=None,
                    help=argparse.SUPPRESS)  # the old spelling of --baseline, kept working
    ap.add_argument("--max-disparity", type=int, default=63, metavar="PX",
                    help="sgbm: largest disparity searched, px (default 63)")
    pace = ap.add_mutually_exclusive_group()
    pace.add_argument("--max-speed", action="store_true",
                      help="process every window as fast as possible (the default headless)")
    pace.add_argument("--real-time", action="store_true",
                      help="keep real-time pace, skipping (and counting) windows the model cannot keep up with "
                           "(the default with windows)")
    ap.add_argument("--speed", type=float, default=None, metavar="X",
                    help="replay speed factor at real-time pace (default 1)")
    ap.add_argument("--window-ms", type=float, default=None, metavar="MS",
                    help="event window length (default: the model's, 50 ms)")
    ap.add_argument("--stride-ms", type=float, default=None, metavar="MS",
                    help="window spacing (default: the GT timestamps when the recording has GT, else the window)")
    ap.add_argument("--headless", action="store_true", help="no windows: write video, images, arrays, clouds to --out")
    ap.add_argument("--out", metavar="DIR", default=None,
                    help="output folder (headless default ./live_out; snapshots default ./snapshots)")
    ap.add_argument("--cloud", action="store_true", help="also show the live point cloud in an Open3D window")
    ap.add_argument("--ply-every", type=int, default=10, metavar="N",
                    help="headless: a PLY cloud every N frames (default 10; 0: none)")
    ap.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N windows")
    add_device_option(ap)
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the model (meant for CUDA: on the CPU the default path, with the "
                         "fused read-out, measured 4x faster)")
    ap.add_argument("--min-depth", type=float, default=0.5, metavar="M",
                    help="near end of the depth colours and clouds, m (default 0.5)")
    ap.add_argument("--max-depth", type=float, default=10.0, metavar="M",
                    help="far end of the depth colours and clouds, m (default 10)")
    ap.add_argument("--json", action="store_true",
                    help="print the run's report (timings.json's contents) as JSON to stdout instead of the summary")
    ap.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    return ap


def build_model(args: argparse.Namespace) -> tuple[torch.nn.Module, str]:
    """The model to run and its printable name. The one place that turns options into a model.

    A model may carry ``spec`` (a SampleSpec: representation, bins, window) and
    ``max_disparity``; without them the SampleSpec() default (SBT, 5 bins, 50 ms) is used.
    """
    if (args.baseline or args.model_alias) == "sgbm":
        from evstereo.models.sgbm import SGBMStereo

        name = f"sgbm (OpenCV StereoSGBM on event images, max disparity {args.max_disparity} px)"
        return SGBMStereo(max_disparity=args.max_disparity), name
    from evstereo.models import load_checkpoint, shipped_checkpoint

    # no --checkpoint: the network that ships with the package
    path = args.checkpoint if args.checkpoint is not None else shipped_checkpoint()
    model = load_checkpoint(path)
    model.spec = SampleSpec(**model.input_spec)  # the representation the network was built for
    return model, f"StereoNet ({path})"


class _Quit(Exception):
    pass


class LiveRun:
    """One run: engine frames -> composite (window and/or headless outputs) -> summary."""

    def __init__(self, args: argparse.Namespace, rec: Recording, model: torch.nn.Module, model_name: str,
                 headless: bool) -> None:
        self.args, self.rec, self.model_name, self.headless = args, rec, model_name, headless
        spec = getattr(model, "spec", None) or SampleSpec()
        window_us = int(round(args.window_ms * 1000)) if args.window_ms else spec.window_us
        self.spec = dataclasses.replace(spec, window_us=window_us)
        stride_us = int(round(args.stride_ms * 1000)) if args.stride_ms else None
        self.config = EngineConfig(window_us=window_us, stride_us=stride_us, max_speed=args.max_speed,
                                   speed=args.speed or 1.0, max_frames=args.max_frames, device=str(args.device),
                                   compile=args.compile)
        self.control = PlaybackControl()
        self.engine = StreamingEngine(rec, model, self.spec, self.config, clock=self.control.clock,
                                      sleep=self.control.sleep)
        if len(self.engine.schedule) == 0:
            raise InputError(rec.path, f"holds no complete {window_us / 1000:g} ms window of events")
        self.fB = rec.fB
        self.P = rec.calibration.left.P if rec.calibration is not None else None
        md = getattr(model, "max_disparity", None) or self.spec.max_disparity or 64.0
        self.max_disparity = float(md)
        self.with_gt = bool(rec.has_gt and self.fB is not None)
        self.metrics = RunningMetrics(fB=self.fB)
        self.rate = RateMeter()
        self.output_ms: list[float] = []
        self.t_start = rec.time_span()[0]
        self.window = self.cloud = self.outputs = None
        self.last = None  # (frame, composite) of the newest frame, for snapshots and redraws
        self.fps = 0.0

    # --- pieces -------------------------------------------------------------------------
    def overlay(self, frame: DepthFrame) -> list[str]:
        a, c = self.args, self.control
        total = sum(frame.timings_ms.values())
        pace = "max speed" if a.max_speed else f"speed x{self.config.speed * c.rate:g}"
        lines = [
            f"t {(frame.t_us - self.t_start) / 1e6:7.2f} s   frame {frame.index}",
            f"{self.fps:5.1f} fps   latency {frame.latency_ms:5.0f} ms",
            f"model {frame.timings_ms['model']:4.0f} ms   total {total:4.0f} ms",
            f"{pace}   skipped {self.engine.stats.skipped}" + ("   PAUSED" if c.paused else ""),
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

    def colour(self, frame: DepthFrame) -> np.ndarray:
        if self.fB:
            return colorize_depth(frame.depth, self.args.min_depth, self.args.max_depth)
        return colorize_disparity(frame.disparity, self.max_disparity)

    def compose(self, frame: DepthFrame, depth_bgr: np.ndarray | None = None) -> np.ndarray:
        h, w = self.rec.height, self.rec.width
        left = event_image(frame.left.x, frame.left.y, frame.left.p, h, w)
        right = event_image(frame.right.x, frame.right.y, frame.right.p, h, w)
        return compose_view(left, right, frame.disparity, frame.gt_disparity, self.fB, self.overlay(frame),
                            with_gt=self.with_gt, max_disparity=self.max_disparity,
                            min_depth=self.args.min_depth, max_depth=self.args.max_depth,
                            prediction_bgr=self.colour(frame) if depth_bgr is None else depth_bgr)

    def points(self, frame: DepthFrame, depth_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return disparity_to_points(frame.disparity, self.P, self.fB, depth_bgr,
                                   min_depth=self.args.min_depth, max_depth=self.args.max_depth)

    def snapshot(self) -> None:
        if self.last is None:
            return
        from evstereo.viz.cloud_viewer import write_image

        frame, composite = self.last
        out = Path(self.args.out or "snapshots")
        png = out / f"snapshot_{frame_stem(frame.t_us)}.png"
        write_image(png, composite)
        msg = f"snapshot: {png}"  # printed even with -q: the user pressed a key for it
        if self.fB is not None:
            ply = out / f"snapshot_{frame_stem(frame.t_us)}.ply"
            write_ply(ply, *self.points(frame, self.colour(frame)))
            msg += f", {ply}"
        print(msg, flush=True)

    # --- window mode ----------------------------------------------------------------------
    def open_windows(self) -> None:
        self.window = LiveWindow()
        if self.args.cloud:
            if self.fB is None:
                print("note: no calibration (f*B unknown), so no point cloud window", flush=True)
                return
            try:
                from evstereo.viz.cloud_viewer import CloudWindow

                lay = view_layout(self.rec.height, self.rec.width, self.with_gt)
                self.cloud = CloudWindow(left=lay.width + 60, top=40)  # beside the composite, not on top of it
            except (ImportError, RuntimeError) as exc:
                print(f"note: no point cloud window ({exc})", flush=True)

    def handle(self, action: str | None) -> bool:
        """Apply a key's action; True when the composite should be redrawn."""
        c = self.control
        if action == "quit":
            raise _Quit
        if action == "pause":
            c.set_paused(not c.paused)
            return True
        if action in ("faster", "slower") and not self.args.max_speed:
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

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        for frame in self.engine.frames():
            self.fps = self.rate.tick()
            self.metrics.update(frame.disparity, frame.gt_disparity)
            t = time.perf_counter()
            depth_bgr = self.colour(frame)
            composite = self.compose(frame, depth_bgr)
            self.last = (frame, composite)
            if self.outputs is not None:
                writer = None
                if self.fB is not None:
                    writer = lambda path, f=frame, c=depth_bgr: write_ply(path, *self.points(f, c))  # noqa: E731
                self.outputs.add(frame.t_us, composite, depth_bgr, frame.disparity, writer)
            if self.window is not None:
                self.window.show(composite)
                if self.cloud is not None and self.cloud.open:
                    self.cloud.update(*self.points(frame, depth_bgr))
                if self.handle(self.window.poll(1)):
                    self.redraw()
                self.wait_while_paused()
            self.output_ms.append((time.perf_counter() - t) * 1e3)

    def report(self, status: str, error: str | None, wall_s: float) -> dict:
        s = self.engine.stats.summary()
        frames = s["frames_produced"]
        return {
            "recording": str(self.rec.path),
            "model": self.model_name,
            "device": str(self.args.device),
            "status": status,
            "error": error,
            "window_ms": self.config.window_us / 1000,
            "stride_ms": None if self.config.stride_us is None else self.config.stride_us / 1000,
            "schedule": "gt timestamps" if self.config.stride_us is None and self.rec.has_gt else "regular grid",
            "max_speed": self.args.max_speed,
            "speed": self.config.speed,
            "representation": self.spec.as_dict(),
            "sensor": {"height": self.rec.height, "width": self.rec.width},
            "fB": self.fB,
            "frames_scheduled": int(len(self.engine.schedule)),
            **s,
            "output_ms": percentiles(self.output_ms),
            "wall_s": wall_s,
            "fps": frames / wall_s if wall_s > 0 else None,
            "metrics": self.metrics.as_dict() if self.with_gt else None,
            "metric_units": METRIC_UNITS,
        }

    def open_outputs(self, out: Path) -> None:
        """Headless outputs into ``out``: depth pictures with their colour bar (m), or disparity
        pictures (px) when f*B is unknown."""
        h = self.rec.height
        if self.fB:
            image_dir, legend = DEPTH_DIR, depth_legend(h, self.args.min_depth, self.args.max_depth)
        else:
            image_dir, legend = DISPARITY_DIR, disparity_legend(h, self.max_disparity)
        self.outputs = HeadlessOutputs(out, _fps(self.engine), self.args.ply_every, image_dir=image_dir, legend=legend)


def _fps(engine: StreamingEngine) -> float:
    """Video frame rate = the windows' rate in recording time, so the video plays at real pace."""
    d = np.diff(engine.schedule)
    return float(np.clip(1e6 / np.median(d), 1.0, 120.0)) if len(d) else 20.0


def _summary(r: dict, paths: dict) -> str:
    lat, proc = r["latency_ms"], r["processing_ms"]
    lines = [f"{r['status']}: {r['frames_produced']} frames, {r['frames_skipped']} skipped, "
             f"{r['wall_s']:.1f} s wall, {r['fps'] or 0:.1f} frames/s"]
    if lat["p50"] is not None:
        lines.append(f"  latency p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, max {lat['max']:.0f} ms; "
                     f"processing p50 {proc['p50']:.0f} ms ("
                     + ", ".join(f"{k} {v['p50']:.0f}" for k, v in r["stages_ms"].items()) + ")")
    m = r.get("metrics")
    if m and m["frames"]:
        lines.append(f"  {format_metrics(m)} over {m['frames']} GT frames")
    for k, v in paths.items():
        lines.append(f"  {k}: {v}")
    return "\n".join(lines)


def _status(exc: BaseException) -> tuple[str, str | None]:
    """The run's status and error for timings.json when ``exc`` ended it."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", None
    if isinstance(exc, InputError):
        return "input error", str(exc)
    if isinstance(exc, OSError):  # an output cannot be written (disk full, permissions)
        return "output error", str(exc)
    return "error", f"{type(exc).__name__}: {exc}"


def _check_options(args: argparse.Namespace) -> None:
    for opt, v in (("--speed", args.speed), ("--window-ms", args.window_ms), ("--stride-ms", args.stride_ms),
                   ("--max-frames", args.max_frames), ("--max-disparity", args.max_disparity)):
        if v is not None and v <= 0:
            raise InputError(None, f"{opt} {v:g}: must be positive")
    if args.ply_every < 0:
        raise InputError(None, f"--ply-every {args.ply_every}: must be 0 (no clouds) or positive")
    if not 0 < args.min_depth < args.max_depth:
        raise InputError(None, f"--min-depth {args.min_depth:g} --max-depth {args.max_depth:g}: "
                               "need 0 < --min-depth < --max-depth")
    if args.baseline and args.model_alias and args.baseline != args.model_alias:
        raise InputError(None, "--model is the old spelling of --baseline; give one of them")


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    info = print if not (args.quiet or args.json) else (lambda *a, **k: None)
    _check_options(args)
    if args.model_alias:
        info(f"note: --model {args.model_alias} is now --baseline {args.model_alias}", flush=True)
    args.device = resolve_device(args.device)  # before the model loads
    keep_freed_memory()
    headless = args.headless
    if not headless and not display_available():
        info("note: no display (DISPLAY/WAYLAND_DISPLAY unset or unreachable): running headless", flush=True)
        headless = True
    # files, not a screen: every window, as fast as possible, unless real time is asked for
    args.max_speed = args.max_speed or (headless and not args.real_time)
    if args.max_speed and args.speed is not None:
        info("note: --speed applies at real-time pace (--real-time); ignored", flush=True)
    out = check_writable(args.out or "live_out", folder=True) if headless else None
    if headless and args.cloud:
        info("note: --cloud needs a display; point clouds go to PLY files instead", flush=True)
    model, model_name = build_model(args)
    if args.compile and not any(True for _ in model.parameters()):
        info("note: --compile ignored: the model has no torch graph to compile", flush=True)
        args.compile = False

    info(f"model: {model_name}", flush=True)
    rec = run = None
    status, error, failure = "completed", None, None
    t0 = time.perf_counter()
    try:
        rec = open_recording(args.recording)
        rec.check_stereo()  # a mono recording would give 'depth' from one camera
        run = LiveRun(args, rec, model, model_name, headless)
        info(f"recording: {rec.path} ({rec.width}x{rec.height}, {len(run.engine.schedule)} windows of "
             f"{run.config.window_us / 1000:g} ms{', with GT' if run.with_gt else ''})", flush=True)
        if run.fB is None:
            info("note: no calibration (f*B unknown): showing disparity, no depth or point clouds", flush=True)
        if headless:
            run.open_outputs(out)
            info(f"writing to {out}/ ({'max speed' if args.max_speed else 'real-time pace'})", flush=True)
        else:
            run.open_windows()
        run.engine.warm_up()
        t0 = time.perf_counter()
        run.run()
    except _Quit:
        status = "quit"
    except BaseException as exc:  # noqa: BLE001 - finalise the outputs first, then re-raise for run_tool
        (status, error), failure = _status(exc), exc
    # a bad window or Ctrl-C keeps what was written: the video and timings.json are finalised
    wall = time.perf_counter() - t0
    paths, close_error = {}, None
    if run is not None:
        report = run.report(status, error, wall)
        if run.outputs is not None:
            try:
                paths = run.outputs.close(report)
            except OSError as exc:  # a queued frame or the video could not be written; the rest is final
                close_error = exc
            report = run.outputs.timings or report
        if run.window is not None:
            run.window.close()
        if run.cloud is not None:
            run.cloud.close()
        info(_summary(report, paths), flush=True)
        if args.json:
            print(report_json(report), flush=True)
    if rec is not None:
        rec.close()
    if failure is not None:
        raise failure
    if close_error is not None:
        raise close_error
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_tool(lambda: _run(argv))


if __name__ == "__main__":
    sys.exit(main())
