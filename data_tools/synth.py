"""Write a synthetic stereo event recording in the MVSEC layout.

    python -m data_tools.synth --out DIR --name NAME --seconds S --seed N

writes DIR/NAME_data.hdf5, DIR/NAME_gt.hdf5 and DIR/NAME_calib/camchain-imucam-NAME.yaml.
The logic lives in :mod:`evstereo.simulation`; this is argument parsing and a progress bar.
A read-only or full output folder fails before the simulation starts (exit 2); Ctrl-C ends
with one line (exit 130) and leaves no file behind.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from evstereo.errors import run_tool


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (options beyond the contract have simulator defaults)."""
    from evstereo.recordings.mvsec_writer import add_event_storage_options
    from evstereo.simulation import SynthOptions

    d = SynthOptions()
    ap = argparse.ArgumentParser(prog="python -m data_tools.synth", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--name", required=True, help="recording name (file name stem)")
    ap.add_argument("--seconds", type=float, required=True, help="duration to simulate (s)")
    ap.add_argument("--seed", type=int, required=True, help="random seed: scene, trajectory and sensor")
    ap.add_argument("--speed", type=float, default=d.speed,
                    help=f"trajectory speed factor; event rate grows with it (default {d.speed})")
    ap.add_argument("--threshold", type=float, default=d.threshold,
                    help=f"mean contrast threshold, log units (default {d.threshold})")
    ap.add_argument("--threshold-sigma", type=float, default=d.threshold_sigma,
                    help=f"per-pixel threshold spread (default {d.threshold_sigma})")
    ap.add_argument("--refractory-us", type=int, default=d.refractory_us,
                    help=f"refractory period (default {d.refractory_us} us)")
    ap.add_argument("--noise-rate", type=float, default=d.noise_rate_hz,
                    help=f"background events per pixel per second (default {d.noise_rate_hz})")
    ap.add_argument("--texture-contrast", type=float, default=d.texture_contrast,
                    help=f"scale of the textures' log contrast (default {d.texture_contrast})")
    ap.add_argument("--max-step-px", type=float, default=d.max_step_px,
                    help=f"largest image motion between renders; smaller is slower and finer "
                         f"(default {d.max_step_px})")
    add_event_storage_options(ap)
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    return ap


def _main(ap: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from evstereo.fileio import check_writable
    from evstereo.simulation import synthesize

    check_writable(args.out, folder=True)  # before the progress bar: a read-only disk is one line

    options = dict(speed=args.speed, threshold=args.threshold, threshold_sigma=args.threshold_sigma,
                   refractory_us=args.refractory_us, noise_rate_hz=args.noise_rate,
                   texture_contrast=args.texture_contrast, max_step_px=args.max_step_px)
    with tqdm(total=args.seconds, unit="s", desc=f"synth {args.name}", disable=args.quiet,
              bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} s [{elapsed}<{remaining}]") as bar:
        def advance(seconds: float) -> None:
            bar.update(min(seconds, bar.total - bar.n))  # float sums may overshoot the total

        info = synthesize(args.out, args.name, args.seconds, args.seed, progress=advance,
                          compress_events=args.compress_events, **options)
    if args.json:
        print(json.dumps(info, indent=2))
    elif not args.quiet:
        rates = ", ".join(f"{c} {r:.2f}" for c, r in info["rate_mev_s"].items())
        print(f"wrote {info['data']}, {info['gt']}, {info['calibration']}")
        print(f"{info['seconds']:.2f} s, events {rates} Mev/s, {info['gt_frames']} depth frames, "
              f"{info['bytes'] / 1e6:.1f} MB, {info['wall_s']:.1f} s wall "
              f"({info['wall_s'] / info['seconds']:.1f} s per recorded s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    ap = build_parser()
    args = ap.parse_args(argv)
    if not args.seconds > 0:
        ap.error("--seconds must be positive")
    if args.speed <= 0 or args.threshold <= 0 or args.max_step_px <= 0:
        ap.error("--speed, --threshold and --max-step-px must be positive")
    if not args.name or os.sep in args.name or (os.altsep and os.altsep in args.name) or args.name in (".", ".."):
        ap.error(f"--name must be a plain file name stem, not {args.name!r}")
    return run_tool(lambda: _main(ap, args),
                    interrupted="interrupted: nothing was written (earlier files are untouched)")


if __name__ == "__main__":
    sys.exit(main())
