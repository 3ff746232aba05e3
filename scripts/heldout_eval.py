"""Score a checkpoint beside SGBM on the held-out checks of the README (issue 12's tables).

    python scripts/heldout_eval.py [--checkpoint CKPT] [--out data/heldout] [--only real|synth] [--build-only]
                                  [--checks A,B] [--max-frames N] [--energy-frames N] [--scale auto|X]

Builds, when missing, (1) real-event pairs with known disparity from the real files in
../shared/data (data_tools.real_pair: the DVS128 pendulum's left and right cameras, the
DAVIS346 AEDAT4 sample) and (2) randomised synthetic recordings of every sensor size, with
seeds never used in training; then runs apps.evaluate on each (--baseline sgbm; results and
example pictures in RESULTS/<check>/) and prints a markdown table. None of these recordings is ever trained or tuned on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "real"
PY = sys.executable

# name -> (source in SOURCES, camera, data_tools.real_pair options)
REAL_PAIRS = {
    "pendulum_const8": ("pendulum", "left", dict(field="constant", d_min=8, d_max=8)),
    "pendulum_const2": ("pendulum", "left", dict(field="constant", d_min=2, d_max=2)),  # a distant scene
    "pendulum_plane": ("pendulum", "left", dict(field="plane", d_min=4, d_max=16)),
    "pendulum_layers": ("pendulum", "left", dict(field="layers", d_min=5, d_max=14)),
    "pendulum_right_plane": ("pendulum", "right", dict(field="plane", d_min=3, d_max=12, vertical_offset=0.5)),
    "davis346_plane": ("davis346", "left", dict(field="plane", d_min=3, d_max=20, gt_hz=50)),
}
SOURCES = {
    "pendulum": (SHARED / "pendulum_left_30cm_2.tsv.npz", ["--format", "npz", "--right-offset", "0", "-4"]),
    "davis346": (SHARED / "davis346_sample_shiba24.aedat4", ["--format", "aedat4"]),
}
# randomised synthetic recordings: sensor -> seeds (training uses seeds 100-199 and 900)
SYNTH = {"dvs128": [9101, 9102], "davis240": [9201, 9202], "davis346": [9301], "dsec": [9401]}
SYNTH_SECONDS = 1.5


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def build_real(out: Path) -> list[Path]:
    made = []
    for name, (src, camera, opts) in REAL_PAIRS.items():
        data = out / f"{name}_data.hdf5"
        if not data.exists():
            path, fmt = SOURCES[src]
            converted = out / "sources" / f"{src}_data.hdf5"
            if not converted.exists():
                converted.parent.mkdir(parents=True, exist_ok=True)
                run([PY, "-m", "data_tools.convert", "-q", str(path), *fmt, "--out", str(converted)])
            flags = [f"--{k.replace('_', '-')}={v}" for k, v in opts.items()]
            run([PY, "-m", "data_tools.real_pair", str(converted), "--out", str(out), "--name", name,
                 "--camera", camera, "-q", *flags])
        made.append(data)
    return made


def build_synth(out: Path) -> list[Path]:
    made = []
    for sensor, seeds in SYNTH.items():
        for seed in seeds:
            name = f"rand_{sensor}_{seed}"
            data = out / f"{name}_data.hdf5"
            if not data.exists():
                run([PY, "-m", "data_tools.synth", "--out", str(out), "--name", name, "--seconds", str(SYNTH_SECONDS),
                     "--seed", str(seed), "--randomize", "--sensor", sensor, "-q"])
            made.append(data)
    return made


def evaluate(data: Path, checkpoint: str | None, results: Path, max_frames: int | None = None,
             energy_frames: int | None = None, scale: str = "auto", baseline: str | None = "sgbm") -> dict:
    """apps.evaluate's results on ``data`` under RESULTS/<recording>/ (run when missing)."""
    out = results / data.stem.removesuffix("_data") / "results.json"  # its example pictures beside it
    if not out.exists():
        cmd = [PY, "-m", "apps.evaluate", "--data", str(data), "--out", str(out), "-q"]
        cmd += ["--baseline", baseline] if baseline else []
        cmd += ["--checkpoint", checkpoint] if checkpoint else []
        cmd += ["--energy-frames", str(energy_frames)] if energy_frames is not None else []
        cmd += ["--scale", scale] if scale != "auto" else []
        run(cmd + (["--max-frames", str(max_frames)] if max_frames else []))
    return json.loads(out.read_text())


def _cell(r: dict) -> str:
    text = f"{r['mean_disparity_error']:.3f} px, {100 * r['one_pixel_accuracy']:.1f} %"
    conf = r.get("confident")
    if conf:
        text += (f" (confident {100 * conf['coverage']:.0f} %: {conf['mean_disparity_error']:.3f} px, "
                 f"{100 * conf['one_pixel_accuracy']:.1f} %)")
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="default: the shipped checkpoint")
    ap.add_argument("--out", default="data/heldout", help="folder of the held-out recordings (default data/heldout)")
    ap.add_argument("--results", help="folder of the results (default OUT/results)")
    ap.add_argument("--only", choices=("real", "synth"))
    ap.add_argument("--build-only", action="store_true", help="make the recordings, evaluate nothing")
    ap.add_argument("--checks", help="comma-separated names of the checks to run (default: all)")
    ap.add_argument("--max-frames", type=int, help="score at most N frames per check (default: all)")
    ap.add_argument("--energy-frames", type=int, default=10,
                    help="measure energy on the first N scored frames of each check (default 10; each costs a forward pass)")
    ap.add_argument("--scale", default="auto",
                    help="the network's input scale on every check: auto (default) or a fixed factor, as in "
                         "apps.evaluate (a fixed factor takes the scale fit out of a comparison of networks)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = Path(args.results or out / "results")
    results.mkdir(parents=True, exist_ok=True)
    recs = (build_real(out) if args.only != "synth" else []) + (build_synth(out) if args.only != "real" else [])
    if args.build_only:
        return 0
    if args.checks:
        wanted = set(args.checks.split(","))
        recs = [r for r in recs if r.stem.removesuffix("_data") in wanted]
    print("| held-out recording | frames | network: mean error, 1-px accuracy | SGBM: mean error, 1-px accuracy |")
    print("|---|---|---|---|")
    for data in recs:
        r = evaluate(data, args.checkpoint, results, args.max_frames, args.energy_frames, args.scale)
        print(f"| {data.stem.removesuffix('_data')} | {r['frames']} | {_cell(r)} | {_cell(r['baselines']['sgbm'])} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
