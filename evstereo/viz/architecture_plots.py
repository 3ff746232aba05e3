"""Pictures of an architecture (PNG): decoded cells as diagrams and layer paths on the trellis.

``draw_genotype(genotype, path)`` draws the cells and paths of any genotype (a
:class:`~evstereo.search.genotypes.Genotype`, its data, "reference", or a YAML file: a
genotype file or a model config with a ``genotype:`` entry) into one PNG::

    python -c "from evstereo.viz.architecture_plots import draw_genotype; draw_genotype('configs/model/fast.yaml', 'fast.png')"

``plot_cells`` and ``plot_paths`` draw the two halves separately (the search's cells.png and
paths.png, see :mod:`evstereo.viz.search_plots`); the colours of operations, levels and parts
defined here are the ones every architecture picture uses. Figures and files as
:mod:`evstereo.viz.figures` makes them (Agg, no pyplot, atomic writes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

from evstereo.fileio import read_yaml
from evstereo.search.decode import MOVES
from evstereo.search.genotypes import NUM_LEVELS, NUM_NODES, PRIMITIVES, STRIDES, CellGenotype, Genotype
from evstereo.viz.figures import new_figure, save_figure

PARTS = ("feature", "matching")
LEVEL_LABELS = tuple(f"1/{s}" for s in STRIDES)
INPUT_NAMES = ("c_{k-2}", "c_{k-1}")  # mathtext, wrapped in $...$ where drawn
OP_COLORS = {"skip_connect": "#7f7f7f", "snn_b3": "#1f77b4", "snn_b5": "#d62728", "zero": "#c7c7c7"}
_EXTRA_COLORS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#ff7f0e")
LEVEL_COLORS = ("#440154", "#31688e", "#35b779", "#fde725")  # viridis at 0, 1/3, 2/3, 1
PART_COLORS = {"feature": "#1f77b4", "matching": "#ff7f0e"}


def op_color(op: str, primitives: Sequence[str] = PRIMITIVES) -> str:
    """The colour of an operation (the project's ops fixed, others from a spare palette)."""
    if op in OP_COLORS:
        return OP_COLORS[op]
    extra = [p for p in primitives if p not in OP_COLORS]
    return _EXTRA_COLORS[(extra.index(op) if op in extra else hash(op)) % len(_EXTRA_COLORS)]


def op_style(op: str) -> str:
    """Line style of an operation: dashed for skip_connect."""
    return "--" if op == "skip_connect" else "-"


def load_genotype(genotype: Genotype | dict | str | os.PathLike | None) -> Genotype:
    """A Genotype from anything :meth:`Genotype.resolve` takes, or a model config (a mapping or
    YAML file with a ``genotype:`` entry, a path there relative to the config's folder)."""
    if isinstance(genotype, dict) and "feature" not in genotype:
        if "genotype" not in genotype:
            raise ValueError("a genotype dict needs 'feature' and 'matching' entries (or a 'genotype' entry)")
        return Genotype.resolve(genotype["genotype"])
    if isinstance(genotype, (str, os.PathLike)) and genotype != "reference" and Path(genotype).is_file():
        path = Path(genotype)
        data = read_yaml(path, "genotype file")
        if isinstance(data, dict) and "genotype" in data and "feature" not in data:
            return Genotype.resolve(data["genotype"], path.parent)
    return Genotype.resolve(genotype)


# ----------------------------------------------------------------------------- cells
_NODE_POS = {0: (0.0, 1.7), 1: (0.0, -1.7), 2: (2.7, 0.0), 3: (5.3, 1.9), 4: (5.3, -1.9), "out": (8.0, 0.0)}
_NODE_R = 0.48


def _bezier_point(p0, p2, rad: float, t: float) -> np.ndarray:
    """Point at t on matplotlib's arc3 curve (valid because the axes have an equal aspect)."""
    p0, p2 = np.asarray(p0, float), np.asarray(p2, float)
    d = p2 - p0
    c = (p0 + p2) / 2 + rad * np.array([d[1], -d[0]])
    return (1 - t) ** 2 * p0 + 2 * t * (1 - t) * c + t**2 * p2


def _edge_rad(src: int, dst: int) -> float:
    """Curvature that keeps an edge off the nodes it would otherwise cross."""
    if (src, dst) == (0, 4):
        return 0.33
    if (src, dst) == (1, 3):
        return -0.33
    if (src, dst) == (3, 4):
        return -0.25
    return 0.0


def draw_cell(ax, cell: CellGenotype, title: str = "", primitives: Sequence[str] = PRIMITIVES) -> None:
    """Draw a cell: inputs c_{k-2}, c_{k-1}, nodes 2..4, edges labelled and coloured by op, concat output."""
    ax.set_aspect("equal")
    ax.set_xlim(-1.1, 9.1)
    ax.set_ylim(-3.0, 3.0)
    ax.axis("off")
    patches = {}
    for key, (x, y) in _NODE_POS.items():
        if key in (0, 1):
            patch = FancyBboxPatch((x - 0.62, y - 0.36), 1.24, 0.72, boxstyle="round,pad=0.05", fc="#d9f0d3",
                                   ec="#1b7837", lw=1.5, zorder=3)
            text = f"${INPUT_NAMES[key]}$"
        elif key == "out":
            patch = FancyBboxPatch((x - 0.7, y - 0.36), 1.4, 0.72, boxstyle="round,pad=0.05", fc="#fee8c8",
                                   ec="#b35806", lw=1.5, zorder=3)
            text = "concat"
        else:
            patch = Circle((x, y), _NODE_R, fc="#deebf7", ec="#08519c", lw=1.5, zorder=3)
            text = f"n{key}"
        ax.add_patch(patch)
        patches[key] = patch
        ax.text(x, y, text, ha="center", va="center", fontsize=10, zorder=4)
    # node -> concat (thin grey, unlabelled)
    for k in range(2, 2 + NUM_NODES):
        ax.add_patch(FancyArrowPatch(_NODE_POS[k], _NODE_POS["out"], patchA=patches[k], patchB=patches["out"],
                                     arrowstyle="-|>", mutation_scale=10, color="#aaaaaa", lw=1.0, zorder=1))
    # the chosen edges
    labels = []
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    taken = [patches[k].get_window_extent(renderer) for k in patches]
    for k, edges in enumerate(cell.nodes):
        dst = k + 2
        for src, op in edges:
            rad = _edge_rad(src, dst)
            color = op_color(op, primitives)
            ax.add_patch(FancyArrowPatch(_NODE_POS[src], _NODE_POS[dst], patchA=patches[src], patchB=patches[dst],
                                         connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>", mutation_scale=14,
                                         color=color, lw=2.0, linestyle=op_style(op), zorder=2))
            labels.append((src, dst, rad, op, color))
    for src, dst, rad, op, color in labels:  # place each label where it overlaps no node or earlier label
        best = None
        for t in (0.5, 0.62, 0.38, 0.72, 0.28):
            xy = _bezier_point(_NODE_POS[src], _NODE_POS[dst], rad, t)
            txt = ax.text(xy[0], xy[1], op, ha="center", va="center", fontsize=8, color=color, zorder=5,
                          bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": color, "lw": 0.8, "alpha": 0.95})
            box = txt.get_window_extent(renderer).expanded(1.05, 1.1)
            overlaps = sum(box.overlaps(b) for b in taken)
            if best is None or overlaps < best[0]:
                if best is not None:
                    best[1].remove()
                best = (overlaps, txt, box)
            else:
                txt.remove()
            if overlaps == 0:
                break
        taken.append(best[2])
    if title:
        ax.set_title(title, fontsize=11, fontweight="bold")


def op_legend(fig, primitives: Sequence[str], extra: Sequence[Line2D] = (), **kwargs) -> None:
    """One row of legend entries: each op's colour and style (then ``extra`` handles)."""
    handles = [Line2D([], [], color=op_color(op, primitives), linestyle=op_style(op), linewidth=2, label=op)
               for op in primitives] + list(extra)
    fig.legend(handles=handles, ncol=len(handles), frameon=False, fontsize=9, **kwargs)


def _cell_legend(fig, primitives: Sequence[str], **kwargs) -> None:
    op_legend(fig, [op for op in primitives if op != "zero"],
              [Line2D([], [], color="#aaaaaa", linewidth=1, label="node output to concat")], **kwargs)


# ----------------------------------------------------------------------------- paths
def draw_path(ax, path: Sequence[int], title: str = "", color: str = "#d62728",
              marginals: np.ndarray | None = None) -> None:
    """A layer path on the trellis grid: layers on x (stem first), levels 1/3 (top) .. 1/24 (bottom).

    ``marginals`` [L, 4] (optional) shades every cell by the probability that the path visits it.
    """
    n_layers = len(path)
    xs = np.arange(n_layers + 1)  # 0 = stem

    def levels(x: int) -> range:  # column x (layer x - 1) reaches levels 0 .. x
        return range(min(x, NUM_LEVELS - 1) + 1)

    for x in xs[1:]:  # every possible move between reachable cells
        for s in levels(x - 1):
            for move in MOVES:
                if s + move in levels(x):
                    ax.plot([x - 1, x], [s, s + move], color="#dddddd", lw=1.0, zorder=1)
    for x in xs:
        for s in levels(x):
            p = None if marginals is None or x == 0 else float(marginals[x - 1, s])
            fc = "#f0f0f0" if p is None else (0.2 + 0.8 * (1 - p), 0.45 + 0.55 * (1 - p), 1.0)
            ax.scatter([x], [s], s=260, color=[fc], edgecolor="#999999", linewidth=0.8, zorder=2)
            if p is not None:
                ax.text(x + 0.17, s - 0.19, f"{p:.2f}", fontsize=7, color="#444444", zorder=6,
                        bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85})
    ys = [0, *path]
    ax.plot(xs, ys, color=color, lw=3, zorder=4, solid_capstyle="round")
    ax.scatter(xs, ys, s=70, color=color, zorder=5, edgecolor="white", linewidth=1)
    ax.set_xticks(xs, ["stem"] + [str(i) for i in range(n_layers)], fontsize=9)
    ax.set_yticks(range(NUM_LEVELS), LEVEL_LABELS, fontsize=9)
    ax.set_xlim(-0.5, n_layers + 0.7)
    ax.set_ylim(NUM_LEVELS - 0.5, -0.5)
    ax.set_xlabel("layer", fontsize=9)
    ax.set_ylabel("resolution", fontsize=9)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=11, fontweight="bold")


