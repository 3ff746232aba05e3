"""Sensor augmentations: multi-scale (RandomScale), per-camera subsets/noise/offset (CameraRealism)."""

from __future__ import annotations

import numpy as np
import pytest

from evstereo.datasets.datamodule import StereoDataModule
from evstereo.datasets.scaling import auto_scale, resample_disparity, resample_frames, restore_disparity
from evstereo.datasets.transforms import CameraRealism, RandomScale, vertical_shift


def _sample(h: int, w: int, d: float, seed: int = 0, density: float = 0.1) -> dict:
    rng = np.random.default_rng(seed)
    left = (rng.random((1, 5, h, w)) < density) * rng.choice([-1.0, 1.0], (1, 5, h, w))
    right = np.roll(left, -int(d), axis=-1)
    return {"left": left.astype(np.float32), "right": right.astype(np.float32),
            "disparity": np.full((h, w), d, np.float32), "valid": np.ones((h, w), bool)}


def test_auto_scale_brings_sensors_to_the_nominal_pixel_count():
    assert auto_scale(260, 346) == 1.0
    assert auto_scale(128, 128) == 2.25  # DVS128: sqrt(89960 / 16384) = 2.34 -> 2.25
    assert auto_scale(480, 640) == 0.5
    assert auto_scale(180, 240) == 1.5


def test_resampling_round_trip_keeps_disparity_in_sensor_pixels():
    import torch

    d, v = resample_disparity(np.full((128, 128), 8.0, np.float32), np.ones((128, 128), bool), 2.25)
    assert d.shape == (288, 288) and np.allclose(d, 18.0)
    back = restore_disparity(torch.from_numpy(d)[None], (128, 128))
    assert back.shape == (1, 128, 128) and torch.allclose(back, torch.tensor(8.0))
    x = np.random.default_rng(0).random((5, 100, 120)).astype(np.float32)
    small = resample_frames(x, 0.5)
    assert small.shape == (5, 50, 60) and abs(small.mean() - x.mean()) < 0.01  # antialiased: means kept


def test_random_scale_scales_disparity_and_invalidates_beyond_the_cap():
    rng = np.random.default_rng(0)
    scales = []
    for _ in range(20):
        out = RandomScale((0.7, 1.4), max_disparity=36.0, min_size=(120, 168))(_sample(128, 128, 12.0), rng)
        h, w = out["disparity"].shape
        s = w / 128
        scales.append(s)
        assert h >= 120 and w >= 168 and out["left"].shape[-2:] == (h, w)
        d = out["disparity"][out["valid"]]
        if 12 * s <= 36:
            assert np.allclose(d, 12 * s, rtol=1e-5)
        else:
            assert not out["valid"].any()  # all beyond the network's cap: not a target
    assert min(scales) < 2.25 < max(scales) and 2.25 * 0.7 - 0.01 <= min(scales) and max(scales) <= 2.25 * 1.4 + 0.01


def test_camera_realism_gives_each_camera_its_own_subset():
    s = _sample(64, 64, 0.0, density=0.3)
    s["right"] = s["left"].copy()
    aug = CameraRealism(p_sparse=1.0, keep=(0.5, 0.5), p_noise=0.0, p_offset=0.0)
    out = aug(s, np.random.default_rng(1))
    on = s["left"] != 0
    kl, kr = (out["left"] != 0)[on].mean(), (out["right"] != 0)[on].mean()
    both = ((out["left"] != 0) & (out["right"] != 0))[on].mean()
    assert 0.3 < kl < 0.7 and 0.3 < kr < 0.7
    assert both == pytest.approx(kl * kr, abs=0.02)  # independent, not the same pixels
    assert not ((out["left"] != 0) & ~on).any()  # thinning only removes


def test_camera_realism_noise_and_vertical_offset():
    s = _sample(64, 64, 0.0, density=0.0)
    out = CameraRealism(p_sparse=0.0, p_noise=1.0, noise_fraction=(0.01, 0.01), p_offset=0.0)(s, np.random.default_rng(2))
    assert (out["left"] != 0).mean() == pytest.approx(0.01, abs=0.003)
    assert not np.array_equal(out["left"] != 0, out["right"] != 0)
    x = np.zeros((1, 1, 8, 3), np.float32)
    x[..., 2, :] = 1
    y = vertical_shift(x, 0.25)
    assert y[0, 0, 2, 0] == pytest.approx(0.75) and y[0, 0, 3, 0] == pytest.approx(0.25)
    assert vertical_shift(x, -1.0)[0, 0, 1, 0] == 1


def test_datamodule_rejects_unknown_augment_options():
    with pytest.raises(ValueError, match="unknown data.augment options: blur"):
        StereoDataModule(augment={"blur": 1})


def test_lowres_look_blurs_but_keeps_geometry():
    s = _sample(260, 346, 10.0, density=0.05)
    plain = RandomScale((1.0, 1.0))(s, np.random.default_rng(0))
    low = RandomScale((1.0, 1.0), p_lowres=1.0, lowres=(0.5, 0.5))(s, np.random.default_rng(0))
    assert plain is s  # nothing to do at scale 1 without the low-res look
    assert low["left"].shape == s["left"].shape and np.array_equal(low["disparity"], s["disparity"])
    # through a half-size grid: isolated events spread over their neighbours, total kept
    assert (low["left"] != 0).mean() > 2 * (s["left"] != 0).mean()
    assert abs(low["left"].sum() - s["left"].sum()) < 0.05 * np.abs(s["left"]).sum()


def test_auto_scale_follows_the_rigs_fb_when_known():
    assert auto_scale(260, 346, fB=19.9418) == 1.0  # the MVSEC rig
    assert auto_scale(480, 640, fB=0.6 * 580) == 0.25  # DSEC's long baseline: shrink (clamped)
    assert auto_scale(128, 128, fB=19.9418 / 2.25) == 2.25  # a DVS128-sized MVSEC rig
    assert auto_scale(128, 128, fB=20.0) == 1.0  # disparities already MVSEC-like: no resampling
    assert auto_scale(128, 128, fB=float("nan")) == 2.25  # unknown: the pixel-count rule
    s = _sample(128, 128, 8.0)
    s["fB"] = 20.0
    out = RandomScale((1.0, 1.0), min_size=(120, 120))(s, np.random.default_rng(0))
    assert out["disparity"].shape == (128, 128)  # trained as inference will see it


def test_a_crop_larger_than_a_small_sensor_is_fine_when_every_sample_is_rescaled(random_recording):
    from evstereo.errors import InputError

    with pytest.raises(InputError, match="is larger than this recording's 260x346 sensor"):
        StereoDataModule(train=[str(random_recording)], crop=[300, 400])
    dm = StereoDataModule(train=[str(random_recording)], crop=[300, 400], augment={"scale_jitter": [0.8, 1.2]})
    s = _sample(260, 346, 5.0)
    out = dm._transform("train")(s, np.random.default_rng(0))
    assert out["left"].shape[-2:] == (300, 400)  # RandomScale enlarged it to hold the crop
