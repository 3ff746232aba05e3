"""`python -m data_tools.prepare RECORDING... --out DIR`: cache per-frame representations.

Optional: training reads recordings directly, but a cache makes epochs much faster. Shows a
progress bar; interrupt it and run it again to resume.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evstereo.datasets.prepared import prepare_recording
from evstereo.datasets.samples import REPRESENTATIONS, SampleSpec
from evstereo.errors import InputError, print_error


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data_tools.prepare", description=__doc__.splitlines()[0])
    ap.add_argument("recordings", nargs="+", help="recordings with ground truth")
    ap.add_argument("--out", required=True, help="folder for the caches (one .h5 per recording)")
    ap.add_argument("--representation", default="sbt", choices=REPRESENTATIONS)
    ap.add_argument("--bins", type=int, default=5)
    ap.add_argument("--time-steps", type=int, default=1)
    ap.add_argument("--window-ms", type=float, default=50.0)
    ap.add_argument("--right-gt", action="store_true", help="also store the right camera's GT (flip augmentation)")
    args = ap.parse_args(argv)
    spec = SampleSpec(args.representation, args.bins, args.time_steps, int(args.window_ms * 1000))
    try:
        for rec in args.recordings:
            out = Path(args.out) / f"{Path(rec).stem}.h5"
            prepare_recording(rec, out, spec, with_right_gt=args.right_gt)
            print(f"wrote {out}")
    except InputError as exc:
        return print_error(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
