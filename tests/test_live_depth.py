"""apps.live_depth: composite layout, replay control, headless outputs, bad input, the real DVS128
recording, and the OpenCV + Open3D windows under a private Xvfb server (real screenshots)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from conftest import DVS128_NPZ, ROOT
from evstereo.geometry import auto_scale
from evstereo.recordings import open_recording
from evstereo.live.outputs import HeadlessOutputs, frame_stem
from evstereo.runtime import keep_freed_memory
from evstereo.viz.pointcloud import read_ply
from evstereo.live.controls import PlaybackControl, RunningMetrics
from evstereo.viz.viewer import KEYS, LEGEND_WIDTH, compose_view, view_layout
from xvfb import content_box, grab_screen, xvfb  # noqa: F401  (xvfb is a fixture)

H, W = 260, 346


def live_depth(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "apps.live_depth", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def headless_env() -> dict:
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


def video_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} does not open"
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def expected_times(recording: Path, n: int) -> list[int]:
    """The first n window ends of a GT recording: GT timestamps with a full window before them."""
    with open_recording(recording) as rec:
        ts = rec.gt_timestamps()
        return ts[ts - 50_000 >= rec.time_span()[0]][:n].tolist()


# --- composite layout (no window) -----------------------------------------------------------
def _pieces(seed: int = 0):
    rng = np.random.default_rng(seed)
    ev = np.full((H, W, 3), 255, np.uint8)
    ev[rng.random((H, W)) < 0.1] = (40, 40, 220)
    pred = rng.uniform(2, 30, (H, W)).astype(np.float32)
    gt = pred + rng.normal(0, 0.5, (H, W)).astype(np.float32)
    gt[:40] = np.nan
    return ev, pred, gt


def _panel(img: np.ndarray, lay, name: str) -> np.ndarray:
    x, y, w, h = lay.panels[name]
    return img[y : y + h, x : x + w]


def test_composite_layout_with_gt():
    ev, pred, gt = _pieces()
    img = compose_view(ev, ev, pred, gt, fB=20.0, overlay=["12.0 fps  latency 40 ms", "mean error 0.40 px"])
    lay = view_layout(H, W, with_gt=True)
    assert img.shape == (lay.height, lay.width, 3) == (2 * H, 3 * W + LEGEND_WIDTH, 3)
    assert set(lay.panels) == {"left", "right", "overlay", "prediction", "gt", "error", "legend"}
    # the panels tile the picture without overlapping, except a legend-wide gap between the event panels
    area = sum(w * h for _, _, w, h in lay.panels.values())
    assert area == lay.width * lay.height - LEGEND_WIDTH * H
    c1 = W + LEGEND_WIDTH
    assert lay.panels["left"][:2] == (0, 0) and lay.panels["right"][:2] == (c1, 0)
    assert lay.panels["overlay"][:2] == (c1 + W, 0)
    assert lay.panels["prediction"][:2] == (0, H) and lay.panels["legend"][:2] == (W, H)
    assert lay.panels["gt"][:2] == (c1, H) and lay.panels["error"][:2] == (c1 + W, H)
    left = _panel(img, lay, "left")
    np.testing.assert_array_equal(left[60:], ev[60:])  # the event picture itself, below its caption
    for name in ("prediction", "gt", "error"):  # colour-coded panels: many colours, little background
        p = _panel(img, lay, name)[40:]
        assert len(np.unique(p.reshape(-1, 3), axis=0)) > 50, name
    err = _panel(img, lay, "error")
    assert (err[5:35, -60:] == (60, 60, 60)).all()  # rows without GT: the 'not evaluated' grey
    legend = _panel(img, lay, "legend")
    assert (legend[:, 30:] == 255).mean() > 0.8 and len(np.unique(legend[:, :16].reshape(-1, 3), axis=0)) > 50
    overlay = _panel(img, lay, "overlay")
    text = (overlay.max(axis=2) > 150).mean()
    assert 0.005 < text < 0.3  # the text is there, on a dark panel


def test_composite_layout_without_gt_and_without_calibration():
    ev, pred, _ = _pieces(1)
    img = compose_view(ev, ev, pred, None, fB=None, overlay=["no calibration: disparity shown"], max_disparity=40)
    lay = view_layout(H, W, with_gt=False)
    assert img.shape == (2 * H, 2 * W + LEGEND_WIDTH, 3)
    assert set(lay.panels) == {"left", "right", "prediction", "overlay", "legend"}
    assert lay.panels["prediction"][:2] == (0, H) and lay.panels["legend"][:2] == (W, H)
    assert lay.panels["right"][:2] == (W + LEGEND_WIDTH, 0) and lay.panels["overlay"][:2] == (W + LEGEND_WIDTH, H)
    assert (_panel(img, lay, "overlay").max(axis=2) > 150).any()
    # a GT layout keeps its size when a frame has no GT (one video, one frame size)
    img2 = compose_view(ev, ev, pred, None, fB=20.0, with_gt=True)
    assert img2.shape == (2 * H, 3 * W + LEGEND_WIDTH, 3)
    # small sensors (DVS128) are scaled up by an integer factor
    small = compose_view(ev[:128, :128], ev[:128, :128], pred[:128, :128], None)
    assert small.shape == (2 * 256, 2 * 256 + LEGEND_WIDTH, 3)


def test_running_metrics_and_keys():
    m = RunningMetrics()
    gt = np.array([[1.0, 2.0, np.nan, 4.0]], np.float32)
    m.update(np.array([[1.5, 4.0, 9.0, np.nan]], np.float32), gt)  # errors 0.5, 2, -, 4 (NaN prediction = 0)
    assert m.mean_disparity_error == pytest.approx(6.5 / 3) and m.one_pixel_accuracy == pytest.approx(1 / 3)
    m.update(np.array([[1.0]], np.float32), np.array([[1.0]], np.float32))  # a perfect second frame
    assert m.mean_disparity_error == pytest.approx(6.5 / 3 / 2)  # averaged over frames, not pixels
    assert list(m.as_dict()) == ["frames", "mean_disparity_error", "one_pixel_accuracy", "mean_depth_error",
                                 "median_depth_error"]  # evaluate's results.json names
    assert KEYS[ord(" ")] == "pause" and KEYS[ord("n")] == KEYS[ord(".")] == "step"
    assert KEYS[ord("+")] == "faster" and KEYS[ord("-")] == "slower" and KEYS[ord("s")] == "snapshot"
    assert KEYS[ord("q")] == KEYS[27] == "quit"


def test_playback_control_pauses_steps_and_changes_speed():
    wall = [0.0]
    slept = []
    c = PlaybackControl(wall=lambda: wall[0], real_sleep=slept.append)
    wall[0] = 1.0
    assert c.clock() == pytest.approx(1.0)
    c.set_paused(True)
    wall[0] = 5.0
    assert c.clock() == pytest.approx(1.0)  # frozen while paused: resuming skips nothing
    c.sleep(0.05)  # a step jumps to the next window instead of waiting
    assert c.clock() == pytest.approx(1.05) and not slept
    c.set_paused(False)
    wall[0] = 6.0
    assert c.clock() == pytest.approx(2.05)
    c.faster()
    wall[0] = 7.0
    assert c.rate == 2.0 and c.clock() == pytest.approx(4.05)
    c.sleep(0.1)
    assert slept == [pytest.approx(0.05)]  # replay waits pass twice as fast
    c.slower()
    c.slower()
    assert c.rate == 0.5


def test_missing_checkpoint_is_a_clear_error(random_recording, tmp_path, capsys):
    from apps.live_depth import main

    assert main([str(random_recording), "--checkpoint", "model.ckpt", "--headless", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "model.ckpt: checkpoint does not exist" in err and len(err.strip().splitlines()) == 1


def test_keys_act_on_the_run_and_snapshot_writes_png_and_ply(random_recording, tmp_path, capsys):
    from evstereo.live import LiveOptions, LiveSession, Quit, build_model

    options = LiveOptions(out=tmp_path / "snaps")
    model, name = build_model()  # the shipped network
    with open_recording(random_recording) as rec:
        run = LiveSession(options, rec, model, name, headless=True)
        frame = next(iter(run.engine.frames()))
        run.last = (frame, run.compose(frame))
        assert run.handle("pause") and run.control.paused
        assert "PAUSED" in " ".join(run.overlay(frame))
        assert run.handle("faster") and run.control.rate == 2.0
        assert "speed x2" in " ".join(run.overlay(frame))
        assert not run.handle("step")  # a step is served by the paused loop, not here
        run.handle("snapshot")
        with pytest.raises(Quit):
            run.handle("quit")
        run.options.max_speed = True
        assert not run.handle("slower") and run.control.rate == 2.0  # ignored at --max-speed
    png = tmp_path / "snaps" / f"snapshot_{frame_stem(frame.t_us)}.png"
    assert cv2.imread(str(png)).shape == run.last[1].shape
    pts, cols = read_ply(tmp_path / "snaps" / f"snapshot_{frame_stem(frame.t_us)}.ply")
    assert len(pts) > 1000 and cols is not None
    assert str(png) in capsys.readouterr().out


# --- headless runs -----------------------------------------------------------------------
def test_headless_outputs_complete_and_readable(random_recording, tmp_path):
    out = tmp_path / "out"
    n = 12
    # no --headless and no display: it must notice and run headless by itself, and then keep every
    # window (no real-time pacing: files, not a screen)
    r = live_depth(random_recording, "--out", out, "--max-frames", n, "--ply-every", 5, env=headless_env())
    assert r.returncode == 0, r.stderr
    assert "no display" in r.stdout and "model: StereoNet" in r.stdout and "fast.pt" in r.stdout  # the shipped one
    assert "weights_only" not in r.stderr and "Warning" not in r.stderr
    times = expected_times(random_recording, n)
    assert len(times) == n
    assert sorted(p.name for p in (out / "disparity_npy").iterdir()) == [f"{frame_stem(t)}.npy" for t in times]
    assert sorted(p.name for p in (out / "depth").iterdir()) == [f"{frame_stem(t)}.png" for t in times]
    d = np.load(out / "disparity_npy" / f"{frame_stem(times[3])}.npy")
    assert d.dtype == np.float32 and d.shape == (H, W) and np.isfinite(d).mean() > 0.5
    png = cv2.imread(str(out / "depth" / f"{frame_stem(times[3])}.png"))
    assert png.shape == (H, W + LEGEND_WIDTH, 3)  # the depth picture and its colour bar
    assert (png[:, W + 30 :] < 128).any() and (png[:, W + 30 :] == 255).mean() > 0.8  # labels on white
    plys = sorted((out / "clouds").iterdir())
    assert [p.name for p in plys] == [f"{frame_stem(times[i])}.ply" for i in (0, 5, 10)]
    pts, cols = read_ply(plys[1])
    assert len(pts) > 1000 and cols.shape == pts.shape and np.isfinite(pts).all()
    assert (pts[:, 2] >= 0.5 - 1e-4).all() and (pts[:, 2] <= 10.0 + 1e-4).all()
    assert video_frames(out / "live_depth.mp4") == n
    cap = cv2.VideoCapture(str(out / "live_depth.mp4"))
    lay = view_layout(H, W, with_gt=True)
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (lay.width, lay.height)
    t = json.loads((out / "timings.json").read_text())
    assert t["status"] == "completed" and t["error"] is None
    assert t["frames_produced"] == n and t["frames_skipped"] == 0
    assert t["model"].startswith("StereoNet") and t["recording"].endswith(random_recording.name)
    for stage in ("read", "represent", "model", "post"):
        s = t["stages_ms"][stage]
        assert 0 <= s["p50"] <= s["p95"] <= s["max"]
    assert t["latency_ms"]["p95"] >= t["latency_ms"]["p50"] > 0
    assert t["metrics"]["frames"] == n and 0 <= t["metrics"]["one_pixel_accuracy"] <= 1
    assert set(t["metrics"]) == {"frames", "mean_disparity_error", "one_pixel_accuracy", "mean_depth_error",
                                 "median_depth_error"}
    assert t["metric_units"]["mean_depth_error"] == "m" and "mean_depth_error" in r.stdout and "cm" not in r.stdout
    assert t["outputs"] == {"dir": str(out), "png": n, "npy": n, "confidence_npy": n, "ply": 3, "video_frames": n}
    # the arrays keep every pixel with its confidence; the pictures show the confident ones only
    assert t["rule_scale"] == 1.0 and t["min_confidence"] == 0.45
    assert t["network_size"] == {"height": round(H * t["scale"]), "width": round(W * t["scale"])}
    c = np.load(out / "confidence_npy" / f"{frame_stem(times[3])}.npy")
    assert c.dtype == np.float32 and c.shape == (H, W) and 0 <= c.min() and c.max() <= 1
    hidden = np.isfinite(d) & (c < t["min_confidence"])
    assert 0.01 < hidden.mean() < 0.99, hidden.mean()  # random events: some confident pixels, not all
    assert (png[:, :W][hidden] == 0).all() and (png[:, :W][~hidden & np.isfinite(d)].max(axis=1) > 0).mean() > 0.5
    assert 0 < t["confident_share"]["p50"] < 1
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]  # no temporary files left behind


def test_truncated_recording_exits_2_with_one_line(random_recording, tmp_path):
    bad = tmp_path / "cut_data.hdf5"
    data = random_recording.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    r = live_depth(bad, "--headless", "--out", tmp_path / "out", "--max-speed", env=headless_env())
    assert r.returncode == 2
    errs = error_lines(r.stderr)
    assert len(errs) == 1 and str(bad) in errs[0] and "Traceback" not in r.stderr


def _copy_recording(src: Path, dst: Path) -> Path:
    name = src.name[: -len("_data.hdf5")]
    for suffix in ("_data.hdf5", "_gt.hdf5"):
        shutil.copy(src.with_name(name + suffix), dst / (name + suffix))
    shutil.copytree(src.with_name(name + "_calib"), dst / (name + "_calib"))
    return dst / src.name


def test_corrupt_recording_midway_keeps_what_was_written(random_recording, tmp_path):
    rec = _copy_recording(random_recording, tmp_path)
    gt_file = rec.with_name(rec.name.replace("_data", "_gt"))
    times = expected_times(rec, 30)
    with h5py.File(gt_file, "r") as f:  # the GT frame of the 9th window, and where its bytes lie
        ds = f["davis/left/depth_image_rect"]
        k = int(np.argmin(np.abs(ds.parent["depth_image_rect_ts"][:] * 1e6 - times[8])))
        chunk = ds.chunks[0]
        info = ds.id.get_chunk_info_by_coord((k // chunk * chunk, 0, 0))
        assert ds.compression is None
        offset = info.byte_offset + (k % chunk) * H * W * 4
    with open(gt_file, "r+b") as fh:  # negative depth over part of that frame: damaged GT
        fh.seek(offset + 4 * W * 100)
        fh.write(np.full(W * 20, -1.0, "<f4").tobytes())
    out = tmp_path / "out"
    r = live_depth(rec, "--headless", "--out", out, "--max-speed", "--ply-every", 4, env=headless_env())
    assert r.returncode == 2, r.stdout + r.stderr
    errs = error_lines(r.stderr)
    assert len(errs) == 1 and str(gt_file) in errs[0] and "Traceback" not in r.stderr
    written = sorted(int(p.stem) for p in (out / "disparity_npy").glob("*.npy"))
    assert written == times[:8]
    for t in written:
        assert np.load(out / "disparity_npy" / f"{frame_stem(t)}.npy").shape == (H, W)
    assert len(list((out / "clouds").glob("*.ply"))) == 2
    assert video_frames(out / "live_depth.mp4") == 8  # finalised and playable
    t = json.loads((out / "timings.json").read_text())
    assert t["status"] == "input error" and str(gt_file) in t["error"] and t["frames_produced"] == 8


def test_interrupted_run_finalises_its_outputs(random_recording, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "apps.live_depth", str(random_recording), "--headless",
                             "--out", str(out), "--real-time", "--speed", "0.1"],
                            cwd=ROOT, env=headless_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("disparity_npy/*.npy"))) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["interrupted"]
    n = len(list(out.glob("disparity_npy/*.npy")))
    assert 3 <= n < 22
    assert video_frames(out / "live_depth.mp4") == n
    t = json.loads((out / "timings.json").read_text())
    assert t["status"] == "interrupted" and t["frames_produced"] == n
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


@pytest.mark.skipif(not DVS128_NPZ.exists(), reason="real DVS128 sample not present")
def test_real_dvs128_recording_end_to_end(tmp_path):
    rec = tmp_path / "pendulum.hdf5"
    conv = subprocess.run([sys.executable, "-m", "data_tools.convert", str(DVS128_NPZ), "--format", "npz",
                           "--right-offset", "0", "-4", "--out", str(rec), "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert conv.returncode == 0, conv.stderr
    out = tmp_path / "out"
    r = live_depth(rec, "--headless", "--out", out, "--max-frames", 20, env=headless_env())
    assert r.returncode == 0, r.stderr
    assert "no calibration" in r.stdout
    t = json.loads((out / "timings.json").read_text())
    assert t["status"] == "completed" and t["fB"] is None and t["metrics"] is None
    # no calibration: the sensor-size rule's x2.25, capped by the events (about 26 px of disparity:
    # x0.65); the outputs stay at 128x128
    assert t["scale_rule"] == "events" and 18 <= t["typical_disparity"] <= 38
    assert t["rule_scale"] == auto_scale(128, 128, disparity=t["typical_disparity"], max_disparity=36) < 1
    assert t["scale"] == t["rule_scale"]  # a factor the events capped is not fitted again
    side = round(128 * t["scale"])
    assert t["network_size"] == {"height": side, "width": side}
    assert (f"scale {t['scale']:g} (network input {side}x{side}; bound by the events: typical disparity "
            f"{t['typical_disparity']:g} px)") in r.stdout
    n = t["frames_produced"]
    assert n == 20 and t["frames_skipped"] == 0  # headless: every window, no real-time pacing
    # about 250 events per 50 ms on 128x128 pixels: under 0.1 per pixel, so the windows reach further back
    assert t["min_event_density"] == 0.1 and t["max_window_factor"] == 8
    assert 50 < t["windows_ms"]["p50"] <= t["windows_ms"]["max"] <= 400
    npys = sorted((out / "disparity_npy").glob("*.npy"))
    assert len(npys) == n and not (out / "clouds").exists()  # no f*B: no metric point clouds
    # the recording starts at t = 0: times of 5 and 6 digits, zero-padded so that names sort in time order
    stamps = [int(p.stem) for p in npys]
    assert stamps == sorted(stamps) and len({len(p.stem) for p in npys}) == 1 and len(str(stamps[0])) < 16
    d = np.load(npys[-1])
    assert d.shape == (128, 128) and d.dtype == np.float32
    assert np.load(out / "confidence_npy" / npys[-1].name).shape == (128, 128)
    # no calibration: the pictures show disparity, in disparity/, with a colour bar in px
    pngs = sorted((out / "disparity").glob("*.png"))
    assert [p.stem for p in pngs] == [p.stem for p in npys] and not (out / "depth").exists()
    assert cv2.imread(str(pngs[0])).shape == (128, 128 + LEGEND_WIDTH, 3)
    assert video_frames(out / "live_depth.mp4") == n
    cap = cv2.VideoCapture(str(out / "live_depth.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_WIDTH) == view_layout(128, 128, with_gt=False).width


# --- windows under Xvfb ------------------------------------------------------------------
def test_opencv_and_open3d_windows_under_xvfb(random_recording, tmp_path, xvfb):
    lay = view_layout(H, W, with_gt=True)
    env = dict(os.environ, DISPLAY=xvfb)
    # speed 0.1: the 1.2 s recording plays for 12 s, time enough for both windows on a slow machine
    # (at 0.25 it once ended without a screenshot showing both, in a full run); a found screenshot ends it early
    proc = subprocess.Popen([sys.executable, "-m", "apps.live_depth", str(random_recording), "--cloud",
                             "--speed", "0.1", "--out", str(tmp_path / "snaps")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shot = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            screen = grab_screen(xvfb)
            # the app puts the cloud window right of the composite, at x = composite width + 60
            split = lay.width + 60
            view = content_box(screen, (0, 0, split, screen.shape[0]))
            cloud = content_box(screen, (split, 0, screen.shape[1] - split, screen.shape[0]))
            both = view is not None and cloud is not None
            if both and view[2:] == (lay.width, lay.height) and cloud[2:] == (640, 480):
                x, y, w, h = cloud
                if (screen[y : y + h, x : x + w] < 250).any(axis=2).mean() > 0.01:  # points drawn
                    shot = screen
                    break
            time.sleep(0.15)
        proc.terminate()  # SIGTERM: the same clean shutdown as Ctrl-C, windows closed
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, 130), stderr
    assert "no display" not in stdout and "Traceback" not in stderr
    assert shot is not None, "no screenshot showed both windows"
    cv2.imwrite(str(tmp_path / "screen.png"), shot)
    x0, y0, _, _ = view
    img = shot[y0 : y0 + lay.height, x0 : x0 + lay.width]
    left = _panel(img, lay, "left")[30:]
    white = (left == 255).all(axis=2).mean()
    assert 0.6 < white < 0.97  # white with event dots
    assert ((left[..., 2] > 150) & (left[..., 0] < 100)).any() and ((left[..., 0] > 150) & (left[..., 2] < 100)).any()
    for name in ("prediction", "gt", "error"):
        assert len(np.unique(_panel(img, lay, name)[30:].reshape(-1, 3), axis=0)) > 30, name
    legend = _panel(img, lay, "legend")
    assert (legend[:, 30:] == 255).mean() > 0.8
    overlay = _panel(img, lay, "overlay")
    assert (overlay == 32).all(axis=2).mean() > 0.7 and (overlay.max(axis=2) > 150).mean() > 0.005
    x, y, w, h = cloud
    cl = shot[y : y + h, x : x + w]
    assert (cl >= 250).all(axis=2).mean() > 0.3  # Open3D's white background with the coloured cloud on it
    assert len(np.unique(cl.reshape(-1, 3), axis=0)) > 20


def test_headless_writer_errors_surface_and_the_outputs_are_still_finalised(tmp_path):
    """Frames are written on a background thread: a failing write is raised by a later add()
    or by close(), and close() still writes every queued frame, the video and timings.json."""
    img = np.zeros((40, 60, 3), np.uint8)
    disp = np.ones((40, 60), np.float32)

    def broken_cloud(path):
        raise OSError(f"{path}: disk full")

    out = HeadlessOutputs(tmp_path / "a", fps=20.0, ply_every=1)
    with pytest.raises(OSError, match="disk full"):
        for k in range(6):
            out.add(1000 * k, img, img, disp, broken_cloud if k == 2 else None)
    added = out.frames
    assert 3 <= added < 6
    out.close({"status": "output error"})
    assert len(list((tmp_path / "a" / "disparity_npy").iterdir())) == added
    assert cv2.VideoCapture(str(tmp_path / "a" / "live_depth.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == added
    with pytest.raises(RuntimeError, match="closed"):
        out.add(9000, img, img, disp)

    out = HeadlessOutputs(tmp_path / "b", fps=20.0, ply_every=1)
    out.add(0, img, img, disp, broken_cloud)
    with pytest.raises(OSError, match="disk full"):
        out.close({"status": "completed", "error": None})
    t = json.loads((tmp_path / "b" / "timings.json").read_text())
    assert t["outputs"]["npy"] == 1 and t["status"] == "output error" and "disk full" in t["error"]
    assert (tmp_path / "b" / "live_depth.mp4").is_file()


def test_a_video_that_does_not_play_back_is_not_published(tmp_path, monkeypatch):
    """OpenCV's VideoWriter fails silently (a full disk, a codec): close() reopens the file, and a
    video that does not play back every frame is removed, its error in timings.json and raised."""
    import evstereo.live.outputs as headless

    real = cv2.VideoWriter

    class Dropping:  # opens and 'writes' like the real writer, but no frame reaches the file
        def __init__(self, *args):
            self._w = real(*args)

        def isOpened(self):
            return self._w.isOpened()

        def write(self, image):
            pass

        def release(self):
            self._w.release()

    monkeypatch.setattr(headless.cv2, "VideoWriter", Dropping)
    img = np.zeros((40, 60, 3), np.uint8)
    out = HeadlessOutputs(tmp_path / "o", fps=20.0)
    for k in range(3):
        out.add(1000 * k, img, img, np.ones((40, 60), np.float32))
    with pytest.raises(OSError, match="plays back 0 of its 3 frames") as err:
        out.close({"status": "completed", "error": None})
    assert str(tmp_path / "o" / "live_depth.mp4") in str(err.value)
    assert not (tmp_path / "o" / "live_depth.mp4").exists()
    assert not [p for p in (tmp_path / "o").iterdir() if ".tmp" in p.name]  # nor its temporary
    t = json.loads((tmp_path / "o" / "timings.json").read_text())
    assert t["status"] == "output error" and "plays back 0 of its 3 frames" in t["error"]
    assert t["outputs"]["video_frames"] == 0 and "video_error" in t["outputs"] and t["outputs"]["npy"] == 3


def test_allocator_keeps_freed_memory_on_linux():
    assert keep_freed_memory() == sys.platform.startswith("linux")
