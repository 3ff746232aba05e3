"""apps.evaluate on a generated recording: results.json fields, predictions, examples, baseline."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from evstereo.datasets import open_recording
from evstereo.models import build_stereo_net, save_checkpoint


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
    with open_recording(random_recording) as rec:
        ts = rec.gt_timestamps()
        start = rec.time_span()[0]
    expected = [int(t) for t in ts if t - 50_000 >= start][:4]
    files = sorted((tmp_path / "pred").glob("*.npy"))
    assert [int(f.stem) for f in files] == expected
    pred = np.load(files[0])
    assert pred.dtype == np.float32 and pred.shape == (260, 346)
    assert len(list((tmp_path / "eval" / "examples").glob("example_*.png"))) == 2
    assert "mean disparity error" in r.stdout and "sgbm over 4 frames" in r.stdout


def test_evaluate_bad_inputs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "apps.evaluate", "--checkpoint", str(tmp_path / "nope.pt"), "--data",
                        str(tmp_path), "--out", str(tmp_path / "r.json")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "nope.pt: checkpoint does not exist" in r.stderr and "Traceback" not in r.stderr
