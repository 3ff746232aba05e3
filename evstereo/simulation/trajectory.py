"""Smooth 6-DoF camera trajectories for the simulator: poses, velocities and IMU readings.

The world frame matches the nominal camera frame: x right, y down (gravity is +y), z forward.
Position and yaw/pitch/roll are each a sum of a few low-frequency sinusoids (0.05-0.4 Hz, like a
slow drone or a hand-held sweep) plus a small 1-3 Hz wobble. Sums of sinusoids are smooth at
every order, stay inside a known box forever (so a scene can be built around them once, for a
recording of any length), and a speed factor scales time without changing the path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRAVITY_WORLD = np.array([0.0, 9.81, 0.0])  # m/s^2, y points down


def axis_rotation(axis: int, angle) -> np.ndarray:
    """Rotations by angles (any shape) about coordinate axis 0, 1 or 2: shape + (3, 3)."""
    angle = np.asarray(angle, np.float64)
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s
    out[..., j, i] = s
    return out


def _wave_sum(amp: np.ndarray, freq: np.ndarray, phase: np.ndarray, t: np.ndarray) -> np.ndarray:
    """sum_k amp[a, k] * sin(2 pi freq[a, k] t + phase[a, k]) for each axis a -> (N, 3)."""
    arg = 2 * np.pi * freq[None] * t[:, None, None] + phase[None]
    return np.sum(amp[None] * np.sin(arg), axis=-1)


def _log_so3(R: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations -> (N, 3) rotation vectors (angles well below pi here)."""
    cos = np.clip((np.trace(R, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
    ang = np.arccos(cos)
    w = np.stack([R[:, 2, 1] - R[:, 1, 2], R[:, 0, 2] - R[:, 2, 0], R[:, 1, 0] - R[:, 0, 1]], -1)
    scale = np.where(ang > 1e-9, ang / (2 * np.sin(np.maximum(ang, 1e-9))), 0.5)
    return w * scale[:, None]


@dataclass(frozen=True)
class Trajectory:
    """Pose of the left camera in the world, ``T_world_left(t)``; t in seconds from the start."""

    center: np.ndarray  # (3,) m
    pos_amp: np.ndarray  # (3, K) m
    pos_freq: np.ndarray  # (3, K) Hz (before the speed factor)
    pos_phase: np.ndarray  # (3, K) rad
    ang_amp: np.ndarray  # (3, K) rad: yaw (about y), pitch (about x), roll (about z)
    ang_freq: np.ndarray  # (3, K) Hz
    ang_phase: np.ndarray  # (3, K) rad
    speed: float = 1.0

    @classmethod
    def random(cls, rng: np.random.Generator, speed: float = 1.0) -> "Trajectory":
        """A random smooth path: about +-0.45 m sideways, +-0.25 m forward, +-30 deg yaw."""
        k = 3
        pos_total = np.array([0.45, 0.15, 0.25])  # peak excursion per axis (m)
        ang_total = np.array([0.55, 0.15, 0.10])  # yaw, pitch, roll (rad)

        def waves(total: np.ndarray, wobble: float):
            w = rng.uniform(0.3, 1.0, (3, k))
            amp = total[:, None] * w / w.sum(1, keepdims=True)
            freq = rng.uniform(0.05, 0.4, (3, k))
            # A small fast component gives the jitter of a real flight or hand.
            amp = np.concatenate([amp, np.full((3, 1), wobble) * rng.uniform(0.5, 1.0, (3, 1))], 1)
            freq = np.concatenate([freq, rng.uniform(1.0, 3.0, (3, 1))], 1)
            phase = rng.uniform(0, 2 * np.pi, amp.shape)
            return amp, freq, phase

        pa, pf, pp = waves(pos_total, 0.015)
        aa, af, ap = waves(ang_total, 0.012)
        return cls(np.zeros(3), pa, pf, pp, aa, af, ap, float(speed))

    # --- geometry ------------------------------------------------------------------------
    def position(self, t: np.ndarray) -> np.ndarray:
        """(N, 3) left-camera centre in the world."""
        t = np.atleast_1d(np.asarray(t, np.float64))
        return self.center + _wave_sum(self.pos_amp, self.pos_freq * self.speed, self.pos_phase, t)

    def rotation(self, t: np.ndarray) -> np.ndarray:
        """(N, 3, 3) rotation left camera -> world (yaw about y, then pitch, then roll)."""
        t = np.atleast_1d(np.asarray(t, np.float64))
        a = _wave_sum(self.ang_amp, self.ang_freq * self.speed, self.ang_phase, t)
        return axis_rotation(1, a[:, 0]) @ axis_rotation(0, a[:, 1]) @ axis_rotation(2, a[:, 2])

    def pose(self, t: np.ndarray, T_left_cam: np.ndarray | None = None) -> np.ndarray:
        """(N, 4, 4) ``T_world_cam``; ``T_left_cam`` maps camera points into the left camera."""
        t = np.atleast_1d(np.asarray(t, np.float64))
        T = np.zeros((len(t), 4, 4))
        T[:, :3, :3] = self.rotation(t)
        T[:, :3, 3] = self.position(t)
        T[:, 3, 3] = 1.0
        return T if T_left_cam is None else T @ T_left_cam

    def extent(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) box that holds the left camera centre at all times."""
        reach = np.abs(self.pos_amp).sum(1)
        return self.center - reach, self.center + reach

    def max_rates(self) -> tuple[float, float]:
        """Upper bounds on linear speed (m/s) and angular speed (rad/s) over all time."""
        lin = np.linalg.norm((2 * np.pi * self.speed * self.pos_freq * np.abs(self.pos_amp)).sum(1))
        ang = np.linalg.norm((2 * np.pi * self.speed * self.ang_freq * np.abs(self.ang_amp)).sum(1))
        return float(lin), float(ang)

    # --- inertial ------------------------------------------------------------------------
    def imu(self, t: np.ndarray, T_left_cam: np.ndarray | None = None) -> np.ndarray:
        """(N, 6) ideal IMU at the camera: specific force (m/s^2) and angular velocity (rad/s).

        Both in the camera's own frame. The accelerometer reads R^T (a - g): at rest it reads
        -g, i.e. 9.81 m/s^2 pointing up (-y). Derivatives are central differences of the
        analytic pose, accurate to ~1e-6 at these frequencies.
        """
        t = np.atleast_1d(np.asarray(t, np.float64))
        h_p, h_r = 1e-3, 1e-4
        pose = lambda tt: self.pose(tt, T_left_cam)  # noqa: E731
        p0, pp, pm = pose(t)[:, :3, 3], pose(t + h_p)[:, :3, 3], pose(t - h_p)[:, :3, 3]
        acc_w = (pp - 2 * p0 + pm) / h_p**2
        R = pose(t)[:, :3, :3]
        R_rel = np.swapaxes(pose(t - h_r)[:, :3, :3], 1, 2) @ pose(t + h_r)[:, :3, :3]
        gyro = _log_so3(R_rel) / (2 * h_r)  # body-frame angular velocity
        acc_b = np.einsum("nji,nj->ni", R, acc_w - GRAVITY_WORLD)
        return np.concatenate([acc_b, gyro], 1)
