"""The real stereo DVS128 pendulum (no ground truth): does the prediction follow the bob?

    python scripts/pendulum_figure.py [--checkpoint CKPT] [--recording REC] [--out docs/images/real_pendulum_stereo.png]

Converts ../shared/data/real/pendulum_left_30cm_2.tsv.npz when REC is missing (as
scripts/heldout_eval.py does), streams a window every 50 ms through the network (automatic input
scale; longer windows where the events are sparse, as live depth has them by default) and
through SGBM, and compares, per window, the median disparity each predicts at the
left camera's event pixels with the events' own estimate: the shift at which the two cameras'
event images over the last 300 ms correlate best (``evstereo.recordings.shift``), the bob
being the only thing that moves. Prints the median and mean distance for each method and draws
the three series over time, with three windows (bob near, middle, far) as pictures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NPZ = ROOT.parent / "shared" / "data" / "real" / "pendulum_left_30cm_2.tsv.npz"
SHOWN_MAX = 45.0  # px: the colour range of the pictures


def reference_shift(rec, t_us: int) -> float:
    """The bob's disparity at ``t_us`` from the events of the last 300 ms (NaN when unclear)."""
    from evstereo.recordings.shift import window_shift

    best = window_shift(rec, t_us, 300_000, 48, -8)
    return float(best["shift_px"]) if best is not None and best["clear"] else float("nan")


def stream(rec, model, scale: str | float = "auto") -> tuple[list, object]:
    from evstereo.inference.engine import EngineConfig, StreamingEngine

    engine = StreamingEngine(rec, model, EngineConfig(max_speed=True, scale=scale))
    return list(engine.frames()), engine.predictor


def at_events(frame) -> float:
    """Median predicted disparity at the left camera's event pixels of the window."""
    seen = np.zeros(frame.disparity.shape, bool)
    seen[frame.left.y.astype(int), frame.left.x.astype(int)] = True
    values = frame.disparity[seen & np.isfinite(frame.disparity)]
    return float(np.median(values)) if len(values) else float("nan")


def picture(frame, confident: bool = True) -> np.ndarray:
    """RGB disparity picture, confident pixels only (black elsewhere)."""
    from evstereo.inference.prediction import DEFAULT_MIN_CONFIDENCE
    from evstereo.viz.colors import colorize_disparity

    d = frame.disparity.copy()
    if confident and frame.confidence is not None:
        d[frame.confidence < DEFAULT_MIN_CONFIDENCE] = np.nan
    return cv2.cvtColor(colorize_disparity(d, SHOWN_MAX), cv2.COLOR_BGR2RGB)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="default: the shipped checkpoint")
    ap.add_argument("--recording", default="data/heldout/sources/pendulum_data.hdf5",
                    help="the converted pendulum (made from ../shared/data when missing)")
    ap.add_argument("--out", default="docs/images/real_pendulum_stereo.png", help="the picture to write")
    ap.add_argument("--scale", default="auto", help="the network's input scale (default auto)")
    ap.add_argument("--score-from", type=float, default=0.0, metavar="S",
                    help="score only the windows from S seconds on (e.g. after the part a network was adapted on)")
    args = ap.parse_args()
    rec_path = Path(args.recording)
    if not rec_path.exists():
        rec_path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "data_tools.convert", "-q", str(NPZ), "--format", "npz",
                        "--right-offset", "0", "-4", "--out", str(rec_path)], check=True, cwd=ROOT)

    from matplotlib.colors import Normalize

    from evstereo.live.session import build_model
    from evstereo.recordings import open_recording
    from evstereo.viz.colors import event_image
    from evstereo.viz.figures import new_figure, save_figure

    with open_recording(rec_path) as rec:
        net, _ = build_model(args.checkpoint, None)
        sgbm, _ = build_model(None, "sgbm")
        (net_frames, predictor), (sgbm_frames, _) = stream(rec, net, args.scale), stream(rec, sgbm)
        t = np.array([f.t_us for f in net_frames]) / 1e6
        ref = np.array([reference_shift(rec, f.t_us) for f in net_frames])
        series = {"network": np.array([at_events(f) for f in net_frames]),
                  "SGBM": np.array([at_events(f) for f in sgbm_frames])}
        print(f"{rec_path}: {len(t)} windows, network input scale {predictor.scale:g} "
              f"(rule {predictor.rule}: x{predictor.rule_scale:g}, typical disparity {predictor.typical_disparity} px)")
        for name, s in series.items():
            err = np.abs(s - ref)[np.isfinite(s) & np.isfinite(ref) & (t >= args.score_from)]
            print(f"  {name}: |median at the events - the events' estimate| median {np.median(err):.2f} px, "
                  f"mean {np.mean(err):.2f} px over {len(err)} windows")
        # three windows in the first swings: bob far (smallest shift), middle, near (largest)
        early = np.flatnonzero(np.isfinite(ref) & (t > 0.5) & (t < 4.0))
        order = early[np.argsort(ref[early])]
        picks = [order[0], order[len(order) // 2], order[-1]]

        fig = new_figure(11, 10)
        grid = fig.add_gridspec(4, 3, height_ratios=[1.3, 1, 1, 1], hspace=0.45)
        ax = fig.add_subplot(grid[0, :])
        ax.plot(t, ref, color="0.4", lw=2.5, label="the events' estimate (300 ms correlation)")
        ax.plot(t, series["SGBM"], ".", ms=3, color="tab:blue", label="SGBM")
        ax.plot(t, series["network"], ".", ms=3, color="tab:red",
                label=f"network (input x{predictor.scale:.2f}, rule: {predictor.rule})")
        for i in picks:
            ax.axvline(t[i], color="k", lw=0.6, ls=":")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("median disparity at the events (px)")
        ax.set_ylim(0, SHOWN_MAX)
        ax.legend(loc="upper right", fontsize=8, ncol=3)
        ax.set_title("real stereo DVS128 pendulum, no ground truth", fontsize=10)
        for row, i in enumerate(picks, start=1):
            f, g = net_frames[i], sgbm_frames[i]
            panels = [(cv2.cvtColor(event_image(f.left.x, f.left.y, f.left.p, rec.height, rec.width),
                                    cv2.COLOR_BGR2RGB), f"left events, t = {t[i]:.2f} s"),
                      (picture(f), f"network {series['network'][i]:.1f} px (events' {ref[i]:.0f})"),
                      (picture(g), f"SGBM {series['SGBM'][i]:.1f} px")]
            for col, (img, title) in enumerate(panels):
                a = fig.add_subplot(grid[row, col])
                a.imshow(img, interpolation="nearest")
                a.set_title(title, fontsize=9)
                a.set_xticks([])
                a.set_yticks([])
        import matplotlib.cm as cm

        bar = cm.ScalarMappable(norm=Normalize(0, SHOWN_MAX), cmap="turbo")  # CMAP, as matplotlib names it
        fig.colorbar(bar, ax=fig.axes[1:], fraction=0.02, label="disparity (px), confident pixels only")
        print(f"wrote {save_figure(fig, ROOT / args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
