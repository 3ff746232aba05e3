"""Live depth from a recorded event file: replay it through a stereo model and show or save depth.

    python -m apps.live_depth RECORDING [--checkpoint CKPT] [--model sgbm] [--max-speed] [--speed X]
        [--window-ms 50] [--stride-ms MS] [--headless --out DIR] [--cloud] [--ply-every N]
        [--max-frames N] [--device cpu|cuda] [--compile]

RECORDING is anything ``open_recording`` opens (an MVSEC-layout .hdf5, official, synthetic or
converted, or a DSEC sequence folder). With a display it opens an OpenCV window (left and
right events, colour-coded depth with its legend, FPS/latency overlay; GT depth, error and
running metrics when the recording has GT) and, with --cloud, an Open3D window with the live
point cloud. Keys: space pause/resume, n or . step while paused, + / - faster / slower,
s snapshot (PNG + PLY into --out or ./snapshots), q or Esc quit.

--headless, or no display: writes into --out (default ./live_out) live_depth.mp4,
depth/<t_us>.png, disparity/<t_us>.npy, clouds/<t_us>.ply and timings.json (see
evstereo.inference.headless). Bad or corrupt input: one line naming the file, exit code 2,
everything written so far kept (the video and timings.json are finalised). Ctrl-C: the
same, exit code 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

from evstereo.datasets import open_recording
from evstereo.datasets.samples import SampleSpec
from evstereo.errors import InputError, print_error
from evstereo.datasets.recording import Recording
from evstereo.inference import DepthFrame, EngineConfig, StreamingEngine
from evstereo.runtime import keep_freed_memory
from evstereo.inference.headless import HeadlessOutputs
from evstereo.viz.colors import colorize_depth, colorize_disparity, event_image
from evstereo.viz.pointcloud import disparity_to_points, write_ply
from evstereo.viz.viewer import (HELP, LiveWindow, PlaybackControl, RateMeter, RunningMetrics, compose_view,
                                 display_available, view_layout)

MODELS = ("sgbm",)


class CliError(Exception):
    """A usage problem reported as one line with exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m apps.live_depth", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Keys: " + HELP)
    ap.add_argument("recording", metavar="RECORDING",
                    help="MVSEC-layout .hdf5 (incl. converted) or DSEC sequence folder")
    ap.add_argument("--checkpoint", metavar="CKPT", default=None, help="trained model checkpoint")
    ap.add_argument("--model", choices=MODELS, default=None,
                    help="run this baseline instead of a network (sgbm: OpenCV's StereoSGBM on event images)")
    ap.add_argument("--max-disparity", type=int, default=63, help="sgbm: largest disparity searched, px (default 63)")
    ap.add_argument("--max-speed", action="store_true", help="process every window as fast as possible (no pacing)")
    ap.add_argument("--speed", type=float, default=1.0, help="replay speed factor at real-time pace (default 1)")
    ap.add_argument("--window-ms", type=float, default=None, help="event window length (default: the model's, 50 ms)")
    ap.add_argument("--stride-ms", type=float, default=None,
                    help="window spacing (default: the GT timestamps when the recording has GT, else the window)")
    ap.add_argument("--headless", action="store_true", help="no windows: write video, images, arrays, clouds to --out")
    ap.add_argument("--out", metavar="DIR", default=None,
                    help="output folder (headless default ./live_out; snapshots default ./snapshots)")
    ap.add_argument("--cloud", action="store_true", help="also show the live point cloud in an Open3D window")
    ap.add_argument("--ply-every", type=int, default=10, metavar="N",
                    help="headless: a PLY cloud every N frames (0: none)")
    ap.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N windows")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the model (meant for CUDA: on the CPU the default path, with the "
                         "fused read-out, measured 4x faster)")
    ap.add_argument("--min-depth", type=float, default=0.5, help="near end of the depth colours and clouds, m")
    ap.add_argument("--max-depth", type=float, default=10.0, help="far end of the depth colours and clouds, m")
    return ap


def build_model(args: argparse.Namespace) -> tuple[torch.nn.Module, str]:
    """The model to run and its printable name. The one place that turns options into a model.

    A model may carry ``spec`` (a SampleSpec: representation, bins, window) and
    ``max_disparity``; without them the SampleSpec() default (SBT, 5 bins, 50 ms) is used.
    """
    if args.model == "sgbm":
        from evstereo.models.sgbm import SGBMStereo

        name = f"sgbm (OpenCV StereoSGBM on event images, max disparity {args.max_disparity} px)"
        return SGBMStereo(max_disparity=args.max_disparity), name
    from evstereo.models import load_checkpoint, shipped_checkpoint

    try:
        # no --checkpoint: the network that ships with the package
        path = args.checkpoint if args.checkpoint is not None else shipped_checkpoint()
        model = load_checkpoint(path)
    except InputError as exc:
        raise CliError(" ".join(str(exc).split())) from None
    model.spec = SampleSpec(**model.input_spec)  # the representation the network was built for
    return model, f"StereoNet ({path})"


def _pct(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    a = np.asarray(values)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "max": float(a.max())}


