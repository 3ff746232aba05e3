"""Convert real event recordings (text, npz, AEDAT4, DSEC) into MVSEC-layout HDF5.

    python -m data_tools.convert INPUT... --format {text,npz,aedat4,dsec} --out FILE.hdf5 [options]

Writes FILE.hdf5 (events, frames, IMU), FILE_gt.hdf5 when the input has ground truth (DSEC)
and FILE_calib/camchain-imucam-FILE.yaml when it has a calibration (DSEC), all atomically.
Bad input, or an output folder that is read-only or full: one sentence on stderr, exit code 2.
Input that is most likely misread (a camera without events, a span of days): one
``warning: ...`` line each on stderr. Ctrl-C: one line, exit 130, nothing written under the
output name. The logic is in evstereo.recordings.convert.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from evstereo.recordings.convert import FORMATS, TIME_UNITS, ConvertWarning, convert
from evstereo.errors import run_tool
from evstereo.recordings.mvsec_writer import add_event_storage_options


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m data_tools.convert",
        description="Convert a real event recording into MVSEC-layout HDF5 (davis/{left,right}/events: x, y, t [s], p +-1).",
        epilog="Examples:\n"
               "  python -m data_tools.convert pendulum.npz --format npz --right-offset 0 -4 --out pendulum.hdf5\n"
               "  python -m data_tools.convert events.txt --format text --time-unit us --sensor 346 260 --out rec.hdf5\n"
               "  python -m data_tools.convert left.txt right.txt --format text --out rec.hdf5\n"
               "  python -m data_tools.convert sample.aedat4 --format aedat4 --out sample.hdf5\n"
               "  python -m data_tools.convert DSEC/train/zurich_city_11_a --format dsec --out zurich_city_11_a_data.hdf5\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="input file(s): text (one file with a camera column, one without = left only, or LEFT RIGHT), "
                         "npz, aedat4, or a DSEC sequence folder")
    ap.add_argument("--format", "-f", required=True, choices=FORMATS, help="input format")
    ap.add_argument("--out", "-o", required=True, metavar="FILE.hdf5", help="output MVSEC-layout data file")
    ap.add_argument("--time-unit", choices=tuple(TIME_UNITS), default=None,
                    help="unit of the input timestamps (text: default s; npz: default us)")
    ap.add_argument("--one-based", action="store_true", help="text: pixel coordinates start at 1, not 0")
    ap.add_argument("--left-camera", type=int, choices=(0, 1), default=None, metavar="ID",
                    help="text, one file with a camera column: the id (0 or 1) of the left camera (default 0); "
                         "the words left/right always mean themselves")
    ap.add_argument("--sensor", nargs=2, type=int, metavar=("WIDTH", "HEIGHT"), default=None,
                    help="sensor size (text: default inferred from the coordinates; npz: default 128 128; "
                         "aedat4: default from the file)")
    ap.add_argument("--left-offset", nargs=2, type=int, metavar=("DX", "DY"), default=(0, 0),
                    help="add DX, DY to the left camera's pixel coordinates (text, npz, aedat4)")
    ap.add_argument("--right-offset", nargs=2, type=int, metavar=("DX", "DY"), default=(0, 0),
                    help="add DX, DY to the right camera's pixel coordinates (text, npz), e.g. 0 -4")
    ap.add_argument("--sort", action="store_true",
                    help="sort events that are not in time order (in memory) instead of refusing the input")
    ap.add_argument("--no-frames", action="store_true", help="aedat4: do not write APS frames")
    ap.add_argument("--no-imu", action="store_true", help="aedat4: do not write IMU samples")
    add_event_storage_options(ap)
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress bars and no summary (warnings still show)")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    return ap


def _print_summary(s: dict) -> None:
    print(f"wrote {s['out']}  ({s['format']} -> MVSEC layout)")
    print(f"  sensor      {s['sensor']['width']} x {s['sensor']['height']}")
    print(f"  duration    {s['duration_s']:.3f} s")
    for cam, c in s["cameras"].items():
        span = "" if not c["events"] else f"  t {c['t_first_s']:.6f} .. {c['t_last_s']:.6f} s"
        print(f"  {cam:<11} {c['events']:,} events{span}")
    if s["images"]:
        print(f"  frames      {s['images']}")
    if s["imu_samples"]:
        print(f"  imu         {s['imu_samples']} samples")
    if s["gt"]:
        print(f"  gt          {s['gt']}  ({s['gt_frames']} depth frames)")
    if s["calibration"]:
        print(f"  calibration {s['calibration']}")
    for note in s["notes"]:
        print(f"  note: {note}")


def _main(args: argparse.Namespace) -> int:
    options = {}
    if args.time_unit is not None:
        options["time_unit"] = args.time_unit
    if args.one_based:
        options["one_based"] = True
    if args.left_camera is not None:
        options["left_camera"] = args.left_camera
    if args.compress_events is not None:
        options["compress_events"] = args.compress_events
    if args.sensor is not None:
        options["sensor"] = tuple(args.sensor)
    if tuple(args.left_offset) != (0, 0):
        options["left_offset"] = tuple(args.left_offset)
    if tuple(args.right_offset) != (0, 0):
        options["right_offset"] = tuple(args.right_offset)
    if args.sort:
        options["sort"] = True
    if args.no_frames:
        options["frames"] = False
    if args.no_imu:
        options["imu"] = False
    if not args.quiet and sys.stderr.isatty():
        from tqdm import tqdm

        options["progress"] = tqdm
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvertWarning)
        summary = convert(args.inputs, args.format, args.out, **options)
    for w in caught:
        if issubclass(w.category, ConvertWarning):
            print(f"warning: {w.message}", file=sys.stderr, flush=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if args.json:
        print(json.dumps(summary, indent=2))
    elif not args.quiet:
        _print_summary(summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(lambda: _main(args), interrupted="interrupted: nothing was written under the output name")


if __name__ == "__main__":
    sys.exit(main())
