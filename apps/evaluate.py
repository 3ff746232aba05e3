"""`python -m apps.evaluate --checkpoint CKPT --data DIR [--split N] --out results.json`: score a model.

Prints and writes the MVSEC metrics (``evstereo.metrics``: mean_disparity_error [px],
one_pixel_accuracy [fraction], mean_depth_error [m], median_depth_error [m]) and DSEC's (1pe,
2pe [%], mae, rmse [px]) over every valid GT pixel, the same over the confident pixels
(confidence >= ``--min-confidence``, ``evstereo.inference.prediction``) with their coverage
(the share of GT pixels kept), for all recordings and for each one (``recordings`` in
results.json), with the same names and units in results.json and on the console; SOPs, MACs
and energy per frame (means over every scored frame, spiking layers, analog layers, the
upsampling and the read-out; results.json's ``energy.layers`` gives each part's share and
input spike rate; ``energy`` also holds the time steps, a memory-access-aware estimate and the
same network counted as an ANN, evstereo.snn.energy), and frames/s. ``--scale auto|FACTOR`` resamples the network's input
(auto: the rig's rule, fitted on the first windows; 1: off; results.json's ``scale``).
Sparse input gets longer windows (``--min-event-density``, ``--max-window-factor``; 0 or 1:
off); results.json's ``windows_ms`` says which were used (the network's, mean, p50, p95,
longest, share extended; as in live depth's timings.json).
``--baseline sgbm`` scores OpenCV's StereoSGBM on the same event frames beside the model, at
the sensor's own resolution (its confident pixels: those it matched).
``--split N`` needs only the test sequence of split N (indoor_flyingN_data.hdf5, _gt.hdf5).

Outputs, all checked for writability before any work: ``--out`` (results JSON), with
``--save-predictions DIR`` each frame's disparity as float32 px ``DIR/<t_us>.npy`` (the GT
timestamp in us, zero-padded to 16 digits so names sort in time order; one subfolder per
recording when there are several) and its confidence as ``DIR/confidence/<t_us>.npy``, and
``--examples N`` pictures of the first N frames in ``examples/example_<t_us>.png`` beside the
results (events, prediction, SGBM with --baseline, each showing its confident pixels only
unless ``--show-all``; ground truth; errors over every GT pixel; colour bars in px).
``--json`` prints the results to stdout too; ``-q`` shows no progress bar and no summary.
Bad input: one line, exit code 2; Ctrl-C: one line, exit code 130.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from evstereo.datasets.samples import SampleSpec
from evstereo.events.input_spec import sample_input
from evstereo.devices import add_device_option, resolve_device
from evstereo.errors import InputError, run_tool
from evstereo.fileio import atomic_path, check_writable, write_text_atomic
from evstereo.inference.evaluation import EvalFrame, evaluate, evaluation_items, plan_frames
from evstereo.inference.prediction import add_prediction_options, check_prediction_options, confident, sparse_windows
from evstereo.live.outputs import frame_stem
from evstereo.metrics import METRIC_UNITS, format_metrics
from evstereo.models import SGBMStereo, load_checkpoint, shipped_checkpoint
from evstereo.viz.colors import tensor_event_image
from evstereo.viz.viewer import evaluation_example


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m apps.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", metavar="CKPT",
                    help="a model checkpoint (default: the one that ships with the package)")
    ap.add_argument("--data", required=True, metavar="PATH",
                    help="a recording, a folder of them, or an MVSEC folder with --split")
    ap.add_argument("--split", type=int, choices=(1, 2, 3),
                    help="MVSEC indoor_flying split: score its test frames (needs only that sequence's files)")
    ap.add_argument("--out", required=True, metavar="FILE.json", help="the results JSON (examples go beside it)")
    ap.add_argument("--save-predictions", metavar="DIR", help="write each frame's disparity as DIR/<t_us>.npy")
    ap.add_argument("--baseline", choices=("sgbm",),
                    help="also score this classical baseline on the same frames (sgbm: OpenCV's StereoSGBM)")
    ap.add_argument("--examples", type=int, default=4, metavar="N", help="example PNGs to write (default 4; 0: none)")
    ap.add_argument("--max-frames", type=int, metavar="N", help="score only the first N frames")
    ap.add_argument("--energy-frames", type=int, metavar="N",
                    help="measure energy on the first N scored frames only (default: every frame; each costs one "
                         "more forward pass; 0: no energy)")
    add_prediction_options(ap, "examples show")
    add_device_option(ap)
    ap.add_argument("--json", action="store_true", help="print the results as JSON to stdout (instead of the summary)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary (errors still print)")
    return ap


def _scale_text(r: dict) -> str:
    def scale(v: dict) -> str:  # says when the events' typical disparity chose the factor
        if v.get("scale_rule") != "events":
            return f"{v['scale']:g}"
        return f"{v['scale']:g}, bound by the events' typical disparity of {v['typical_disparity']:g} px"

    recordings = r["recordings"]
    if len(recordings) == 1:
        return "scale " + scale(next(iter(recordings.values())))
    if r.get("scale") is not None:
        return f"scale {r['scale']:g}"
    return "scales " + "; ".join(f"{Path(k).stem.removesuffix('_data')} {scale(v)}" for k, v in recordings.items())


def _window_text(r: dict) -> str:
    """", windows up to ..." when sparse events made some windows longer than the network's."""
    w = r.get("windows_ms")
    if not w or not w["extended_share"]:
        return ""
    return (f"; {100 * w['extended_share']:.0f} % of the windows longer for sparse events, "
            f"{w['mean']:g} ms on average against {w['network']:g} ms")


