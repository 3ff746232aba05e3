"""`python -m data_tools.inspect FILE`: summary of any supported recording.

Sensor size, duration, events and rate per camera (so an empty or swapped camera shows) and
how many a 50 ms window holds per pixel (under ``SparseWindows``' density, evaluate and live
depth make the windows longer: a line says so), ground-truth frames, calibration; a
``warning: ...`` line on stderr for a recording that is most likely misread (a camera without
events, a span of days, an impossible event rate).
Bad input: one line, exit 2; Ctrl-C: one line, exit 130.
"""

from __future__ import annotations

import argparse
import json
import sys

from evstereo.datasets.samples import SparseWindows
from evstereo.errors import run_tool
from evstereo.recordings.summary import format_summary


def _main(args: argparse.Namespace) -> int:
    from evstereo.recordings import open_recording

    with open_recording(args.file) as rec:
        s = rec.summary()
    if not args.quiet:
        for w in s.get("warnings", []):
            print(f"warning: {w}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(format_summary(s))
    sparse = SparseWindows()
    density = min(c["events_per_pixel_per_window"] for c in s["cameras"].values())
    if 0 < density < sparse.min_event_density:
        print(f"  windows       sparse (under {sparse.min_event_density:g} events per pixel in 50 ms): evaluate and live "
              f"depth reach up to {sparse.max_window_factor}x further back (--min-event-density 0: off)")
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
