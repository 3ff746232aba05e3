"""Scene content of the simulator: defaults unchanged, thin structures, movers, outdoor, photos."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evstereo.simulation.movers import Pendulum, Spinner
from evstereo.simulation.photo_textures import PHOTOGRAPHS, make_periodic, make_photo_texture
from evstereo.simulation.raycast import BOX, RayBundle, render
from evstereo.simulation.scene import MIN_FEATURE_RAD, build_scene
from evstereo.simulation.textures import TEX_SIZE, make_texture

LO, HI = np.array([-0.6, -0.3, -0.4]), np.array([0.6, 0.3, 0.4])  # where the cameras can be
CLEARANCE = 0.35

# Fingerprints of build_scene(default_rng(0), LO, HI) and of one render, taken with the code
# before thin structures, movers, outdoor layouts and photo textures existed (the render with
# the kernels of that time): the default options must keep drawing exactly those scenes.
OLD_FINGERPRINT = {
    "room_lo": -6.63951379595, "room_hi": 12.9480270372, "room_tex": 22.8571428571, "sph": 12.2737788113,
    "sph_tex": 14.0, "box_c": 3.4447351394, "box_R": 0.728717028175, "box_h": 3.40721128734,
    "box_tex": 31.1428571429, "quad_c": 10.0222053142, "quad_e": -1.18463550352, "quad_h": 6.27393759003,
    "quad_tex": 41.4285714286, "atlas": 3523088.21954, "offsets": 3756041.14286, "texel": 0.477524108336,
    "light": -0.650409549275, "ambient": 0.35,
}
OLD_RENDER_SUMS = (1324.32764145, 11269.9691862)  # radiance, depth of the pinhole view below


def _fingerprint(arr) -> float:
    a = np.asarray(arr, np.float64).ravel()
    return float(np.sum(a * (1 + (np.arange(a.size) % 7) / 7)))  # order-sensitive


def _pinhole(w: int, h: int, f: float) -> RayBundle:
    v, u = np.mgrid[0:h, 0:w]
    return RayBundle.from_grid(np.dstack([(u - (w - 1) / 2) / f, (v - (h - 1) / 2) / f, np.ones((h, w))]))


def _look_at(origin: np.ndarray, target: np.ndarray) -> np.ndarray:
    """T_world_cam at ``origin`` with the optical axis through ``target`` (image y roughly down)."""
    z = (target - origin) / np.linalg.norm(target - origin)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, :3] = np.column_stack([x, np.cross(z, x), z])
    T[:3, 3] = origin
    return T


def _surface_points(s, n: int = 5) -> np.ndarray:
    """Points on every box face (n x n grid), sphere (axis points) and quad corner of a scene."""
    g = np.linspace(-1, 1, n)
    a, b = np.meshgrid(g, g)
    faces = []
    for ax in range(3):
        for sign in (-1, 1):
            p = np.zeros((n * n, 3))
            p[:, ax] = sign
            p[:, (ax + 1) % 3], p[:, (ax + 2) % 3] = a.ravel(), b.ravel()
            faces.append(p)
    unit = np.concatenate(faces)
    box = s.box_c[:, None] + np.einsum("bij,bkj->bki", s.box_R, unit[None] * s.box_h[:, None])
    axes = np.concatenate([np.eye(3), -np.eye(3)])
    sph = s.sph[:, None, :3] + s.sph[:, 3, None, None] * np.einsum("bij,kj->bki", s.sph_R, axes)
    corners = np.array([[x, y] for x in (-1, 1) for y in (-1, 1)], np.float64)
    quad = (s.quad_c[:, None] + np.einsum("bk,bi->bki", corners[None, :, 0] * s.quad_h[:, :1], s.quad_e[:, 0])
            + np.einsum("bk,bi->bki", corners[None, :, 1] * s.quad_h[:, 1:], s.quad_e[:, 1]))
    return np.concatenate([box.reshape(-1, 3), sph.reshape(-1, 3), quad.reshape(-1, 3)])


def _reach_distance(p: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.maximum(0.0, np.maximum(LO - p, p - HI)), axis=-1)


@pytest.fixture(scope="module")
def busy_room():
    return build_scene(np.random.default_rng(1), LO, HI, thin=16,
                       movers=["fan", "pendulum", "walker", "crossing", "fan", "crossing"])


@pytest.fixture(scope="module")
def street():
    return build_scene(np.random.default_rng(2), LO, HI, layout="outdoor", thin=4,
                       movers=["car", "walker", "crossing", "car"])


# --- defaults ------------------------------------------------------------------------------


def test_default_options_draw_the_old_scenes():
    scene = build_scene(np.random.default_rng(0), LO, HI)
    for field, value in OLD_FINGERPRINT.items():
        assert _fingerprint(getattr(scene, field)) == pytest.approx(value, rel=1e-9, abs=1e-9), field
    assert np.array_equal(scene.sph_R, np.tile(np.eye(3), (len(scene.sph), 1, 1)))
    assert not scene.room_emit.any() and scene.min_cos == 0.2
    T = np.eye(4)
    T[:3, 3] = [0.3, 0.1, 0.2]
    rad, depth = render(scene, _pinhole(80, 60, 50.0), T)
    assert rad.astype(np.float64).sum() == pytest.approx(OLD_RENDER_SUMS[0], rel=1e-6)
    assert depth.sum() == pytest.approx(OLD_RENDER_SUMS[1], rel=1e-9)
    assert scene.at(3.0) is scene and scene.max_mover_speed == 0.0 and scene.motion is None
    info = scene.describe()
    assert info["movers"] == [] and info["layout"] == "room" and info["thin_objects"] == 0


def test_same_generator_same_scene(busy_room):
    again = build_scene(np.random.default_rng(1), LO, HI, thin=16,
                        movers=["fan", "pendulum", "walker", "crossing", "fan", "crossing"])
    for a, b in zip(busy_room.at(0.7), again.at(0.7)):
        assert np.array_equal(a, b)
    other = build_scene(np.random.default_rng(3), LO, HI, thin=16, movers=2)
    assert len(other.box_c) != len(busy_room.box_c) or not np.array_equal(other.box_c, busy_room.box_c)
    json.dumps(busy_room.describe())  # metadata must serialise


def test_bad_options_say_what_is_wrong():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="layout"):
        build_scene(rng, LO, HI, layout="forest")
    with pytest.raises(ValueError, match="photo_textures"):
        build_scene(rng, LO, HI, photo_textures=1.5)
    with pytest.raises(ValueError, match="movers"):
        build_scene(rng, LO, HI, movers=["car"])  # no cars indoors


# --- movers --------------------------------------------------------------------------------


def test_at_is_pure_and_moves_only_movers(busy_room):
    s0 = busy_room.box_c.copy()
    a, b = busy_room.at(0.37), busy_room.at(0.37)
    assert np.array_equal(busy_room.box_c, s0)  # the scene itself is not changed
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(np.array_equal(x, y) for x, y in zip(busy_room.at(0.0), busy_room))
    moving = np.zeros(len(s0), bool)
    for mover, rows in zip(busy_room.motion.movers, busy_room.motion.rows):
        for row, part in zip(rows, mover.parts):
            if part.kind == BOX and part.link > 0:
                moving[row] = True
    changed = np.any(a.box_c != s0, axis=1) | np.any(a.box_R != busy_room.box_R, axis=(1, 2))
    assert changed[moving].all() and not changed[~moving].any()
    assert [m["kind"] for m in busy_room.describe()["movers"]] == \
        ["fan", "pendulum", "walker", "crossing", "fan", "crossing"]


def test_fan_blades_turn_by_the_expected_angle(busy_room):
    i, fan = next((i, m) for i, m in enumerate(busy_room.motion.movers) if isinstance(m, Spinner))
    blades = [row for row, p in zip(busy_room.motion.rows[i], fan.parts) if p.material == 1]
    assert len(blades) >= 2 and 0.5 <= abs(fan.rev_s) <= 4.0
    t = 0.1 / abs(fan.rev_s)  # a tenth of a turn
    a = 2 * np.pi * fan.rev_s * t
    c, s = np.cos(a), np.sin(a)
    turn = fan.frame @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ fan.frame.T  # about the fan's axis
    hub = fan.origin + fan.frame @ fan.hub
    s0, s1 = busy_room, busy_room.at(t)
    for row in blades:
        np.testing.assert_allclose(s1.box_R[row], turn @ s0.box_R[row], atol=1e-9)
        np.testing.assert_allclose(s1.box_c[row] - hub, turn @ (s0.box_c[row] - hub), atol=1e-9)
    full = busy_room.at(1.0 / abs(fan.rev_s))  # one whole turn later
    np.testing.assert_allclose(full.box_R[blades], s0.box_R[blades], atol=1e-9)


def test_pendulum_depth_follows_the_swing():
    scene = build_scene(np.random.default_rng(9), LO, HI, movers=["pendulum"])  # a seed with a clear view
    (pend,) = scene.motion.movers
    assert isinstance(pend, Pendulum)
    bob = pend.parts[-1]
    L, r = float(bob.c[1]), float(bob.size[0])
    # The physical period of a pendulum of this length (first large-amplitude correction).
    assert pend.period == pytest.approx(2 * np.pi * np.sqrt(L / 9.81) * (1 + pend.amplitude**2 / 16), rel=0.01)

    def bob_centre(t: float) -> np.ndarray:  # from the parameters, not from the mover's code
        th = pend.amplitude * np.sin(pend.omega * t + pend.phase)
        return pend.origin + pend.frame @ (pend.pivot + L * np.array([-np.sin(th), np.cos(th), 0.0]))

    eye = np.clip(bob_centre(0.0), LO, HI)  # the camera position nearest to the bob
    bundle = _pinhole(65, 65, 64.0)
    centre = 32 * 65 + 32
    times = np.linspace(0, pend.period, 9)
    for t in times:  # aimed at the bob: the depth is its distance less its radius
        C = bob_centre(t)
        _, depth = render(scene.at(t), bundle, _look_at(eye, C), with_radiance=False)
        assert depth[centre] == pytest.approx(np.linalg.norm(C - eye) - r, abs=1e-6)
    T = _look_at(eye, bob_centre(0.0))  # a fixed camera: the bob slides through its centre ray
    d = T[:3, 2]
    seen = []
    for t in times:
        _, depth = render(scene.at(t), bundle, T, with_radiance=False)
        oc = bob_centre(t) - eye
        miss2 = oc @ oc - (oc @ d) ** 2
        if miss2 < (0.9 * r) ** 2:  # the analytic ray-sphere hit
            assert depth[centre] == pytest.approx(oc @ d - np.sqrt(r * r - miss2), abs=1e-6)
        seen.append(depth[centre])
    assert np.ptp(seen) > 1e-3


def test_max_mover_speed_bounds_measured_motion(busy_room, street):
    for scene in (busy_room, street):
        v = scene.max_mover_speed
        assert 0.0 < v < 40.0
        dt, fastest = 1e-4, 0.0
        for t in np.linspace(0.0, 3.0, 31):
            step = np.linalg.norm(_surface_points(scene.at(t + dt), 3) - _surface_points(scene.at(t), 3), axis=1)
            fastest = max(fastest, step.max() / dt)
        assert fastest <= v * (1 + 1e-6)
        assert fastest >= 0.4 * v  # and it is a useful bound, not a wild one
    for mover in busy_room.motion.movers:
        assert mover.max_speed <= busy_room.max_mover_speed


def test_movers_never_come_near_the_cameras(busy_room, street):
    for scene in (busy_room, street):
        periods = [m.period for m in scene.motion.movers]
        for t in np.linspace(0.0, min(max(periods), 60.0), 97):
            # Surface points 5 per side: at most ~0.09 m apart on these objects.
            assert _reach_distance(_surface_points(scene.at(t))).min() >= CLEARANCE - 0.1


# --- thin structures -----------------------------------------------------------------------


def test_thin_objects_are_never_thinner_than_a_pixel(busy_room):
    h = np.sort(busy_room.box_h, axis=1)
    thin = h[:, 2] > 8 * h[:, 1]  # poles, wires and blades
    assert busy_room.describe()["thin_objects"] >= 12 and thin.sum() >= 6
    for c, R, half in zip(busy_room.box_c[thin], busy_room.box_R[thin], busy_room.box_h[thin]):
        long = R[:, np.argmax(half)] * half.max()
        for p in (c - long, c + long):  # the far end of a wire is what shrinks it most
            far = np.linalg.norm(np.maximum(np.abs(p - LO), np.abs(p - HI)))
            assert 2 * np.sort(half)[1] >= MIN_FEATURE_RAD * far * (1 - 1e-9)


def test_thin_poles_show_in_renders_a_few_pixels_wide(busy_room):
    bundle, f, w = _pinhole(129, 97, 120.0), 120.0, 129
    eye = 0.5 * (LO + HI)
    checked = 0
    for c, R, half in zip(busy_room.box_c, busy_room.box_R, busy_room.box_h):
        if not (half[0] > 8 * half[1] and abs(R[1, 0]) > 0.999):  # vertical poles only
            continue
        target = np.array([c[0], np.clip(eye[1], c[1] - half[0], c[1] + half[0]), c[2]])
        T = _look_at(eye, target)
        _, depth = render(busy_room, bundle, T, with_radiance=False)
        row = depth.reshape(97, w)[48]
        dist = np.linalg.norm(target - eye)
        on_pole = np.abs(row - dist) < half[1] * 1.5 + 1e-3
        if not on_pole[64]:
            continue  # hidden behind something else from here
        run = np.flatnonzero(np.diff(np.r_[0, on_pole.astype(int), 0]))
        start, stop = next((a, b) for a, b in zip(run[::2], run[1::2]) if a <= 64 < b)
        width = stop - start
        expect = f * 2 * half[1] / dist  # face-on; up to sqrt(2) wider seen across the diagonal
        assert expect - 2 <= width <= expect * np.sqrt(2) + 2
        assert abs(0.5 * (start + stop - 1) - 64) <= 0.5 * width + 1
        checked += 1
    assert checked >= 2


# --- outdoor -------------------------------------------------------------------------------


def test_outdoor_ground_recedes_to_a_far_horizon_under_a_sky(street):
    assert street.describe()["layout"] == "outdoor"
    bundle, f, (w, h) = _pinhole(101, 81, 60.0), 60.0, (101, 81)
    eye = 0.5 * (LO + HI)
    T = np.eye(4)
    T[:3, 3] = eye
    rad, depth = render(street, bundle, T)
    rad, depth = rad.reshape(h, w), depth.reshape(h, w)
    ground_y = street.room_hi[1]
    v = np.arange(h)[:, None] - (h - 1) / 2
    with np.errstate(divide="ignore"):
        ground = np.where(v > 0, (ground_y - eye[1]) * f / v, np.inf) * np.ones((1, w))
    below = v[:, 0] > 0
    hit = np.isclose(depth, ground, rtol=1e-9) & below[:, None]
    assert hit[below].mean() > 0.5  # most of the lower half is open ground
    col = hit[:, w // 2] | hit[:, w // 3]
    assert depth[hit].max() > 30.0  # it reaches far
    rows = np.flatnonzero(hit[:, w // 3])
    assert np.all(np.diff(depth[rows, w // 3]) < 0) and col.sum() > 10  # nearer toward the bottom
    sky = depth > 200.0
    assert sky[: h // 2].mean() > 0.2 and not sky[below].any()
    assert rad[sky].std() < 0.1 * rad[sky].mean() and rad[sky].mean() > 1.5 * rad[hit].mean()


def test_outdoor_cars_keep_to_their_lanes(street):
    cars = [m for m in street.motion.movers if m.kind == "car"]
    assert len(cars) == 2
    for car in cars:
        for t in np.linspace(0, car.period, 50):
            p, _ = car.path(np.array([t]))
            x = (car.origin + car.frame @ p[0])[0]
            z = (car.origin + car.frame @ p[0])[2]
            if abs(z) < 15.0:  # near the cameras a car is in a lane beside theirs
                assert abs(x - 0.5 * (LO[0] + HI[0])) == pytest.approx(car.turn_radius, abs=1e-9)


# --- photo textures ------------------------------------------------------------------------


def _spectral_slope(tex: np.ndarray) -> float:
    """Slope of the radially averaged log-reflectance power spectrum, 1/32 to 1/2 cycles/texel."""
    log = np.log(tex.astype(np.float64))
    power = np.abs(np.fft.fft2(log - log.mean())) ** 2
    k = np.fft.fftfreq(tex.shape[0])
    kk = np.hypot(k[:, None], k[None, :])
    edges = np.geomspace(1 / 32, 1 / 2, 9)
    p = [power[(kk >= a) & (kk < b)].mean() for a, b in zip(edges[:-1], edges[1:])]
    return float(np.polyfit(np.log(np.sqrt(edges[1:] * edges[:-1])), np.log(p), 1)[0])


def test_photo_textures_have_natural_statistics_and_no_seams():
    assert not any("motorcycle" in name or "stereo" in name for name in PHOTOGRAPHS)
    rng = np.random.default_rng(0)
    slopes = []
    for name in PHOTOGRAPHS:
        tex = make_photo_texture(rng, name=name)
        assert tex.shape == (TEX_SIZE, TEX_SIZE) and tex.dtype == np.float32
        assert tex.min() >= 0.01 and tex.max() <= 1.0
        log = np.log(tex)
        slopes.append(_spectral_slope(tex))
        assert -4.5 < slopes[-1] < -1.2, name  # 1/f^a with a natural a: neither white nor blurred
        inner = np.abs(np.diff(log, axis=0)).mean(), np.abs(np.diff(log, axis=1)).mean()
        wrap = np.abs(log[0] - log[-1]).mean(), np.abs(log[:, 0] - log[:, -1]).mean()
        assert wrap[0] < 3 * inner[0] and wrap[1] < 3 * inner[1], name  # tiles without a seam
    procedural = [_spectral_slope(make_texture(rng)) for _ in range(6)]
    # Photographs lose power toward the finest scale faster than the procedural fine grain.
    assert np.mean(slopes) < np.mean(procedural) - 0.2


def test_make_periodic_removes_the_border_jump_and_keeps_the_detail():
    y, x = np.mgrid[0:64, 0:64]
    img = 0.05 * x + 0.02 * y + np.sin(x / 3.0) * np.cos(y / 5.0)
    out = make_periodic(img)
    assert np.abs(out[:, 0] - out[:, -1]).mean() < 0.2 * np.abs(img[:, 0] - img[:, -1]).mean()
    assert np.abs(out[0] - out[-1]).mean() < 0.2 * np.abs(img[0] - img[-1]).mean()

    def laplacian(a):
        return a[1:-1, :-2] + a[1:-1, 2:] + a[:-2, 1:-1] + a[2:, 1:-1] - 4 * a[1:-1, 1:-1]

    # What is taken away is harmonic inside the image: all local detail stays.
    np.testing.assert_allclose(laplacian(out)[1:-1, 1:-1], laplacian(img)[1:-1, 1:-1], atol=1e-9)


def test_photo_textures_are_reproducible_and_scale_with_contrast():
    a = make_photo_texture(np.random.default_rng(5), contrast=1.0)
    assert np.array_equal(a, make_photo_texture(np.random.default_rng(5), contrast=1.0))
    assert not np.array_equal(a, make_photo_texture(np.random.default_rng(6), contrast=1.0))
    # Log contrast scales with ``contrast`` (low values: nothing is clipped at the 0.01..1 limits).
    low, lower = (make_photo_texture(np.random.default_rng(5), contrast=c) for c in (0.25, 0.1))
    assert np.log(lower).std() == pytest.approx(0.4 * np.log(low).std(), rel=0.02)


def test_photo_share_of_scene_surfaces():
    none = build_scene(np.random.default_rng(0), LO, HI, photo_textures=0.0)
    every = build_scene(np.random.default_rng(0), LO, HI, photo_textures=1.0)
    assert none.describe()["photo_textures"] == 0
    assert every.describe()["photo_textures"] == len(every.atlas)  # a room has no plain textures
    assert every.describe()["photo_textures"] >= 10
