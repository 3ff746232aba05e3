"""The simulator's sensor presets, sensor and calibration realism, and randomised mode."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from evstereo.geometry import CAMERAS
from evstereo.recordings import open_recording
from evstereo.simulation import SENSORS, OptionError, SynthOptions, resolve_options, synthesize
from evstereo.simulation.event_sim import SHOT_NOISE_I0, EventSensor, SensorParams
from evstereo.simulation.recorder import T_START_S
from evstereo.simulation.rigs import FB_RANGE, PRESETS, build_rig, draw_rig, fov_of_focal

H, W = 40, 50  # the pixel-model tests' sensor


# --- the pixel model ---------------------------------------------------------------------------
def _run(params: SensorParams, frames, step_us: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Feed ``frames(k)`` (log intensity, (H*W,)) for k < ``frames.n``, one every ``step_us``,
    in calls of 10 frames; return all events (flushed), concatenated."""
    sensor = EventSensor(H, W, params, np.random.default_rng(seed))
    sensor.start(frames(0), 0)
    out = []
    for k in range(1, frames.n, 10):
        ks = np.arange(k, min(k + 10, frames.n))
        out.append(sensor.advance(np.stack([frames(i) for i in ks]), ks * step_us))
    out.append(sensor.flush())
    return tuple(np.concatenate(a) for a in zip(*out))


