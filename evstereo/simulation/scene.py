"""A textured indoor scene and its numba ray caster.

The scene is a closed box room (floor, ceiling, four walls) holding oriented boxes, spheres
and slanted rectangular panels. Every surface carries its own procedural texture
(:mod:`evstereo.simulation.textures`) in metric surface coordinates, and a view-independent
(Lambertian, two-sided) shade from one directional light, so both cameras of the stereo rig
see the same radiance at the same world point, as stereo matching assumes.

Objects are placed outside the box the trajectory can reach, grown by a clearance, so depth
stays above ~0.6 m in practice; the room is sized so that depth stays below ~8 m.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from evstereo.simulation.textures import TEX_SIZE, build_mip_atlas, make_texture

# Surface kinds in the hit record (the room's six faces are one kind).
ROOM, SPHERE, BOX, QUAD = 0, 1, 2, 3


@dataclass
class Scene:
    """Scene geometry as flat arrays (what the numba kernel takes) plus textures."""

    room_lo: np.ndarray  # (3,) room interior min corner (m)
    room_hi: np.ndarray  # (3,)
    room_tex: np.ndarray  # (6,) texture per face: -x, +x, -y, +y, -z, +z
    sph: np.ndarray  # (S, 4) centre xyz, radius
    sph_tex: np.ndarray  # (S,)
    box_c: np.ndarray  # (B, 3) centre
    box_R: np.ndarray  # (B, 3, 3) box -> world rotation
    box_h: np.ndarray  # (B, 3) half extents
    box_tex: np.ndarray  # (B,)
    quad_c: np.ndarray  # (Q, 3) centre
    quad_e: np.ndarray  # (Q, 3, 3) rows: in-plane axis u, in-plane axis v, normal
    quad_h: np.ndarray  # (Q, 2) half sizes along u, v
    quad_tex: np.ndarray  # (Q,)
    atlas: np.ndarray  # (T, total) float32 mip pyramids
    mip_offsets: np.ndarray  # (L + 1,) int64
    texel: np.ndarray  # (T,) texel size of level 0 (m)
    light: np.ndarray  # (3,) unit direction towards the light
    ambient: float = 0.35

    def __post_init__(self) -> None:
        # Every object with its bounding sphere (centre, radius), for culling.
        kinds = [SPHERE] * len(self.sph) + [BOX] * len(self.box_c) + [QUAD] * len(self.quad_c)
        idx = list(range(len(self.sph))) + list(range(len(self.box_c))) + list(range(len(self.quad_c)))
        spheres = [s for s in self.sph]
        spheres += [np.r_[c, np.linalg.norm(h)] for c, h in zip(self.box_c, self.box_h)]
        spheres += [np.r_[c, np.linalg.norm(h)] for c, h in zip(self.quad_c, self.quad_h)]
        self.obj_kind = np.asarray(kinds, np.int64)
        self.obj_idx = np.asarray(idx, np.int64)
        self.obj_sphere = np.asarray(spheres, np.float64).reshape(-1, 4)

    def kernel_args(self) -> tuple:
        """Arguments of :func:`_trace` after the rays and the camera pose."""
        return (self.room_lo, self.room_hi, self.room_tex, self.sph, self.sph_tex, self.box_c, self.box_R,
                self.box_h, self.box_tex, self.quad_c, self.quad_e, self.quad_h, self.quad_tex, self.atlas,
                self.mip_offsets, self.texel, self.light, self.ambient)

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
        atlas=atlas, mip_offsets=offsets, texel=np.asarray(texels, np.float64), light=light,
    )


# --------------------------------------------------------------------------------------------
# Ray caster
# --------------------------------------------------------------------------------------------


@numba.njit(cache=True, inline="always")
def _sample_level(atlas, ti, offsets, level, su, sv):
    """Bilinear, wrapped lookup of texture ``ti`` at mip ``level``; (su, sv) in level-0 texels."""
    size = TEX_SIZE >> level
    mask = size - 1
    scale = 1.0 / (1 << level)
    x = su * scale - 0.5
    y = sv * scale - 0.5
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = np.float32(x - x0)
    fy = np.float32(y - y0)
    ix = np.int64(x0) & mask
    iy = np.int64(y0) & mask
    ix1 = (ix + 1) & mask
    row0 = offsets[level] + iy * size
    row1 = offsets[level] + ((iy + 1) & mask) * size
    a = atlas[ti, row0 + ix]
    b = atlas[ti, row0 + ix1]
    c = atlas[ti, row1 + ix]
    d = atlas[ti, row1 + ix1]
    return (a + (b - a) * fx) * (1 - fy) + (c + (d - c) * fx) * fy


@numba.njit(cache=True, inline="always")
def _sample(atlas, ti, offsets, su, sv, ratio):
    """Trilinear mip lookup; (su, sv) in level-0 texels, ``ratio`` = pixel footprint / texel.

    Choosing the level from the footprint band-limits the texture, so nothing aliases.
    """
    n_levels = offsets.shape[0] - 1
    if ratio <= 1.0:
        return _sample_level(atlas, ti, offsets, 0, su, sv)
    # Piecewise-linear log2 from the float's exponent: continuous and monotone, which is
    # all the mip blend needs, and much cheaper than a libm call per pixel.
    m, e = math.frexp(ratio)
    lv = e - 2.0 + 2.0 * m
    if lv >= n_levels - 1:
        return _sample_level(atlas, ti, offsets, n_levels - 1, su, sv)
    l0 = int(lv)
    f = np.float32(lv - l0)
    s0 = _sample_level(atlas, ti, offsets, l0, su, sv)
    return s0 + (_sample_level(atlas, ti, offsets, l0 + 1, su, sv) - s0) * f


@numba.njit(cache=True, parallel=True)
def _trace(rays, R, o, pix_angle, act_kind, act_idx, act_oc, act_c2, room_lo, room_hi, room_tex, sph, sph_tex,
           box_c, box_R, box_h, box_tex, quad_c, quad_e, quad_h, quad_tex, atlas, offsets, texel, light, ambient,
           with_radiance, out_rad, out_t, hit_kind, hit_idx):
    """Cast one ray per pixel. rays: (P, 3) camera-frame directions with z = 1.

    ``act_*`` list the objects that may be visible (kind, index, bounding-sphere centre minus
    the ray origin, |oc|^2 - r^2), nearest first. Writes the ray parameter t of the nearest hit
    (= Z in the camera frame, because z = 1) and, if ``with_radiance``, the shaded reflectance
    there. NaN where nothing is hit.
    """
    n_pix = rays.shape[0]
    n_box = box_c.shape[0]
    # Per-frame constants: the ray origin in each box's frame.
    box_o = np.empty((n_box, 3))
    for b in range(n_box):
        for k in range(3):
            box_o[b, k] = ((o[0] - box_c[b, 0]) * box_R[b, 0, k] + (o[1] - box_c[b, 1]) * box_R[b, 1, k]
                           + (o[2] - box_c[b, 2]) * box_R[b, 2, k])
    for i in numba.prange(n_pix):
        rx, ry, rz = rays[i, 0], rays[i, 1], rays[i, 2]
        dx = R[0, 0] * rx + R[0, 1] * ry + R[0, 2] * rz
        dy = R[1, 0] * rx + R[1, 1] * ry + R[1, 2] * rz
        dz = R[2, 0] * rx + R[2, 1] * ry + R[2, 2] * rz
        best = np.inf
        kind = -1
        idx = -1
        # Room: exit point of the box interior, one slab per axis.
        for a in range(3):
            da = dx if a == 0 else (dy if a == 1 else dz)
            if da > 1e-12:
                t = (room_hi[a] - o[a]) / da
                if t < best:
                    best, kind, idx = t, ROOM, 2 * a + 1
            elif da < -1e-12:
                t = (room_lo[a] - o[a]) / da
                if t < best:
                    best, kind, idx = t, ROOM, 2 * a
        dd = dx * dx + dy * dy + dz * dz
        # Objects, nearest first; a bounding-sphere test rejects most of them cheaply.
        for j in range(act_kind.shape[0]):
            bq = act_oc[j, 0] * dx + act_oc[j, 1] * dy + act_oc[j, 2] * dz
            disc = bq * bq - dd * act_c2[j]
            if disc <= 0:
                continue
            m = bq - best * dd
            if m > 0 and m * m > disc:  # sphere starts beyond the current hit (no sqrt needed)
                continue
            k = act_idx[j]
            if act_kind[j] == SPHERE:  # the bounding sphere is the object
                t = (bq - np.sqrt(disc)) / dd
                if 1e-6 < t < best:
                    best, kind, idx = t, SPHERE, k
            elif act_kind[j] == BOX:
                # Slab test in the box frame.
                tmin = -np.inf
                tmax = np.inf
                for a in range(3):
                    dk = dx * box_R[k, 0, a] + dy * box_R[k, 1, a] + dz * box_R[k, 2, a]
                    ok_ = box_o[k, a]
                    hk = box_h[k, a]
                    if abs(dk) < 1e-12:
                        if ok_ < -hk or ok_ > hk:
                            tmin = np.inf
                            break
                        continue
                    inv = 1.0 / dk
                    t1 = (-hk - ok_) * inv
                    t2 = (hk - ok_) * inv
                    if t1 > t2:
                        t1, t2 = t2, t1
                    if t1 > tmin:
                        tmin = t1
                    if t2 < tmax:
                        tmax = t2
                if tmin <= tmax and 1e-6 < tmin < best:
                    best, kind, idx = tmin, BOX, k
            else:
                nx, ny, nz = quad_e[k, 2, 0], quad_e[k, 2, 1], quad_e[k, 2, 2]
                den = dx * nx + dy * ny + dz * nz
                if abs(den) < 1e-12:
                    continue
                t = (act_oc[j, 0] * nx + act_oc[j, 1] * ny + act_oc[j, 2] * nz) / den
                if 1e-6 < t < best:
                    px = t * dx - act_oc[j, 0]
                    py = t * dy - act_oc[j, 1]
                    pz = t * dz - act_oc[j, 2]
                    u = px * quad_e[k, 0, 0] + py * quad_e[k, 0, 1] + pz * quad_e[k, 0, 2]
                    v = px * quad_e[k, 1, 0] + py * quad_e[k, 1, 1] + pz * quad_e[k, 1, 2]
                    if abs(u) <= quad_h[k, 0] and abs(v) <= quad_h[k, 1]:
                        best, kind, idx = t, QUAD, k
        if kind < 0 or not np.isfinite(best):
            out_t[i] = np.nan
            hit_kind[i] = -1
            continue
        out_t[i] = best
        hit_kind[i] = kind
        hit_idx[i] = idx
    if not with_radiance:
        return
    # Pass 2: surface coordinates, footprint and shade of each hit. Pass 3: texture lookups.
    # Separate small loops overlap their memory latency far better than one big loop body.
    tex_id = np.empty(n_pix, np.int64)
    su = np.empty(n_pix)
    sv = np.empty(n_pix)
    ratio = np.empty(n_pix)
    shade = np.empty(n_pix, np.float32)
    for i in numba.prange(n_pix):
        kind = hit_kind[i]
        if kind < 0:
            tex_id[i] = -1
            continue
        idx = hit_idx[i]
        best = out_t[i]
        rx, ry, rz = rays[i, 0], rays[i, 1], rays[i, 2]
        dx = R[0, 0] * rx + R[0, 1] * ry + R[0, 2] * rz
        dy = R[1, 0] * rx + R[1, 1] * ry + R[1, 2] * rz
        dz = R[2, 0] * rx + R[2, 1] * ry + R[2, 2] * rz
        dd = dx * dx + dy * dy + dz * dz
        hx, hy, hz = o[0] + best * dx, o[1] + best * dy, o[2] + best * dz
        # Surface coordinates (u, v) in metres, normal and texture of the hit.
        if kind == ROOM:
            a = idx // 2
            nx = 1.0 if a == 0 else 0.0
            ny = 1.0 if a == 1 else 0.0
            nz = 1.0 if a == 2 else 0.0
            if a == 0:
                u, v = hz, hy
            elif a == 1:
                u, v = hx, hz
            else:
                u, v = hx, hy
            ti = room_tex[idx]
        elif kind == SPHERE:
            r = sph[idx, 3]
            nx, ny, nz = (hx - sph[idx, 0]) / r, (hy - sph[idx, 1]) / r, (hz - sph[idx, 2]) / r
            # Equirectangular mapping, metric along the equator.
            u = r * np.arctan2(nx, nz)
            v = r * np.arcsin(min(1.0, max(-1.0, ny)))
            ti = sph_tex[idx]
        elif kind == BOX:
            lx = (hx - box_c[idx, 0]) * box_R[idx, 0, 0] + (hy - box_c[idx, 1]) * box_R[idx, 1, 0] \
                + (hz - box_c[idx, 2]) * box_R[idx, 2, 0]
            ly = (hx - box_c[idx, 0]) * box_R[idx, 0, 1] + (hy - box_c[idx, 1]) * box_R[idx, 1, 1] \
                + (hz - box_c[idx, 2]) * box_R[idx, 2, 1]
            lz = (hx - box_c[idx, 0]) * box_R[idx, 0, 2] + (hy - box_c[idx, 1]) * box_R[idx, 1, 2] \
                + (hz - box_c[idx, 2]) * box_R[idx, 2, 2]
            ax_ = abs(lx) / box_h[idx, 0]
            ay_ = abs(ly) / box_h[idx, 1]
            az_ = abs(lz) / box_h[idx, 2]
            # The face is the axis where the hit sits on the slab; offset faces so they differ.
            if ax_ >= ay_ and ax_ >= az_:
                f = 0
                u, v = lz + 3.1 * (lx > 0), ly
            elif ay_ >= az_:
                f = 1
                u, v = lx + 5.3 * (ly > 0), lz + 1.7
            else:
                f = 2
                u, v = lx + 2.2 * (lz > 0), ly + 4.1
            nx, ny, nz = box_R[idx, 0, f], box_R[idx, 1, f], box_R[idx, 2, f]
            ti = box_tex[idx]
        else:
            nx, ny, nz = quad_e[idx, 2, 0], quad_e[idx, 2, 1], quad_e[idx, 2, 2]
            px, py, pz = hx - quad_c[idx, 0], hy - quad_c[idx, 1], hz - quad_c[idx, 2]
            u = px * quad_e[idx, 0, 0] + py * quad_e[idx, 0, 1] + pz * quad_e[idx, 0, 2]
            v = px * quad_e[idx, 1, 0] + py * quad_e[idx, 1, 1] + pz * quad_e[idx, 1, 2]
            ti = quad_tex[idx]
        dn = np.sqrt(dd)
        cos_view = abs(nx * dx + ny * dy + nz * dz) / dn
        # Pixel footprint on the surface (m): range * pixel angle, stretched at grazing angles.
        footprint = best * dn * pix_angle / max(cos_view, 0.2)
        inv = 1.0 / texel[ti]
        tex_id[i] = ti
        su[i] = u * inv
        sv[i] = v * inv
        ratio[i] = footprint * inv
        shade[i] = ambient + (1.0 - ambient) * abs(nx * light[0] + ny * light[1] + nz * light[2])
    for i in numba.prange(n_pix):
        if tex_id[i] < 0:
            out_rad[i] = np.nan
        else:
            out_rad[i] = _sample(atlas, tex_id[i], offsets, su[i], sv[i], ratio[i]) * shade[i]


@dataclass(frozen=True)
class RayBundle:
    """One ray per pixel of a camera (camera frame, z = 1) and what culling needs to know."""

    rays: np.ndarray  # (P, 3) float64, C-contiguous
    pix_angle: float  # angle between neighbouring rays near the centre (rad)
    half_angle: float  # widest angle of any ray from the optical axis (rad)

    @classmethod
    def from_grid(cls, rays: np.ndarray) -> "RayBundle":
        """From (H, W, 3) rays such as ``CameraCalibration.pixel_rays``."""
        h, w = rays.shape[:2]
        unit = rays / np.linalg.norm(rays, axis=-1, keepdims=True)
        cy, cx = h // 2, w // 2
        pix = float(np.arccos(np.clip(np.dot(unit[cy, cx], unit[cy, cx + 1]), -1, 1)))
        half = float(np.arccos(np.clip(unit[..., 2].min(), -1, 1)))
        return cls(np.ascontiguousarray(rays.reshape(-1, 3), np.float64), pix, half)


def _visible_objects(scene: Scene, R: np.ndarray, o: np.ndarray, half_angle: float):
    """Objects whose bounding sphere meets the camera's view cone, sorted nearest first."""
    oc = scene.obj_sphere[:, :3] - o
    r = scene.obj_sphere[:, 3]
    dist = np.linalg.norm(oc, axis=1)
    z = oc @ R[:, 2]  # along the optical axis
    ang = np.arccos(np.clip(z / np.maximum(dist, 1e-9), -1, 1))
    spread = np.arcsin(np.clip(r / np.maximum(dist, 1e-9), 0, 1))
    keep = (dist <= r) | (ang - spread <= half_angle + 0.02)
    order = np.flatnonzero(keep)[np.argsort(dist[keep], kind="stable")]
    c2 = np.einsum("ij,ij->i", oc, oc) - r * r
    return (scene.obj_kind[order], scene.obj_idx[order], np.ascontiguousarray(oc[order]),
            np.ascontiguousarray(c2[order]))


def render(scene: Scene, bundle: RayBundle, T_world_cam: np.ndarray,
           with_radiance: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast a camera: ((P,) float32 radiance or empty, (P,) float64 depth Z, NaN = no hit).

    The bundle's rays have z = 1 in the camera frame, so the hit parameter is the depth Z.
    """
    n = bundle.rays.shape[0]
    rad = np.empty(n if with_radiance else 0, np.float32)
    depth = np.empty(n, np.float64)
    R = np.ascontiguousarray(T_world_cam[:3, :3], np.float64)
    o = np.ascontiguousarray(T_world_cam[:3, 3], np.float64)
    active = _visible_objects(scene, R, o, bundle.half_angle)
    hit_kind = np.empty(n, np.int8)
    hit_idx = np.empty(n, np.int64)
    _trace(bundle.rays, R, o, bundle.pix_angle, *active, *scene.kernel_args(), with_radiance, rad, depth,
           hit_kind, hit_idx)
    return rad, depth
