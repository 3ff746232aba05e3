"""`python -m data_tools.prepare RECORDING... --out DIR`: cache per-frame representations.

Optional: training reads recordings directly, but a cache makes epochs much faster. Each cache
is DIR/<stem>-<key>.h5 (``evstereo.datasets.prepared.cache_path``), the file training with
``data.cache_dir=DIR`` and the same representation, bins, time steps and window reads instead
of building its own (``--right-gt`` for training recordings with ``data.flip`` > 0). Shows a
progress bar; interrupt it (Ctrl-C: one line, exit 130) or kill it and run it again to resume.
A finished cache that was damaged (cut short) is rebuilt. Bad input or a read-only or full
output folder: one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from evstereo.errors import run_tool
from evstereo.events.input_spec import InputSpec


def build_parser() -> argparse.ArgumentParser:
    from evstereo.datasets.samples import REPRESENTATIONS

    ap = argparse.ArgumentParser(prog="python -m data_tools.prepare", description=__doc__.splitlines()[0])
    ap.add_argument("recordings", nargs="+", metavar="RECORDING", help="recordings with ground truth")
    ap.add_argument("--out", required=True, metavar="DIR",
                    help="folder for the caches: one RECORDING-KEY.h5 per recording, the name training with "
                         "data.cache_dir=DIR looks for")
    d = InputSpec()  # the defaults a network's input has
    ap.add_argument("--representation", default=d.representation, choices=REPRESENTATIONS,
                    help=f"event representation the network reads (default {d.representation})")
    ap.add_argument("--bins", type=int, default=d.bins, help=f"temporal bins (channels) per time step (default {d.bins})")
    ap.add_argument("--time-steps", type=int, default=d.time_steps,
                    help=f"spiking time steps per sample (default {d.time_steps})")
    ap.add_argument("--window-ms", type=float, default=d.window_us / 1000,
                    help=f"events before each ground-truth frame that make its sample, in ms (default {d.window_us / 1000:g})")
    ap.add_argument("--right-gt", action="store_true",
                    help="also store the right camera's GT (flip augmentation: training recordings with data.flip > 0)")
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    ap.add_argument("--json", action="store_true", help="print the caches written as JSON on stdout")
    return ap


def _main(args: argparse.Namespace, spec) -> int:
    from evstereo.datasets.prepared import cache_path, prepare_recording
    from evstereo.fileio import check_writable

    check_writable(args.out, folder=True)
    written = []
    for rec in args.recordings:
        out = cache_path(args.out, rec, spec, with_right_gt=args.right_gt)  # the name training looks for
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            prepare_recording(rec, out, spec, with_right_gt=args.right_gt, progress=not args.quiet)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr, flush=True)
        written.append(str(out))
        if not args.quiet and not args.json:
            print(f"wrote {out}")
    if args.json:
        print(json.dumps({"caches": written, "spec": spec.as_dict()}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.bins < 1 or args.time_steps < 1 or not args.window_ms > 0:
        ap.error("--bins and --time-steps must be at least 1 and --window-ms positive")
    from evstereo.datasets.samples import SampleSpec

    try:
        spec = SampleSpec(args.representation, args.bins, args.time_steps, int(round(args.window_ms * 1000)))
    except ValueError as exc:
        ap.error(str(exc))
    return run_tool(lambda: _main(args, spec), interrupted="interrupted: run the same command again to resume")


if __name__ == "__main__":
    sys.exit(main())
