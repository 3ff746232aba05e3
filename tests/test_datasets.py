"""Samples, stereo-safe augmentations, the prepare cache (with resume) and the DataModule."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from conftest import ROOT
from evstereo import events as ev
from evstereo.datasets.datamodule import StereoDataModule
from evstereo.datasets.prepared import cache_path, prepare_recording, valid_frames
from evstereo.datasets.samples import (EventThinning, SampleSpec, SparseWindows, gt_disparity, make_sample,
                                      window_events)
from evstereo.datasets.torch_datasets import PreparedDataset, RecordingDataset, SparseEventMix
from evstereo.datasets.transforms import HorizontalFlipSwap, RandomCrop
from evstereo.recordings import open_recording


def test_sample_pairs_events_and_gt_by_timestamp(random_recording):
    spec = SampleSpec()
    with open_recording(random_recording) as rec:
        frames = valid_frames(rec, spec)
        assert frames[0] == 0 or rec.gt_timestamps()[frames[0] - 1] - 50_000 < rec.time_span()[0]
        i = int(frames[3])
        s = make_sample(rec, i, spec)
        t = int(rec.gt_timestamps()[i])
        assert s["t_us"] == t
        assert s["left"].shape == (1, 5, 260, 346)
        e = rec.events("left", t - 50_000, t)
        np.testing.assert_array_equal(s["left"][0], ev.sbt(e.x, e.y, e.t, e.p, 5, 260, 346, t - 50_000, t))
        d = rec.disparity(i)
        assert np.array_equal(s["valid"], np.isfinite(d) & (d <= 36.3))
        np.testing.assert_allclose(s["disparity"][s["valid"]], d[s["valid"]])
        assert (s["disparity"][~s["valid"]] == 0).all()


def test_sparse_windows_reach_back_until_both_cameras_have_events(tmp_path, random_recording):
    from random_recording import write_random_mvsec

    from conftest import REAL_CALIB

    sparse = write_random_mvsec(tmp_path, "sparse", 1.2, 20_000, gt_hz=20.0, seed=4, calibration=REAL_CALIB)
    spec = SampleSpec()
    with open_recording(sparse) as rec:
        t = int(rec.gt_timestamps()[-1])  # late: every window length fits after the first event
        density = len(rec.events("left", t - 50_000, t)) / (260 * 346)
        assert 0.005 < density < 0.0125  # 8x stays under 0.1: the cap
        for policy, window in ((None, 50_000), (SparseWindows(0.0), 50_000), (SparseWindows(), 400_000),
                               (SparseWindows(max_window_factor=4), 200_000), (SparseWindows(2 * density), 100_000),
                               (SparseWindows(max_window_factor=1), 50_000)):
            t0, events = window_events(rec, t, 50_000, policy)
            assert t0 == t - window, policy
            for cam in ("left", "right"):
                np.testing.assert_array_equal(events[cam].t, rec.events(cam, t0, t).t)
        s = make_sample(rec, len(rec.gt_timestamps()) - 1, spec, sparse=SparseWindows())
        assert s["window_us"] == 400_000
        e = rec.events("left", t - 400_000, t)  # the bins span the whole longer window
        np.testing.assert_array_equal(s["left"][0], ev.sbt(e.x, e.y, e.t, e.p, 5, 260, 346, t - 400_000, t))
        assert make_sample(rec, len(rec.gt_timestamps()) - 1, spec)["window_us"] == 50_000  # training: never
    with open_recording(random_recording) as rec:  # dense enough: the network's window
        t = int(rec.gt_timestamps()[10])
        assert window_events(rec, t, 50_000, SparseWindows(0.05))[0] == t - 50_000
    for bad in (dict(min_event_density=-1.0), dict(min_event_density=float("nan")), dict(max_window_factor=0), dict(max_window_factor=2.5)):
        with pytest.raises(ValueError):
            SparseWindows(**bad)


def test_event_thinning_keeps_the_same_events_whichever_window_reads_them(random_recording):
    with open_recording(random_recording) as rec:
        t = int(rec.gt_timestamps()[-1])
        thin = EventThinning({"left": 0.1, "right": 0.3}, seed=7)
        for cam, keep in (("left", 0.1), ("right", 0.3)):
            full = rec.events(cam, t - 400_000, t)
            kept = thin(cam, full)
            assert abs(len(kept) / len(full) - keep) < 0.02
            # the short window's kept events are the long window's kept events in it
            short = thin(cam, rec.events(cam, t - 50_000, t))
            np.testing.assert_array_equal(short.t, kept.window(t - 50_000, t).t)
            np.testing.assert_array_equal(short.x, kept.window(t - 50_000, t).x)
            other = EventThinning({cam: keep}, seed=8)(cam, full)
            assert len(np.intersect1d(np.flatnonzero(np.isin(full.t, kept.t)), np.flatnonzero(np.isin(full.t, other.t)))) < 0.5 * len(kept)
        right = rec.events("right", t - 400_000, t)
        assert len(EventThinning({"left": 0.1})("right", right)) == len(right)  # a camera not named keeps all


def test_thinned_samples_get_the_inference_windows(random_recording):
    spec = SampleSpec()
    with open_recording(random_recording) as rec:
        k = len(rec.gt_timestamps()) - 1
        t = int(rec.gt_timestamps()[k])
        thin = EventThinning({"left": 0.01, "right": 0.01}, seed=1)
        policy = SparseWindows(0.01)
        dense = make_sample(rec, k, spec, sparse=policy)
        assert dense["window_us"] == 50_000  # the recording holds about 0.11 events per pixel in 50 ms
        s = make_sample(rec, k, spec, sparse=policy, thinning=thin)
        assert s["window_us"] == 400_000  # 1 % of them: under 0.01 even in 400 ms, the longest
        e = thin("left", rec.events("left", t - 400_000, t))
        np.testing.assert_array_equal(s["left"][0], ev.sbt(e.x, e.y, e.t, e.p, 5, 260, 346, t - 400_000, t))


def test_sparse_event_mix_replaces_a_share_of_samples(tmp_path, random_recording):
    base = RecordingDataset(random_recording, SampleSpec())
    torch.manual_seed(0)
    same = SparseEventMix(base, random_recording, SampleSpec(), p=0.0)
    np.testing.assert_array_equal(same[5]["left"].numpy(), base[5]["left"].numpy())
    mix = SparseEventMix(base, random_recording, SampleSpec(), p=1.0, density=(0.005, 0.01))
    for i in (len(base) - 1, len(base) - 3):
        a, b = (mix[i]["left"] != 0).sum().item(), (base[i]["left"] != 0).sum().item()
        assert 0 < a < 0.8 * b  # 0.005-0.01 events per pixel, over 8 windows, against 0.1 in one
    dm = StereoDataModule(train=[str(random_recording)], spec={"bins": 5}, crop=(64, 96), batch_size=2,
                          cache_dir=str(tmp_path / "cache"), augment={"p_sparse_windows": 0.5}, progress=False)
    dm.prepare_data()
    dm.setup("fit")
    assert isinstance(dm.datasets["train"], SparseEventMix)
    assert next(iter(dm.train_dataloader()))["left"].shape == (2, 1, 5, 64, 96)
    for bad, name in (({"p_sparse_windows": 1.5}, "p_sparse_windows"), ({"p_sparse_windows": "half"}, "p_sparse_windows"),
                      ({"p_sparse_windows": 0.5, "sparse_density": [0.2, 0.1]}, "sparse_density"),
                      ({"sparse_density": [0.0, 0.1]}, "sparse_density")):
        with pytest.raises(ValueError, match=name):
            StereoDataModule(augment=bad)


def test_spec_shapes_and_quantisation():
    assert SampleSpec("counts", bins=4).shape_tc == (4, 2)
    assert SampleSpec("voxel", bins=10, time_steps=5).shape_tc == (5, 2)
    with pytest.raises(ValueError):
        SampleSpec("sbt", bins=5, time_steps=2)
    d, valid = gt_disparity(np.array([[3.06, np.nan, 40.0, -1.0]]), SampleSpec(disparity_quantum=7))
    np.testing.assert_allclose(d, [[3.0, 0, 0, 0]], atol=1e-6)  # 3.06 -> 21.42/7 -> 21/7
    assert valid.tolist() == [[True, False, False, False]]


def test_crop_is_identical_for_both_cameras_and_gt():
    rng = np.random.default_rng(0)
    s = {"left": rng.random((1, 2, 20, 30)), "right": rng.random((1, 2, 20, 30)),
         "disparity": rng.random((20, 30)), "valid": rng.random((20, 30)) > 0.5}
    out = RandomCrop(8, 12)(s, np.random.default_rng(1))
    y = np.flatnonzero((s["disparity"] == out["disparity"][0, 0]).any(1))[0]
    x = np.flatnonzero(s["disparity"][y] == out["disparity"][0, 0])[0]
    for k in ("left", "right"):
        np.testing.assert_array_equal(out[k], s[k][..., y : y + 8, x : x + 12])
    np.testing.assert_array_equal(out["valid"], s["valid"][y : y + 8, x : x + 12])


def test_flip_swaps_cameras_and_keeps_epipolar_geometry():
    """A right image that is the left one shifted by d stays consistent after mirror + swap."""
    rng = np.random.default_rng(0)
    h, w, d = 6, 40, 5
    left = rng.random((1, 1, h, w))
    right = np.zeros_like(left)
    right[..., : w - d] = left[..., d:]  # right(x) = left(x + d)
    disp_l = np.full((h, w), float(d), np.float32)
    disp_r = np.full((h, w), float(d), np.float32)
    s = {"left": left, "right": right, "disparity": disp_l, "valid": np.ones((h, w), bool),
         "disparity_right": disp_r, "valid_right": np.ones((h, w), bool)}
    out = HorizontalFlipSwap(p=1.0)(s, np.random.default_rng(0))
    nl, nr = out["left"][0, 0], out["right"][0, 0]
    # new left pixel x matches new right pixel x - d (positive disparity, same convention)
    for x in range(d, w - d):
        np.testing.assert_allclose(nl[:, x], nr[:, x - d])
    np.testing.assert_array_equal(out["disparity"], disp_r[:, ::-1])
    # no right GT -> no flip
    s.pop("disparity_right")
    assert HorizontalFlipSwap(p=1.0)(s, np.random.default_rng(0)) is s


def test_prepare_cache_equals_on_the_fly_and_resumes(tmp_path, random_recording):
    spec = SampleSpec()
    out = tmp_path / "cache.h5"
    prepare_recording(random_recording, out, spec, progress=False)
    direct = RecordingDataset(random_recording, spec)
    cached = PreparedDataset(out)
    assert len(direct) == len(cached) > 5
    for i in (0, 4):
        a, b = direct[i], cached[i]
        for k in ("left", "right", "disparity", "valid", "t_us"):
            assert torch.equal(a[k], b[k]), k
    reference = {k: h5py.File(out, "r")[k][:] for k in ("left", "disparity")}
    # interrupt after a few frames: the final file does not exist, the partial one resumes
    out2 = tmp_path / "cache2.h5"
    import evstereo.datasets.prepared as prepared

    calls = {"n": 0}
    real = prepared.make_sample

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] > 2 * 32 + 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    if len(direct) <= 2 * 32 + 3:  # small recording: interrupt earlier
        def dying(*a, **k):  # noqa: F811
            calls["n"] += 1
            if calls["n"] > len(direct) - 2:
                raise KeyboardInterrupt
            return real(*a, **k)
    prepared.make_sample = dying
    try:
        with pytest.raises(KeyboardInterrupt):
            prepare_recording(random_recording, out2, spec, progress=False)
    finally:
        prepared.make_sample = real
    assert not out2.exists()
    partial = tmp_path / ".cache2.h5.partial"
    assert partial.exists()
    done_before = int(h5py.File(partial, "r").attrs["done"])
    calls["n"] = 0

    def counting(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    prepared.make_sample = counting
    try:
        prepare_recording(random_recording, out2, spec, progress=False)
    finally:
        prepared.make_sample = real
    assert calls["n"] == len(direct) - done_before  # only the missing frames were computed
    with h5py.File(out2, "r") as f:
        for k, v in reference.items():
            np.testing.assert_array_equal(f[k][:], v)


def test_datamodule_batches_with_cache(tmp_path, random_recording):
    dm = StereoDataModule(train=[str(random_recording)], val=str(random_recording), spec={"bins": 5},
                          crop=(64, 96), batch_size=3, cache_dir=str(tmp_path / "cache"))
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["left"].shape == (3, 1, 5, 64, 96) and batch["disparity"].shape == (3, 64, 96)
    assert batch["valid"].dtype == torch.bool
    val = next(iter(dm.val_dataloader()))
    assert val["left"].shape == (1, 1, 5, 260, 346)
    assert len(list((tmp_path / "cache").glob("*.h5"))) == 1  # same recording and spec: one shared cache


def test_prepare_cli_and_inspect_cli(tmp_path, random_recording):
    r = subprocess.run([sys.executable, "-m", "data_tools.prepare", str(random_recording), "--out", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert cache_path(tmp_path, random_recording, SampleSpec()).exists()  # the name the DataModule reads
    r = subprocess.run([sys.executable, "-m", "data_tools.inspect", str(random_recording)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "346 x 260" in r.stdout and "23 depth frames at 20.0 Hz" in r.stdout and "fB = 19.9418" in r.stdout
    r = subprocess.run([sys.executable, "-m", "data_tools.inspect", str(tmp_path / "missing_data.hdf5")], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "missing_data.hdf5: does not exist" in r.stderr and "Traceback" not in r.stderr
