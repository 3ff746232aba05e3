"""A textured indoor scene (its ray caster is :mod:`evstereo.simulation.raycast`).

The scene is a closed box room (floor, ceiling, four walls) holding oriented boxes, spheres
and slanted rectangular panels. Every surface carries its own procedural texture
(:mod:`evstereo.simulation.textures`) in metric surface coordinates, and a view-independent
(Lambertian, two-sided) shade from one directional light, so both cameras of the stereo rig
see the same radiance at the same world point, as stereo matching assumes.

Objects are placed outside the box the trajectory can reach, grown by a clearance, so depth
stays above ~0.6 m in practice; the room is sized so that depth stays below ~8 m.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from evstereo.simulation.raycast import BOX, QUAD, SPHERE, SceneArrays
from evstereo.simulation.textures import TEX_SIZE, build_mip_atlas, make_texture

AMBIENT = 0.35  # share of the light that reaches surfaces facing away from it


class Scene(SceneArrays):
    """Scene geometry as flat arrays plus textures: the ray caster's :class:`SceneArrays` (whose
    fields document the shapes) with the scene-level helpers. The derived values are computed
    once per scene, not per render (a tuple subclass without ``__slots__`` has a ``__dict__``)."""

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


def build_scene(rng: np.random.Generator, reach_lo: np.ndarray, reach_hi: np.ndarray, *,
                clearance: float = 0.35, texture_contrast: float = 1.0) -> Scene:
    """A random room around the box [reach_lo, reach_hi] that the cameras can reach.

    The camera looks roughly along +z, so the far wall is 5-7 m ahead of the reach box and
    the back wall 1.5-2.5 m behind. Objects keep ``clearance`` metres from the reach box (no
    collision, ever); since a sum of sinusoids seldom reaches the corners of its box, the
    nearest depths seen are ~0.6-1 m in practice. About 60% of the objects sit within
    ``band`` beyond the clearance, so near depths (large disparities) are well represented.
    """
    reach_lo = np.asarray(reach_lo, np.float64)
    reach_hi = np.asarray(reach_hi, np.float64)
    room_lo = np.array([reach_lo[0] - rng.uniform(1.3, 2.2), reach_lo[1] - rng.uniform(1.0, 1.6),
                        reach_lo[2] - rng.uniform(1.5, 2.5)])
    room_hi = np.array([reach_hi[0] + rng.uniform(1.3, 2.2), reach_hi[1] + rng.uniform(0.9, 1.3),
                        reach_hi[2] + rng.uniform(5.0, 7.0)])
    safe_lo, safe_hi = reach_lo - clearance, reach_hi + clearance

    textures: list[np.ndarray] = []
    texels: list[float] = []

    def new_texture(texel: float) -> int:
        textures.append(make_texture(rng, TEX_SIZE, texture_contrast))
        texels.append(texel)
        return len(textures) - 1

    room_tex = np.array([new_texture(rng.uniform(0.025, 0.04)) for _ in range(6)], np.int64)

    band = 0.8  # "near" objects: their surface lies within this of the clearance zone

    def place(radius: float, on_floor_half_height: float | None = None) -> np.ndarray | None:
        """Rejection-sample a centre inside the room, ``radius`` clear of walls and the reach box.

        About 60% of the objects are "near": drawn around the reach box, in front of its centre,
        with the surface at most ``band`` beyond the clearance zone.
        """
        near = rng.random() < 0.6
        for attempt in range(400):
            near = near and attempt < 200  # fall back to anywhere if no near spot is free
            lo = room_lo + radius
            hi = room_hi - radius
            lo[2] = max(lo[2], reach_lo[2] - 0.5)  # mostly in front of the camera, where it looks
            if near:
                lo = np.maximum(lo, safe_lo - radius - band)
                hi = np.minimum(hi, safe_hi + radius + band)
                lo[2] = max(lo[2], 0.5 * (reach_lo[2] + reach_hi[2]))
            if np.any(lo >= hi):
                continue
            c = rng.uniform(lo, hi)
            if on_floor_half_height is not None:
                c[1] = room_hi[1] - on_floor_half_height  # resting on the floor (y down)
            dist = _box_distance(c, safe_lo, safe_hi)
            if dist >= radius and (not near or dist <= radius + band):
                return c
        return None

    sph, sph_tex = [], []
    for _ in range(int(rng.integers(2, 5))):
        r = rng.uniform(0.15, 0.6)
        c = place(r)
        if c is not None:
            sph.append([*c, r])
            sph_tex.append(new_texture(rng.uniform(0.01, 0.02)))
    box_c, box_R, box_h, box_tex = [], [], [], []
    for _ in range(int(rng.integers(3, 7))):
        h = rng.uniform(0.15, 0.65, 3)
        floor = rng.random() < 0.5
        R = _random_rotation(rng, 0.0 if floor else 0.6)
        c = place(float(np.linalg.norm(h)), h[1] if floor else None)
        if c is not None:
            box_c.append(c)
            box_R.append(R)
            box_h.append(h)
            box_tex.append(new_texture(rng.uniform(0.012, 0.024)))
    quad_c, quad_e, quad_h, quad_tex = [], [], [], []
    for _ in range(int(rng.integers(2, 5))):
        h = np.array([rng.uniform(0.3, 1.0), rng.uniform(0.25, 0.8)])
        R = _random_rotation(rng, 0.9)  # slanted boards
        c = place(float(np.linalg.norm(h)))
        if c is not None:
            quad_c.append(c)
            quad_e.append(R.T.copy())  # rows = box axes in the world: u, v, normal
            quad_h.append(h)
            quad_tex.append(new_texture(rng.uniform(0.012, 0.024)))

    atlas, offsets = build_mip_atlas(textures)
    light = np.array([rng.uniform(-0.5, 0.5), -1.0, rng.uniform(-0.5, 0.5)])  # from above (-y)
    light /= np.linalg.norm(light)

    def stack(items: list, tail: tuple, dtype=np.float64) -> np.ndarray:
        return np.asarray(items, dtype).reshape((len(items),) + tail)

    return Scene(
        room_lo=room_lo, room_hi=room_hi, room_tex=room_tex,
        sph=stack(sph, (4,)), sph_tex=stack(sph_tex, (), np.int64),
        box_c=stack(box_c, (3,)), box_R=stack(box_R, (3, 3)), box_h=stack(box_h, (3,)),
        box_tex=stack(box_tex, (), np.int64),
        quad_c=stack(quad_c, (3,)), quad_e=stack(quad_e, (3, 3)), quad_h=stack(quad_h, (2,)),
        quad_tex=stack(quad_tex, (), np.int64),
        atlas=atlas, offsets=offsets, texel=np.asarray(texels, np.float64), light=light, ambient=AMBIENT,
    )
