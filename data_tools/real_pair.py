"""Make a stereo evaluation recording with known disparity from one real camera's events.

    python -m data_tools.real_pair SOURCE --out DIR --name NAME [--camera left] [--field plane]
        [--d-min 4 --d-max 16] [--keep 0.6] [--noise-rate 0.05] [--vertical-offset 0] [--seed 0]

SOURCE is any recording the readers open (MVSEC-layout HDF5, e.g. a real file after
``data_tools.convert``). The chosen camera's events become the left view and, shifted by the
known disparity field, the right one; each view keeps its own share of the events and gets its
own noise (:mod:`evstereo.recordings.real_pair`). Writes DIR/NAME_data.hdf5, NAME_gt.hdf5
(depth at the left view's event pixels) and NAME_calib/, which ``apps.evaluate`` scores.
"""

from __future__ import annotations

import argparse
import json
import sys

from evstereo.errors import run_tool


def build_parser() -> argparse.ArgumentParser:
    from evstereo.recordings.real_pair import FIELDS, PairOptions

    d = PairOptions()
    ap = argparse.ArgumentParser(prog="python -m data_tools.real_pair", description=__doc__.splitlines()[0])
    ap.add_argument("source", metavar="SOURCE", help="a recording (MVSEC-layout HDF5 or any format the readers open)")
    ap.add_argument("--out", required=True, metavar="DIR", help="output folder")
    ap.add_argument("--name", required=True, help="recording name (file name stem)")
    ap.add_argument("--camera", default="left", choices=("left", "right"), help="the source camera (default left)")
    ap.add_argument("--field", default=d.field, choices=FIELDS,
                    help=f"disparity field: constant (d-min everywhere), plane (d-min..d-max slanted) or layers "
                         f"(a centre band at d-max over d-min) (default {d.field})")
    ap.add_argument("--d-min", type=float, default=d.d_min, help=f"smallest disparity, px (default {d.d_min:g})")
    ap.add_argument("--d-max", type=float, default=d.d_max, help=f"largest disparity, px (default {d.d_max:g})")
    ap.add_argument("--keep", type=float, default=d.keep,
                    help=f"share of the events each camera keeps, independently (default {d.keep:g})")
    ap.add_argument("--noise-rate", type=float, default=d.noise_rate_hz,
                    help=f"extra background events per pixel per second, per camera (default {d.noise_rate_hz:g})")
    ap.add_argument("--vertical-offset", type=float, default=d.vertical_offset_px,
                    help="right view moved down by this many px, a rectification residual (default 0)")
    ap.add_argument("--gt-hz", type=float, default=d.gt_hz, help=f"ground-truth rate (default {d.gt_hz:g} Hz)")
    ap.add_argument("--window-ms", type=float, default=d.window_us / 1000,
                    help="GT pixels: left events within this window before each GT time "
                         f"(default {d.window_us / 1000:g} ms)")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the subsets and the noise (default 0)")
    ap.add_argument("--quiet", "-q", action="store_true", help="no summary")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    return ap


def _main(args: argparse.Namespace) -> int:
    from evstereo.recordings.real_pair import write_pair

    info = write_pair(args.source, args.out, args.name, camera=args.camera, seed=args.seed, field=args.field,
                      d_min=args.d_min, d_max=args.d_max, keep=args.keep, noise_rate_hz=args.noise_rate,
                      vertical_offset_px=args.vertical_offset, gt_hz=args.gt_hz,
                      window_us=int(round(args.window_ms * 1000)))
    if args.json:
        print(json.dumps(info, indent=2))
    elif not args.quiet:
        print(f"wrote {info['data']}, {info['gt']}, {info['calibration']}")
        print(f"{info['source_events']:,} source events -> left {info['events']['left']:,}, right "
              f"{info['events']['right']:,}; disparity {info['disparity_px'][0]:g}-{info['disparity_px'][1]:g} px; "
              f"{info['gt_frames']} GT frames")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    ap = build_parser()
    args = ap.parse_args(argv)
    if not 0 <= args.d_min <= args.d_max:
        ap.error("need 0 <= --d-min <= --d-max")
    if not 0 < args.keep <= 1:
        ap.error("--keep must be in (0, 1]")
    if args.noise_rate < 0 or not args.gt_hz > 0 or not args.window_ms > 0:
        ap.error("--noise-rate must be >= 0, --gt-hz and --window-ms positive")
    return run_tool(lambda: _main(args), interrupted="interrupted: nothing was written (earlier files are untouched)")


if __name__ == "__main__":
    sys.exit(main())