def _path_widths(genotype: Genotype) -> list[float]:
    return [len(genotype.feature_path) + 1.5, len(genotype.matching_path) + 1.5]


def plot_cells(genotype: Genotype, path: str | os.PathLike, primitives: Sequence[str] = PRIMITIVES,
               suffix: str = "") -> Path:
    """The feature and matching cells side by side; returns the path written."""
    fig = new_figure(13, 4.4)
    axes = fig.subplots(1, 2)
    for ax, part in zip(axes, PARTS):
        draw_cell(ax, getattr(genotype, f"{part}_cell"), f"{part} cell{suffix}", primitives)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.1, wspace=0.05)
    _cell_legend(fig, primitives, loc="lower center", bbox_to_anchor=(0.5, 0.0))
    return save_figure(fig, path)


def plot_paths(genotype: Genotype, path: str | os.PathLike, marginals: dict | None = None, suffix: str = "") -> Path:
    """The feature and matching paths side by side, cells shaded by ``marginals[part]`` [L, 4]
    when given; returns the path written."""
    fig = new_figure(max(8.0, 1.3 * sum(_path_widths(genotype)) + 2), 3.8)
    axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": _path_widths(genotype)})
    for ax, part in zip(axes, PARTS):
        p = getattr(genotype, f"{part}_path")
        m = None if marginals is None else marginals.get(part)
        if m is not None and len(m) != len(p):
            m = None
        draw_path(ax, p, f"{part} path {list(p)}{suffix}", PART_COLORS[part], m)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.86, bottom=0.16, wspace=0.25)
    if marginals:
        fig.text(0.5, 0.01, "cell shade and number: probability that the path visits the cell (last epoch)",
                 ha="center", fontsize=8, color="#444444")
    return save_figure(fig, path)


