"""`python -m data_tools.inspect FILE`: summary of any supported recording.

Sensor size, duration, events and rate per camera, ground-truth frames, calibration.
"""

from __future__ import annotations

import argparse
import json
import sys

from evstereo.datasets import open_recording
from evstereo.errors import InputError, print_error


def format_summary(s: dict) -> str:
    lines = [
        f"{s['path']}  ({s['format']})",
        f"  sensor        {s['sensor']['width']} x {s['sensor']['height']} px",
        f"  duration      {s['duration_s']:.3f} s",
    ]
    for cam, c in s["cameras"].items():
        lines.append(f"  {cam:<6} events {c['events']:>12,d}   {c['rate_mev_s']:.3f} M ev/s")
    if s["gt_frames"]:
        lines.append(f"  ground truth  {s['gt_frames']} depth frames at {s['gt_rate_hz']:.1f} Hz")
    else:
        lines.append("  ground truth  none")
    cal = s.get("calibration")
    if cal:
        lines.append(f"  calibration   {cal['distortion']} distortion, f = {cal['focal_px']:.3f} px, "
                     f"fB = {cal['fB_px_m']:.4f} px*m, baseline = {cal['baseline_m']:.4f} m")
        lines.append(f"                from {cal['source']}")
    else:
        lines.append("  calibration   none (events used as stored)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data_tools.inspect", description=__doc__.splitlines()[0])
    ap.add_argument("file", help="MVSEC-layout *_data.hdf5 (official, synthetic, converted) or a DSEC sequence folder")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    try:
        with open_recording(args.file) as rec:
            s = rec.summary()
    except InputError as exc:
        return print_error(exc)
    print(json.dumps(s, indent=2) if args.json else format_summary(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
