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
from evstereo.recordings.summary import format_summary


def _main(args: argparse.Namespace) -> int:
    from evstereo.recordings import open_recording

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
