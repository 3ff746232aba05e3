"""Point clouds from disparity: back-projection with the recording's calibration, PLY files.

Points are in the rectified left camera frame (x right, y down, z forward, metres). Invalid
disparities and points outside [min_depth, max_depth] are removed. PLY files are binary,
written to a temporary name and renamed, and read by Open3D, MeshLab and CloudCompare.
"""

from __future__ import annotations

import os

import numpy as np

from evstereo.fileio import atomic_path
from evstereo.geometry import backproject, disparity_to_depth


def depth_to_points(depth: np.ndarray, P: np.ndarray, colors: np.ndarray | None = None,
                    min_depth: float = 0.0, max_depth: float = np.inf) -> tuple[np.ndarray, np.ndarray | None]:
    """Depth map (m) -> (N, 3) float32 points and (N, 3) uint8 RGB colours (from a BGR image)."""
    d = np.asarray(depth, np.float32).copy()
    d[~((d >= min_depth) & (d <= max_depth))] = np.nan
    pts, mask = backproject(d, P)
    cols = None
    if colors is not None:
        cols = np.ascontiguousarray(colors[mask][:, ::-1]).astype(np.uint8)  # BGR -> RGB
    return pts, cols


def disparity_to_points(disparity: np.ndarray, P: np.ndarray, fB: float, colors: np.ndarray | None = None,
                        min_depth: float = 0.0, max_depth: float = np.inf) -> tuple[np.ndarray, np.ndarray | None]:
    """Disparity (px) -> points via depth = fB / d (see ``depth_to_points``)."""
    return depth_to_points(disparity_to_depth(disparity, fB), P, colors, min_depth, max_depth)


def write_ply(path: str | os.PathLike, points: np.ndarray, colors: np.ndarray | None = None) -> None:
    """Binary little-endian PLY with float x, y, z and optional uchar red, green, blue."""
    points = np.asarray(points, np.float32).reshape(-1, 3)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    rec = np.empty(len(points), dtype=fields)
    rec["x"], rec["y"], rec["z"] = points[:, 0], points[:, 1], points[:, 2]
    if colors is not None:
        colors = np.asarray(colors, np.uint8).reshape(-1, 3)
        rec["red"], rec["green"], rec["blue"] = colors[:, 0], colors[:, 1], colors[:, 2]
    props = "".join(f"property {'float' if t == '<f4' else 'uchar'} {n}\n" for n, t in fields)
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {len(points)}\n{props}end_header\n"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(header.encode("ascii"))
            fh.write(rec.tobytes())


def read_ply(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a PLY written by ``write_ply`` (binary little-endian vertices) -> (points, colors)."""
    with open(path, "rb") as fh:
        data = fh.read()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply") or end < 0:
        from evstereo.errors import InputError

        raise InputError(path, "is not a PLY file")
    header = data[:end].decode("ascii").splitlines()
    fields = []
    for line in header:
        parts = line.split()
        if parts[:1] == ["property"]:
            fields.append((parts[2], "<f4" if parts[1] == "float" else "u1"))
    rec = np.frombuffer(data[end + len(b"end_header\n"):], dtype=fields)
    pts = np.stack([rec["x"], rec["y"], rec["z"]], -1)
    cols = np.stack([rec["red"], rec["green"], rec["blue"]], -1) if "red" in rec.dtype.names else None
    return pts, cols
