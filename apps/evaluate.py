"""`python -m apps.evaluate --checkpoint CKPT --data DIR [--split N] --out results.json`: score a model.

Prints and writes the MVSEC metrics (mean disparity error, 1-px accuracy, mean and median
depth error), SOPs, MACs and energy per frame, and frames/s. ``--baseline sgbm`` scores
OpenCV's StereoSGBM on the same event frames beside the model. ``--save-predictions DIR``
writes each frame's disparity as float32 .npy named by its GT timestamp (us); a few example
frames (events, prediction, ground truth, error) go to ``<results folder>/examples``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from evstereo.datasets.samples import SampleSpec
from evstereo.errors import InputError, print_error
from evstereo.fileio import atomic_path, write_text_atomic
from evstereo.inference.evaluation import EvalFrame, evaluate, evaluation_items
from evstereo.models import SGBMStereo, load_checkpoint, shipped_checkpoint
from evstereo.viz.colors import colorize_disparity, colorize_error, event_image, label

METRIC_LABELS = [("mean_disparity_error", "mean disparity error", "px", 1), ("one_pixel_accuracy", "1-px accuracy", "%", 100),
                 ("mean_depth_error", "mean depth error", "cm", 100), ("median_depth_error", "median depth error", "cm", 100)]


def _example(frame: EvalFrame, max_disp: float) -> np.ndarray:
    s = frame.sample
    ev = np.abs(s["left"]).sum(axis=(0, 1))
    ys, xs = np.nonzero(ev)
    pol = np.sign(s["left"].sum(axis=(0, 1)))[ys, xs]
    h, w = ev.shape
    gt = np.where(s["valid"], s["disparity"], np.nan)
    err = np.where(s["valid"], np.abs(frame.prediction - s["disparity"]), np.nan)
    top = np.hstack([label(event_image(xs, ys, pol, h, w), "left events"),
                     label(colorize_disparity(frame.prediction, max_disp), "prediction")])
    bottom = np.hstack([label(colorize_disparity(gt, max_disp), "ground truth"),
                        label(colorize_error(err), "|error| 0-3 px")])
    return np.vstack([top, bottom])


def _print(name: str, r: dict) -> None:
    parts = []
    for key, text, unit, scale in METRIC_LABELS:
        if r.get(key) is not None:
            parts.append(f"{text} {r[key] * scale:.3f} {unit}")
    if r.get("energy_mj") is not None:
        parts.append(f"{r['energy_mj']:.3f} mJ/frame ({r['sops'] / 1e9:.3f} G SOPs, {r['macs'] / 1e9:.3f} G MACs)")
    if r.get("frames_per_s"):
        parts.append(f"{r['frames_per_s']:.1f} frames/s")
    print(f"{name} over {r['frames']} frames: " + ", ".join(parts))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m apps.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="a model checkpoint (default: the one that ships with the package)")
    ap.add_argument("--data", required=True, help="a recording, a folder of them, or an MVSEC folder with --split")
    ap.add_argument("--split", type=int, choices=(1, 2, 3), help="MVSEC indoor_flying split: its test frames")
    ap.add_argument("--out", required=True, help="results JSON")
    ap.add_argument("--save-predictions", metavar="DIR", help="write each frame's disparity as <t_us>.npy")
    ap.add_argument("--baseline", choices=("sgbm",), help="also score this classical baseline on the same frames")
    ap.add_argument("--examples", type=int, default=4, help="example PNGs to write (0: none)")
    ap.add_argument("--max-frames", type=int, help="stop after this many frames")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    try:
        ckpt = Path(args.checkpoint) if args.checkpoint else shipped_checkpoint()
        model = load_checkpoint(ckpt)
        spec = SampleSpec(**model.input_spec)
        items = evaluation_items(args.data, args.split)
        out = Path(args.out)
        pred_dir = Path(args.save_predictions) if args.save_predictions else None
        ex_dir = out.parent / "examples"
        n_frames = {"n": 0}

        def on_frame(f: EvalFrame) -> None:
            if pred_dir is not None:
                with atomic_path(pred_dir / f"{f.t_us}.npy") as tmp:
                    np.save(tmp, f.prediction.astype(np.float32))
            if n_frames["n"] < args.examples:
                with atomic_path(ex_dir / f"example_{f.t_us}.png") as tmp:  # tmp keeps the .png suffix
                    if not cv2.imwrite(str(tmp), _example(f, model.max_disparity)):
                        raise OSError(f"could not write {tmp}")
            n_frames["n"] += 1

        result = evaluate(model, spec, items, max_frames=args.max_frames, on_frame=on_frame, device=args.device)
        report = {"checkpoint": str(ckpt), "data": str(args.data), "split": args.split,
                  "representation": spec.as_dict(), **result.as_dict()}
        _print("model", report)
        if args.baseline == "sgbm":
            base = evaluate(SGBMStereo(max_disparity=model.max_disparity), spec, items, max_frames=args.max_frames)
            report["baselines"] = {"sgbm": base.as_dict()}
            _print("sgbm", report["baselines"]["sgbm"])
        write_text_atomic(out, json.dumps(report, indent=2))
        print(f"wrote {out}" + (f", predictions in {pred_dir}" if pred_dir else "")
              + (f", examples in {ex_dir}" if args.examples else ""))
    except InputError as exc:
        return print_error(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
