"""Confidence: the softmax mass near the estimate (by hand, torch and the fused numba read-out agree),
SGBM's validity, the event gate, and that confident pixels are the better ones on a simulated scene."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evstereo.inference.prediction import DEFAULT_MIN_CONFIDENCE, Predictor, confident, event_support
from evstereo.inference.readout import FusedReadoutNet, upsample_soft_argmin
from evstereo.models import SGBMStereo, build_stereo_net
from evstereo.models.heads import confidence, soft_argmin

SMALL = {"genotype": "reference", "feature_filters": 2, "matching_filters": 2, "max_disparity": 24}


def _cost(*probs: list[float]) -> torch.Tensor:
    """A [1, D, 1, n] cost whose softmax is ``probs`` at each of the n pixels (log, -30 for 0)."""
    p = torch.tensor(probs, dtype=torch.float32).T  # [D, n]
    return torch.where(p > 0, p.clamp_min(1e-30).log(), torch.tensor(-30.0))[None, :, None, :]


def test_confidence_by_hand():
    cost = _cost([0, 0, 0, 1, 0], [0, 0.5, 0.5, 0, 0], [0.25, 0.5, 0.25, 0, 0], [0.2] * 5)
    d = soft_argmin(cost)
    # expectations: 3; 1.5; 1.0; 2.0
    torch.testing.assert_close(d[0, 0], torch.tensor([3.0, 1.5, 1.0, 2.0]), atol=1e-5, rtol=0)
    c = confidence(cost, d)[0, 0]
    # 1: one sharp level. 2: window [0.5, 2.5] holds the bins of levels 1 and 2 whole -> 1.
    # 3: window [0, 2]: half of level 0's bin (0.125), level 1 whole (0.5), half of level 2's (0.125) -> 0.75.
    # 4: flat over 5 levels, window [1, 3]: halves of levels 1 and 3, level 2 whole -> 2 bins x 0.2 = 0.4.
    torch.testing.assert_close(c, torch.tensor([1.0, 1.0, 0.75, 0.4]), atol=1e-5, rtol=0)
    # two far modes: the estimate lies between them and gets none of their mass
    two = _cost([0.5, 0, 0, 0, 0, 0, 0, 0, 0.5])
    assert confidence(two, soft_argmin(two)).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("shape,size,crop", [((1, 12, 30, 40), (36, 90, 120), (88, 117)),
                                              ((2, 5, 7, 9), (15, 21, 27), (21, 27))])
def test_fused_readout_confidence_equals_the_torch_confidence(shape, size, crop):
    coarse = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape))) * 3
    full = F.interpolate(coarse[:, None], size=size, mode="trilinear", align_corners=False)[:, 0]
    full = full[..., : crop[0], : crop[1]]
    cap = float(size[0] - 4)  # the clamp bites on some pixels: the window follows the clamped estimate
    d = soft_argmin(full).clamp(0, cap)
    ref = confidence(full, d).numpy()
    disp, conf = upsample_soft_argmin(coarse.numpy(), size, crop, cap, with_confidence=True)
    np.testing.assert_allclose(disp, d.numpy(), atol=1e-3, rtol=1e-4)
    np.testing.assert_allclose(conf, ref, atol=1e-4)
    assert conf.dtype == np.float32 and 0 <= conf.min() and conf.max() <= 1
    assert conf.std() > 0.05  # varied values, not a constant that would match by chance
    np.testing.assert_array_equal(upsample_soft_argmin(coarse.numpy(), size, crop, cap), disp)  # forward's path


def test_network_and_wrapper_give_the_same_disparity_and_confidence():
    torch.manual_seed(0)
    net = build_stereo_net(SMALL).eval()
    g = torch.Generator().manual_seed(1)
    left, right = (torch.rand(1, 1, 5, 37, 50, generator=g) < 0.1).float(), (torch.rand(1, 1, 5, 37, 50, generator=g) < 0.1).float()
    with torch.no_grad():
        plain = net(left, right)
        d, c = net.disparity_with_confidence(left, right)
        fd, fc = FusedReadoutNet(net).disparity_with_confidence(left, right)
    torch.testing.assert_close(d, plain)  # forward is unchanged: disparity only
    assert c.shape == d.shape == (1, 37, 50) and float(c.min()) >= 0 and float(c.max()) <= 1
    torch.testing.assert_close(fd, d, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(fc, c, atol=1e-4, rtol=1e-4)


def test_sgbm_confidence_is_its_own_validity():
    rng = np.random.default_rng(0)
    tex = (rng.random((1, 5, 80, 160 + 9)) < 0.15) * rng.integers(1, 4, (1, 5, 80, 160 + 9))
    left = torch.from_numpy(tex[..., :160].astype(np.float32))[None]
    right = torch.from_numpy(tex[..., 9 : 9 + 160].astype(np.float32))[None]
    right[..., 30:50, 100:140] = 0  # a hole in the right image: no match there
    model = SGBMStereo(max_disparity=31)
    d, c = model.disparity_with_confidence(left, right)
    torch.testing.assert_close(d, model(left, right))
    c = c[0].numpy()
    assert set(np.unique(c)) == {0.0, 1.0}
    assert (c[:, :31] == 0).all()  # the left border, where the range does not fit, never matches
    assert c[35:45, 110:130].mean() < 0.2 and c[5:25, 60:150].mean() > 0.9
    matched = d[0].numpy()[c == 1]
    assert (np.abs(matched - 9) < 1).mean() > 0.95  # its confident pixels are right


def test_event_support_and_masking_by_hand():
    x = np.zeros((1, 1, 2, 9, 9), np.float32)
    x[0, 0, 1, 4, 4] = -1.0  # one event (negative polarity counts too)
    s = event_support(x, 2.0)[0]
    yy, xx = np.mgrid[:9, :9]
    np.testing.assert_array_equal(s, (yy - 4) ** 2 + (xx - 4) ** 2 <= 4)  # the disc of radius 2
    assert not event_support(np.zeros_like(x), 2.0).any() and event_support(np.zeros_like(x), 0).all()
    d = np.array([[1.0, 2.0, 3.0]], np.float32)
    np.testing.assert_array_equal(confident(d, np.array([[0.2, 0.5, 0.9]]), 0.5), [[np.nan, 2.0, 3.0]])


def test_confident_pixels_are_the_better_ones_on_a_simulated_scene(tmp_path, monkeypatch):
    """The shipped network on a short simulated scene: keeping the confident pixels keeps most of
    the ground truth and lowers the error (the measurement behind the default threshold)."""
    monkeypatch.setenv("EVSTEREO_SNN_BACKEND", "eager")  # no kernel compilation for a few frames
    from evstereo.datasets.samples import SampleSpec
    from evstereo.inference.evaluation import evaluate, plan_frames
    from evstereo.models import load_checkpoint, shipped_checkpoint
    from evstereo.simulation import synthesize

    info = synthesize(tmp_path, "scene", 0.3, seed=901)
    net = load_checkpoint(shipped_checkpoint())
    plan = plan_frames([(info["data"], None)], SampleSpec.for_input(net.input_spec), max_frames=3)
    frames = []
    r = evaluate(FusedReadoutNet(net), plan, energy_frames=0, on_frame=frames.append).as_dict()
    c = r["confident"]
    assert r["frames"] == c["frames"] == 3 and r["min_confidence"] == DEFAULT_MIN_CONFIDENCE
    assert 0.4 < c["coverage"] < 0.98, c["coverage"]
    assert c["mae"] < 0.85 * r["mae"], (c["mae"], r["mae"])
    assert c["1pe"] < r["1pe"] and c["one_pixel_accuracy"] > r["one_pixel_accuracy"]
    # the event gate alone (confidence > 0) keeps more pixels, and they are better than all of them too
    err = np.concatenate([np.abs(f.prediction - f.sample["disparity"])[f.sample["valid"]] for f in frames])
    near = np.concatenate([f.confidence[f.sample["valid"]] > 0 for f in frames])
    assert c["coverage"] < near.mean() < 1 and err[near].mean() < err.mean()
    assert Predictor(net, 260, 346).scale == 1.0  # the nominal sensor runs as it is