def _summary(name: str, r: dict) -> str:
    parts = [format_metrics(r)]
    if r.get("energy_mj") is not None:
        n = r.get("energy", {}).get("frames_measured")
        parts.append(f"{r['energy_mj']:.3f} mJ/frame ({r['sops'] / 1e9:.3f} G SOPs, {r['macs'] / 1e9:.3f} G MACs"
                     + (f", mean of {n} frames)" if n else ")"))
        e = r.get("energy", {})
        if "energy_memory_mj" in e:
            ann = e["ann_equivalent"]
            parts.append(f"{e['energy_memory_mj']:.3f} mJ with memory accesses; as an ANN {ann['energy_mj']:.3f} mJ "
                         f"({ann['energy_memory_mj']:.3f} with memory)")
    if r.get("frames_per_s"):
        parts.append(f"{r['frames_per_s']:.1f} frames/s")
    lines = [f"{name} over {r['frames']} frames ({_scale_text(r)}{_window_text(r)}): " + "; ".join(parts)]
    c = r.get("confident")
    if c is not None:
        cover = "-" if c["coverage"] is None else f"{100 * c['coverage']:.1f} %"
        lines.append(f"  confident pixels (confidence >= {r['min_confidence']:g}, {cover} of GT pixels): "
                     + (format_metrics(c) if c["frames"] else "none"))
    return "\n".join(lines)


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_frames is not None and args.max_frames <= 0:
        raise InputError(None, f"--max-frames {args.max_frames}: must be positive")
    if args.energy_frames is not None and args.energy_frames < 0:
        raise InputError(None, f"--energy-frames {args.energy_frames}: must be 0 or more")
    if args.examples < 0:
        raise InputError(None, f"--examples {args.examples}: must be 0 (none) or positive")
    check_prediction_options(args)
    conf_options = dict(min_confidence=args.min_confidence, event_radius=args.event_radius,
                        sparse=sparse_windows(args))
    device = resolve_device(args.device)
    # every output is checked before the model loads: a read-only or full disk fails now, not later
    out = check_writable(args.out)
    pred_dir = check_writable(args.save_predictions, folder=True) if args.save_predictions else None
    ex_dir = check_writable(out.parent / "examples", folder=True) if args.examples else None

    info = print if not (args.quiet or args.json) else (lambda *a, **k: None)
    ckpt = Path(args.checkpoint) if args.checkpoint else shipped_checkpoint()
    model = load_checkpoint(ckpt)
    spec = SampleSpec.for_input(sample_input(model))  # the network's input, the protocol's GT rules
    plan = plan_frames(evaluation_items(args.data, args.split), spec, args.max_frames)
    several = len(plan) > 1

    def frame_path(folder: Path, f: EvalFrame, prefix: str, suffix: str) -> Path:
        sub = Path(f.recording).stem.removesuffix("_data") if several else ""  # same times in two recordings
        return folder / sub / f"{prefix}{frame_stem(f.t_us)}{suffix}"

    def shown(f: EvalFrame) -> np.ndarray:
        return f.prediction if args.show_all else confident(f.prediction, f.confidence, args.min_confidence)

    baseline_examples: dict[tuple[str, int], np.ndarray] = {}
    if args.baseline == "sgbm":  # first, so that the model's examples can show its prediction beside
        def keep(f: EvalFrame) -> None:
            if len(baseline_examples) < args.examples:
                baseline_examples[(f.recording, f.t_us)] = shown(f)

        sgbm = SGBMStereo(max_disparity=model.max_disparity, input_spec=model.input_spec)  # the same frames
        base = evaluate(sgbm, plan, on_frame=keep, progress=None if args.quiet else "sgbm", **conf_options)

    n_frames = {"n": 0}

    def on_frame(f: EvalFrame) -> None:
        if pred_dir is not None:
            path = frame_path(pred_dir, f, "", ".npy")
            path.parent.mkdir(exist_ok=True)
            with atomic_path(path) as tmp:
                np.save(tmp, f.prediction.astype(np.float32))
            path = frame_path(pred_dir / "confidence", f, "", ".npy")
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                np.save(tmp, f.confidence.astype(np.float32))
        if n_frames["n"] < args.examples:
            s = f.sample
            preds = {"model": shown(f)}
            if (f.recording, f.t_us) in baseline_examples:
                preds[args.baseline] = baseline_examples[(f.recording, f.t_us)]
            image = evaluation_example(tensor_event_image(s["left"]), preds,
                                       np.where(s["valid"], s["disparity"], np.nan), model.max_disparity)
            path = frame_path(ex_dir, f, "example_", ".png")
            path.parent.mkdir(exist_ok=True)
            with atomic_path(path) as tmp:  # tmp keeps the .png suffix
                if not cv2.imwrite(str(tmp), image):
                    raise InputError(path, "OpenCV could not write this image")
        n_frames["n"] += 1

    result = evaluate(model, plan, energy_frames=args.energy_frames, on_frame=on_frame, device=device,
                      progress=None if args.quiet else "model",
                      scale=args.scale, **conf_options)
    report = {"checkpoint": str(ckpt), "data": str(args.data), "split": args.split, "device": str(device),
              "representation": spec.as_dict(), "metric_units": METRIC_UNITS, "scale_option": args.scale,
              "event_radius": args.event_radius, "min_event_density": args.min_event_density,
              "max_window_factor": args.max_window_factor, **result.as_dict()}
    if args.baseline == "sgbm":
        report["baselines"] = {"sgbm": base.as_dict()}
    write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    info(_summary("model", report))
    if args.baseline:
        info(_summary(args.baseline, report["baselines"][args.baseline]))
    info(f"wrote {out}" + (f", predictions in {pred_dir}" if pred_dir else "")
         + (f", examples in {ex_dir}" if ex_dir else ""))
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_tool(lambda: _run(argv))


if __name__ == "__main__":
    sys.exit(main())
