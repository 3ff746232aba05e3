"""`python -m data_tools.inspect FILE`: summary of any supported recording.

Sensor size, duration, events and rate per camera (so an empty or swapped camera shows),
ground-truth frames, calibration; a ``warning: ...`` line on stderr for a recording that is
most likely misread (a camera without events, a span of days, an impossible event rate).
Bad input: one line, exit 2; Ctrl-C: one line, exit 130.
"""

from __future__ import annotations

import argparse
import json
import sys

from evstereo.errors import run_tool


def format_summary(s: dict) -> str:
    lines = [
        f"{s['path']}  ({s['format']})",
        f"  sensor        {s['sensor']['width']} x {s['sensor']['height']} px",
        f"  duration      {s['duration_s']:.3f} s",
    ]
    for cam, c in s["cameras"].items():
        span = ""
        if c["events"]:
            span = f"   t {c['t_first_us'] / 1e6:.6f} .. {c['t_last_us'] / 1e6:.6f} s"
        lines.append(f"  {cam:<6} events {c['events']:>12,d}   {c['rate_mev_s']:.3f} M ev/s{span}")
    sh = s.get("stereo_shift")
    if sh is not None:
        if sh["clear"]:
            order = "as expected" if sh["shift_px"] > 0 else "left and right look SWAPPED"
            lines.append(f"  stereo        left events match the right ones {sh['shift_px']:+d} px to the right "
                         f"(correlation {sh['score']:.2f}): {order}")
        else:
            lines.append(f"  stereo        no clear horizontal match between the cameras (best {sh['shift_px']:+d} px, "
                         f"correlation {sh['score']:.2f})")
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


def _main(args: argparse.Namespace) -> int:
    from evstereo.datasets import open_recording

    with open_recording(args.file) as rec:
        s = rec.summary()
    if not args.quiet:
        for w in s.get("warnings", []):
            print(f"warning: {w}", file=sys.stderr, flush=True)
    print(json.dumps(s, indent=2) if args.json else format_summary(s))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data_tools.inspect", description=__doc__.splitlines()[0])
    ap.add_argument("file", help="MVSEC-layout *_data.hdf5 (official, synthetic, converted) or a DSEC sequence folder")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    ap.add_argument("--quiet", "-q", action="store_true",
                    help="no warning lines on stderr (they stay in the JSON's 'warnings')")
    args = ap.parse_args(argv)
    return run_tool(lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
