"""Live depth from a recorded event file: replay it through a stereo model and show or save depth.

    python -m apps.live_depth RECORDING [--checkpoint CKPT] [--baseline sgbm] [--max-speed | --real-time]
        [--speed X] [--window-ms 50] [--stride-ms MS] [--headless --out DIR] [--cloud] [--ply-every N]
        [--scale auto|FACTOR] [--min-confidence C] [--event-radius PX] [--show-all]
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

Any sensor size: ``--scale auto`` (the default) resamples each window's event frames so that
the rig's disparities match the training rig's (from the calibration's f*B; without one by
pixel count, e.g. x2.25 for a 128x128 DVS128, x1 for 346x260), checks that factor against the
events of the first 8 windows (``evstereo.inference.prediction.Predictor``) and brings
disparity and confidence back to the sensor's pixels; ``--scale FACTOR`` fixes it,
1 is off; SGBM always runs at the sensor's resolution. Pictures, the cloud window and PLY
files show only confident pixels (``--min-confidence``, default 0.45; see
``evstereo.inference.prediction``), the others black or absent; ``--show-all`` shows every
pixel. The overlay shows the scale and the share of confident pixels.

--headless, or no display: writes into --out (default ./live_out) live_depth.mp4,
depth/<t_us>.png (disparity/<t_us>.png without calibration), disparity_npy/<t_us>.npy (every
pixel), confidence_npy/<t_us>.npy, clouds/<t_us>.ply and timings.json (see
evstereo.live.outputs; it records the scale used and the confidence options); the folder is checked
for writability before the model loads. Metrics use evaluate's names and units
(``evstereo.metrics``). Bad or corrupt input: one line naming the file, exit code 2,
everything written so far kept (the video and timings.json are finalised). Ctrl-C: one
line, exit code 130, the same.

This module is argument parsing and wiring; the session itself is ``evstereo.live``.
"""

from __future__ import annotations

import argparse
import sys

from evstereo.devices import add_device_option, resolve_device
from evstereo.errors import InputError, run_tool
from evstereo.fileio import check_writable
from evstereo.inference.prediction import add_prediction_options
from evstereo.live import LiveOptions, build_model, format_summary, run_live
from evstereo.live.outputs import report_json
from evstereo.live.session import BASELINES
from evstereo.runtime import keep_freed_memory
from evstereo.viz.viewer import HELP, display_available


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
                    help="event window length (default: the network's own)")
    ap.add_argument("--stride-ms", type=float, default=None, metavar="MS",
                    help="window spacing (default: the GT timestamps when the recording has GT, else the window)")
    ap.add_argument("--headless", action="store_true", help="no windows: write video, images, arrays, clouds to --out")
    ap.add_argument("--out", metavar="DIR", default=None,
                    help="output folder (headless default ./live_out; snapshots default ./snapshots)")
    ap.add_argument("--cloud", action="store_true", help="also show the live point cloud in an Open3D window")
    ap.add_argument("--ply-every", type=int, default=10, metavar="N",
                    help="headless: a PLY cloud every N frames (default 10; 0: none)")
    ap.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N windows")
    add_prediction_options(ap, "pictures, clouds and PLY files show")
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


def options(args: argparse.Namespace) -> LiveOptions:
    """The session's options from the command line (checked: one line for a bad value)."""
    if args.max_disparity <= 0:
        raise InputError(None, f"--max-disparity {args.max_disparity:g}: must be positive")
    if args.baseline and args.model_alias and args.baseline != args.model_alias:
        raise InputError(None, "--model is the old spelling of --baseline; give one of them")
    opts = LiveOptions(window_ms=args.window_ms, stride_ms=args.stride_ms, max_speed=args.max_speed,
                       speed=args.speed, max_frames=args.max_frames, device=args.device, compile=args.compile,
                       min_depth=args.min_depth, max_depth=args.max_depth, ply_every=args.ply_every,
                       cloud=args.cloud, out=args.out, scale=args.scale, min_confidence=args.min_confidence,
                       event_radius=args.event_radius, show_all=args.show_all,
                       min_event_density=args.min_event_density, max_window_factor=args.max_window_factor)
    opts.check()
    return opts


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    info = print if not (args.quiet or args.json) else (lambda *a, **k: None)
    opts = options(args)
    baseline = args.baseline or args.model_alias
    if args.model_alias:
        info(f"note: --model {args.model_alias} is now --baseline {args.model_alias}", flush=True)
    opts.device = resolve_device(args.device)  # before the model loads
    keep_freed_memory()
    headless = args.headless
    if not headless and not display_available():
        info("note: no display (DISPLAY/WAYLAND_DISPLAY unset or unreachable): running headless", flush=True)
        headless = True
    # files, not a screen: every window, as fast as possible, unless real time is asked for
    opts.max_speed = args.max_speed or (headless and not args.real_time)
    if opts.max_speed and args.speed is not None:
        info("note: --speed applies at real-time pace (--real-time); ignored", flush=True)
    out = check_writable(args.out or "live_out", folder=True) if headless else None
    if headless and args.cloud:
        info("note: --cloud needs a display; point clouds go to PLY files instead", flush=True)
    model, model_name = build_model(args.checkpoint, baseline, args.max_disparity)
    if getattr(model, "native_resolution", False) and opts.scale != "auto":
        info(f"note: --scale applies to networks; {baseline} runs at the sensor's resolution", flush=True)
    if opts.compile and not any(True for _ in model.parameters()):
        info("note: --compile ignored: the model has no torch graph to compile", flush=True)
        opts.compile = False
    info(f"model: {model_name}", flush=True)
    result = run_live(args.recording, model, model_name, opts, headless, out, info)
    if result.report is not None:
        info(format_summary(result.report, result.paths), flush=True)
        if args.json:
            print(report_json(result.report), flush=True)
    if result.failure is not None:
        raise result.failure
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_tool(lambda: _run(argv))


if __name__ == "__main__":
    sys.exit(main())