def _interrupt(signum, frame):  # SIGTERM -> the same clean shutdown as Ctrl-C
    raise KeyboardInterrupt


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
                                   speed=args.speed, max_frames=args.max_frames, device=args.device,
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
        pace = "max speed" if a.max_speed else f"speed x{a.speed * c.rate:g}"
        lines = [
            f"t {(frame.t_us - self.t_start) / 1e6:7.2f} s   frame {frame.index}",
            f"{self.fps:5.1f} fps   latency {frame.latency_ms:5.0f} ms",
            f"model {frame.timings_ms['model']:4.0f} ms   total {total:4.0f} ms",
            f"{pace}   skipped {self.engine.stats.skipped}" + ("   PAUSED" if c.paused else ""),
        ]
        if self.with_gt:
            m = self.metrics
            if m.mean_error is not None:
                lines.append(f"mean error {m.mean_error:.2f} px   1px acc {100 * m.one_px_accuracy:.1f}%")
            else:
                lines.append("mean error -   1px acc -")
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
        png = out / f"snapshot_{frame.t_us}.png"
        write_image(png, composite)
        msg = f"snapshot: {png}"
        if self.fB is not None:
            ply = out / f"snapshot_{frame.t_us}.ply"
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
            "device": self.args.device,
            "status": status,
            "error": error,
            "window_ms": self.config.window_us / 1000,
            "stride_ms": None if self.config.stride_us is None else self.config.stride_us / 1000,
            "schedule": "gt timestamps" if self.config.stride_us is None and self.rec.has_gt else "regular grid",
            "max_speed": self.args.max_speed,
            "speed": self.args.speed,
            "representation": self.spec.as_dict(),
            "sensor": {"height": self.rec.height, "width": self.rec.width},
            "fB": self.fB,
            "frames_scheduled": int(len(self.engine.schedule)),
            **s,
            "output_ms": _pct(self.output_ms),
            "wall_s": wall_s,
            "fps": frames / wall_s if wall_s > 0 else None,
            "metrics": self.metrics.as_dict() if self.with_gt else None,
        }


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
    if m and m["mean_disparity_error_px"] is not None:
        lines.append(f"  mean disparity error {m['mean_disparity_error_px']:.2f} px, "
                     f"1-px accuracy {100 * m['one_px_accuracy']:.1f}% over {m['frames_with_gt']} GT frames")
    for k, v in paths.items():
        lines.append(f"  {k}: {v}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        for opt, v in (("--speed", args.speed), ("--window-ms", args.window_ms), ("--stride-ms", args.stride_ms),
                       ("--max-frames", args.max_frames), ("--max-disparity", args.max_disparity)):
            if v is not None and v <= 0:
                raise CliError(f"{opt} must be positive")
        if args.ply_every < 0:
            raise CliError("--ply-every must be 0 (no clouds) or positive")
        if not 0 < args.min_depth < args.max_depth:
            raise CliError("need 0 < --min-depth < --max-depth")
        if args.device == "cuda" and not torch.cuda.is_available():
            raise CliError("--device cuda: no CUDA device is available here")
        model, model_name = build_model(args)
    except CliError as exc:
        return print_error(exc)
    if args.compile and not any(True for _ in model.parameters()):
        print("note: --compile ignored: the model has no torch graph to compile", flush=True)
        args.compile = False
    headless = args.headless
    if not headless and not display_available():
        print("note: no display (DISPLAY/WAYLAND_DISPLAY unset or unreachable): running headless", flush=True)
        headless = True
    if headless and args.cloud:
        print("note: --cloud needs a display; point clouds go to PLY files instead", flush=True)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)

    print(f"model: {model_name}", flush=True)
    rec = run = None
    status, error, code = "completed", None, 0
    t0 = time.perf_counter()
    try:
        rec = open_recording(args.recording)
        run = LiveRun(args, rec, model, model_name, headless)
        print(f"recording: {rec.path} ({rec.width}x{rec.height}, {len(run.engine.schedule)} windows of "
              f"{run.config.window_us / 1000:g} ms{', with GT' if run.with_gt else ''})", flush=True)
        if run.fB is None:
            print("note: no calibration (f*B unknown): showing disparity, no depth or point clouds", flush=True)
        if headless:
            out = Path(args.out or "live_out")
            run.outputs = HeadlessOutputs(out, _fps(run.engine), args.ply_every)
            print(f"writing to {out}/", flush=True)
        else:
            run.open_windows()
        run.engine.warm_up()
        t0 = time.perf_counter()
        run.run()
    except _Quit:
        status = "quit"
    except InputError as exc:
        status, error, code = "input error", str(exc), print_error(exc)
    except KeyboardInterrupt:
        status, code = "interrupted", 130
    except OSError as exc:  # an output cannot be written (disk full, permissions): say so, keep the rest
        status, error, code = "output error", str(exc), print_error(exc, 1)
    finally:
        wall = time.perf_counter() - t0
        paths = {}
        if run is not None:
            report = run.report(status, error, wall)
            if run.outputs is not None:
                try:
                    paths = run.outputs.close(report)
                except OSError as exc:  # a queued frame could not be written; the rest is finalised
                    code = print_error(exc, 1)
            if run.window is not None:
                run.window.close()
            if run.cloud is not None:
                run.cloud.close()
            print(_summary(report, paths), flush=True)
        if rec is not None:
            rec.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
