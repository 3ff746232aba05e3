"""`make demo`: the main job end to end on a generated recording.

Generates a short synthetic MVSEC recording (once, with a seed never used in training),
inspects it, then replays it through `apps.live_depth` with the shipped checkpoint: in
windows when a display is available, headless otherwise (every window: MP4, depth PNGs with
their colour bar, disparity .npy, PLY clouds and timings in --dir/live). Ctrl-C at any point:
one line, exit code 130.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evstereo.errors import run_tool
from evstereo.recordings import open_recording
from evstereo.recordings.summary import format_summary
from evstereo.viz.viewer import display_available

from . import live_depth  # apps.live_depth in a checkout, evstereo.apps.live_depth installed


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m apps.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="data/demo", help="where the demo recording and outputs go (default data/demo)")
    ap.add_argument("--seconds", type=float, default=4.0, help="length of the generated recording, s (default 4)")
    ap.add_argument("--seed", type=int, default=0,
                    help="simulator seed (default 0; training used 100-107 and 900, evaluation 901)")
    ap.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    return ap


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    info = print if not args.quiet else (lambda *a, **k: None)
    folder = Path(args.dir)
    data = folder / "demo_data.hdf5"
    if not data.exists():
        from evstereo.simulation import synthesize

        info(f"generating a {args.seconds:g} s synthetic MVSEC recording in {folder} ...", flush=True)
        # compressed events: 93 MB instead of 285 MB for the default 4 s (window reads 1.2x slower,
        # a small share of the live frame time)
        synthesize(folder, "demo", args.seconds, args.seed, compress_events=True)
    with open_recording(data) as rec:
        info(format_summary(rec.summary()), flush=True)
    out = folder / "live"
    live_args = [str(data), "--out", str(out)]
    headless = not display_available()
    if headless:
        live_args.append("--headless")  # files, not a screen: every window, at full speed
    if args.quiet:
        live_args.append("--quiet")
    info(f"\nlive depth: python -m apps.live_depth {' '.join(live_args)}", flush=True)
    code = live_depth.main(live_args)
    if code == 0 and headless:
        info(f"\nOutputs in {out}/: live_depth.mp4 (events, predicted depth, ground truth and error side by side),"
             f" depth/<t_us>.png (colour-coded depth with its colour bar), disparity_npy/<t_us>.npy (float32 px),"
             f" clouds/<t_us>.ply (open with `python -m apps.view_cloud FILE.ply`), timings.json (latency per stage).")
    return code


def main(argv: list[str] | None = None) -> int:
    return run_tool(lambda: _run(argv))


if __name__ == "__main__":
    sys.exit(main())