class Static:
    """``n`` frames of a still image: the left half ``bright``, the right half ``dark``."""

    def __init__(self, n: int, bright: float = 0.8, dark: float = 0.8, eps: float = 0.01):
        img = np.full((H, W), bright, np.float32)
        img[:, W // 2:] = dark
        self.log = np.log(img.ravel() + np.float32(eps)).astype(np.float32)
        self.n = n

    def __call__(self, k: int) -> np.ndarray:
        return self.log


QUIET = dict(noise_rate_hz=0.0, threshold_sigma=0.0)


def test_hot_pixels_fire_at_their_rate_at_fixed_pixels():
    params = SensorParams(hot_pixel_fraction=0.01, hot_pixel_rate_hz=500.0, **QUIET)
    x, y, t, p = _run(params, Static(201), 5000)  # 1 s of a still scene: only hot pixels fire
    sensor = EventSensor(H, W, params, np.random.default_rng(0))
    assert len(sensor.hot_pixels) == round(0.01 * H * W)
    pix = y.astype(np.int64) * W + x
    fired, counts = np.unique(pix, return_counts=True)
    np.testing.assert_array_equal(fired, sensor.hot_pixels)
    assert np.all(np.abs(counts - 500) < 5 * np.sqrt(500)), counts
    assert abs(counts.mean() - 500) < 3 * np.sqrt(500 / len(counts))
    for i in fired:  # one polarity per hot pixel
        assert len(np.unique(p[pix == i])) == 1
    assert np.all(np.diff(t) >= 0)


def test_leak_fires_on_events_on_a_static_scene():
    x, y, t, p = _run(SensorParams(threshold=0.2, leak_rate_hz=2.0, **QUIET), Static(401), 5000)  # 2 s
    assert np.all(p == 1), "leak moves the reference down: ON events only"
    rate = np.sum(t > 1_000_000) / (H * W) / 1.0  # the second second: the start's transient is over
    assert 1.8 < rate < 2.2, rate
    assert len(np.unique(y.astype(np.int64) * W + x)) > 0.95 * H * W
    quiet = _run(SensorParams(threshold=0.2, **QUIET), Static(201), 5000)
    assert len(quiet[2]) == 0


class Step(Static):
    """The log intensity of every pixel rises by 0.6 during the first step, then holds."""

    def __init__(self, n: int, bright: float, dark: float, eps: float = 0.01):
        super().__init__(n, bright, dark, eps)
        img = np.exp(self.log) - eps
        self.after = np.log(img * np.exp(0.6) + eps).astype(np.float32)

    def __call__(self, k: int) -> np.ndarray:
        return self.log if k == 0 else self.after


def _first_event_us(events, bright: bool) -> np.ndarray:
    x, y, t, p = events
    half = x < W // 2 if bright else x >= W // 2
    pix = y[half].astype(np.int64) * W + x[half]
    first = np.full(H * W, np.nan)
    np.fmin.at(first, pix, t[half].astype(float))
    return first[np.isfinite(first)]


def test_bandwidth_delays_events_in_the_dark():
    frames = Step(101, bright=0.8, dark=0.02)  # 100 ms at 1 ms per render
    lag = _run(SensorParams(threshold=0.25, bandwidth_hz=200.0, **QUIET), frames, 1000)
    fast = _run(SensorParams(threshold=0.25, **QUIET), frames, 1000)
    bright, dark = _first_event_us(lag, True), _first_event_us(lag, False)
    assert len(bright) == len(dark) == H * W // 2, "the lag delays events, it does not lose them"
    # tau = 1 / (2 pi fc): 0.8 ms in the light (fc 200 Hz), ~20 ms at 4 % of it
    assert np.mean(bright) < 2000 and np.mean(dark) > 5000 and np.mean(dark) > 8 * np.mean(bright)
    assert np.mean(_first_event_us(fast, True)) < 1000 and np.mean(_first_event_us(fast, False)) < 1000


def test_shot_noise_gathers_in_the_dark():
    rate_hz = 5.0
    x, y, t, p = _run(SensorParams(shot_noise_rate_hz=rate_hz, **QUIET), Static(101, bright=1.0, dark=0.0),
                      20000)  # 2 s
    n_half = H * W // 2
    dark = np.sum(x >= W // 2) / n_half / 2.0
    bright = np.sum(x < W // 2) / n_half / 2.0
    assert dark == pytest.approx(rate_hz, rel=0.1)
    assert bright == pytest.approx(rate_hz * SHOT_NOISE_I0 / (1.0 + SHOT_NOISE_I0), rel=0.3)
    assert set(np.unique(p)) == {-1, 1}


class Drift:
    """``n`` frames of a sinusoidal pattern sliding sideways: events everywhere, all the time."""

    def __init__(self, n: int):
        self.n = n
        self.xx = np.tile(np.arange(W, dtype=np.float64), H) + np.repeat(np.arange(H), W) * 0.37

    def __call__(self, k: int) -> np.ndarray:
        return (np.sin((self.xx - 0.3 * k) * 0.7) * 1.2).astype(np.float32)


def test_timestamp_jitter_keeps_order_and_moves_by_sigma():
    sigma = 20.0
    base = dict(threshold=0.25, refractory_us=200, **QUIET)
    plain = _run(SensorParams(**base), Drift(61), 1000)
    jit = _run(SensorParams(timestamp_jitter_us=sigma, **base), Drift(61), 1000)
    assert len(plain[2]) > 10000 and len(jit[2]) == len(plain[2]), "jitter moves events, it loses none"
    assert np.all(np.diff(jit[2]) >= 0), "sorted across steps too"
    # Same events (jitter draws come from another stream); per pixel the order is kept since
    # jitter is clipped at 4 sigma, less than the refractory period.
    order = [np.lexsort((e[2], e[3], e[1].astype(np.int64) * W + e[0])) for e in (plain, jit)]
    for i in (0, 1, 3):
        np.testing.assert_array_equal(plain[i][order[0]], jit[i][order[1]])
    d = jit[2][order[1]] - plain[2][order[0]]
    assert abs(d.mean()) < 1.0 and 0.9 * sigma < d.std() < 1.1 * sigma and np.abs(d).max() <= 4 * sigma


def test_latency_shifts_every_timestamp():
    plain = _run(SensorParams(**QUIET), Drift(31), 1000)
    late = _run(SensorParams(latency_us=1234.0, **QUIET), Drift(31), 1000)
    np.testing.assert_array_equal(late[2] - 1234, plain[2])
    for i in (0, 1, 3):
        np.testing.assert_array_equal(late[i], plain[i])


def test_realism_draws_leave_the_other_draws_alone():
    """Hot pixels (and the other extras) draw from their own stream: the signal and background
    events of a camera do not change when they are switched on."""
    base = dict(noise_rate_hz=50.0)
    plain = _run(SensorParams(**base), Drift(31), 1000)
    hot = _run(SensorParams(hot_pixel_fraction=0.01, hot_pixel_rate_hz=300.0, **base), Drift(31), 1000)
    sensor = EventSensor(H, W, SensorParams(hot_pixel_fraction=0.01), np.random.default_rng(0))
    keep = ~np.isin(hot[1].astype(np.int64) * W + hot[0], sensor.hot_pixels)
    keep_plain = ~np.isin(plain[1].astype(np.int64) * W + plain[0], sensor.hot_pixels)
    for i in range(4):
        np.testing.assert_array_equal(hot[i][keep], plain[i][keep_plain])


# --- rigs and recordings -----------------------------------------------------------------------
@pytest.mark.parametrize("sensor", ["dvs128", "davis240", "davis346", "dsec"])
def test_each_preset_writes_a_readable_rectified_pair(tmp_path, sensor):
    p = PRESETS[sensor]
    focal = 250.0 if sensor == "davis346" else None  # davis346 nominal is MVSEC (test_synth covers it)
    info = synthesize(tmp_path, "r", 0.06, seed=1, sensor=sensor, focal_px=focal, speed=0.5, max_step_px=2.0)
    f = focal or p.focal_px
    with open_recording(info["data"]) as rec:
        assert rec.sensor_size == (p.height, p.width)
        assert rec.calibration.focal == pytest.approx(f) and rec.fB == pytest.approx(f * p.baseline_m)
        assert rec.calibration.left.distortion_model == "none"
        disp = rec.disparity(0)
        assert disp.shape == (p.height, p.width)
        d = disp[np.isfinite(disp)]
        assert d.size > 0.9 * disp.size
        # disparity = f B / Z over the rooms' depths (~0.6-10 m)
        assert d.min() >= rec.fB / 10.5 and d.max() <= rec.fB / 0.5
        assert np.percentile(d, 95) > 1.5 * np.percentile(d, 5)
        shift = rec.stereo_shift(window_us=30000)
        assert shift["clear"] and np.percentile(d, 5) - 1.5 <= shift["shift_px"] <= np.percentile(d, 95) + 1.5, shift
    assert info["rig"]["sensor"] == sensor and info["rig"]["fB"] == pytest.approx(f * p.baseline_m, rel=1e-4)


def test_davis346_default_is_the_mvsec_rig_and_random_rigs_keep_fb_in_range():
    opt, calib, record = resolve_options(0, {})
    assert opt == SynthOptions() and record["drawn"] == [] and calib.fB == pytest.approx(19.9418, abs=1e-4)
    assert calib.left.distortion_model == "equidistant"
    rng = np.random.default_rng(0)
    names = set()
    for _ in range(300):
        name, f, b = draw_rig(rng, "random")
        names.add(name)
        if f is None:
            assert name == "davis346" and b is None
            continue
        width = PRESETS[name].width
        assert 49.9 <= fov_of_focal(width, f) <= 90.1
        assert FB_RANGE[0] * 0.999 <= f * b <= FB_RANGE[1] * 1.001
        lo, hi = PRESETS[name].baseline_range_m
        assert lo * 0.999 <= b <= hi * 1.001
    assert names == set(SENSORS)
    assert build_rig("dvs128", 100.0, 0.2).T_right_left[0, 3] == pytest.approx(-0.2)


@pytest.fixture(scope="module")
def pair_runs(tmp_path_factory):
    """dvs128, 0.15 s, seed 4: plain, and with a 2 px row residual plus a 2.5 ms right latency."""
    root = tmp_path_factory.mktemp("realism")
    runs = {}
    for key, extra in (("plain", {}), ("off", {"rectification_residual_px": 2.0, "latency_us": (0.0, 2500.0)})):
        info = synthesize(root / key, "r", 0.15, 4, sensor="dvs128", **extra)
        with h5py.File(info["data"], "r") as f, h5py.File(info["gt"], "r") as g:
            runs[key] = {"info": info, "events": {c: f[f"davis/{c}/events"][:] for c in CAMERAS},
                         "gt": {k: g[k][:] for k in ("davis/left/depth_image_rect", "davis/right/depth_image_rect",
                                                     "davis/right/depth_image_raw")}}
    return runs


def _image_shift(a: np.ndarray, b: np.ndarray, size: tuple[int, int], m: int = 4) -> tuple[int, int]:
    """The (dx, dy) that best maps the event image of ``a`` onto that of ``b``."""
    imgs = []
    for ev in (a, b):
        img = np.zeros(size)
        np.add.at(img, (ev[:, 1].astype(int), ev[:, 0].astype(int)), 1.0)
        imgs.append(img - img.mean())
    ia, ib = imgs
    h, w = size
    scores = {(dx, dy): float((ia[m:h - m, m:w - m] * ib[m + dy:h - m + dy, m + dx:w - m + dx]).sum())
              for dx in range(-m, m + 1) for dy in range(-m, m + 1)}
    return max(scores, key=scores.get)


def test_rectification_residual_and_latency_move_only_the_right_events(pair_runs):
    plain, off = pair_runs["plain"], pair_runs["off"]
    np.testing.assert_array_equal(off["events"]["left"], plain["events"]["left"])
    for k, v in plain["gt"].items():  # ground truth follows the written calibration
        np.testing.assert_array_equal(off["gt"][k], v)
    assert _image_shift(plain["events"]["right"], off["events"]["right"], (128, 128)) == (0, 2)
    assert off["info"]["rig"]["rectification_residual"]["rows_px"] == 2.0
    with open_recording(off["info"]["data"]) as rec:  # the file's calibration is the ideal rig
        assert rec.calibration.right.K[1, 2] == pytest.approx(63.5)
    # Latency: the right camera's stream starts 2.5 ms late (its first events come at once).
    assert plain["events"]["right"][0, 2] - T_START_S < 0.001
    assert 0.0025 <= off["events"]["right"][0, 2] - T_START_S < 0.0035
    assert off["info"]["cameras"]["right"]["latency_us"] == 2500.0 and off["info"]["cameras"]["left"]["latency_us"] == 0


# --- randomised mode ---------------------------------------------------------------------------
def test_randomised_draws_are_reproducible_and_differ_between_seeds():
    draws = [resolve_options(seed, {"randomize": True}) for seed in range(12)]
    again = resolve_options(5, {"randomize": True})
    assert again[0] == draws[5][0] and again[2] == draws[5][2]
    assert len({opt.sensor for opt, _, _ in draws}) >= 3
    assert len({rec["density"] for _, _, rec in draws}) >= 2
    for opt, calib, rec in draws:
        assert rec["randomized"] and "leak_rate_hz" in rec["drawn"]
        assert opt.hot_pixel_fraction > 0 and opt.bandwidth_hz > 0 and opt.latency_us[1] >= 0
        assert 0 <= opt.rectification_residual_deg <= 0.3 and abs(opt.rectification_residual_px) <= 1
        assert FB_RANGE[0] * 0.99 <= calib.fB <= FB_RANGE[1] * 1.01
    # An option given explicitly is kept, and changes nothing else that is drawn.
    fixed = resolve_options(5, {"randomize": True, "speed": 0.5})[0]
    assert fixed.speed == 0.5 and fixed.__class__(**{**vars(draws[5][0]), "speed": 0.5}) == fixed
    # The drawn options, passed back, are final: nothing is drawn again.
    assert resolve_options(9, vars(draws[5][0]))[0] == draws[5][0]


def test_randomised_recording_is_reproducible_and_says_what_it_models(tmp_path):
    runs = []
    for folder in ("a", "b"):
        info = synthesize(tmp_path / folder, "r", 0.1, seed=1, randomize=True, sensor="dvs128")
        with h5py.File(info["data"], "r") as f:
            runs.append((info, {c: f[f"davis/{c}/events"][:] for c in CAMERAS}, dict(f.attrs)))
    (info, ev, attrs), (_, ev2, attrs2) = runs
    for c in CAMERAS:
        np.testing.assert_array_equal(ev[c], ev2[c])
        assert len(ev[c]) > 0 and np.all(np.diff(ev[c][:, 2]) >= 0)
    assert attrs == attrs2
    stored = json.loads(attrs["options_json"])
    assert stored == json.loads(json.dumps(info["options"])) and stored["sensor"] == "dvs128"
    assert stored["randomize"] and stored["leak_rate_hz"] > 0 and stored["focal_px"] > 0
    assert json.loads(attrs["randomized_json"]) == info["randomized"]
    assert json.loads(attrs["rig_json"])["fB"] == pytest.approx(stored["focal_px"] * stored["baseline_m"], rel=1e-4)
    assert set(json.loads(attrs["cameras_json"])) == set(CAMERAS)
    assert SynthOptions(**stored) == resolve_options(1, {"randomize": True, "sensor": "dvs128"})[0]
    assert all(r > 0 for r in info["rate_mev_s"].values())


def test_sparse_settings_reach_tens_of_thousands_of_events_per_second(tmp_path):
    info = synthesize(tmp_path, "r", 0.1, seed=2, sensor="davis240", speed=0.08, threshold=0.6,
                      texture_contrast=0.3)
    assert all(r < 0.06 for r in info["rate_mev_s"].values()), info["rate_mev_s"]


# --- bad values and the command line -----------------------------------------------------------
@pytest.mark.parametrize("options, field", [
    ({"sensor": "vga"}, "sensor"), ({"hot_pixel_fraction": 1.5}, "hot_pixel_fraction"),
    ({"leak_rate_hz": -1.0}, "leak_rate_hz"), ({"latency_us": (0.0, -5.0)}, "latency_us"),
    ({"focal_px": 0.0}, "focal_px"), ({"bandwidth_hz": float("nan")}, "bandwidth_hz"),
    ({"rectification_residual_deg": 20.0}, "rectification_residual_deg"),
    ({"movers": ("car",)}, "movers"), ({"movers": -1}, "movers"), ({"movers": ()}, "movers")])
def test_bad_options_name_the_option(options, field):
    with pytest.raises(OptionError) as exc:
        resolve_options(0, options)
    assert exc.value.option == field


def test_command_line_flags(tmp_path, capsys):
    from data_tools.synth import _options, build_parser, main

    base = ["--out", str(tmp_path), "--name", "x", "--seconds", "0.05", "--seed", "1"]
    for argv, flag in ((["--hot-pixel-fraction", "2"], "--hot-pixel-fraction"),
                       (["--sensor", "vga"], "--sensor"), (["--latency-us", "0", "-3"], "--latency-us"),
                       (["--focal-px", "-1"], "--focal-px")):
        with pytest.raises(SystemExit) as exc:
            main([*base, *argv])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("python -m data_tools.synth: error:") and flag in err
    assert list(tmp_path.iterdir()) == []
    args = build_parser().parse_args([*base, "--sensor", "random", "--leak-rate", "0.5", "--latency-us", "0", "100",
                                      "--bandwidth", "300", "--randomize"])
    assert _options(args) == {"sensor": "random", "leak_rate_hz": 0.5, "latency_us": [0.0, 100.0],
                              "bandwidth_hz": 300.0, "randomize": True}
    assert _options(build_parser().parse_args(base)) == {}, "no flag given: the simulator's defaults"
    assert _options(build_parser().parse_args([*base, "--movers", "fan,pendulum"])) == {"movers": ("fan", "pendulum")}
    assert _options(build_parser().parse_args([*base, "--movers", "2"])) == {"movers": 2}
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--movers", "fan;rm"])


def test_movers_by_kind_are_the_ones_placed(tmp_path):
    info = synthesize(tmp_path, "fans", 0.1, 7, sensor="dvs128", movers=("fan", "pendulum"))
    assert sorted(m["kind"] for m in info["scene"]["movers"]) == ["fan", "pendulum"]


def test_moving_objects_make_events_and_moving_ground_truth(tmp_path):
    # A nearly still camera: without movers the scene hardly changes; with them events fire
    # and the ground truth follows the objects (Scene.at inside the recorder).
    common = dict(sensor="dvs128", speed=0.02, noise_rate_hz=0.0, thin=2, layout="room")
    still = synthesize(tmp_path, "still", 0.2, 4, **common)
    moving = synthesize(tmp_path, "moving", 0.2, 4, movers=3, **common)
    assert moving["scene"]["movers"] and not still["scene"]["movers"]
    assert sum(moving["events"].values()) > 3 * sum(still["events"].values()) + 1000
    with open_recording(moving["data"]) as rec:
        a, b = rec.depth(0), rec.depth(len(rec.gt_timestamps()) - 1)
    changed = np.isfinite(a) & np.isfinite(b) & (np.abs(a - b) > 0.05)
    assert changed.sum() > 20  # pixels where a mover came or went


def test_randomised_mode_draws_scene_content():
    drawn = [resolve_options(seed, {"randomize": True})[0] for seed in range(12)]
    assert {o.layout for o in drawn} == {"room", "outdoor"}
    assert any(o.movers > 0 for o in drawn) and any(o.thin > 0 for o in drawn)
    assert all(0 <= o.photo_textures <= 0.8 for o in drawn)
    with pytest.raises(OptionError, match="layout"):
        resolve_options(0, {"layout": "cave"})
