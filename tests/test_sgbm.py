"""The classical SGBM baseline: recovers a known shift, fills invalid pixels, any representation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evstereo.models import SGBMStereo
from evstereo.models.sgbm import event_images, fill_invalid_scanline

H, W = 120, 200


def _shifted_pair(d: int, t: int = 1, c: int = 5, density: float = 0.15, seed: int = 0):
    """Random sparse 'event' texture; right = left shifted by d px (a point at x in left is at x - d in right)."""
    rng = np.random.default_rng(seed)
    tex = (rng.random((t, c, H, W + d)) < density) * rng.integers(1, 4, (t, c, H, W + d))
    left = tex[..., :W].astype(np.float32)
    right = tex[..., d : d + W].astype(np.float32)
    return torch.from_numpy(left)[None], torch.from_numpy(right)[None]


@pytest.mark.parametrize("d", [4, 11, 23])
def test_recovers_the_shift_on_the_valid_interior(d):
    left, right = _shifted_pair(d)
    model = SGBMStereo(max_disparity=63)
    out = model(left, right)
    assert out.shape == (1, H, W) and out.dtype == torch.float32
    disp = out[0].numpy()
    assert disp.min() >= 0 and disp.max() <= 63
    inner = disp[8:-8, 64 + 8 : -8]  # left of column 64 the full disparity range does not fit
    assert np.median(inner) == pytest.approx(d, abs=0.25)
    assert (np.abs(inner - d) < 1).mean() > 0.95


def test_any_representation_batch_and_time_steps():
    l1, r1 = _shifted_pair(7, t=1, c=5, seed=1)
    l2, r2 = _shifted_pair(13, t=4, c=2, seed=2)  # e.g. counts with 4 time bins
    model = SGBMStereo(max_disparity=31)
    assert model.time_steps is None and model.in_channels is None and model.max_disparity == 31
    assert model.num_disparities == 32
    out = model(torch.cat([l1, l1]), torch.cat([r1, r1]))
    assert out.shape == (2, H, W)
    assert np.median(out[0, 8:-8, 40:-8].numpy()) == pytest.approx(7, abs=0.25)
    assert np.median(model(l2, r2)[0, 8:-8, 40:-8].numpy()) == pytest.approx(13, abs=0.25)
    assert SGBMStereo(max_disparity=63).num_disparities == 64  # a multiple of 16 covering 0..63


def test_invalid_pixels_filled_with_the_background_or_zero():
    d = np.array([[0, 5, 0, 0, 9, 0], [0, 0, 0, 0, 0, 0]], np.float32)
    valid = d > 0
    np.testing.assert_array_equal(fill_invalid_scanline(d, valid), [[5, 5, 5, 5, 9, 9], [0, 0, 0, 0, 0, 0]])
    left, right = _shifted_pair(9)
    right[..., 60:80, 100:140] = 0  # a hole with no events in the right image
    dense = SGBMStereo(fill="background")(left, right)[0].numpy()
    sparse = SGBMStereo(fill="none")(left, right)[0].numpy()
    assert (dense > 0).mean() > (sparse > 0).mean()
    assert (sparse == 0).any() and (dense[:, 64:] > 0).all()


def test_event_images_share_one_scale():
    x = torch.zeros(2, 1, 2, 8, 8)
    x[0, 0, 0, 2, 2] = 4.0
    x[1, 0, 0, 2, 2] = 1.0
    imgs, scale = event_images(x, blur_sigma=0)
    assert imgs.dtype == np.uint8 and imgs.shape == (2, 8, 8)
    assert imgs[0, 2, 2] == 255 and 0 < imgs[1, 2, 2] < 255  # the weaker camera stays weaker


def test_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="B, T, C, H, W"):
        SGBMStereo()(torch.zeros(1, 1, 1, 8, 8), torch.zeros(1, 1, 1, 8, 9))
