"""apps.evaluate on a generated recording: results.json fields, predictions, examples, baseline."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import ROOT
from evstereo.recordings import open_recording
from evstereo.live.outputs import frame_stem
from evstereo.datasets.samples import SampleSpec, gt_disparity
from evstereo.models import build_stereo_net, load_checkpoint, save_checkpoint
from evstereo.viz.colors import LEGEND_WIDTH


def test_evaluate_writes_results_predictions_and_examples(tmp_path, random_recording):
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(build_stereo_net(ROOT / "configs" / "model" / "tiny.yaml"), ckpt)
    out = tmp_path / "eval" / "results.json"
    cmd = [sys.executable, "-m", "apps.evaluate", "--checkpoint", str(ckpt), "--data", str(random_recording),
           "--out", str(out), "--save-predictions", str(tmp_path / "pred"), "--baseline", "sgbm", "--max-frames", "4",
           "--examples", "2", "--min-confidence", "0.05", "--event-radius", "1"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    for key in ("mean_disparity_error", "one_pixel_accuracy", "mean_depth_error", "median_depth_error",
                "sops", "macs", "energy_mj", "frames_per_s"):
        assert res[key] is not None and np.isfinite(res[key]), key
    assert res["frames"] == 4 and 0 <= res["one_pixel_accuracy"] <= 1
    # energy: the mean over every scored frame, with the upsampling and the read-out counted
    assert res["energy"]["frames_measured"] == res["frames"]
    parts = {layer["name"]: layer for layer in res["energy"]["layers"]}
    assert {"upsampling (trilinear)", "read-out (soft_argmin)"} <= set(parts)
    assert sum(layer["share"] for layer in parts.values()) == pytest.approx(1.0)
    assert all(0 <= layer["input_spike_rate"] <= 1 for layer in parts.values() if layer["kind"] == "spiking")
    # beside the compute-only figure: time steps, memory accesses, and the network counted as an ANN
    e = res["energy"]
    assert e["time_steps"] == 1 and e["energy_memory_mj"] > res["energy_mj"]
    assert e["ann_equivalent"]["energy_mj"] > res["energy_mj"] and e["ann_equivalent"]["macs"] > res["macs"]
    assert "with memory accesses; as an ANN" in r.stdout + r.stderr
    assert set(res["baselines"]["sgbm"]) >= {"mean_disparity_error", "one_pixel_accuracy", "frames"}
    assert res["metric_units"]["mean_depth_error"] == "m" and res["device"] == "cpu"
    # DSEC's metrics beside the MVSEC four, over all GT pixels and over the confident ones with their coverage
    assert res["metric_units"]["1pe"] == "%" and res["mae"] == pytest.approx(res["mean_disparity_error"])
    assert 0 <= res["2pe"] <= res["1pe"] <= 100 and res["rmse"] >= res["mae"]
    # (an untrained network's cost is flat, confidence 2/36 everywhere: confident = within 1 px of an event)
    assert res["scale_option"] == "auto" and res["min_confidence"] == 0.05
    for part in (res, res["baselines"]["sgbm"]):
        c = part["confident"]
        assert 0 < c["coverage"] < 1 and c["frames"] == 4 and set(c) >= {"1pe", "2pe", "mae", "rmse"}
        (rec,) = part["recordings"].values()
        assert rec["sensor"] == [260, 346] and rec["confident"] == c
    (net_rec,) = res["recordings"].values()
    assert net_rec["rule_scale"] == 1.0 and res["scale"] == net_rec["scale"]
    assert res["baselines"]["sgbm"]["scale"] == 1.0  # the baseline always runs at the sensor's pixels
    with open_recording(random_recording) as rec:
        ts = rec.gt_timestamps()
        start = rec.time_span()[0]
    expected = [int(t) for t in ts if t - 50_000 >= start][:4]
    files = sorted((tmp_path / "pred").glob("*.npy"))
    assert [f.name for f in files] == [f"{frame_stem(t)}.npy" for t in expected]
    pred = np.load(files[0])
    assert pred.dtype == np.float32 and pred.shape == (260, 346)
    conf = np.load(tmp_path / "pred" / "confidence" / files[0].name)
    assert conf.shape == (260, 346) and 0 <= conf.min() <= conf.max() <= 1
    # the coverage is the share of valid GT pixels whose confidence passes, pooled over the frames
    kept = total = 0
    with open_recording(random_recording) as rec:
        spec = SampleSpec.for_input(load_checkpoint(ckpt).input_spec)
        for f in files:
            _, valid = gt_disparity(rec.disparity(rec.gt_index_at(int(f.stem))), spec)
            c = np.load(tmp_path / "pred" / "confidence" / f.name)
            kept, total = kept + np.count_nonzero(valid & (c >= 0.05)), total + np.count_nonzero(valid)
    assert res["confident"]["coverage"] == pytest.approx(kept / total)
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
    # about 0.09 events per pixel in 50 ms: every window doubled for both (the same frames), and said so
    windows = "100 % of the windows longer for sparse events, 100 ms on average against 50 ms"
    assert f"sgbm over 4 frames (scale 1; {windows})" in r.stdout and "cm" not in r.stdout
    assert res["windows_ms"] == {"network": 50.0, "mean": 100.0, "p50": 100.0, "p95": 100.0, "max": 100.0,
                                 "extended_share": 1.0}
    assert res["baselines"]["sgbm"]["windows_ms"] == res["windows_ms"] == net_rec["windows_ms"]
    assert res["min_event_density"] == 0.1 and res["max_window_factor"] == 8
    cover = res["confident"]["coverage"]
    assert f"confident pixels (confidence >= 0.05, {100 * cover:.1f} % of GT pixels)" in r.stdout
    assert f"1pe {res['1pe']:.3f} %" in r.stdout
    assert "model: 100%" in r.stderr and "4/4" in r.stderr
    assert "weights_only" not in r.stderr and "Warning" not in r.stderr and "Traceback" not in r.stderr


def test_evaluate_bad_inputs(tmp_path, capsys):
    r = subprocess.run([sys.executable, "-m", "apps.evaluate", "--checkpoint", str(tmp_path / "nope.pt"), "--data",
                        str(tmp_path), "--out", str(tmp_path / "r.json")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "nope.pt: checkpoint does not exist" in r.stderr and "Traceback" not in r.stderr
    from apps.evaluate import main

    for option, message in ((["--scale", "huge"], "--scale huge: scale must be 'auto' or a number"),
                            (["--min-confidence", "1.5"], "--min-confidence 1.5: must lie in 0..1"),
                            (["--event-radius", "-1"], "--event-radius -1: must be 0 (off) or positive"),
                            (["--min-event-density", "-0.1"], "--min-event-density -0.1: must be 0 (off) or positive"),
                            (["--max-window-factor", "0"], "--max-window-factor 0: must be 1 (off) or more")):
        assert main(["--data", str(tmp_path), "--out", str(tmp_path / "r.json"), *option]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
