"""The apps (evaluate, live_depth, view_cloud, demo) on bad input and interruption: one line naming
the file or option and exit code 2, outputs checked before any work, Ctrl-C at any stage one line
and exit code 130; and their one command line (-q, --json, --device, --baseline, help texts)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REAL_CALIB, ROOT
from evstereo.recordings.mvsec_writer import MVSECWriter, calibration_file
from evstereo.geometry import load_calibration
from evstereo.live.outputs import frame_stem
from evstereo.models import build_stereo_net, save_checkpoint
from evstereo.viz.pointcloud import write_ply

H, W = 260, 346


def write_recording(folder: Path, name: str, events_s: tuple[float, float] = (0.0, 0.6),
                    gt_s: np.ndarray | None = None, depth: float | None = 3.0, seed: int = 0) -> Path:
    """A small MVSEC-layout recording: random events over ``events_s`` (30 k/s per camera) and GT
    frames at ``gt_s`` (default every 50 ms from 50 ms on) of random depth, or NaN with depth=None."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    data, gt = folder / f"{name}_data.hdf5", folder / f"{name}_gt.hdf5"
    gt_s = np.arange(0.05, events_s[1] + 1e-9, 0.05) if gt_s is None else np.asarray(gt_s, float)
    with MVSECWriter(data, gt) as w:
        n = int(30_000 * (events_s[1] - events_s[0]))
        for cam in ("left", "right"):
            t = np.sort(rng.uniform(*events_s, n))
            w.add_events(cam, rng.integers(0, W, n), rng.integers(0, H, n), t, rng.choice([-1, 1], n))
        d = rng.uniform(0.8 * depth, 1.2 * depth, (len(gt_s), H, W)) if depth else np.full((len(gt_s), H, W), np.nan)
        w.add_depth("left", "rect", d, gt_s)
    calib = folder / f"{name}_calib"
    calib.mkdir(exist_ok=True)
    load_calibration(REAL_CALIB).to_camchain_yaml(calibration_file(calib, name))
    return data


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(build_stereo_net(ROOT / "configs" / "model" / "tiny.yaml"), path)
    return path


@pytest.fixture(scope="module")
def small_rec(tmp_path_factory) -> Path:
    """Events from t = 0: GT times of 5 and 6 digits in us (names must still sort in time order)."""
    return write_recording(tmp_path_factory.mktemp("small"), "small")


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def must_not_run(what: str):
    def fail(*args, **kwargs):
        raise AssertionError(f"{what} ran although the options were bad")
    return fail


# --- clear errors before any work -----------------------------------------------------------
CUDA_MISSING = not torch.cuda.is_available()


@pytest.mark.parametrize("app", ["evaluate", "live_depth"])
@pytest.mark.parametrize("device, words", [("gpu0", "unknown device"),
                                           pytest.param("cuda", "CUDA is not available", marks=pytest.mark.skipif(
                                               not CUDA_MISSING, reason="this machine has CUDA"))])
def test_bad_device_is_one_line_before_the_model_loads(app, device, words, small_rec, tiny_ckpt, tmp_path,
                                                       monkeypatch, capsys):
    import apps.evaluate
    import apps.live_depth
    import evstereo.models

    monkeypatch.setattr(evstereo.models, "load_checkpoint", must_not_run("load_checkpoint"))
    monkeypatch.setattr(apps.evaluate, "load_checkpoint", must_not_run("load_checkpoint"))
    if app == "evaluate":
        code = apps.evaluate.main(["--checkpoint", str(tiny_ckpt), "--data", str(small_rec), "--out",
                                   str(tmp_path / "r.json"), "--device", device])
    else:
        code = apps.live_depth.main([str(small_rec), "--headless", "--out", str(tmp_path / "o"), "--device", device])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and f"--device {device}" in line and words in line
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("app, argv, option", [
    ("evaluate", ["--max-frames", "0"], "--max-frames"),
    ("evaluate", ["--max-frames", "-3"], "--max-frames"),
    ("evaluate", ["--energy-frames", "-1"], "--energy-frames"),
    ("evaluate", ["--examples", "-1"], "--examples"),
    ("live_depth", ["--max-frames", "0"], "--max-frames"),
    ("live_depth", ["--speed", "0"], "--speed"),
    ("view_cloud", ["--point-size", "0"], "--point-size"),
    ("view_cloud", ["--width", "20"], "--width"),
])
def test_bad_numbers_are_one_line(app, argv, option, small_rec, tiny_ckpt, tmp_path, capsys):
    import apps.evaluate
    import apps.live_depth
    import apps.view_cloud

    if app == "evaluate":
        code = apps.evaluate.main(["--checkpoint", str(tiny_ckpt), "--data", str(small_rec),
                                   "--out", str(tmp_path / "r.json"), *argv])
    elif app == "live_depth":
        code = apps.live_depth.main([str(small_rec), "--headless", "--out", str(tmp_path / "o"), *argv])
    else:
        ply = tmp_path / "c.ply"
        write_ply(ply, np.ones((10, 3), np.float32))
        code = apps.view_cloud.main([str(ply), "--png", str(tmp_path / "c.png"), *argv])
    assert code == 2 and option in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "c.png").exists()


