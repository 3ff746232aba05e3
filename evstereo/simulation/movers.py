"""Independently moving objects of the simulated scenes: rigid links driven by closed-form motion.

A mover is a few rigid *links* whose poses are closed-form, periodic functions of time: a
spinning fan (:class:`Spinner`), a swinging pendulum on a stand (:class:`Pendulum`), an
object shuttling across the view while it tumbles (:class:`Shuttle`), and a walking figure or a
car going round a stadium-shaped loop (:class:`PathMover`). Link 0 is the mover's static base
(a stand, a motor housing); the others move. Each link carries *parts*, the scene's boxes,
spheres and quads given in the link's frame (:class:`Part`).

Frames: a mover's ``frame`` (mover -> world rotation) and ``origin`` place it in the world;
the world is y-down (gravity +y), as in :mod:`evstereo.simulation.trajectory`, so "up" in a
mover frame is -y and floor-standing movers have their origin on the floor.

:class:`Motion` binds the parts to their rows in the scene's arrays and rewrites those rows for
a time t (:meth:`Motion.arrays_at`), so the ray caster keeps receiving plain arrays. Each mover
states an upper bound on the speed of any of its points (``max_speed``, m/s) from its closed
form: ``|v| <= |v_origin| + |omega| * r`` for a point at distance r from a link's origin, summed
down the chain of links. Every motion is periodic (a walker's gait makes a whole number of
cycles per lap, a shuttle's tumble a whole number of turns per crossing), so sampling one
``period`` (:meth:`Mover.sweep`) bounds the space a mover ever occupies; the scene builder uses
that to keep movers clear of the cameras.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

import numpy as np

from evstereo.simulation.raycast import BOX, QUAD, SPHERE, SceneArrays
from evstereo.simulation.trajectory import axis_rotation

GRAVITY = 9.81  # m/s^2


def rot_x(a) -> np.ndarray:
    return axis_rotation(0, a)


def rot_y(a) -> np.ndarray:
    """Rotation about the vertical axis; maps +z to (sin a, 0, cos a)."""
    return axis_rotation(1, a)


def rot_z(a) -> np.ndarray:
    return axis_rotation(2, a)


def rot_axis(axis: np.ndarray, a) -> np.ndarray:
    """Rotations by angles ``a`` (any shape) about the unit vector ``axis`` (Rodrigues)."""
    a = np.asarray(a, np.float64)[..., None, None]
    x, y, z = axis
    K = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * (K @ K)


@dataclass(frozen=True, eq=False)
class Part:
    """One box, sphere or quad of a mover, in the frame of the link that carries it."""

    kind: int  # SPHERE, BOX or QUAD (see raycast)
    link: int  # the mover's link (0: the static base)
    size: np.ndarray  # box: (3,) half extents; quad: (2,) half sizes; sphere: (1,) radius
    c: np.ndarray = field(default_factory=lambda: np.zeros(3))  # centre in the link frame
    R: np.ndarray = field(default_factory=lambda: np.eye(3))  # part -> link; a quad's columns: u, v, normal
    material: int = 0  # which of the mover's textures it wears

    @property
    def radius(self) -> float:
        """Bounding radius about the part's centre."""
        return float(self.size[0]) if self.kind == SPHERE else float(np.linalg.norm(self.size))

    def spheres(self, most: int = 8) -> tuple[np.ndarray, float]:
        """Up to ``most`` equal spheres covering the part, strung along its longest axis (a car's
        hull or a rod is far from round): ((k, 3) centres in the link frame, radius)."""
        if self.kind == SPHERE:
            return self.c[None], float(self.size[0])
        h = np.zeros(3)
        h[: len(self.size)] = self.size
        a = int(np.argmax(h))
        k = int(np.clip(np.ceil(h[a] / max(np.sort(h)[1], 1e-9)), 1, most))
        sub = h.copy()
        sub[a] = h[a] / k
        offsets = np.zeros((k, 3))
        offsets[:, a] = (2 * np.arange(k) - (k - 1)) * sub[a]
        return self.c + offsets @ self.R.T, float(np.linalg.norm(sub))


