"""Write a synthetic stereo event recording in the MVSEC layout.

    python -m data_tools.synth --out DIR --name NAME --seconds S --seed N
    python -m data_tools.synth --out DIR --name NAME --seconds S --seed N --randomize
    python -m data_tools.synth ... --sensor dvs128 --leak-rate 0.1 --timestamp-jitter-us 50

writes DIR/NAME_data.hdf5, DIR/NAME_gt.hdf5 and DIR/NAME_calib/camchain-imucam-NAME.yaml.
--randomize draws the sensor, rig, event density and realism from the seed (reproducibly);
the summary and the data file's attributes say what was drawn.
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


# field of SynthOptions -> its flag (bad values are reported under the flag's name)
FLAGS = {"speed": "--speed", "threshold": "--threshold", "threshold_sigma": "--threshold-sigma",
         "refractory_us": "--refractory-us", "noise_rate_hz": "--noise-rate",
         "texture_contrast": "--texture-contrast", "max_step_px": "--max-step-px", "sensor": "--sensor",
         "focal_px": "--focal-px", "baseline_m": "--baseline-m",
         "camera_threshold_ratio_sigma": "--camera-threshold-ratio-sigma",
         "hot_pixel_fraction": "--hot-pixel-fraction", "hot_pixel_rate_hz": "--hot-pixel-rate",
         "leak_rate_hz": "--leak-rate", "shot_noise_rate_hz": "--shot-noise-rate", "bandwidth_hz": "--bandwidth",
         "timestamp_jitter_us": "--timestamp-jitter-us", "latency_us": "--latency-us",
         "rectification_residual_px": "--rectification-residual-px",
         "rectification_residual_deg": "--rectification-residual-deg", "layout": "--layout", "thin": "--thin",
         "movers": "--movers", "photo_textures": "--photo-textures", "randomize": "--randomize"}


def _movers(text: str) -> int | tuple[str, ...]:
    """--movers: a count, or comma-separated kinds (checked against the layout by SynthOptions)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    if not kinds or not all(k.isidentifier() for k in kinds):
        raise argparse.ArgumentTypeError(f"a count or kinds like fan,pendulum, not {text!r}")
    return kinds


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (options beyond the contract have simulator defaults).

    Simulator options default to None, meaning "not given": the simulator's default applies,
    or with --randomize a value drawn from the seed; a given one is always kept.
    """
    from evstereo.recordings.mvsec_writer import add_event_storage_options
    from evstereo.simulation import SENSORS, SynthOptions

    d = SynthOptions()
    ap = argparse.ArgumentParser(prog="python -m data_tools.synth", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--name", required=True, help="recording name (file name stem)")
    ap.add_argument("--seconds", type=float, required=True, help="duration to simulate (s)")
    ap.add_argument("--seed", type=int, required=True, help="random seed: scene, trajectory and sensor")

    def option(group, field: str, help: str, metavar: str = "X", **kw) -> None:
        group.add_argument(FLAGS[field], dest=field, default=None, metavar=metavar,
                           help=f"{help} (default {getattr(d, field)})", **kw)

    option(ap, "speed", "trajectory speed factor; event rate grows with it", type=float)
    option(ap, "threshold", "mean contrast threshold, log units", type=float)
    option(ap, "threshold_sigma", "per-pixel threshold spread", type=float)
    option(ap, "refractory_us", "refractory period (us)", "US", type=int)
    option(ap, "noise_rate_hz", "background events per pixel per second", "HZ", type=float)
    option(ap, "texture_contrast", "scale of the textures' log contrast", type=float)
    option(ap, "max_step_px", "largest image motion between renders; smaller is slower and finer", "PX", type=float)
    g = ap.add_argument_group("rig", "sensor presets (evstereo.simulation.rigs); disparity = f * B / depth")
    option(g, "sensor", f"sensor preset {', '.join(SENSORS)} (davis346 without --focal-px/--baseline-m: the "
                        "real MVSEC calibration) or random (draws the preset, focal length and baseline)", "NAME",
           choices=(*SENSORS, "random"))
    option(g, "focal_px", "rectified focal length of a pinhole rig; None: the preset's or drawn", "PX", type=float)
    option(g, "baseline_m", "stereo baseline of a pinhole rig; None: the preset's or drawn", "M", type=float)
    g = ap.add_argument_group("sensor realism", "per camera; all off by default")
    option(g, "camera_threshold_ratio_sigma", "each camera's mean threshold times exp(N(0, X))", type=float)
    option(g, "hot_pixel_fraction", "share of hot pixels", type=float)
    option(g, "hot_pixel_rate_hz", "events per second of each hot pixel", "HZ", type=float)
    option(g, "leak_rate_hz", "leak ON events per pixel per second (a static scene's rate)", "HZ", type=float)
    option(g, "shot_noise_rate_hz", "shot-noise events per pixel per second in the dark, fewer where bright",
           "HZ", type=float)
    option(g, "bandwidth_hz", "photoreceptor cutoff at full brightness, proportional to intensity; 0: no lag",
           "HZ", type=float)
    option(g, "timestamp_jitter_us", "std of Gaussian timestamp noise", "US", type=float)
    option(g, "latency_us", "constant delay of each camera's timestamps (us)", ("LEFT", "RIGHT"), type=float, nargs=2)
    g = ap.add_argument_group("calibration realism", "the right camera renders slightly off its calibration")
    option(g, "rectification_residual_px", "rows the right camera's events lie below the calibrated ones", "PX",
           type=float)
    option(g, "rectification_residual_deg", "rotation of the right camera away from its calibration, about an "
                                            "axis drawn from the seed", "DEG", type=float)
    g = ap.add_argument_group("scene content", "what the cameras see (evstereo.simulation.scene)")
    option(g, "layout", "room, or outdoor: a street with a ground plane and a sky", "NAME", choices=("room", "outdoor"))
    option(g, "thin", "thin structures and small objects (poles, wires, blades)", "N", type=int)
    option(g, "movers", "independently moving objects: N random ones, or their kinds, e.g. fan,pendulum (room: "
                        "fan, pendulum, walker, crossing; outdoor adds car)", "N|KINDS", type=_movers)
    option(g, "photo_textures", "share of the surfaces textured with photographs (scikit-image's bundled "
                                "images)", "SHARE", type=float)
    ap.add_argument("--randomize", action="store_true", default=None,
                    help="draw sensor, rig, event density, scene content and all realism options from the seed (options "
                         "given on the command line are kept); the drawn values are stored in the file")
    add_event_storage_options(ap)
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    return ap


def _options(args: argparse.Namespace) -> dict:
    """The simulator options given on the command line (the others keep their defaults)."""
    return {field: getattr(args, field) for field in FLAGS if getattr(args, field) is not None}


def _main(ap: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from evstereo.fileio import check_writable
    from evstereo.simulation import synthesize

    check_writable(args.out, folder=True)  # before the progress bar: a read-only disk is one line

    with tqdm(total=args.seconds, unit="s", desc=f"synth {args.name}", disable=args.quiet,
              bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} s [{elapsed}<{remaining}]") as bar:
        def advance(seconds: float) -> None:
            bar.update(min(seconds, bar.total - bar.n))  # float sums may overshoot the total

        info = synthesize(args.out, args.name, args.seconds, args.seed, progress=advance,
                          compress_events=args.compress_events, **_options(args))
    if args.json:
        print(json.dumps(info, indent=2))
    elif not args.quiet:
        rates = ", ".join(f"{c} {r:.3g}" for c, r in info["rate_mev_s"].items())
        rig = info["rig"]
        near, far = rig["disparity_px_at_0.6_10m"]
        print(f"wrote {info['data']}, {info['gt']}, {info['calibration']}")
        print(f"{rig['sensor']} {rig['width']}x{rig['height']}, f {rig['focal_px']:.1f} px, "
              f"B {rig['baseline_m'] * 100:.1f} cm: disparity {far:.2g}-{near:.3g} px over 10-0.6 m"
              + (f"; randomized ({info['randomized']['density'] or 'rig only'})"
                 if info["randomized"]["randomized"] else ""))
        print(f"{info['seconds']:.2f} s, events {rates} Mev/s, {info['gt_frames']} depth frames, "
              f"{info['bytes'] / 1e6:.1f} MB, {info['wall_s']:.1f} s wall "
              f"({info['wall_s'] / info['seconds']:.1f} s per recorded s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from evstereo.simulation import OptionError, SynthOptions

    ap = build_parser()
    args = ap.parse_args(argv)
    if not args.seconds > 0:
        ap.error("--seconds must be positive")
    if not args.name or os.sep in args.name or (os.altsep and os.altsep in args.name) or args.name in (".", ".."):
        ap.error(f"--name must be a plain file name stem, not {args.name!r}")
    try:
        SynthOptions(**_options(args)).validate()
    except OptionError as exc:
        ap.error(f"{FLAGS.get(exc.option, exc.option)} {exc.problem}")
    return run_tool(lambda: _main(ap, args),
                    interrupted="interrupted: nothing was written (earlier files are untouched)")


if __name__ == "__main__":
    sys.exit(main())
