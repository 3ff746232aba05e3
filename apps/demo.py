"""`make demo`: the main job end to end on a generated recording.

Generates a short synthetic MVSEC recording (once, with a seed never used in training),
inspects it, then replays it through `apps.live_depth` with the shipped checkpoint: in
windows when a display is available, headless otherwise (MP4, depth PNGs, disparity .npy,
PLY clouds and timings in --dir/live).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from apps import live_depth
from data_tools.inspect import format_summary
from evstereo.datasets import open_recording
from evstereo.viz.viewer import display_available


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m apps.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="data/demo", help="where the demo recording and outputs go")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=7, help="simulator seed (training used 100-107 and 900)")
    args = ap.parse_args(argv)
    folder = Path(args.dir)
    data = folder / "demo_data.hdf5"
    if not data.exists():
        from evstereo.simulation import synthesize

        print(f"generating a {args.seconds:g} s synthetic MVSEC recording in {folder} ...", flush=True)
        synthesize(folder, "demo", args.seconds, args.seed)
    with open_recording(data) as rec:
        print(format_summary(rec.summary()), flush=True)
    out = folder / "live"
    live_args = [str(data), "--out", str(out)]
    if not display_available():
        live_args += ["--headless", "--max-speed"]  # files, not a screen: keep every frame
    print(f"\nlive depth: python -m apps.live_depth {' '.join(live_args)}", flush=True)
    code = live_depth.main(live_args)
    if code == 0 and not display_available():
        print(f"\nOutputs in {out}/: live_depth.mp4 (events, predicted depth, ground truth and error side by side),"
              f" depth/*.png (colour-coded depth), disparity/<t_us>.npy (float32 px), clouds/*.ply"
              f" (open with `python -m apps.view_cloud FILE.ply`), timings.json (latency per stage).")
    return code


if __name__ == "__main__":
    sys.exit(main())
