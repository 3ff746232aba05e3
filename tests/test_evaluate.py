"""apps.evaluate on a generated recording: results.json fields, predictions, examples, baseline."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np

from conftest import ROOT
from evstereo.recordings import open_recording
from evstereo.live.outputs import frame_stem
from evstereo.models import build_stereo_net, save_checkpoint
from evstereo.viz.colors import LEGEND_WIDTH


def test_evaluate_writes_results_predictions_and_examples(tmp_path, random_recording):
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(build_stereo_net(ROOT / "configs" / "model" / "tiny.yaml"), ckpt)
    out = tmp_path / "eval" / "results.json"
    cmd = [sys.executable, "-m", "apps.evaluate", "--checkpoint", str(ckpt), "--data", str(random_recording),
           "--out", str(out), "--save-predictions", str(tmp_path / "pred"), "--baseline", "sgbm", "--max-frames", "4",
           "--examples", "2"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    for key in ("mean_disparity_error", "one_pixel_accuracy", "mean_depth_error", "median_depth_error",
                "sops", "macs", "energy_mj", "frames_per_s"):
        assert res[key] is not None and np.isfinite(res[key]), key
    assert res["frames"] == 4 and 0 <= res["one_pixel_accuracy"] <= 1
    assert set(res["baselines"]["sgbm"]) >= {"mean_disparity_error", "one_pixel_accuracy", "frames"}
    assert res["metric_units"]["mean_depth_error"] == "m" and res["device"] == "cpu"
    with open_recording(random_recording) as rec:
        ts = rec.gt_timestamps()
        start = rec.time_span()[0]
    expected = [int(t) for t in ts if t - 50_000 >= start][:4]
    files = sorted((tmp_path / "pred").glob("*.npy"))
    assert [f.name for f in files] == [f"{frame_stem(t)}.npy" for t in expected]
    pred = np.load(files[0])
    assert pred.dtype == np.float32 and pred.shape == (260, 346)
    examples = sorted((tmp_path / "eval" / "examples").glob("example_*.png"))
    assert [p.name for p in examples] == [f"example_{frame_stem(t)}.png" for t in expected[:2]]
    # model, sgbm, ground truth + disparity colour bar over events, the two errors + error colour bar
    img = cv2.imread(str(examples[0]))
    assert img.shape == (2 * 260, 3 * 346 + LEGEND_WIDTH, 3)
    bars = img[:, 3 * 346 :]
    assert (bars[:, 30:] < 128).any() and len(np.unique(bars[:, :16].reshape(-1, 3), axis=0)) > 50
    # the console uses results.json's names and units (m, not cm); a progress bar on stderr
    assert f"mean_disparity_error {res['mean_disparity_error']:.3f} px" in r.stdout
    assert f"mean_depth_error {res['mean_depth_error']:.3f} m" in r.stdout
    assert "sgbm over 4 frames" in r.stdout and "cm" not in r.stdout
    assert "model: 100%" in r.stderr and "4/4" in r.stderr
    assert "weights_only" not in r.stderr and "Warning" not in r.stderr and "Traceback" not in r.stderr


def test_evaluate_bad_inputs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "apps.evaluate", "--checkpoint", str(tmp_path / "nope.pt"), "--data",
                        str(tmp_path), "--out", str(tmp_path / "r.json")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "nope.pt: checkpoint does not exist" in r.stderr and "Traceback" not in r.stderr