def _box(link: int, half, c, R=None, material: int = 0) -> Part:
    return Part(BOX, link, np.asarray(half, np.float64), np.asarray(c, np.float64),
                np.eye(3) if R is None else np.asarray(R, np.float64), material)


def _sphere(link: int, r: float, c, material: int = 0) -> Part:
    return Part(SPHERE, link, np.array([r], np.float64), np.asarray(c, np.float64), np.eye(3), material)


@dataclass(frozen=True, eq=False, kw_only=True)
class Mover:
    """Base of the moving objects: links with closed-form poses carrying parts."""

    kind: ClassVar[str] = "mover"
    parts: tuple[Part, ...]
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))  # world position of the mover frame
    frame: np.ndarray = field(default_factory=lambda: np.eye(3))  # mover -> world rotation

    @property
    def n_links(self) -> int:
        return 1 + max(p.link for p in self.parts)

    @property
    def n_materials(self) -> int:
        return 1 + max(p.material for p in self.parts)

    def local_links(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Link poses in the mover frame at the (K,) times t: ((K, L, 3, 3) link -> mover
        rotations, (K, L, 3) link origins)."""
        raise NotImplementedError

    @property
    def period(self) -> float:
        """Seconds after which the motion repeats exactly."""
        raise NotImplementedError

    @property
    def max_speed(self) -> float:
        """Upper bound on the speed of any point of the mover (m/s)."""
        raise NotImplementedError

    def params(self) -> dict:
        """The motion's parameters, for ``describe``."""
        return {}

    def reach(self, link: int, axis: np.ndarray | None = None) -> float:
        """Largest distance of a point of ``link`` from its origin, or from the line through it
        along ``axis`` (link frame): what a rotation about that axis multiplies into speed."""
        return max((_off_axis(p.c, axis) + p.radius for p in self.parts if p.link == link), default=0.0)

    def link_poses(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Link poses in the world at time t: ((L, 3, 3) link -> world, (L, 3) link origins)."""
        R, c = self.local_links(np.array([float(t)]))
        return self.frame @ R[0], self.origin + c[0] @ self.frame.T

    def sweep(self, step: float = 0.05, max_samples: int = 20000) -> tuple[np.ndarray, np.ndarray]:
        """Bounding spheres of every part at times over one period, relative to ``origin`` (world
        axes): ((N, 3) centres, (N,) radii grown by the distance any point can travel between two
        samples, ~``step`` m, so that together they cover the mover at all times)."""
        n = int(np.clip(np.ceil(self.period * self.max_speed / (2 * step)), 64, max_samples))
        t = np.arange(n) * (self.period / n)
        covers = [p.spheres() for p in self.parts]
        link = np.concatenate([np.full(len(cs), p.link) for p, (cs, _) in zip(self.parts, covers)])
        c = np.concatenate([cs for cs, _ in covers])
        r = np.concatenate([np.full(len(cs), r) for cs, r in covers]) + 0.5 * self.max_speed * self.period / n
        R, o = self.local_links(t)
        centres = np.einsum("knij,nj->kni", R[:, link], c) + o[:, link]
        return centres.reshape(-1, 3) @ self.frame.T, np.tile(r, n)

    def describe(self) -> dict:
        def num(v):
            return [num(x) for x in v] if isinstance(v, (list, tuple)) else (
                round(float(v), 4) if isinstance(v, float) else v)

        return {"kind": self.kind, "origin_m": num(list(self.origin)), "max_speed_m_s": num(self.max_speed),
                **{k: num(v) for k, v in self.params().items()}}


def _off_axis(v: np.ndarray, axis: np.ndarray | None) -> float:
    """Distance of point v from the origin, or from the line through it along the unit ``axis``."""
    return float(np.linalg.norm(v if axis is None else v - np.dot(v, axis) * axis))


_Z = np.array([0.0, 0.0, 1.0])
_Y = np.array([0.0, 1.0, 0.0])


def _static(t: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Identity poses of n links at len(t) times (the movers fill in their moving links)."""
    return np.tile(np.eye(3), (len(t), n, 1, 1)), np.zeros((len(t), n, 3))


@dataclass(frozen=True, eq=False, kw_only=True)
class Spinner(Mover):
    """A fan or rotor: link 1 spins about the mover's z axis through ``hub`` at ``rev_s`` turns/s."""

    kind: ClassVar[str] = "fan"
    hub: np.ndarray
    rev_s: float
    phase: float = 0.0

    def local_links(self, t):
        R, c = _static(t, 2)
        R[:, 1] = rot_z(self.phase + 2 * np.pi * self.rev_s * t)
        c[:, 1] = self.hub
        return R, c

    @property
    def period(self) -> float:
        return 1.0 / abs(self.rev_s)

    @property
    def max_speed(self) -> float:
        return 2 * np.pi * abs(self.rev_s) * self.reach(1, _Z)

    def params(self) -> dict:
        return {"rev_s": self.rev_s, "radius_m": self.reach(1, _Z)}


@dataclass(frozen=True, eq=False, kw_only=True)
class Pendulum(Mover):
    """Link 1 swings about the mover's z axis through ``pivot``: theta(t) = amplitude sin(omega t + phase)."""

    kind: ClassVar[str] = "pendulum"
    pivot: np.ndarray
    amplitude: float  # rad
    omega: float  # rad/s
    phase: float = 0.0

    def local_links(self, t):
        R, c = _static(t, 2)
        R[:, 1] = rot_z(self.amplitude * np.sin(self.omega * t + self.phase))
        c[:, 1] = self.pivot
        return R, c

    @property
    def period(self) -> float:
        return 2 * np.pi / self.omega

    @property
    def max_speed(self) -> float:
        return self.amplitude * self.omega * self.reach(1, _Z)

    def params(self) -> dict:
        return {"length_m": float(np.linalg.norm(self.parts[-1].c)), "amplitude_rad": self.amplitude,
                "period_s": self.period}


@dataclass(frozen=True, eq=False, kw_only=True)
class Shuttle(Mover):
    """Link 1 moves to and fro along the mover's x axis, x(t) = amplitude sin(omega t + phase),
    and tumbles about ``spin_axis`` by ``spin_turns`` whole turns per period."""

    kind: ClassVar[str] = "crossing"
    amplitude: float  # m
    omega: float  # rad/s
    spin_axis: np.ndarray  # unit vector, mover frame
    spin_turns: int = 0
    phase: float = 0.0

    def local_links(self, t):
        R, c = _static(t, 2)
        R[:, 1] = rot_axis(self.spin_axis, self.spin_turns * (self.omega * t + self.phase))
        c[:, 1, 0] = self.amplitude * np.sin(self.omega * t + self.phase)
        return R, c

    @property
    def period(self) -> float:
        return 2 * np.pi / self.omega

    @property
    def max_speed(self) -> float:
        return self.amplitude * self.omega + abs(self.spin_turns) * self.omega * self.reach(1, self.spin_axis)

    def params(self) -> dict:
        return {"amplitude_m": self.amplitude, "peak_speed_m_s": self.amplitude * self.omega}


@dataclass(frozen=True, eq=False, kw_only=True)
class PathMover(Mover):
    """A walking figure or a car going round a stadium loop in the mover's horizontal plane.

    The loop: two straights of ``straight`` m along z at x = +-``turn_radius`` joined by half
    circles, run at constant ``speed``, heading along the path (``turn`` = -1 mirrors it, to go
    round the other way). Link 1 is the body; links 2.. are limbs hinged on it at ``hinges``
    that swing about the body's x axis, angle ``gains[i] * gait_amp * sin(gait phase)``, with a
    whole number ``gait_cycles`` of gait cycles per lap.
    """

    straight: float
    turn_radius: float
    speed: float
    s0: float = 0.0  # arc length at t = 0
    turn: int = 1
    hinges: tuple[np.ndarray, ...] = ()
    gains: tuple[float, ...] = ()
    gait_amp: float = 0.0
    gait_cycles: int = 0
    gait_phase: float = 0.0
    label: str = "walker"  # "walker" or "car"

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.label

    @property
    def lap(self) -> float:
        return 2 * self.straight + 2 * np.pi * self.turn_radius

    def path(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Body origins (K, 3) (mover frame) and headings (K,) (yaw about y, 0 = +z) at times t."""
        L, r = self.straight, self.turn_radius
        s = (self.s0 + self.speed * np.asarray(t, np.float64)) % self.lap
        b1 = (s - L) / r  # angle along the far half circle
        b2 = (s - 2 * L - np.pi * r) / r  # ... and along the near one
        # Segments: up the +x straight, the far half circle, down the -x straight, the near one.
        seg = np.searchsorted([L, L + np.pi * r, 2 * L + np.pi * r], s, side="right")
        one = np.ones_like(s)
        x = np.stack([r * one, r * np.cos(b1), -r * one, -r * np.cos(b2)])
        z = np.stack([-L / 2 + s, L / 2 + r * np.sin(b1), L / 2 - (s - L - np.pi * r), -L / 2 - r * np.sin(b2)])
        yaw = np.stack([0.0 * one, -b1, -np.pi * one, np.pi - b2])
        pick = seg, np.arange(len(s))
        return np.stack([self.turn * x[pick], np.zeros_like(s), z[pick]], -1), self.turn * yaw[pick]

    def local_links(self, t):
        R, c = _static(t, 2 + len(self.hinges))
        p, yaw = self.path(t)
        Rb = rot_y(yaw)
        R[:, 1], c[:, 1] = Rb, p
        swing = self.gait_amp * np.sin(2 * np.pi * self.gait_cycles * t / self.period + self.gait_phase)
        for i, (h, g) in enumerate(zip(self.hinges, self.gains)):
            R[:, 2 + i] = Rb @ rot_x(g * swing)
            c[:, 2 + i] = p + Rb @ h
        return R, c

    @property
    def period(self) -> float:
        return self.lap / self.speed

    @property
    def max_speed(self) -> float:
        # Path speed + turning about the vertical through the body origin (heading rate speed /
        # radius, times the largest distance from that line: limbs can point anywhere about their
        # hinge) + the limbs' swing about their hinges.
        limbs = range(2, self.n_links)
        off = max([self.reach(1, _Y)] + [_off_axis(self.hinges[k - 2], _Y) + self.reach(k) for k in limbs])
        swing_rate = max(map(abs, self.gains), default=0.0) * self.gait_amp * 2 * np.pi * self.gait_cycles / self.period
        return (self.speed + self.speed / self.turn_radius * off
                + swing_rate * max((self.reach(k) for k in limbs), default=0.0))

    def params(self) -> dict:
        return {"speed_m_s": self.speed, "loop_m": [self.straight, self.turn_radius]}


# --- shapes ------------------------------------------------------------------------------
# The factories draw a mover's shape and motion in its own frame (origin 0, frame I); the scene
# builder then chooses ``frame`` and ``origin`` (dataclasses.replace) where it keeps clear.


def make_fan(rng: np.random.Generator, hub_height: float) -> Spinner:
    """A standing fan: base, pole and motor housing (static) and 2-5 twisted blades about a hub,
    turning at 0.5-4 rev/s either way; hub ``hub_height`` m above the floor, axis along z."""
    H = hub_height
    zb = -0.08  # the stand sits behind the blade plane, so the blades clear it
    parts = [_box(0, [0.15, 0.02, 0.15], [0, -0.02, zb]), _box(0, [0.015, H / 2, 0.015], [0, -H / 2, zb]),
             _box(0, [0.06, 0.06, 0.05], [0, -H, zb]), _box(1, [0.04, 0.04, 0.02], [0, 0, 0])]
    n = int(rng.integers(2, 6))
    length, width = rng.uniform(0.1, 0.35), rng.uniform(0.03, 0.1)
    pitch = rng.uniform(0.2, 0.5)
    for k in range(n):
        a = 2 * np.pi * k / n
        r = 0.04 + length / 2
        parts.append(_box(1, [length / 2, width / 2, 0.003], [r * np.cos(a), r * np.sin(a), 0],
                          rot_z(a) @ rot_x(pitch), material=1))
    rev = rng.uniform(0.5, 4.0) * (1 if rng.random() < 0.5 else -1)
    return Spinner(parts=tuple(parts), hub=np.array([0.0, -H, 0.0]), rev_s=float(rev),
                   phase=float(rng.uniform(0, 2 * np.pi)))


def make_pendulum(rng: np.random.Generator, bob_height: float, max_pivot_height: float) -> Pendulum:
    """A rod-and-bob pendulum hanging from the arm of a stand: rod 0.2-0.8 m, bob 2.5-8 cm,
    amplitude 9-34 deg, the physical period (with the first large-amplitude correction); the
    bob's rest centre is ``bob_height`` above the floor (lower if the stand would not fit)."""
    L = rng.uniform(0.2, 0.8)
    rb = rng.uniform(0.025, 0.08)
    hb = max(bob_height, rb + 0.08)
    L = min(L, max_pivot_height - hb)
    L = max(L, 0.15)
    Hs = hb + L
    d = rng.uniform(0.15, 0.35)  # the arm holds the swing plane away from the pole
    w = rng.uniform(0.003, 0.008)
    amp = rng.uniform(0.15, 0.6)
    parts = (_box(0, [0.12, 0.015, 0.12], [0, -0.015, 0]), _box(0, [0.015, Hs / 2, 0.015], [0, -Hs / 2, 0]),
             _box(0, [0.012, 0.012, d / 2 + 0.012], [0, -Hs, d / 2]),
             _box(1, [w, L / 2, w], [0, L / 2, 0]), _sphere(1, rb, [0, L, 0], material=1))
    omega = np.sqrt(GRAVITY / L) * (1 - amp**2 / 16)
    return Pendulum(parts=parts, pivot=np.array([0.0, -Hs, d]), amplitude=float(amp), omega=float(omega),
                    phase=float(rng.uniform(0, 2 * np.pi)))


def make_shuttle(rng: np.random.Generator, amplitude: float, peak_speed: float, size: float) -> Shuttle:
    """A ball or a box of about ``size`` m crossing to and fro over +-``amplitude`` m at up to
    ``peak_speed`` m/s, tumbling 0-3 turns per crossing."""
    if rng.random() < 0.5:
        part = _sphere(1, size, [0, 0, 0])
    else:
        part = _box(1, size * rng.uniform(0.4, 1.0, 3), [0, 0, 0])
    axis = rng.standard_normal(3)
    return Shuttle(parts=(part,), amplitude=float(amplitude), omega=float(peak_speed / amplitude),
                   spin_axis=axis / np.linalg.norm(axis), spin_turns=int(rng.integers(-3, 4)),
                   phase=float(rng.uniform(0, 2 * np.pi)))


def make_walker(rng: np.random.Generator, scale: float, straight: float, turn_radius: float,
                speed: float) -> PathMover:
    """A figure ``1.75 * scale`` m tall (torso, head, two legs, two arms swinging in opposition)
    walking round a loop; the gait's stride matches ``speed``."""
    s = scale
    leg, hip = 0.45 * s, 0.9 * s
    parts = [_box(1, [0.18 * s, 0.3 * s, 0.1 * s], [0, -1.2 * s, 0]), _sphere(1, 0.11 * s, [0, -1.62 * s, 0], 2)]
    hinges = []
    for side in (-1, 1):
        hinges.append(np.array([0.1 * s * side, -hip, 0]))
        parts.append(_box(len(hinges) + 1, [0.06 * s, leg, 0.07 * s], [0, leg, 0], material=1))
    for side in (-1, 1):
        hinges.append(np.array([0.24 * s * side, -1.45 * s, 0]))
        parts.append(_box(len(hinges) + 1, [0.045 * s, 0.33 * s, 0.05 * s], [0, 0.33 * s, 0]))
    amp = rng.uniform(0.3, 0.5)
    lap = 2 * straight + 2 * np.pi * turn_radius
    cycles = max(1, int(round(lap / (4 * hip * np.sin(amp)))))  # two steps of 2 hip sin(amp) per cycle
    return PathMover(parts=tuple(parts), straight=float(straight), turn_radius=float(turn_radius),
                     speed=float(speed), s0=float(rng.uniform(0, lap)), turn=1 if rng.random() < 0.5 else -1,
                     hinges=tuple(hinges), gains=(1.0, -1.0, -0.7, 0.7), gait_amp=float(amp),
                     gait_cycles=cycles, gait_phase=float(rng.uniform(0, 2 * np.pi)), label="walker")


def make_car(rng: np.random.Generator, straight: float, turn_radius: float, speed: float) -> PathMover:
    """A car-like body (hull, cabin, four wheel blocks) driving round a loop, keeping right."""
    parts = car_parts(rng, link=1)
    lap = 2 * straight + 2 * np.pi * turn_radius
    return PathMover(parts=parts, straight=float(straight), turn_radius=float(turn_radius), speed=float(speed),
                     s0=float(rng.uniform(0, lap)), label="car")


def car_parts(rng: np.random.Generator, link: int = 0) -> tuple[Part, ...]:
    """Boxes of a car standing on the ground at the frame origin, facing +z (also used parked)."""
    hw, hh, hl = rng.uniform(0.8, 0.95), rng.uniform(0.35, 0.5), rng.uniform(1.9, 2.4)
    hc = rng.uniform(0.28, 0.4)
    parts = [_box(link, [hw, hh, hl], [0, -(0.3 + hh), 0]),
             _box(link, [hw - 0.08, hc, hl * rng.uniform(0.45, 0.6)], [0, -(0.3 + 2 * hh + hc), -0.1 * hl], material=1)]
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts.append(_box(link, [0.12, 0.17, 0.3], [sx * (hw - 0.15), -0.17, sz * (hl - 0.55)], material=2))
    return tuple(parts)


# --- binding to the scene arrays -----------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Motion:
    """The movers of a scene and the rows their parts occupy in the scene's arrays."""

    movers: tuple[Mover, ...]
    rows: tuple[np.ndarray, ...]  # per mover: (P,) row of each part among the scene's objects of its kind

    @cached_property
    def _tables(self) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per kind: (scene rows, global link index, part -> link rotations, centres in the link)."""
        first = np.cumsum([0] + [m.n_links for m in self.movers])
        out = {}
        for kind in (SPHERE, BOX, QUAD):
            sel = [(row, first[i] + p.link, p.R, p.c) for i, m in enumerate(self.movers)
                   for row, p in zip(self.rows[i], m.parts) if p.kind == kind]
            if sel:
                rows, links, R, c = zip(*sel)
                out[kind] = (np.array(rows), np.array(links), np.array(R), np.array(c))
        return out

    @property
    def max_speed(self) -> float:
        return max((m.max_speed for m in self.movers), default=0.0)

    def arrays_at(self, scene: SceneArrays, t: float) -> dict[str, np.ndarray]:
        """The scene's arrays that hold moving parts, rewritten for time ``t`` (new arrays;
        ``scene`` is not changed)."""
        poses = [m.link_poses(t) for m in self.movers]
        Rl = np.concatenate([p[0] for p in poses])
        cl = np.concatenate([p[1] for p in poses])
        out: dict[str, np.ndarray] = {}
        for kind, (rows, links, R, c) in self._tables.items():
            Rw = Rl[links] @ R
            cw = np.einsum("nij,nj->ni", Rl[links], c) + cl[links]
            if kind == BOX:
                out["box_c"], out["box_R"] = scene.box_c.copy(), scene.box_R.copy()
                out["box_c"][rows], out["box_R"][rows] = cw, Rw
            elif kind == SPHERE:
                out["sph"], out["sph_R"] = scene.sph.copy(), scene.sph_R.copy()
                out["sph"][rows, :3], out["sph_R"][rows] = cw, Rw
            else:
                out["quad_c"], out["quad_e"] = scene.quad_c.copy(), scene.quad_e.copy()
                out["quad_c"][rows], out["quad_e"][rows] = cw, np.swapaxes(Rw, 1, 2)
        return out
