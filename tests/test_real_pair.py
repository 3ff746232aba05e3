"""Stereo evaluation recordings made from one real camera's events (evstereo.recordings.real_pair)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import DVS128_NPZ
from evstereo.events.arrays import Events
from evstereo.recordings import open_recording
from evstereo.recordings.real_pair import PairOptions, disparity_field, make_pair, write_pair


def _events(n: int, h: int, w: int, seed: int = 0) -> Events:
    rng = np.random.default_rng(seed)
    return Events.create(rng.integers(0, w, n), rng.integers(0, h, n), np.sort(rng.integers(0, 1_000_000, n)),
                         rng.integers(0, 2, n))


def test_integer_disparity_shifts_every_event_exactly():
    src = _events(5000, 40, 60)
    opts = PairOptions(field="constant", d_min=5, d_max=5, keep=1.0, noise_rate_hz=0)
    left, right, disp = make_pair(src, 40, 60, opts, np.random.default_rng(1))
    assert len(left) == len(src) and np.all(disp == 5)
    inside = src.x >= 5
    np.testing.assert_array_equal(right.x, src.x[inside] - 5)
    np.testing.assert_array_equal(right.y, src.y[inside])
    np.testing.assert_array_equal(right.t, src.t[inside])


def test_fractional_disparity_is_exact_on_average_and_subsets_are_independent():
    src = _events(40000, 30, 80)
    opts = PairOptions(field="constant", d_min=2.3, d_max=2.3, keep=0.6, noise_rate_hz=0)
    left, right, _ = make_pair(src, 30, 80, opts, np.random.default_rng(2))
    assert len(left) / len(src) == pytest.approx(0.6, abs=0.02)
    # each right event comes from a source event 2 or 3 px to its right, 2.3 px on average
    key = lambda x, y, t: set(zip(x.tolist(), y.tolist(), t.tolist()))
    src_keys = key(src.x, src.y, src.t)
    n2 = len(key(right.x + 2, right.y, right.t) & src_keys)
    n3 = len(key(right.x + 3, right.y, right.t) & src_keys)
    assert (2 * n2 + 3 * n3) / (n2 + n3) == pytest.approx(2.3, abs=0.03)
    # independent subsets: about 0.6 of the left view's events also made it to the right view
    common = len(key(left.x, left.y, left.t) & key(right.x + 2, right.y, right.t)) + \
        len(key(left.x, left.y, left.t) & key(right.x + 3, right.y, right.t))
    assert common / len(left) == pytest.approx(0.6, abs=0.05)


def test_fields():
    o = PairOptions(field="plane", d_min=3, d_max=12)
    d = disparity_field(o, 20, 30)
    assert d.min() == pytest.approx(3) and d.max() == pytest.approx(12) and d[0, -1] > d[0, 0] and d[-1, 0] > d[0, 0]
    d = disparity_field(PairOptions(field="layers", d_min=4, d_max=9), 20, 30)
    assert set(np.unique(d)) == {4, 9} and d[10, 15] == 9 and d[10, 0] == 4
    with pytest.raises(ValueError, match="d_min"):
        PairOptions(d_min=5, d_max=2)


def test_real_dvs128_pair_recording(tmp_path):
    from data_tools.convert import main as convert

    src = tmp_path / "pendulum_data.hdf5"
    assert convert(["-q", "--format", "npz", str(DVS128_NPZ), "--right-offset", "0", "-4", "--out", str(src)]) == 0
    info = write_pair(src, tmp_path, "pair", field="constant", d_min=8, d_max=8, seed=3)
    assert info["sensor"] == [128, 128] and info["gt_frames"] > 200
    with open_recording(info["data"]) as rec:
        assert rec.check_stereo() is None and rec.fB == pytest.approx(19.9418 / 2.25)  # a DVS128-sized MVSEC rig
        shift = rec.stereo_shift()
        assert shift["shift_px"] == pytest.approx(8, abs=1)  # the readers see the pair as an 8 px stereo pair
        k = len(rec.gt_timestamps()) // 2
        disp = rec.disparity(k)
        t = int(rec.gt_timestamps()[k])
        ev = rec.events("left", t - 50_000, t)
    ok = np.isfinite(disp)
    # GT exactly at the left events' pixels of the window (where the right pixel exists), and 8 px there
    seen = np.zeros_like(ok)
    seen[ev.y.astype(int), ev.x.astype(int)] = True
    seen[:, :8] = False
    np.testing.assert_array_equal(ok, seen)
    np.testing.assert_allclose(disp[ok], 8.0, rtol=1e-4)
