"""Textured scenes for the event-camera simulator (their ray caster is :mod:`evstereo.simulation.raycast`).

Two layouts. ``"room"`` (the default): a closed box room (floor, ceiling, four walls) holding
oriented boxes, spheres and slanted rectangular panels; the room is sized so that depth stays
below ~8 m. ``"outdoor"``: a street: a textured ground plane to a far horizon under a bright,
nearly uniform sky (the faces of a 1 km box that glow instead of being lit, so depth there is
far beyond any valid range), a road with lane markings, parking strips and pavements, buildings
along both sides, street poles and lamps, trees, parked car-like boxes and street furniture.

Options add, to either layout: thin structures and small objects (poles, wires and cables,
blades, objects of a few cm; ``thin``), independently moving objects (fans, pendulums on stands,
walking figures, objects crossing the view, cars on the road; ``movers``, see
:mod:`evstereo.simulation.movers`) and textures cut from photographs (``photo_textures``, see
:mod:`evstereo.simulation.photo_textures`). Thin objects are never thinner than
``MIN_FEATURE_RAD`` as seen from anywhere the cameras can be: the ray caster takes one ray per
pixel, and a sub-pixel wire would flicker in and out between renders, firing events no real
sensor fires.

Every surface carries its own texture in metric surface coordinates and a view-independent
(Lambertian, two-sided) shade from one directional light, so both cameras of the stereo rig
see the same radiance at the same world point, as stereo matching assumes. Objects, moving
ones over their whole motion, are placed outside the box the trajectory can reach, grown by a
clearance, so the cameras never collide with anything and depth stays above ~0.6 m in practice.

The same generator state gives the same scene. The default options draw exactly the numbers
they drew before the options existed, so old seeds give the old rooms; thin structures and
movers are drawn after the rest of a scene (light included), so adding them keeps the rest.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from evstereo.simulation.movers import (Motion, Mover, car_parts, make_car, make_fan, make_pendulum,
                                        make_shuttle, make_walker, rot_y)
from evstereo.simulation.photo_textures import make_photo_texture
from evstereo.simulation.raycast import BOX, QUAD, SPHERE, SceneArrays
from evstereo.simulation.textures import TEX_SIZE, build_mip_atlas, make_plain_texture, make_texture

AMBIENT = 0.35  # share of the light that reaches surfaces facing away from it
LAYOUTS = ("room", "outdoor")
MIN_FEATURE_RAD = 0.005  # thinnest angular width of a thin object (~1.1 px on MVSEC's DAVIS346)
ROOM_MIN_COS = 0.2  # footprint stretch cap at grazing view (see raycast); indoors surfaces are near
OUTDOOR_MIN_COS = 0.02  # a ground plane to the horizon needs the full stretch, or it aliases
SKY_DISTANCE = 500.0  # m, from the reach box to the sky's walls; its ceiling is 250 m up
FLAT_UP = np.column_stack([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])  # a quad lying flat, normal up (-y)


@dataclass(frozen=True)
class SceneInfo:
    """What a scene is made of beyond its arrays."""

    layout: str = "room"
    motion: Motion | None = None  # the movers; None: a static scene
    thin_objects: int = 0
    photo_textures: int = 0  # textures cut from photographs


class Scene(SceneArrays):
    """Scene geometry as flat arrays plus textures: the ray caster's :class:`SceneArrays` (whose
    fields document the shapes) with the scene-level helpers. The derived values are computed
    once per scene, not per render (a tuple subclass without ``__slots__`` has a ``__dict__``).

    The arrays hold every object at t = 0; :meth:`at` gives the scene at another time. The
    motion lives beside the tuple (``info.motion``), so the kernels keep receiving plain arrays.
    """

    info: SceneInfo = SceneInfo()  # instances built by build_scene carry their own

    def _with_info(self, info: SceneInfo) -> "Scene":
        self.info = info
        return self

    @property
    def motion(self) -> Motion | None:
        return self.info.motion

    def at(self, t_s: float) -> "Scene":
        """The scene with every moving object placed at time ``t_s`` (s); pure and deterministic.
        A static scene returns itself."""
        if self.motion is None:
            return self
        moved = self._replace(**self.motion.arrays_at(self, float(t_s)))._with_info(self.info)
        # Sizes do not change: the culling spheres are this scene's with the centres moved.
        kinds, idx, spheres = self.bounding_spheres
        spheres = spheres.copy()
        spheres[:, :3] = np.concatenate([moved.sph[:, :3], moved.box_c, moved.quad_c])
        moved.__dict__["bounding_spheres"] = (kinds, idx, spheres)
        return moved

    @property
    def max_mover_speed(self) -> float:
        """Upper bound on the speed of any point of any moving object (m/s); 0.0 when static."""
        return 0.0 if self.motion is None else float(self.motion.max_speed)

    @cached_property
    def arrays(self) -> SceneArrays:
        """The scene as the ray caster's kernels take it (the plain named tuple numba compiles for)."""
        return SceneArrays(*self)

    @cached_property
    def bounding_spheres(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(kind, index, sphere) of every object: its type, its row in that type's arrays and its
        bounding sphere (centre xyz, radius), for culling."""
        kinds = [SPHERE] * len(self.sph) + [BOX] * len(self.box_c) + [QUAD] * len(self.quad_c)
        idx = list(range(len(self.sph))) + list(range(len(self.box_c))) + list(range(len(self.quad_c)))
        spheres = [s for s in self.sph]
        spheres += [np.r_[c, np.linalg.norm(h)] for c, h in zip(self.box_c, self.box_h)]
        spheres += [np.r_[c, np.linalg.norm(h)] for c, h in zip(self.quad_c, self.quad_h)]
        return (np.asarray(kinds, np.int64), np.asarray(idx, np.int64),
                np.asarray(spheres, np.float64).reshape(-1, 4))

    def describe(self) -> dict:
        """Counts and sizes, for the recording's metadata."""
        return {
            "room_min_m": [round(float(v), 3) for v in self.room_lo],
            "room_max_m": [round(float(v), 3) for v in self.room_hi],
            "boxes": int(len(self.box_c)),
            "spheres": int(len(self.sph)),
            "panels": int(len(self.quad_c)),
            "textures": int(len(self.atlas)),
            "layout": self.info.layout,
            "thin_objects": self.info.thin_objects,
            "photo_textures": self.info.photo_textures,
            "max_mover_speed_m_s": round(self.max_mover_speed, 3),
            "movers": [] if self.motion is None else [m.describe() for m in self.motion.movers],
        }


def _random_rotation(rng: np.random.Generator, max_tilt: float) -> np.ndarray:
    """Random yaw times a tilt of at most ``max_tilt`` rad about a random horizontal axis."""
    yaw = rng.uniform(-np.pi, np.pi)
    cy, sy = np.cos(yaw), np.sin(yaw)
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    phi = rng.uniform(0, 2 * np.pi)
    axis = np.array([np.cos(phi), 0.0, np.sin(phi)])
    ang = rng.uniform(-max_tilt, max_tilt)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    Rt = np.eye(3) + np.sin(ang) * K + (1 - np.cos(ang)) * K @ K
    return Rt @ Ry


def _box_distance(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Distance from point p to the axis-aligned box [lo, hi] (0 inside)."""
    return float(np.linalg.norm(np.maximum(0.0, np.maximum(lo - p, p - hi))))


def _box_distances(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """:func:`_box_distance` of (N, 3) points."""
    return np.linalg.norm(np.maximum(0.0, np.maximum(lo - p, p - hi)), axis=-1)


def _frame_along(d: np.ndarray) -> np.ndarray:
    """A rotation whose first column is the unit vector d (the long axis of a wire or pole)."""
    helper = np.array([0.0, 1.0, 0.0]) if abs(d[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(d, helper)
    e1 /= np.linalg.norm(e1)
    return np.column_stack([d, e1, np.cross(d, e1)])


@dataclass
class _Region:
    """Where objects may go: the box [lo, hi] (its +y face is the floor), minus the box the
    cameras can reach grown by ``clearance``. ``place`` and ``far`` are the placement rules."""

    rng: np.random.Generator
    lo: np.ndarray
    hi: np.ndarray
    reach_lo: np.ndarray
    reach_hi: np.ndarray
    clearance: float
    band: float = 0.8  # "near" objects: their surface lies within this of the clearance zone

    @property
    def safe_lo(self) -> np.ndarray:
        return self.reach_lo - self.clearance

    @property
    def safe_hi(self) -> np.ndarray:
        return self.reach_hi + self.clearance

    def place(self, radius: float, on_floor_half_height: float | None = None) -> np.ndarray | None:
        """Rejection-sample a centre inside the region, ``radius`` clear of walls and the reach box.

        About 60% of the objects are "near": drawn around the reach box, in front of its centre,
        with the surface at most ``band`` beyond the clearance zone.
        """
        rng, reach_lo, reach_hi, band = self.rng, self.reach_lo, self.reach_hi, self.band
        safe_lo, safe_hi = self.safe_lo, self.safe_hi
        near = rng.random() < 0.6
        for attempt in range(400):
            near = near and attempt < 200  # fall back to anywhere if no near spot is free
            lo = self.lo + radius
            hi = self.hi - radius
            lo[2] = max(lo[2], reach_lo[2] - 0.5)  # mostly in front of the camera, where it looks
            if near:
                lo = np.maximum(lo, safe_lo - radius - band)
                hi = np.minimum(hi, safe_hi + radius + band)
                lo[2] = max(lo[2], 0.5 * (reach_lo[2] + reach_hi[2]))
            if np.any(lo >= hi):
                continue
            c = rng.uniform(lo, hi)
            if on_floor_half_height is not None:
                c[1] = self.hi[1] - on_floor_half_height  # resting on the floor (y down)
            dist = _box_distance(c, safe_lo, safe_hi)
            if dist >= radius and (not near or dist <= radius + band):
                return c
        return None

    def far(self, p: np.ndarray) -> float:
        """Largest distance from point p to anywhere the cameras can be."""
        return float(np.linalg.norm(np.maximum(np.abs(p - self.reach_lo), np.abs(p - self.reach_hi))))

    def segment_clear(self, p0: np.ndarray, p1: np.ndarray, radius: float) -> bool:
        """Whether the capsule p0-p1 of ``radius`` keeps clear of the grown reach box (sampled
        every 2 cm; the distance is 1-Lipschitz along the segment, hence the half-step margin)."""
        n = max(2, int(np.ceil(np.linalg.norm(p1 - p0) / 0.02)) + 1)
        pts = p0 + np.linspace(0.0, 1.0, n)[:, None] * (p1 - p0)
        step = np.linalg.norm(p1 - p0) / (n - 1)
        return bool(_box_distances(pts, self.safe_lo, self.safe_hi).min() >= radius + 0.5 * step)

    def box_clear(self, c: np.ndarray, R: np.ndarray, h: np.ndarray) -> bool:
        """Whether the oriented box keeps clear of the grown reach box (through its world AABB)."""
        ext = np.abs(R) @ h
        gap = np.maximum(0.0, np.maximum(self.safe_lo - (c + ext), (c - ext) - self.safe_hi))
        return bool(np.any(gap > 0))

    def mover_clear(self, mover: Mover) -> bool:
        """Whether the placed mover keeps clear of the grown reach box over its whole motion."""
        rel, rad = mover.sweep()
        return bool((_box_distances(rel + mover.origin, self.safe_lo, self.safe_hi) - rad).min() >= 0)

    def place_mover(self, mover: Mover, on_floor: bool) -> Mover | None:
        """The mover moved to a random ``origin`` where its whole motion keeps clear of the reach
        box and inside the region (floor-standing movers: origin on the floor); None if none is
        found. Near (within ``band``) for about 60% of the movers, like ``place``."""
        rng = self.rng
        rel, rad = mover.sweep()
        ext_lo, ext_hi = (rel - rad[:, None]).min(0), (rel + rad[:, None]).max(0)
        if on_floor and self.hi[1] + ext_lo[1] < self.lo[1]:
            return None  # taller than the region
        free = [0, 2] if on_floor else [0, 1, 2]  # the axes the origin is drawn along
        near = rng.random() < 0.6
        for attempt in range(300):
            near = near and attempt < 150
            lo, hi = self.lo - ext_lo, self.hi - ext_hi
            lo[2] = max(lo[2], self.reach_lo[2] - 0.5 - ext_lo[2])  # mostly in front of the camera
            if near:
                lo[free] = np.maximum(lo, self.safe_lo - self.band - ext_hi)[free]
                hi[free] = np.minimum(hi, self.safe_hi + self.band - ext_lo)[free]
            if on_floor:
                lo[1] = hi[1] = self.hi[1]
            if np.any(lo > hi):
                continue
            origin = rng.uniform(lo, hi)
            gap = (_box_distances(rel + origin, self.safe_lo, self.safe_hi) - rad).min()
            if gap >= 0 and (not near or gap <= self.band):
                return replace(mover, origin=origin)
        return None


class _Builder:
    """Collects textures and objects while a scene is drawn, in call order from one generator."""

    def __init__(self, rng: np.random.Generator, contrast: float, photo_share: float):
        self.rng, self.contrast, self.photo_share = rng, contrast, photo_share
        self.textures: list[np.ndarray] = []
        self.texels: list[float] = []
        self.n_photo = 0
        self.sph: list = []
        self.sph_R: list = []
        self.sph_tex: list = []
        self.box_c: list = []
        self.box_R: list = []
        self.box_h: list = []
        self.box_tex: list = []
        self.quad_c: list = []
        self.quad_e: list = []
        self.quad_h: list = []
        self.quad_tex: list = []
        self.movers: list[Mover] = []
        self.mover_rows: list[np.ndarray] = []

    def texture(self, texel: float) -> int:
        """A new random surface texture (a photograph with probability ``photo_share``)."""
        if self.photo_share > 0 and self.rng.random() < self.photo_share:
            self.n_photo += 1
            return self.add_texture(make_photo_texture(self.rng, TEX_SIZE, self.contrast), texel)
        return self.add_texture(make_texture(self.rng, TEX_SIZE, self.contrast), texel)

    def add_texture(self, tex: np.ndarray, texel: float) -> int:
        self.textures.append(tex)
        self.texels.append(texel)
        return len(self.textures) - 1

    def sphere(self, c, r: float, tex: int, R: np.ndarray | None = None) -> int:
        self.sph.append([*c, r])
        self.sph_R.append(np.eye(3) if R is None else R)
        self.sph_tex.append(tex)
        return len(self.sph) - 1

    def box(self, c, R: np.ndarray, h, tex: int) -> int:
        self.box_c.append(np.asarray(c, np.float64))
        self.box_R.append(R)
        self.box_h.append(np.asarray(h, np.float64))
        self.box_tex.append(tex)
        return len(self.box_c) - 1

    def quad(self, c, R: np.ndarray, h, tex: int) -> int:
        """A rectangle; the columns of R are its in-plane axes u, v and its normal."""
        self.quad_c.append(np.asarray(c, np.float64))
        self.quad_e.append(R.T.copy())  # rows = axes in the world: u, v, normal
        self.quad_h.append(np.asarray(h, np.float64))
        self.quad_tex.append(tex)
        return len(self.quad_c) - 1

    def static_parts(self, parts, R: np.ndarray, origin: np.ndarray, textures: list[int]) -> None:
        """Parts of a shape (e.g. a parked car) fixed in the world at (R, origin)."""
        for p in parts:
            self.box(origin + R @ p.c, R @ p.R, p.size, textures[p.material])

    def mover(self, mover: Mover, textures: list[int]) -> None:
        """Add a placed mover; its parts get their pose at t = 0 when the scene is built."""
        rows = []
        for p in mover.parts:
            tex = textures[p.material % len(textures)]
            if p.kind == SPHERE:
                rows.append(self.sphere(np.zeros(3), float(p.size[0]), tex))
            elif p.kind == BOX:
                rows.append(self.box(np.zeros(3), np.eye(3), p.size, tex))
            else:
                rows.append(self.quad(np.zeros(3), np.eye(3), p.size, tex))
        self.movers.append(mover)
        self.mover_rows.append(np.asarray(rows, np.int64))

    def build(self, room_lo, room_hi, room_tex, room_emit, light, min_cos: float, info: SceneInfo) -> Scene:
        atlas, offsets = build_mip_atlas(self.textures)

        def stack(items: list, tail: tuple, dtype=np.float64) -> np.ndarray:
            return np.asarray(items, dtype).reshape((len(items),) + tail)

        scene = Scene(
            room_lo=room_lo, room_hi=room_hi, room_tex=room_tex, room_emit=np.asarray(room_emit, np.float64),
            sph=stack(self.sph, (4,)), sph_R=stack(self.sph_R, (3, 3)), sph_tex=stack(self.sph_tex, (), np.int64),
            box_c=stack(self.box_c, (3,)), box_R=stack(self.box_R, (3, 3)), box_h=stack(self.box_h, (3,)),
            box_tex=stack(self.box_tex, (), np.int64),
            quad_c=stack(self.quad_c, (3,)), quad_e=stack(self.quad_e, (3, 3)), quad_h=stack(self.quad_h, (2,)),
            quad_tex=stack(self.quad_tex, (), np.int64),
            atlas=atlas, offsets=offsets, texel=np.asarray(self.texels, np.float64), light=light, ambient=AMBIENT,
            min_cos=float(min_cos),
        )
        motion = Motion(tuple(self.movers), tuple(self.mover_rows)) if self.movers else None
        scene = scene._with_info(replace(info, motion=motion, photo_textures=self.n_photo))
        return scene.at(0.0)  # the movers' parts to their poses at t = 0


def _light(rng: np.random.Generator) -> np.ndarray:
    light = np.array([rng.uniform(-0.5, 0.5), -1.0, rng.uniform(-0.5, 0.5)])  # from above (-y)
    return light / np.linalg.norm(light)


def _room(b: _Builder, reach_lo: np.ndarray, reach_hi: np.ndarray, clearance: float) -> tuple:
    """The room layout: walls, spheres, boxes and panels (this draw order defines old seeds' rooms)."""
    rng = b.rng
    room_lo = np.array([reach_lo[0] - rng.uniform(1.3, 2.2), reach_lo[1] - rng.uniform(1.0, 1.6),
                        reach_lo[2] - rng.uniform(1.5, 2.5)])
    room_hi = np.array([reach_hi[0] + rng.uniform(1.3, 2.2), reach_hi[1] + rng.uniform(0.9, 1.3),
                        reach_hi[2] + rng.uniform(5.0, 7.0)])
    region = _Region(rng, room_lo, room_hi, reach_lo, reach_hi, clearance)
    room_tex = np.array([b.texture(rng.uniform(0.025, 0.04)) for _ in range(6)], np.int64)
    for _ in range(int(rng.integers(2, 5))):
        r = rng.uniform(0.15, 0.6)
        c = region.place(r)
        if c is not None:
            b.sphere(c, r, b.texture(rng.uniform(0.01, 0.02)))
    for _ in range(int(rng.integers(3, 7))):
        h = rng.uniform(0.15, 0.65, 3)
        floor = rng.random() < 0.5
        R = _random_rotation(rng, 0.0 if floor else 0.6)
        c = region.place(float(np.linalg.norm(h)), h[1] if floor else None)
        if c is not None:
            b.box(c, R, h, b.texture(rng.uniform(0.012, 0.024)))
    for _ in range(int(rng.integers(2, 5))):
        h = np.array([rng.uniform(0.3, 1.0), rng.uniform(0.25, 0.8)])
        R = _random_rotation(rng, 0.9)  # slanted boards
        c = region.place(float(np.linalg.norm(h)))
        if c is not None:
            b.quad(c, R, h, b.texture(rng.uniform(0.012, 0.024)))
    light = _light(rng)
    return room_lo, room_hi, region, room_tex, np.zeros(6), light, {}


def _outdoor(b: _Builder, reach_lo: np.ndarray, reach_hi: np.ndarray, clearance: float) -> tuple:
    """The street layout; the road runs along +z (where the camera looks) through the reach box."""
    rng = b.rng
    cx, cz = 0.5 * (reach_lo[0] + reach_hi[0]), 0.5 * (reach_lo[2] + reach_hi[2])
    ground = reach_hi[1] + max(rng.uniform(1.0, 1.8), clearance + 0.05)  # camera height (y down)
    room_lo = np.array([cx - SKY_DISTANCE, ground - SKY_DISTANCE / 2, cz - SKY_DISTANCE])
    room_hi = np.array([cx + SKY_DISTANCE, ground, cz + SKY_DISTANCE])
    light = _light(rng)
    sky = b.add_texture(make_plain_texture(rng, rng.uniform(0.75, 0.95), 0.03 * b.contrast), 3.0)
    room_tex = np.array([sky, sky, sky, b.texture(rng.uniform(0.02, 0.05)), sky, sky], np.int64)
    room_emit = np.array([1.0, 1.0, 1.0, 0.0, 1.0, 1.0])  # the sky glows; the ground (+y) is lit

    # Road: the camera's lane at cx, 1-2 lanes either side, then parking strips and pavements.
    lane = rng.uniform(3.0, 3.7)
    k_left, k_right = (int(k) for k in rng.integers(1, 3, 2))
    edge = (cx - lane / 2 - k_left * lane, cx + lane / 2 + k_right * lane)
    park, walk = 2.2, rng.uniform(2.0, 4.0)
    paint = b.add_texture(make_plain_texture(rng, 0.8, 0.05 * b.contrast), 0.01)
    z_near, z_far = cz - 10.0, cz + 40.0  # painted lines end where they get thinner than a pixel
    for x in [edge[0] + j * lane for j in range(1, k_left + k_right + 1)]:  # dashed lane boundaries
        period = rng.uniform(8.0, 12.0)
        for z in np.arange(z_near + rng.uniform(0, period), z_far, period):
            b.quad([x, ground - 0.003, z], FLAT_UP, [0.075, 1.5], paint)
    for x in (edge[0] + 0.2, edge[1] - 0.2):  # solid edge lines
        b.quad([x, ground - 0.003, 0.5 * (z_near + z_far)], FLAT_UP, [0.075, 0.5 * (z_far - z_near)], paint)
    region = _Region(rng, np.array([edge[0] - park - walk, ground - 8.0, cz - 10.0]),
                     np.array([edge[1] + park + walk, ground, cz + 40.0]), reach_lo, reach_hi, clearance)

    def clear_boxes(boxes) -> bool:
        return all(region.box_clear(c, R, h) for c, R, h in boxes)

    # Buildings along both pavements, from behind the camera to far ahead.
    facades = [b.texture(rng.uniform(0.03, 0.08)) for _ in range(4)]
    for side in (-1, 1):
        front = edge[(side + 1) // 2] + side * (park + walk)
        z = cz - 30.0
        while z < cz + 150.0:
            depth, width, height = rng.uniform(6, 25), rng.uniform(6, 20), rng.uniform(3, 25)
            x = front + side * (rng.uniform(0, 3) + width / 2)
            c, h = np.array([x, ground - height / 2, z + depth / 2]), np.array([width / 2, height / 2, depth / 2])
            if clear_boxes([(c, np.eye(3), h)]):
                b.box(c, np.eye(3), h, facades[int(rng.integers(len(facades)))])
            z += depth + (rng.uniform(0, 6) if rng.random() < 0.5 else 0.0)

    # Street poles and lamps at the kerbs, trees on the pavements, parked cars in the strips.
    metal = b.texture(rng.uniform(0.005, 0.01))
    for side in (-1, 1):
        kerb = edge[(side + 1) // 2] + side * park
        for z in np.arange(cz - 20.0 + rng.uniform(0, 10), cz + 80.0, rng.uniform(12, 30)):
            height = rng.uniform(3.5, 8.0)
            x = kerb + side * rng.uniform(0.3, 0.8)
            top = np.array([x, ground - height, z])
            hw = max(rng.uniform(0.04, 0.1), 0.5 * MIN_FEATURE_RAD * (region.far(top) + height))
            boxes = [(np.array([x, ground - height / 2, z]), np.eye(3), np.array([hw, height / 2, hw]))]
            if rng.random() < 0.5:  # a lamp arm over the road
                arm = rng.uniform(0.6, 1.5)
                boxes.append((top + [-side * arm, 0, 0], np.eye(3), np.array([arm, hw, hw])))
            if clear_boxes(boxes):
                for c, R, h in boxes:
                    b.box(c, R, h, metal)
    bark, leaves = b.texture(rng.uniform(0.01, 0.02)), b.texture(rng.uniform(0.02, 0.04))
    for side in (-1, 1):
        for _ in range(int(rng.integers(0, 5))):
            x = edge[(side + 1) // 2] + side * (park + walk * rng.uniform(0.3, 0.7))
            z, trunk, r = rng.uniform(cz - 10, cz + 60), rng.uniform(2.0, 4.0), rng.uniform(1.0, 2.5)
            crown = np.array([x, ground - trunk - 0.6 * r, z])
            hw = max(rng.uniform(0.1, 0.2), 0.5 * MIN_FEATURE_RAD * (region.far(crown) + trunk + r))
            trunk_box = (np.array([x, ground - trunk / 2, z]), np.eye(3), np.array([hw, trunk / 2, hw]))
            if clear_boxes([trunk_box]) and _box_distance(crown, region.safe_lo, region.safe_hi) >= r:
                b.box(*trunk_box, bark)
                b.sphere(crown, r, leaves)
    car_tex = [b.texture(rng.uniform(0.01, 0.03)),
               b.add_texture(make_plain_texture(rng, 0.12, 0.1 * b.contrast), 0.02),  # glass
               b.add_texture(make_plain_texture(rng, 0.05, 0.1 * b.contrast), 0.02)]  # tyres
    for side in (-1, 1):
        x = edge[(side + 1) // 2] + side * park / 2
        for z in cz + 6.5 * rng.choice(np.arange(-2, 12), int(rng.integers(0, 6)), replace=False):
            R = rot_y(0.0 if rng.random() < 0.5 else np.pi)
            parts = car_parts(rng)
            origin = np.array([x, ground, z])
            if clear_boxes([(origin + R @ p.c, R @ p.R, p.size) for p in parts]):
                b.static_parts(parts, R, origin, car_tex)
    # Street furniture (bins, bollards, benches, boxes) standing near the camera.
    for _ in range(int(rng.integers(2, 6))):
        h = rng.uniform(0.15, 0.6, 3)
        c = region.place(float(np.linalg.norm(h)), h[1])
        if c is not None:
            b.box(c, _random_rotation(rng, 0.0), h, b.texture(rng.uniform(0.01, 0.02)))
    road = {"centre": cx, "lane": lane, "lanes": (k_left, k_right), "edge": edge, "park": park, "walk": walk,
            "car_textures": car_tex}
    return room_lo, room_hi, region, room_tex, room_emit, light, road


def _add_thin(b: _Builder, region: _Region, n: int) -> int:
    """Up to n thin structures and small objects: poles, wires and cables, blades, objects of a
    few cm; returns how many were placed. Widths never drop below ``MIN_FEATURE_RAD`` as seen
    from the reach box (the ray caster point-samples geometry, see the module docstring)."""
    rng = b.rng
    pool: list[int] = []

    def tex() -> int:  # a few textures shared by all thin objects: they show little of them
        if len(pool) < min(n, 3):
            pool.append(b.texture(rng.uniform(0.004, 0.01)))
            return pool[-1]
        return pool[int(rng.integers(len(pool)))]

    def near_point() -> np.ndarray:
        """A point in the region, within ``band`` of the clearance zone for 60% of the draws."""
        lo, hi = region.lo.copy(), region.hi.copy()
        lo[2] = max(lo[2], region.reach_lo[2] - 0.5)
        if rng.random() < 0.6:
            lo, hi = np.maximum(lo, region.safe_lo - region.band), np.minimum(hi, region.safe_hi + region.band)
        return rng.uniform(lo, np.maximum(hi, lo))

    placed = 0
    for _ in range(n):
        what = rng.choice(["pole", "wire", "blade", "small"], p=[0.3, 0.3, 0.15, 0.25])
        for _attempt in range(100):
            if what in ("pole", "wire"):
                p = near_point()
                if what == "pole":  # vertical, standing on the floor, sometimes up to the ceiling
                    d = np.array([0.0, -1.0, 0.0])
                    length = region.hi[1] - region.lo[1] if rng.random() < 0.5 else rng.uniform(0.3, 2.0)
                    p0 = np.array([p[0], region.hi[1], p[2]])
                    p1 = p0 + d * min(length, region.hi[1] - region.lo[1])
                    half = rng.uniform(0.008, 0.04)
                else:  # a straight cable from wall to wall (clipped to the region), mostly level
                    yaw, pitch = rng.uniform(0, np.pi), rng.uniform(-0.3, 0.3)
                    d = np.array([np.cos(yaw) * np.cos(pitch), np.sin(pitch), np.sin(yaw) * np.cos(pitch)])
                    with np.errstate(divide="ignore"):
                        t = np.sort(np.stack([(region.lo - p) / d, (region.hi - p) / d]), axis=0)
                    p0, p1 = p + t[0].max() * d, p + t[1].min() * d
                    half = rng.uniform(0.0015, 0.005)
                half = max(half, 0.5 * MIN_FEATURE_RAD * max(region.far(p0), region.far(p1)))
                if region.segment_clear(p0, p1, half * np.sqrt(2)):
                    length = float(np.linalg.norm(p1 - p0))
                    b.box(0.5 * (p0 + p1), _frame_along((p1 - p0) / length), [length / 2, half, half], tex())
                    placed += 1
                    break
            else:
                if what == "blade":  # a thin flat strip (blade, slat, ruler) at any angle
                    h = np.array([rng.uniform(0.08, 0.35), rng.uniform(0.01, 0.04), rng.uniform(0.001, 0.003)])
                else:  # a small box or ball of a few cm
                    h = np.full(3, rng.uniform(0.008, 0.03)) * rng.uniform(0.6, 1.0, 3)
                R = _random_rotation(rng, np.pi / 2)
                c = region.place(float(np.linalg.norm(h)) + 0.03)
                if c is None:
                    continue
                w = 0.5 * MIN_FEATURE_RAD * (region.far(c) + float(np.linalg.norm(h)))  # its farthest point
                if what == "blade":  # length and width at least a pixel; edge-on it may be thinner
                    h[:2] = np.maximum(h[:2], w)
                else:
                    h = np.maximum(h, w)
                if _box_distance(c, region.safe_lo, region.safe_hi) < np.linalg.norm(h):
                    continue
                if what == "small" and rng.random() < 0.5:
                    b.sphere(c, float(h.max()), tex())
                else:
                    b.box(c, R, h, tex())
                placed += 1
                break
    return placed


MOVER_KINDS = {"room": (("fan", "pendulum", "walker", "crossing"), (0.3, 0.3, 0.15, 0.25)),
               "outdoor": (("car", "walker", "crossing", "fan", "pendulum"), (0.35, 0.3, 0.15, 0.1, 0.1))}


def _widen(mover: Mover, region: _Region) -> Mover:
    """The mover with rods and blades no thinner than ``MIN_FEATURE_RAD`` seen from the cameras
    (the middle half extent of each box: a blade's width, a rod's thickness; a blade may stay
    thin edge-on)."""
    rel, rad = mover.sweep(step=0.2)
    far = region.far(mover.origin) + float((np.linalg.norm(rel, axis=1) + rad).max())
    w = 0.5 * MIN_FEATURE_RAD * far
    parts = []
    for p in mover.parts:
        if p.kind == BOX and np.sort(p.size)[1] < w:
            order = np.argsort(p.size)
            size = p.size.copy()
            size[order[1:]] = np.maximum(size[order[1:]], w)
            p = replace(p, size=size)
        parts.append(p)
    return replace(mover, parts=tuple(parts))


def _add_movers(b: _Builder, region: _Region, movers: int | Sequence[str], layout: str, road: dict) -> None:
    """Independently moving objects (``movers`` random ones, or these kinds), each kept clear of
    the reach box over its whole motion (one that finds no free spot is left out)."""
    rng = b.rng
    floor = region.hi[1]
    eye = 0.5 * (region.reach_lo[1] + region.reach_hi[1])
    room_height = region.hi[1] - region.lo[1]
    kinds, p = MOVER_KINDS[layout]
    wanted = [None] * movers if isinstance(movers, int) else list(movers)
    for what in wanted:
        what = str(rng.choice(kinds, p=p)) if what is None else what
        texel = rng.uniform(0.008, 0.02)
        on_floor = True
        if what == "fan":
            mover = make_fan(rng, max(0.3, floor - eye + rng.uniform(-0.4, 0.4)))
        elif what == "pendulum":
            mover = make_pendulum(rng, floor - eye + rng.uniform(-0.3, 0.3), min(room_height - 0.1, 2.5))
        elif what == "crossing":
            outdoors = layout == "outdoor"
            amp = rng.uniform(2.0, 6.0) if outdoors else rng.uniform(0.6, 2.0)
            mover = make_shuttle(rng, amp, rng.uniform(0.3, 4.0 if outdoors else 2.5), rng.uniform(0.05, 0.3))
            on_floor = False
        elif what == "walker" and layout == "outdoor":  # pedestrians on a pavement
            side = 1 if rng.random() < 0.5 else -1
            x = road["edge"][(side + 1) // 2] + side * (road["park"] + road["walk"] / 2)
            mover = make_walker(rng, rng.uniform(0.9, 1.1), rng.uniform(6, 30),
                                rng.uniform(0.3, max(0.31, road["walk"] / 2 - 0.4)), rng.uniform(0.8, 1.6))
            mover = replace(mover, origin=np.array([x, floor, region.reach_hi[2] + rng.uniform(-5, 20)]))
        elif what == "walker":
            scale = rng.uniform(0.3, 1.0) * min(1.0, (room_height - 0.1) / 1.75)
            mover = make_walker(rng, scale, rng.uniform(0.3, 2.0), rng.uniform(0.25, 0.8),
                                rng.uniform(0.4, 1.3) * scale)
        else:  # a car looping between lane +k and lane -k: right-hand traffic past the camera
            k = int(rng.integers(1, min(road["lanes"]) + 1))
            cz = 0.5 * (region.reach_lo[2] + region.reach_hi[2])
            mover = make_car(rng, rng.uniform(60, 150), k * road["lane"], rng.uniform(2, 10))
            mover = replace(mover, origin=np.array([road["centre"], floor, cz + rng.uniform(-10, 30)]))
        if what == "car" or (what == "walker" and layout == "outdoor"):  # placed on the road or pavement
            placed = mover
        else:
            placed = region.place_mover(replace(mover, frame=rot_y(rng.uniform(-np.pi, np.pi))), on_floor)
        if placed is None:
            continue
        placed = _widen(placed, region)
        if not region.mover_clear(placed):
            continue
        textures = road["car_textures"] if what == "car" else [b.texture(texel) for _ in range(placed.n_materials)]
        b.mover(placed, textures)


def movers_problem(movers: int | Sequence[str], layout: str) -> str | None:
    """What is wrong with a ``movers`` value for ``layout`` (a count >= 0, or a non-empty list
    of ``MOVER_KINDS[layout]``), as the end of a sentence; None if nothing."""
    kinds = MOVER_KINDS[layout][0]
    if isinstance(movers, bool) or isinstance(movers, str):
        return f"must be a count or a list of {', '.join(kinds)}, not {movers!r}"
    if isinstance(movers, numbers.Integral):
        return None if movers >= 0 else f"must be a count >= 0, not {movers}"
    if not movers or not set(movers) <= set(kinds):
        return (f"kinds must be among {', '.join(kinds)} for the {layout} layout, "
                f"not {','.join(map(str, movers)) or 'none'}")
    return None


def build_scene(rng: np.random.Generator, reach_lo: np.ndarray, reach_hi: np.ndarray, *,
                clearance: float = 0.35, texture_contrast: float = 1.0, layout: str = "room",
                thin: int = 0, movers: int | Sequence[str] = 0, photo_textures: float = 0.0) -> Scene:
    """A random scene around the box [reach_lo, reach_hi] that the cameras can reach.

    ``layout`` "room": the camera looks roughly along +z, so the far wall is 5-7 m ahead of the
    reach box and the back wall 1.5-2.5 m behind. "outdoor": a street along +z under a sky.
    Objects keep ``clearance`` metres from the reach box (no collision, ever); since a sum of
    sinusoids seldom reaches the corners of its box, the nearest depths seen are ~0.6-1 m in
    practice. About 60% of the objects sit within ``band`` beyond the clearance, so near depths
    (large disparities) are well represented. ``thin``: how many thin structures and small
    objects to add; ``movers``: how many moving objects of random kinds, or a list of kinds
    (``MOVER_KINDS[layout]``, e.g. ``["pendulum"]``; see :meth:`Scene.at`); either may place
    fewer where no free spot is found. ``photo_textures``: share (0..1) of the surfaces
    textured by photographs instead of procedural textures. ``texture_contrast`` scales the
    log-reflectance contrast of every texture.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    if not 0.0 <= photo_textures <= 1.0:
        raise ValueError(f"photo_textures is a share of the surfaces, 0..1, not {photo_textures}")
    problem = movers_problem(movers, layout)
    if problem:
        raise ValueError(f"movers {problem}")
    if isinstance(movers, numbers.Integral):
        movers = int(movers)
    if thin < 0:
        raise ValueError(f"thin is a count, not {thin}")
    reach_lo = np.asarray(reach_lo, np.float64)
    reach_hi = np.asarray(reach_hi, np.float64)
    b = _Builder(rng, texture_contrast, photo_textures)
    make = _room if layout == "room" else _outdoor
    room_lo, room_hi, region, room_tex, room_emit, light, road = make(b, reach_lo, reach_hi, clearance)
    n_thin = _add_thin(b, region, int(thin)) if thin else 0
    if movers:
        _add_movers(b, region, movers, layout, road)
    min_cos = ROOM_MIN_COS if layout == "room" else OUTDOOR_MIN_COS
    return b.build(room_lo, room_hi, room_tex, room_emit, light, min_cos, SceneInfo(layout, None, n_thin))
