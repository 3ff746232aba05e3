"""Figure plumbing shared by the plot modules: an Agg-canvas Figure and an atomic PNG write.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, never through
pyplot: importing a plot module changes no global matplotlib state (backend, open figures).
Every file is written under a temporary name and renamed.
"""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evstereo.fileio import atomic_path

DPI = 110


def new_figure(width: float, height: float, **kwargs) -> Figure:
    """A Figure on an Agg canvas (no pyplot)."""
    fig = Figure(figsize=(width, height), dpi=DPI, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (temporary name, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, facecolor="white")
    return path