def _fake_disk(monkeypatch, broken: Path, how: str) -> None:
    """Make ``broken`` (a folder) behave like a read-only or a full file system for check_writable."""
    import evstereo.fileio

    real_mkstemp, real_usage = tempfile.mkstemp, shutil.disk_usage

    def mkstemp(*args, dir=None, **kwargs):
        if how == "read-only" and dir is not None and Path(dir).resolve().is_relative_to(broken.resolve()):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_mkstemp(*args, dir=dir, **kwargs)

    def disk_usage(path):
        usage = real_usage(path)
        if how == "full" and Path(path).resolve().is_relative_to(broken.resolve()):
            return usage._replace(free=0)
        return usage

    monkeypatch.setattr(evstereo.fileio.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(evstereo.fileio.shutil, "disk_usage", disk_usage)


@pytest.mark.parametrize("how, reason", [("read-only", "Read-only file system"), ("full", "No space left on device")])
@pytest.mark.parametrize("app", ["evaluate --out", "evaluate --save-predictions", "live_depth --out",
                                 "view_cloud --png"])
def test_outputs_on_a_read_only_or_full_disk_fail_before_the_work(app, how, reason, small_rec, tiny_ckpt, tmp_path,
                                                                  monkeypatch, capsys):
    import apps.evaluate
    import apps.live_depth
    import apps.view_cloud
    import evstereo.models

    broken = tmp_path / "disk"
    broken.mkdir()
    _fake_disk(monkeypatch, broken, how)
    monkeypatch.setattr(apps.evaluate, "load_checkpoint", must_not_run("load_checkpoint"))
    monkeypatch.setattr(evstereo.models, "load_checkpoint", must_not_run("load_checkpoint"))
    monkeypatch.setattr(apps.view_cloud, "load_cloud", must_not_run("load_cloud"))
    if app == "evaluate --out":
        target = broken / "results.json"
        code = apps.evaluate.main(["--checkpoint", str(tiny_ckpt), "--data", str(small_rec), "--out", str(target)])
    elif app == "evaluate --save-predictions":
        target = broken / "pred"
        code = apps.evaluate.main(["--checkpoint", str(tiny_ckpt), "--data", str(small_rec),
                                   "--out", str(tmp_path / "r.json"), "--save-predictions", str(target)])
    elif app == "live_depth --out":
        target = broken / "live"
        code = apps.live_depth.main([str(small_rec), "--headless", "--out", str(target)])
    else:
        target = broken / "cloud.png"
        code = apps.view_cloud.main([str(tmp_path / "any.ply"), "--png", str(target)])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and line == f"error: {target}: {reason}"


def test_view_cloud_png_pointing_at_a_folder(tmp_path, monkeypatch, capsys):
    import apps.view_cloud

    ply = tmp_path / "c.ply"
    write_ply(ply, np.ones((10, 3), np.float32))
    monkeypatch.setattr(apps.view_cloud, "cloud_picture", must_not_run("the render"))
    assert apps.view_cloud.main([str(ply), "--png", str(tmp_path)]) == 2
    assert one_error_line(capsys.readouterr().err) == f"error: {tmp_path}: is a folder; give a file name"


def test_evaluate_ground_truth_without_a_valid_pixel(tmp_path, tiny_ckpt, capsys):
    from apps.evaluate import main

    rec = write_recording(tmp_path, "nan", depth=None)
    assert main(["--checkpoint", str(tiny_ckpt), "--data", str(rec), "--out", str(tmp_path / "r.json")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(tmp_path / "nan_gt.hdf5") in line and "no valid pixel" in line
    assert not (tmp_path / "r.json").exists()


def test_evaluate_events_that_miss_the_ground_truth_times(tmp_path, tiny_ckpt, capsys):
    from apps.evaluate import main

    rec = write_recording(tmp_path, "apart", events_s=(0.0, 0.6), gt_s=np.linspace(10.0, 10.5, 11))
    assert main(["--checkpoint", str(tiny_ckpt), "--data", str(rec), "--out", str(tmp_path / "r.json")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(rec) in line and "do not overlap" in line
    assert "events 0.000-0.600 s" in line and "ground truth 10.000-10.500 s" in line


def _split_folder(tmp_path: Path, small_rec: Path) -> Path:
    """An MVSEC folder holding only indoor_flying1 (split 1's test sequence)."""
    folder = tmp_path / "mvsec"
    folder.mkdir()
    for suffix in ("_data.hdf5", "_gt.hdf5"):
        shutil.copy(small_rec.with_name("small" + suffix), folder / f"indoor_flying1{suffix}")
    shutil.copytree(small_rec.with_name("small_calib"), folder / "indoor_flying1_calib")
    (folder / "indoor_flying1_calib" / "camchain-imucam-small.yaml").rename(
        folder / "indoor_flying1_calib" / "camchain-imucam-indoor_flying1.yaml")
    return folder


def test_evaluate_split_needs_only_its_test_sequence(tmp_path, small_rec, tiny_ckpt, monkeypatch, capsys):
    """Split 1 tests on indoor_flying1: the training sequences (2, 3) need not be there. With the real
    split the frames (up to 1200) do not exist in this small file, which is what the error says; with
    the split's frames shrunk to fit, the evaluation runs on exactly those frames."""
    import evstereo.inference.evaluation as evaluation
    from apps.evaluate import main

    folder = _split_folder(tmp_path, small_rec)
    args = ["--checkpoint", str(tiny_ckpt), "--data", str(folder), "--split", "1", "--examples", "0"]
    assert main([*args, "--out", str(tmp_path / "r.json")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(folder / "indoor_flying1_data.hdf5") in line and "ground-truth frames" in line
    assert "indoor_flying2" not in line and "indoor_flying3" not in line

    real = evaluation.mvsec_split
    monkeypatch.setattr(evaluation, "mvsec_split", lambda split: {
        **real(split), "test": [("indoor_flying1", np.array([5, 2, 8]))]})
    out = tmp_path / "eval" / "results.json"
    assert main([*args, "--out", str(out), "--save-predictions", str(tmp_path / "pred"), "--json", "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # -q: no progress bar
    printed = json.loads(captured.out)  # --json: the results on stdout, nothing else
    assert printed == json.loads(out.read_text()) and printed["frames"] == 3 and printed["split"] == 1
    assert printed["metric_units"] == {"mean_disparity_error": "px", "one_pixel_accuracy": "fraction",
                                       "mean_depth_error": "m", "median_depth_error": "m",
                                       "1pe": "%", "2pe": "%", "mae": "px", "rmse": "px"}
    ts = [int(round(s * 1e6)) for s in (0.3, 0.15, 0.45)]  # GT frames 5, 2, 8 (50 ms apart from 50 ms)
    names = sorted(p.name for p in (tmp_path / "pred").glob("*.npy"))  # (confidences in pred/confidence/)
    assert names == sorted(f"{frame_stem(t)}.npy" for t in ts)  # zero-padded: sorted names = time order
    assert [int(n[:-4]) for n in names] == sorted(ts)


# --- interruption ---------------------------------------------------------------------------
def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("app", ["evaluate", "live_depth", "view_cloud", "demo"])
def test_ctrl_c_while_loading_is_one_line_and_130(app, small_rec, tiny_ckpt, tmp_path, monkeypatch, capsys):
    import apps.demo
    import apps.evaluate
    import apps.live_depth
    import apps.view_cloud
    import evstereo.models
    import evstereo.simulation

    if app == "evaluate":
        monkeypatch.setattr(apps.evaluate, "load_checkpoint", _interrupt)
        code = apps.evaluate.main(["--checkpoint", str(tiny_ckpt), "--data", str(small_rec),
                                   "--out", str(tmp_path / "r.json")])
    elif app == "live_depth":
        monkeypatch.setattr(evstereo.models, "load_checkpoint", _interrupt)
        code = apps.live_depth.main([str(small_rec), "--headless", "--out", str(tmp_path / "o")])
    elif app == "view_cloud":
        monkeypatch.setattr(apps.view_cloud, "load_cloud", _interrupt)
        code = apps.view_cloud.main([str(tmp_path / "c.ply"), "--png", str(tmp_path / "c.png")])
    else:
        monkeypatch.setattr(evstereo.simulation, "synthesize", _interrupt)
        code = apps.demo.main(["--dir", str(tmp_path / "demo")])
    assert code == 130
    assert capsys.readouterr().err.strip().splitlines() == ["interrupted"]


def test_ctrl_c_during_evaluation_keeps_no_half_file(small_rec, tiny_ckpt, tmp_path, monkeypatch, capsys):
    import evstereo.inference.evaluation as evaluation
    from apps.evaluate import main

    real, calls = evaluation.make_sample, []

    def make_sample(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "make_sample", make_sample)
    out = tmp_path / "r.json"
    code = main(["--checkpoint", str(tiny_ckpt), "--data", str(small_rec), "--out", str(out),
                 "--save-predictions", str(tmp_path / "pred"), "-q"])
    assert code == 130 and capsys.readouterr().err.strip().splitlines() == ["interrupted"]
    assert not out.exists()
    assert len(list((tmp_path / "pred").glob("*.npy"))) == 2  # the frames done are kept, whole
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def _loaded(pid: int, library: str) -> bool:
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="watches /proc/PID/maps")
@pytest.mark.parametrize("module, library", [("apps.evaluate", "libtorch"), ("apps.live_depth", "libtorch"),
                                             ("apps.demo", "libtorch"), ("apps.view_cloud", "cv2")])
def test_ctrl_c_during_start_up(module, library, small_rec, tmp_path):
    """SIGINT while the heavy libraries are still being imported (seen in the process's memory map)."""
    argv = {"apps.evaluate": ["--data", str(small_rec), "--out", str(tmp_path / "r.json")],
            "apps.live_depth": [str(small_rec), "--headless", "--out", str(tmp_path / "o")],
            "apps.demo": ["--dir", str(tmp_path / "demo")],
            "apps.view_cloud": [str(tmp_path / "c.ply"), "--png", str(tmp_path / "c.png")]}[module]
    proc = subprocess.Popen([sys.executable, "-m", module, *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _loaded(proc.pid, library) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "it ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and err.strip().splitlines() == ["interrupted"], err


# --- one command line -----------------------------------------------------------------------
@pytest.mark.parametrize("module", ["apps.evaluate", "apps.live_depth", "apps.view_cloud", "apps.demo"])
def test_every_option_has_help_and_quiet_exists(module):
    import argparse
    import importlib

    parser = importlib.import_module(module).build_parser()
    options = {s for a in parser._actions for s in a.option_strings}
    assert {"-q", "--quiet"} <= options
    for action in parser._actions:
        assert action.help, f"{module} {action.option_strings or action.dest} has no help text"
    if module in ("apps.evaluate", "apps.live_depth"):
        assert "--device" in options and "--json" in options
        json_action = next(a for a in parser._actions if "--json" in a.option_strings)
        assert isinstance(json_action, argparse._StoreTrueAction)  # --json prints; a file path is --out
    if module == "apps.live_depth":
        assert "--model" not in parser.format_help() and "--baseline" in parser.format_help()


@pytest.mark.parametrize("spelling", ["--baseline", "--model"])
def test_live_depth_sgbm_baseline_and_its_old_spelling(spelling, small_rec, tmp_path, capsys):
    from apps.live_depth import main

    out = tmp_path / "o"
    assert main([str(small_rec), spelling, "sgbm", "--headless", "--out", str(out), "--max-frames", "3",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)  # --json: the report alone on stdout
    assert report == json.loads((out / "timings.json").read_text())
    assert report["model"].startswith("sgbm") and report["frames_produced"] == 3 and report["max_speed"]
    assert set(report["metrics"]) == {"frames", "mean_disparity_error", "one_pixel_accuracy", "mean_depth_error",
                                      "median_depth_error"}


def test_live_depth_quiet_prints_nothing(small_rec, tmp_path, capsys):
    from apps.live_depth import main

    assert main([str(small_rec), "--baseline", "sgbm", "--headless", "--out", str(tmp_path / "o"),
                 "--max-frames", "2", "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
