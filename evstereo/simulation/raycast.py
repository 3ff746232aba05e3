"""The numba ray caster of the synthetic scenes: one ray per pixel, nearest hit, textured shade.

:func:`render` casts a :class:`RayBundle` (one camera-frame ray per pixel, z = 1) from a
camera pose into a :class:`~evstereo.simulation.scene.Scene` and returns the radiance and the
depth Z of every pixel (NaN where nothing is hit). The kernels take their inputs as small
named tuples of arrays (numba compiles them like structs): :class:`SceneArrays` (the scene's
geometry, textures and light), :class:`View` (rays and pose) and :class:`Candidates` (the
objects that may be visible, nearest first); they write into plain arrays.

Two passes: :func:`_nearest_hits` finds the nearest surface of every ray (room faces by slab,
objects behind a bounding-sphere test); :func:`_radiance` computes surface coordinates,
pixel footprint and Lambertian shade of each hit, then looks the texture up with trilinear
mip-mapping (the footprint picks the level, so nothing aliases; beyond the coarsest level,
as on a ground plane near the horizon, the lookup fades to the texture's mean). Textures
move with their objects: boxes and quads through their axes, spheres through ``sph_R``.
Room faces with ``room_emit > 0`` glow instead of being lit (an outdoor sky).

The kernels know nothing of time: a scene with moving objects is rendered at time t as the
plain arrays of ``scene.at(t)`` (:mod:`evstereo.simulation.scene`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numba
import numpy as np

from evstereo.simulation.textures import TEX_SIZE

if TYPE_CHECKING:
    from evstereo.simulation.scene import Scene

# Surface kinds in the hit record (the room's six faces are one kind).
ROOM, SPHERE, BOX, QUAD = 0, 1, 2, 3


class SceneArrays(NamedTuple):
    """A scene as the kernels read it (see :class:`~evstereo.simulation.scene.Scene`)."""

    room_lo: np.ndarray  # (3,) room interior min corner (m)
    room_hi: np.ndarray  # (3,)
    room_tex: np.ndarray  # (6,) texture per face: -x, +x, -y, +y, -z, +z
    room_emit: np.ndarray  # (6,) > 0: the face glows with this gain times its texture, unlit (a sky)
    sph: np.ndarray  # (S, 4) centre xyz, radius
    sph_R: np.ndarray  # (S, 3, 3) sphere -> world rotation (turns the texture with the sphere)
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
    offsets: np.ndarray  # (L + 1,) int64 start of each mip level in an atlas row
    texel: np.ndarray  # (T,) texel size of level 0 (m)
    light: np.ndarray  # (3,) unit direction towards the light
    ambient: float
    min_cos: float  # the footprint stretch at grazing view is capped at 1 / min_cos


class View(NamedTuple):
    """The rays of a camera and its pose."""

    rays: np.ndarray  # (P, 3) camera-frame directions with z = 1
    R: np.ndarray  # (3, 3) camera -> world rotation
    o: np.ndarray  # (3,) camera centre in the world (the ray origin)
    pix_angle: float  # angle between neighbouring rays near the centre (rad)


class Candidates(NamedTuple):
    """The objects that may be visible, nearest first."""

    kind: np.ndarray  # (N,) SPHERE, BOX or QUAD
    idx: np.ndarray  # (N,) index among the objects of that kind
    oc: np.ndarray  # (N, 3) bounding-sphere centre minus the ray origin
    c2: np.ndarray  # (N,) |oc|^2 - r^2


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
        # Beyond the coarsest level (a far ground plane near the horizon) fade to the texture's
        # mean over one more octave, as the next (2x2, 1x1) levels would, so it never aliases.
        last = n_levels - 1
        s0 = _sample_level(atlas, ti, offsets, last, su, sv)
        mean = np.float32(0.0)
        for j in range(offsets[last], offsets[last + 1]):
            mean += atlas[ti, j]
        mean /= np.float32(offsets[last + 1] - offsets[last])
        return s0 + (mean - s0) * np.float32(min(lv - last, 1.0))
    l0 = int(lv)
    f = np.float32(lv - l0)
    s0 = _sample_level(atlas, ti, offsets, l0, su, sv)
    return s0 + (_sample_level(atlas, ti, offsets, l0 + 1, su, sv) - s0) * f


@numba.njit(cache=True, parallel=True)
def _nearest_hits(view, cand, scene, out_t, hit_kind, hit_idx):
    """Pass 1: the nearest hit of every ray: ray parameter ``out_t`` (= depth Z, because z = 1;
    NaN where nothing is hit), surface kind ``hit_kind`` (-1: none) and face or object ``hit_idx``.

    The outputs are separate arrays, not a tuple: numba's parallel loops lose writes into
    arrays taken from a tuple argument (inputs in tuples are fine).
    """
    rays, R, o, _ = view
    act_kind, act_idx, act_oc, act_c2 = cand
    room_lo, room_hi = scene.room_lo, scene.room_hi
    box_c, box_R, box_h = scene.box_c, scene.box_R, scene.box_h
    quad_e, quad_h = scene.quad_e, scene.quad_h
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


@numba.njit(cache=True, parallel=True)
def _radiance(view, scene, out_t, hit_kind, hit_idx, out_rad):
    """Passes 2 and 3: the shaded, mip-mapped texture at every hit of pass 1 into ``out_rad`` (NaN: no hit)."""
    rays, R, o, pix_angle = view
    (room_lo, room_hi, room_tex, room_emit, sph, sph_R, sph_tex, box_c, box_R, box_h, box_tex, quad_c, quad_e, quad_h,
     quad_tex, atlas, offsets, texel, light, ambient, min_cos) = scene
    n_pix = rays.shape[0]
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
        emit = 0.0
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
            emit = room_emit[idx]
        elif kind == SPHERE:
            r = sph[idx, 3]
            nx, ny, nz = (hx - sph[idx, 0]) / r, (hy - sph[idx, 1]) / r, (hz - sph[idx, 2]) / r
            # Equirectangular mapping of the normal in the sphere's frame, metric along the equator.
            lx = nx * sph_R[idx, 0, 0] + ny * sph_R[idx, 1, 0] + nz * sph_R[idx, 2, 0]
            ly = nx * sph_R[idx, 0, 1] + ny * sph_R[idx, 1, 1] + nz * sph_R[idx, 2, 1]
            lz = nx * sph_R[idx, 0, 2] + ny * sph_R[idx, 1, 2] + nz * sph_R[idx, 2, 2]
            u = r * np.arctan2(lx, lz)
            v = r * np.arcsin(min(1.0, max(-1.0, ly)))
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
        footprint = best * dn * pix_angle / max(cos_view, min_cos)
        inv = 1.0 / texel[ti]
        tex_id[i] = ti
        su[i] = u * inv
        sv[i] = v * inv
        ratio[i] = footprint * inv
        if emit > 0.0:
            shade[i] = emit
        else:
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


def _visible_objects(scene: Scene, R: np.ndarray, o: np.ndarray, half_angle: float) -> Candidates:
    """Objects whose bounding sphere meets the camera's view cone, sorted nearest first."""
    obj_kind, obj_idx, obj_sphere = scene.bounding_spheres
    oc = obj_sphere[:, :3] - o
    r = obj_sphere[:, 3]
    dist = np.linalg.norm(oc, axis=1)
    z = oc @ R[:, 2]  # along the optical axis
    ang = np.arccos(np.clip(z / np.maximum(dist, 1e-9), -1, 1))
    spread = np.arcsin(np.clip(r / np.maximum(dist, 1e-9), 0, 1))
    keep = (dist <= r) | (ang - spread <= half_angle + 0.02)
    order = np.flatnonzero(keep)[np.argsort(dist[keep], kind="stable")]
    c2 = np.einsum("ij,ij->i", oc, oc) - r * r
    return Candidates(obj_kind[order], obj_idx[order], np.ascontiguousarray(oc[order]),
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
    view = View(bundle.rays, R, o, bundle.pix_angle)
    hit_kind = np.empty(n, np.int8)
    hit_idx = np.empty(n, np.int64)
    arrays = scene.arrays
    _nearest_hits(view, active, arrays, depth, hit_kind, hit_idx)
    if with_radiance:
        _radiance(view, arrays, depth, hit_kind, hit_idx, rad)
    return rad, depth
