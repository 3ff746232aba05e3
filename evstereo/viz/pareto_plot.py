"""The Pareto picture of networks: mean disparity error against energy and against CPU time.

Each point is one network's ``apps.evaluate`` results (``results.json``) on the same recording:
``mean_disparity_error``, ``energy_mj`` (mean per frame) and ``forward_ms_median``. A point is
on the front when no other point is at least as good on all three and better on one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from evstereo.errors import InputError
from evstereo.viz.figures import new_figure, save_figure

KEYS = ("mean_disparity_error", "energy_mj", "forward_ms_median")


@dataclass(frozen=True)
class Point:
    name: str
    error_px: float
    energy_mj: float
    forward_ms: float

    @property
    def values(self) -> tuple[float, float, float]:
        return self.error_px, self.energy_mj, self.forward_ms


def read_point(name: str, path: str | os.PathLike) -> Point:
    """One network's figures from its results.json; an InputError names a missing figure."""
    path = Path(path)
    try:
        r = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(path, f"is not a results.json of apps.evaluate ({e})") from None
    missing = [k for k in KEYS if not isinstance(r, dict) or not isinstance(r.get(k), (int, float))]
    if missing:
        raise InputError(path, f"has no {', '.join(missing)} (evaluate with energy, i.e. without --energy-frames 0)")
    return Point(name, float(r["mean_disparity_error"]), float(r["energy_mj"]), float(r["forward_ms_median"]))


def pareto_front(points: list[Point]) -> list[Point]:
    """The points that no other point dominates (lower or equal on every figure, lower on one)."""
    def dominated(p: Point) -> bool:
        return any(all(a <= b for a, b in zip(q.values, p.values)) and q.values != p.values for q in points)
    return [p for p in points if not dominated(p)]


def plot_pareto(points: list[Point], path: str | os.PathLike, title: str = "") -> Path:
    """Two panels (error vs energy, error vs CPU time); the front's points are filled."""
    front = {p.name for p in pareto_front(points)}
    fig = new_figure(10, 4.2)
    axes = fig.subplots(1, 2)
    for ax, (attr, label) in zip(axes, (("energy_mj", "energy per frame (mJ, 45 nm compute-only)"),
                                        ("forward_ms", "CPU time per frame (ms, median forward)"))):
        for p in points:
            x = getattr(p, attr)
            on = p.name in front
            ax.plot([x], [p.error_px], "o", ms=8, mfc="C0" if on else "white", mec="C0")
            ax.annotate(p.name, (x, p.error_px), textcoords="offset points", xytext=(6, 4), fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("mean disparity error (px)")
        ax.grid(alpha=0.3)
    fig.suptitle(title or "networks on the same recording (filled: Pareto front over error, energy, time)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
