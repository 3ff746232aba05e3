"""Score checkpoints on the validation recordings, the ones candidates are chosen on.

    python scripts/validation_eval.py --checkpoint CKPT --results DIR [--against DIR ...] [--out data/validation]

The held-out checks (scripts/heldout_eval.py) judge a network; these choose between candidates,
so that the held-out checks are not tuned on. Built when missing, with seeds never trained on:
val900 (the training configs' validation recording, MVSEC rig, 4 s), five randomised recordings
rndval190-194 (sensor, rig, density, scene and realism drawn from the seed, 1.5 s), and copies of
each with every camera keeping its own random share of the events (10 % and 1 %; val900 also
30 % and 3 %): sparse input like a real DVS128's. Each is scored with apps.evaluate on its first
20 GT frames (no baseline, no energy). The table gives mean error / 1-px accuracy per recording
and, for each ``--against`` results folder, the ratio of mean errors (geometric mean over the
recordings, and on how many the checkpoint is better / worse).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np

from heldout_eval import PY, ROOT, evaluate, run

SEEDS = (190, 191, 192, 193, 194)
KEEP = {"val900": (0.3, 0.1, 0.03, 0.01), "rndval": (0.1, 0.01)}
FRAMES = 20


def thinned_copy(source: Path, out: Path, name: str, keep: float, seed: int) -> Path:
    """``out/NAME_data.hdf5`` (+ GT and calibration): ``source`` (an MVSEC-layout recording) with
    each camera keeping its own random share ``keep`` of its raw events; GT and calibration copied."""
    import h5py

    from evstereo.recordings.mvsec_writer import MVSECWriter, calibration_file

    rng = np.random.default_rng(seed)
    stem = source.name.removesuffix("_data.hdf5")
    data = out / f"{name}_data.hdf5"
    with h5py.File(source, "r") as src:
        attrs = {**dict(src.attrs), "thinned_from": str(source), "keep": keep, "thin_seed": seed}
        height, width = int(attrs["sensor_height"]), int(attrs["sensor_width"])
        with MVSECWriter(data, None, height, width, attrs) as writer:
            for cam in ("left", "right"):
                rows = src[f"davis/{cam}/events"][:]  # raw (unrectified) x, y, t (s), p
                rows = rows[rng.random(len(rows)) < keep]
                writer.add_events(cam, rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3])
    shutil.copyfile(source.with_name(f"{stem}_gt.hdf5"), out / f"{name}_gt.hdf5")
    target = calibration_file(out / f"{name}_calib", name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(calibration_file(source.with_name(f"{stem}_calib"), stem), target)
    return data


def build(out: Path) -> list[Path]:
    """The validation recordings under ``out`` (made when missing), whole ones first."""
    made = []
    for name, seed, extra in [("val900", 900, ["--seconds", "4"])] + \
            [(f"rndval{s}", s, ["--seconds", "1.5", "--randomize"]) for s in SEEDS]:
        data = out / f"{name}_data.hdf5"
        if not data.exists():
            run([PY, "-m", "data_tools.synth", "--out", str(out), "--name", name, "--seed", str(seed), "-q", *extra])
        made.append(data)
    for whole in list(made):
        name = whole.stem.removesuffix("_data")
        for keep in KEEP["val900" if name == "val900" else "rndval"]:
            thin = f"{name}_keep{round(keep * 100)}"
            data = out / f"{thin}_data.hdf5"
            if not data.exists():
                print(f"+ thinning {name} to {keep:.0%} of its events", flush=True)
                partial = out / "partial"  # written there, moved into place when whole
                shutil.rmtree(partial, ignore_errors=True)
                partial.mkdir(parents=True)
                # the seed depends only on the copy's place in the fixed list: rebuilt copies are the same
                thinned_copy(whole, partial, thin, keep, seed=round(keep * 1000) + len(made))
                for p in partial.iterdir():
                    p.rename(out / p.name)
                partial.rmdir()
            made.append(data)
    return made


def scores(results: Path, recordings: list[Path]) -> dict[str, tuple[float, float]]:
    """recording -> (mean error, 1-px accuracy) of the results already under ``results``."""
    found = {}
    for data in recordings:
        name = data.stem.removesuffix("_data")
        path = results / name / "results.json"
        if path.exists():
            r = json.loads(path.read_text())
            found[name] = (r["mean_disparity_error"], r["one_pixel_accuracy"])
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="default: the shipped checkpoint")
    ap.add_argument("--results", required=True, help="folder for this checkpoint's results (reused when there)")
    ap.add_argument("--against", nargs="*", default=[], help="results folders of other checkpoints to compare with")
    ap.add_argument("--out", default="data/validation", help="folder of the recordings (default data/validation)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recs = build(out)
    results = Path(args.results)
    for data in recs:
        evaluate(data, args.checkpoint, results, max_frames=FRAMES, energy_frames=0, baseline=None)
    mine = scores(results, recs)
    others = {a: scores(Path(a), recs) for a in args.against}
    print("| recording | this | " + " | ".join(others) + " |")
    print("|---|---|" + "---|" * len(others))
    for name, (err, acc) in mine.items():
        cells = [f"{o[name][0]:.3f} / {100 * o[name][1]:.1f}" if name in o else "–" for o in others.values()]
        print(f"| {name} | {err:.3f} / {100 * acc:.1f} | " + " | ".join(cells) + " |")
    for a, o in others.items():
        line = comparison(mine, o)
        if line:
            print(f"against {a}: {line}")
    return 0


def comparison(mine: dict[str, tuple[float, float]], other: dict[str, tuple[float, float]]) -> str | None:
    """The mean-error ratio of ``mine`` to ``other`` (geometric mean over the recordings both
    have) and on how many ``mine`` is better / worse; None when they share none."""
    ratios = [mine[n][0] / other[n][0] for n in mine if n in other]
    if not ratios:
        return None
    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    return (f"mean-error ratio {geo:.3f} (geometric mean over {len(ratios)}), better on "
            f"{sum(r < 1 for r in ratios)}, worse on {sum(r > 1 for r in ratios)}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