def draw_genotype(genotype: Genotype | dict | str | os.PathLike | None, path: str | os.PathLike) -> Path:
    """Cells (top) and layer paths (bottom) of a genotype in one PNG; returns the path written.

    ``genotype``: a Genotype, its data (``Genotype.to_data()``), "reference", or a YAML file
    (a genotype file such as a search's ``genotype.yaml``, or a model config with ``genotype:``).
    """
    g = load_genotype(genotype)
    widths = _path_widths(g)
    fig = new_figure(13, 8.4)
    top, bottom = fig.subfigures(2, 1, height_ratios=[4.4, 4.0], hspace=0.02)
    for ax, part in zip(top.subplots(1, 2), PARTS):
        draw_cell(ax, getattr(g, f"{part}_cell"), f"{part} cell")
    top.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.1, wspace=0.05)
    _cell_legend(top, PRIMITIVES, loc="lower center", bbox_to_anchor=(0.5, 0.0))
    axes = bottom.subplots(1, 2, gridspec_kw={"width_ratios": widths})
    for ax, part in zip(axes, PARTS):
        p = getattr(g, f"{part}_path")
        draw_path(ax, p, f"{part} path {list(p)}", PART_COLORS[part])
    bottom.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.14, wspace=0.25)
    return save_figure(fig, path)
