"""Event representations (numba) against plain numpy references, on random and real events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evstereo.events import event_counts, sbt, spike_tensor, voxel_grid

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DVS128_NPZ = SHARED_DATA / "real" / "pendulum_left_30cm_2.tsv.npz"
DAVIS_AEDAT4 = SHARED_DATA / "real" / "davis346_sample_shiba24.aedat4"


# --------------------------------------------------------------------------------------------
# numpy references (np.add.at, float64), written from the documented definitions
# --------------------------------------------------------------------------------------------


def _ref_select(x, y, t, p, height, width, t_start, t_end):
    x = np.asarray(x).astype(np.int64)
    y = np.asarray(y).astype(np.int64)
    tf = np.asarray(t).astype(np.float64)
    pol = np.where(np.asarray(p) > 0, 1.0, -1.0)
    if len(tf):
        t0 = tf[0] if t_start is None else float(t_start)
        t1 = tf[-1] if t_end is None else float(t_end)
    else:
        t0 = t1 = 0.0
    keep = (tf >= t0) & (tf <= t1) & (x >= 0) & (x < width) & (y >= 0) & (y < height)
    return x[keep], y[keep], tf[keep], pol[keep], t0, t1


def _ref_bins(tf, t0, t1, bins):
    span = t1 - t0
    if span <= 0:
        return np.zeros(len(tf), np.int64)
    return np.minimum(np.floor(bins * (tf - t0) / span).astype(np.int64), bins - 1)


def ref_voxel(x, y, t, p, bins, height, width, t_start=None, t_end=None):
    x, y, tf, pol, t0, t1 = _ref_select(x, y, t, p, height, width, t_start, t_end)
    grid = np.zeros((bins, height, width))
    span = t1 - t0
    tn = (bins - 1) * (tf - t0) / span if span > 0 else np.zeros(len(tf))
    b = np.minimum(np.floor(tn).astype(np.int64), bins - 1)
    frac = tn - b
    np.add.at(grid, (b, y, x), pol * (1 - frac))
    right = b + 1 < bins
    np.add.at(grid, (b[right] + 1, y[right], x[right]), (pol * frac)[right])
    return grid


def ref_sbt(x, y, t, p, bins, height, width, t_start=None, t_end=None):
    x, y, tf, pol, t0, t1 = _ref_select(x, y, t, p, height, width, t_start, t_end)
    acc = np.zeros((bins, height, width))
    np.add.at(acc, (_ref_bins(tf, t0, t1, bins), y, x), pol)
    return np.sign(acc)


def ref_counts(x, y, t, p, bins, height, width, t_start=None, t_end=None):
    x, y, tf, pol, t0, t1 = _ref_select(x, y, t, p, height, width, t_start, t_end)
    counts = np.zeros((bins, 2, height, width))
    np.add.at(counts, (_ref_bins(tf, t0, t1, bins), (pol > 0).astype(np.int64), y, x), 1.0)
    return counts


def ref_spikes(*args, **kwargs):
    return (ref_counts(*args, **kwargs) > 0).astype(np.float64)


PAIRS = {
    "voxel_grid": (voxel_grid, ref_voxel),
    "sbt": (sbt, ref_sbt),
    "event_counts": (event_counts, ref_counts),
    "spike_tensor": (spike_tensor, ref_spikes),
}


def check(name, x, y, t, p, bins, height, width, t_start=None, t_end=None):
    """Compare one representation with its reference; returns ours."""
    fn, ref = PAIRS[name]
    ours = fn(x, y, t, p, bins, height, width, t_start=t_start, t_end=t_end)
    expected = ref(x, y, t, p, bins, height, width, t_start, t_end)
    assert ours.dtype == np.float32
    assert ours.shape == expected.shape
    if name == "voxel_grid":  # float32 accumulation in another order
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-4)
    else:
        np.testing.assert_array_equal(ours, expected)
    return ours


def random_events(seed, n=20_000, height=40, width=50, t_range=(1_000, 51_000), outliers=True):
    """Sorted random events with repeated timestamps and (optionally) out-of-image pixels."""
    rng = np.random.default_rng(seed)
    lo = -3 if outliers else 0
    x = rng.integers(lo, width + (3 if outliers else 0), n).astype(np.int16)
    y = rng.integers(lo, height + (3 if outliers else 0), n).astype(np.int16)
    t = np.sort(rng.integers(*t_range, n)).astype(np.int64)
    p = rng.choice(np.array([-1, 1], np.int8), n)
    return x, y, t, p


# --------------------------------------------------------------------------------------------
# random events
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PAIRS))
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("bins", [1, 5, 10])
def test_random_events_match_reference(name, seed, bins):
    x, y, t, p = random_events(seed)
    check(name, x, y, t, p, bins, 40, 50)  # default bounds: first and last event
    # explicit bounds cutting both ends: events outside [t_start, t_end] are ignored
    check(name, x, y, t, p, bins, 40, 50, t_start=int(t[500]), t_end=int(t[-700]))
    # bounds wider than the events, as a stereo sample's window (t - 50 ms, t]
    check(name, x, y, t, p, bins, 40, 50, t_start=0, t_end=60_000)


@pytest.mark.parametrize("name", list(PAIRS))
def test_unsorted_events_and_float_bounds(name):
    x, y, t, p = random_events(7)
    order = np.random.default_rng(7).permutation(len(t))
    x, y, t, p = x[order], y[order], t[order], p[order]
    check(name, x, y, t, p, 5, 40, 50)  # default bounds t[0], t[-1] drop what lies outside
    check(name, x, y, t, p, 5, 40, 50, t_start=900.5, t_end=51_000.25)


@pytest.mark.parametrize("name", list(PAIRS))
def test_other_dtypes(name):
    x, y, t, p = random_events(3)
    inside = (x >= 0) & (y >= 0)
    xu, yu = x[inside].astype(np.uint16), y[inside].astype(np.uint16)
    tu, pu = t[inside], p[inside]
    cases = [
        (x.astype(np.int32), y.astype(np.int64), t.astype(np.float64), p.astype(np.float32)),
        (xu, yu, tu.astype(np.uint64), (pu > 0)),  # aedat-like: unsigned, bool polarity
        (x.astype(np.int8), y.astype(np.int8), t.astype(np.int32), p.astype(np.int64)),
        (x.astype(np.int16), y.astype(np.int16), (t * 1e-6), p),  # seconds as float
    ]
    for cx, cy, ct, cp in cases:
        check(name, cx, cy, ct, cp, 5, 40, 50)
        check(name, list(cx), list(cy), list(ct), list(cp), 3, 40, 50)  # plain lists


@pytest.mark.parametrize("name", list(PAIRS))
def test_polarity_zero_one_equals_minus_one_plus_one(name):
    fn = PAIRS[name][0]
    x, y, t, p = random_events(4)
    pm = fn(x, y, t, p, 5, 40, 50)
    p01 = (p > 0).astype(np.uint8)
    np.testing.assert_array_equal(fn(x, y, t, p01, 5, 40, 50), pm)
    np.testing.assert_array_equal(fn(x, y, t, p01.astype(bool), 5, 40, 50), pm)
    check(name, x, y, t, p01, 5, 40, 50)


@pytest.mark.parametrize("name", list(PAIRS))
def test_empty_input_gives_zeros(name):
    fn = PAIRS[name][0]
    e = np.zeros(0, np.int16)
    shape = (4, 30, 20) if name in ("voxel_grid", "sbt") else (4, 2, 30, 20)
    for bounds in [(None, None), (0, 1000), (5, 5)]:
        out = fn(e, e, np.zeros(0, np.int64), np.zeros(0, np.int8), 4, 30, 20, *bounds)
        assert out.shape == shape and out.dtype == np.float32 and not out.any()
    out = fn([], [], [], [], 4, 30, 20)  # untyped empty lists
    assert out.shape == shape and not out.any()


@pytest.mark.parametrize("name", list(PAIRS))
def test_single_event_and_same_timestamp(name):
    fn = PAIRS[name][0]
    # one event: t_start == t_end == t, no division by zero, everything in bin 0
    one = fn(np.array([3], np.int16), np.array([2], np.int16), np.array([777]), np.array([1]), 5, 4, 6)
    assert np.isfinite(one).all()
    nz = np.argwhere(one)
    assert len(nz) == 1 and nz[0][0] == 0 and one[tuple(nz[0])] == 1.0
    check(name, [3], [2], [777], [0], 5, 4, 6)
    # many events at one timestamp
    x, y, _, p = random_events(5, n=3000)
    t = np.full(len(x), 123_456, np.int64)
    out = check(name, x, y, t, p, 5, 40, 50)
    assert not out[1:].any()
    check(name, x, y, t, p, 5, 40, 50, t_start=123_456, t_end=123_456)
    # t_end < t_start keeps nothing
    assert not fn(x, y, t, p, 5, 40, 50, t_start=200_000, t_end=100_000).any()


def test_events_exactly_at_window_ends():
    bins, t0, t1 = 5, 1000, 6000
    x = np.array([1, 2, 3, 4], np.int16)
    y = np.array([0, 0, 1, 1], np.int16)
    t = np.array([t0, t0, t1, t1], np.int64)
    p = np.array([1, -1, 1, 0], np.int8)
    vg = voxel_grid(x, y, t, p, bins, 2, 5, t0, t1)
    # full weight: t_start in bin 0, t_end in bin bins-1, nothing in between
    assert vg[0, 0, 1] == 1.0 and vg[0, 0, 2] == -1.0
    assert vg[bins - 1, 1, 3] == 1.0 and vg[bins - 1, 1, 4] == -1.0
    assert np.abs(vg).sum() == 4.0
    s = sbt(x, y, t, p, bins, 2, 5, t0, t1)
    assert s[0, 0, 1] == 1 and s[0, 0, 2] == -1 and s[bins - 1, 1, 3] == 1 and s[bins - 1, 1, 4] == -1
    c = event_counts(x, y, t, p, bins, 2, 5, t0, t1)
    assert c[0, 1, 0, 1] == 1 and c[0, 0, 0, 2] == 1
    assert c[bins - 1, 1, 1, 3] == 1 and c[bins - 1, 0, 1, 4] == 1
    assert c.sum() == 4
    # the sub-window boundaries: t0 + k * (t1 - t0) / bins opens sub-window k
    tb = t0 + np.arange(bins) * (t1 - t0) // bins
    zero = np.zeros(bins, np.int16)
    c = event_counts(zero, zero, tb, np.ones(bins), bins, 1, 1, t0, t1)
    np.testing.assert_array_equal(c[:, 1, 0, 0], np.ones(bins))
    for name in PAIRS:
        check(name, x, y, t, p, bins, 2, 5, t0, t1)
        check(name, x, y, t, p, bins, 2, 5)


@pytest.mark.parametrize("name", list(PAIRS))
def test_out_of_image_and_out_of_window_events_are_ignored(name):
    fn = PAIRS[name][0]
    x = np.array([-1, 5, 0, 4, 32767, -32768, 2], np.int16)
    y = np.array([0, 0, -1, 3, 1, 1, 1], np.int16)  # image 3 x 5: only the last event is inside
    t = np.array([10, 11, 12, 13, 14, 15, 16], np.int64)
    p = np.ones(7, np.int8)
    out = check(name, x, y, t, p, 2, 3, 5, t_start=10, t_end=20)
    assert np.count_nonzero(out.any(axis=0)) == 1  # one pixel (voxel: over two bins)
    big = np.array([10**12, -(10**12)], np.int64)
    assert not fn(big, big, [1, 2], [1, 1], 2, 3, 5).any()
    # timestamps outside the bounds, and NaN timestamps, are ignored
    tf = np.array([5.0, np.nan, 25.0, 15.0])
    out = check(name, [0, 1, 2, 3], [0, 0, 0, 0], tf, [1, 1, 1, 1], 2, 3, 5, t_start=10, t_end=20)
    assert np.count_nonzero(out.any(axis=0)) == 1  # one pixel (voxel: over two bins)


def test_inputs_are_not_modified():
    x, y, t, p = random_events(6)
    p01 = (p > 0).astype(np.int8)
    copies = [a.copy() for a in (x, y, t, p01)]
    for name, (fn, _) in PAIRS.items():
        fn(x, y, t, p01, 5, 40, 50)
    for a, b in zip((x, y, t, p01), copies):
        np.testing.assert_array_equal(a, b)


def test_bad_arguments_raise_value_error():
    x, y, t, p = random_events(0, n=10)
    with pytest.raises(ValueError, match="same length"):
        voxel_grid(x, y[:5], t, p, 5, 40, 50)
    with pytest.raises(ValueError, match=">= 1"):
        sbt(x, y, t, p, 0, 40, 50)
    with pytest.raises(ValueError, match="integer"):
        event_counts(x.astype(float), y, t, p, 5, 40, 50)
    with pytest.raises(ValueError, match="finite"):
        spike_tensor(x, y, t, p, 5, 40, 50, t_start=float("nan"))


def test_spikes_are_binary_counts_and_sbt_is_sign_of_count_difference():
    x, y, t, p = random_events(8)
    c = event_counts(x, y, t, p, 5, 40, 50)
    s = spike_tensor(x, y, t, p, 5, 40, 50)
    assert set(np.unique(s)) <= {0.0, 1.0}
    np.testing.assert_array_equal(s, (c > 0).astype(np.float32))
    np.testing.assert_array_equal(sbt(x, y, t, p, 5, 40, 50), np.sign(c[:, 1] - c[:, 0]))


# --------------------------------------------------------------------------------------------
# conservation, against tonic
# --------------------------------------------------------------------------------------------


def test_voxel_grid_conserves_weight_and_tonic_does_not():
    tonic_functional = pytest.importorskip("tonic.functional")
    bins, height, width = 5, 40, 50
    for seed in range(3):
        x, y, t, p = random_events(seed, n=50_000)
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        # total weight = sum of polarities of in-window, in-image events
        vg = voxel_grid(x, y, t, p, bins, height, width)
        assert np.isclose(vg.sum(dtype=np.float64), p[inside].sum(dtype=np.int64), atol=1e-2)
        t0, t1 = int(t[3000]), int(t[-3000])
        keep = inside & (t >= t0) & (t <= t1)
        vg = voxel_grid(x, y, t, p, bins, height, width, t0, t1)
        assert np.isclose(vg.sum(dtype=np.float64), p[keep].sum(dtype=np.int64), atol=1e-2)

        # all-positive events, so that the sums measure the weight and not +-1 cancellation
        x, y, t = x[inside], y[inside], t[inside]
        ones = np.ones(len(t), np.int8)
        ours = voxel_grid(x, y, t, ones, bins, height, width)
        assert np.isclose(ours.sum(dtype=np.float64), len(t), rtol=1e-6)
        ev = np.zeros(len(t), dtype=[("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])
        ev["x"], ev["y"], ev["t"], ev["p"] = x, y, t, ones
        theirs = tonic_functional.to_voxel_grid_numpy(ev, (width, height, 2), bins)
        lost = 1 - theirs.sum() / len(t)
        # tonic scales by bins, not bins - 1: it drops the right part of the events of the last
        # 1/bins of the window, about 1/(2 bins) of the weight (0.1 for 5 bins)
        assert abs(lost - 1 / (2 * bins)) < 0.01


# --------------------------------------------------------------------------------------------
# real recordings
# --------------------------------------------------------------------------------------------


def _load_pendulum():
    if not DVS128_NPZ.exists():
        pytest.skip(f"{DVS128_NPZ} is missing")
    data = np.load(DVS128_NPZ)
    return data["left"], data["right"]


@pytest.mark.parametrize("name", list(PAIRS))
def test_real_dvs128_stereo_pair(name):
    left, right = _load_pendulum()
    cams = {}
    for cam, ev in (("left", left), ("right", right)):
        t, x, y, p = ev[:, 0], ev[:, 1], ev[:, 2], ev[:, 3]
        cams[cam] = (x, y, t, p)
    # whole recording, 10 bins, the right camera's rows shifted from 4..131 to 0..127
    xr, yr, tr, pr = cams["right"]
    check(name, xr, yr - 4, tr, pr, 10, 128, 128)
    # unshifted: rows 128..131 are outside the 128 x 128 image and are ignored
    check(name, xr, yr, tr, pr, 10, 128, 128)
    # a 50 ms stereo sample: both cameras share the bounds (t - 50 ms, t]
    for t_end in (50_000, 6_000_000, 13_600_000):
        t_start = t_end - 50_000
        for cam in ("left", "right"):
            x, y, t, p = cams[cam]
            i0, i1 = np.searchsorted(t, [t_start, t_end], side="right")
            sl = slice(max(i0 - 1, 0), i1)  # one extra event at or before t_start
            yy = y[sl] - 4 if cam == "right" else y[sl]
            xs, ys = x[sl].astype(np.int16), yy.astype(np.int16)
            check(name, xs, ys, t[sl], p[sl], 5, 128, 128, t_start, t_end)


def _load_aedat_events():
    aedat = pytest.importorskip("aedat")
    if not DAVIS_AEDAT4.exists():
        pytest.skip(f"{DAVIS_AEDAT4} is missing")
    packets = [pk["events"] for pk in aedat.Decoder(str(DAVIS_AEDAT4)) if "events" in pk]
    return np.concatenate(packets)


@pytest.mark.parametrize("name", list(PAIRS))
def test_real_davis346_aedat4(name):
    ev = _load_aedat_events()
    assert len(ev) > 1000
    # the decoder's own dtypes: t uint64, x/y uint16 (strided fields), p bool
    x, y, t, p = ev["x"], ev["y"], ev["t"], ev["p"]
    check(name, x, y, t, p, 5, 260, 346)
    tm = int(t[len(t) // 2])
    check(name, x, y, t, p, 3, 260, 346, t_start=tm - 5_000, t_end=tm + 5_000)
    # the same through the canonical dtypes
    pm = np.where(p, 1, -1).astype(np.int8)
    check(name, x.astype(np.int16), y.astype(np.int16), t.astype(np.int64), pm, 5, 260, 346)
