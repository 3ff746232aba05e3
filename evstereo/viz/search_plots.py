"""Pictures of an architecture search and of any genotype (PNG, matplotlib's Agg renderer).

``plot_search(history, out_dir)`` turns the search module's per-epoch architecture history
(``StereoSearchModule.history``: ``epoch``, ``genotype`` data, ``feature_alphas`` [9, n_ops],
``feature_betas`` [L, 4, 3], ``matching_alphas``, ``matching_betas`` as nested lists) into

- ``alphas.png``: softmax(alpha) of every edge and op over the epochs, feature and matching cell;
- ``betas.png``:  the probability that each layer of the path sits at each level (1/3 .. 1/24),
  at the last epoch and over the epochs, feature and matching trellis;
- ``cells.png``:  the decoded cells of the last epoch as diagrams;
- ``paths.png``:  the decoded layer paths on the trellis grid.

``draw_genotype(genotype, path)`` draws the cells and paths of any genotype (a
:class:`~evstereo.search.genotypes.Genotype`, its data, "reference", or a YAML file: a
genotype file or a model config with a ``genotype:`` entry) into one PNG::

    python -c "from evstereo.viz.search_plots import draw_genotype; draw_genotype('configs/model/fast.yaml', 'fast.png')"

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, never through
pyplot: importing this module changes no global matplotlib state (backend, open figures).
Every file is written under a temporary name and renamed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle

from evstereo.errors import InputError
from evstereo.fileio import atomic_path
from evstereo.search.decode import MOVES, decode_cell, edge_index, viterbi_path
from evstereo.search.genotypes import NUM_LEVELS, NUM_NODES, PRIMITIVES, REFERENCE, STRIDES, CellGenotype, Genotype

PARTS = ("feature", "matching")
LEVEL_LABELS = tuple(f"1/{s}" for s in STRIDES)
INPUT_NAMES = ("c_{k-2}", "c_{k-1}")  # mathtext, wrapped in $...$ where drawn
OP_COLORS = {"skip_connect": "#7f7f7f", "snn_b3": "#1f77b4", "snn_b5": "#d62728", "zero": "#c7c7c7"}
_EXTRA_COLORS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#ff7f0e")
LEVEL_COLORS = ("#440154", "#31688e", "#35b779", "#fde725")  # viridis at 0, 1/3, 2/3, 1
PART_COLORS = {"feature": "#1f77b4", "matching": "#ff7f0e"}
DPI = 110


# ----------------------------------------------------------------------------- helpers
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


def op_color(op: str, primitives: Sequence[str] = PRIMITIVES) -> str:
    if op in OP_COLORS:
        return OP_COLORS[op]
    extra = [p for p in primitives if p not in OP_COLORS]
    return _EXTRA_COLORS[(extra.index(op) if op in extra else hash(op)) % len(_EXTRA_COLORS)]


def op_style(op: str) -> str:
    return "--" if op == "skip_connect" else "-"


def edge_label(node: int, src: int) -> str:
    """'n2<-in0' style name of the edge from input/node ``src`` into node ``node`` (0-based)."""
    return f"n{node + 2}\u2190" + (f"in{src}" if src < 2 else f"n{src}")


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - np.nanmax(x, axis=axis, keepdims=True))
    e = np.nan_to_num(e)
    return e / e.sum(axis=axis, keepdims=True)


def move_probabilities(betas: np.ndarray) -> np.ndarray:
    """[L, 4, 3] betas -> softmax over each cell's possible moves (impossible moves get 0).

    The numpy twin of :func:`evstereo.search.trellis.move_probabilities`.
    """
    betas = np.asarray(betas, np.float64)
    masked = betas.copy()
    for s in range(NUM_LEVELS):
        for m, move in enumerate(MOVES):
            if not 0 <= s + move < NUM_LEVELS:
                masked[:, s, m] = -np.inf
    return _softmax(masked)


def level_marginals(betas: np.ndarray) -> np.ndarray:
    """[L, 4] probability that layer l of the path sits at level s (the stem is at level 0)."""
    probs = move_probabilities(betas)
    p = np.zeros(NUM_LEVELS)
    p[0] = 1.0
    out = []
    for layer in range(probs.shape[0]):
        new = np.zeros(NUM_LEVELS)
        for s in range(NUM_LEVELS):
            for m, move in enumerate(MOVES):
                if 0 <= s + move < NUM_LEVELS:
                    new[s + move] += p[s] * probs[layer, s, m]
        p = new
        out.append(p)
    return np.stack(out) if out else np.zeros((0, NUM_LEVELS))


def _primitives_for(n_ops: int, primitives: Sequence[str] | None) -> tuple[str, ...]:
    if primitives is not None and len(primitives) == n_ops:
        return tuple(primitives)
    if n_ops == len(PRIMITIVES):
        return PRIMITIVES
    return tuple(f"op{i}" for i in range(n_ops))


def _entry_genotype(entry: dict, primitives: Sequence[str]) -> Genotype | None:
    if entry.get("genotype"):
        try:
            return Genotype.from_data(entry["genotype"])
        except (KeyError, TypeError, ValueError):
            pass
    try:  # an entry without a decoded genotype: decode its weights the way the search does
        parts = {}
        for part in PARTS:
            alphas = np.asarray(entry[f"{part}_alphas"], np.float64)
            cell = decode_cell(alphas, _primitives_for(alphas.shape[-1], primitives))
            parts[part] = (cell, viterbi_path(np.asarray(entry[f"{part}_betas"], np.float64)))
        return Genotype(parts["feature"][0], parts["feature"][1], parts["matching"][0], parts["matching"][1])
    except (KeyError, TypeError, ValueError):
        return None


def load_genotype(genotype) -> Genotype:
    """A Genotype from a Genotype, its data, "reference", or a YAML file (genotype or model config)."""
    if isinstance(genotype, Genotype):
        return genotype
    if genotype is None or genotype == "reference":
        return REFERENCE
    if isinstance(genotype, dict):
        if "feature" in genotype:
            return Genotype.from_data(genotype)
        if "genotype" in genotype:  # a model config
            return load_genotype(genotype["genotype"])
        raise ValueError("a genotype dict needs 'feature' and 'matching' entries (or a 'genotype' entry)")
    path = Path(genotype)
    if not path.exists():
        return Genotype.load(path)  # the project's one-sentence error
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(path, f"cannot be read as YAML ({exc})") from None
    if isinstance(data, dict) and "genotype" in data and "feature" not in data:
        value = data["genotype"]
        if isinstance(value, str) and value != "reference" and not Path(value).is_absolute():
            value = str(path.parent / value) if (path.parent / value).exists() else value
        return load_genotype(value)
    return Genotype.load(path)


# ----------------------------------------------------------------------------- alphas
def _plot_alpha_cell(subfig, epochs: np.ndarray, weights: np.ndarray, primitives: Sequence[str],
                     cell: CellGenotype | None, title: str) -> None:
    """weights [epochs, 9, n_ops]: a node x input grid of small line plots."""
    axes = subfig.subplots(NUM_NODES, NUM_NODES + 1, sharex=True, sharey=True, squeeze=False)
    kept = {}
    if cell is not None:
        for k, edges in enumerate(cell.nodes):
            for src, op in edges:
                kept[(k, src)] = op
    marker = "o" if len(epochs) <= 12 else None
    for k in range(NUM_NODES):
        for src in range(NUM_NODES + 1):
            ax = axes[k, src]
            if src >= 2 + k:
                ax.set_visible(False)
                continue
            w = weights[:, edge_index(k, src)]
            for i, op in enumerate(primitives):
                ax.plot(epochs, w[:, i], color=op_color(op, primitives), linestyle=op_style(op), marker=marker,
                        markersize=3, linewidth=1.6)
            ax.set_ylim(-0.02, 1.02)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
            label = edge_label(k, src)
            if (k, src) in kept:
                op = kept[(k, src)]
                for spine in ax.spines.values():
                    spine.set_edgecolor(op_color(op, primitives))
                    spine.set_linewidth(2.2)
                ax.set_title(f"{label}: {op}", fontsize=8, fontweight="bold")
            else:
                ax.set_title(label, fontsize=8)
            if src == 0:
                ax.set_ylabel("softmax(\u03b1)", fontsize=7)
            if k == NUM_NODES - 1 or src == k + 1:
                ax.tick_params(labelbottom=True)
                ax.set_xlabel("epoch", fontsize=7)
    if len(epochs) == 1:
        axes[0, 0].set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
        axes[0, 0].set_xticks(epochs)
    subfig.suptitle(title, fontsize=11, fontweight="bold")


def _op_legend(fig, primitives: Sequence[str], **kwargs) -> None:
    handles = [Line2D([], [], color=op_color(op, primitives), linestyle=op_style(op), linewidth=2, label=op)
               for op in primitives]
    fig.legend(handles=handles, ncol=len(handles), frameon=False, fontsize=9, **kwargs)


def plot_alphas(history: list[dict], path: str | os.PathLike, primitives: Sequence[str] | None = None) -> Path | None:
    entries = [e for e in history if "feature_alphas" in e and "matching_alphas" in e]
    if not entries:
        return None
    epochs = np.array([e.get("epoch", i) for i, e in enumerate(entries)], np.float64)
    n_ops = np.asarray(entries[-1]["feature_alphas"]).shape[-1]
    prims = _primitives_for(n_ops, primitives)
    genotype = _entry_genotype(entries[-1], prims)
    fig = new_figure(15.5, 6.6)
    subfigs = fig.subfigures(1, 2, wspace=0.04)
    for sub, part in zip(subfigs, PARTS):
        w = _softmax(np.asarray([e[f"{part}_alphas"] for e in entries], np.float64))
        cell = getattr(genotype, f"{part}_cell") if genotype is not None else None
        _plot_alpha_cell(sub, epochs, w, prims, cell, f"{part} cell: softmax(\u03b1) per edge over the search")
        sub.subplots_adjust(left=0.09, right=0.98, top=0.86, bottom=0.17, hspace=0.45, wspace=0.12)
    _op_legend(fig, prims, loc="lower center", bbox_to_anchor=(0.5, 0.03))
    fig.text(0.5, 0.012, "in0 = c_{k-2} (cell two layers back), in1 = c_{k-1} (previous cell), n2..n4 = the "
             "cell's nodes; framed, with the op in the title: the edges the last epoch decodes to",
             ha="center", fontsize=8, color="#444444")
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- betas
def _reachable(layer: int, level: int) -> bool:
    return level <= layer + 1


def _plot_beta_trellis(subfig, epochs: np.ndarray, marg: np.ndarray, path: Sequence[int] | None, title: str) -> None:
    """marg [epochs, L, 4]: heat map at the last epoch + per layer stacked areas over the epochs."""
    n_layers = marg.shape[1]
    ncols = min(n_layers, 4)
    nrows = -(-n_layers // ncols)
    gs = subfig.add_gridspec(nrows, ncols + 3, width_ratios=[1.2 + 0.25 * n_layers, 0.08, 0.3] + [1] * ncols,
                             wspace=0.3, hspace=0.6)
    ax = subfig.add_subplot(gs[:, 0])
    last = marg[-1].T.copy()  # [4, L]
    for layer in range(n_layers):
        for s in range(NUM_LEVELS):
            if not _reachable(layer, s):
                last[s, layer] = np.nan
    im = ax.imshow(last, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_facecolor("#eeeeee")
    for layer in range(n_layers):
        for s in range(NUM_LEVELS):
            v = last[s, layer]
            if np.isfinite(v):
                ax.text(layer, s, f"{v:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if v > 0.55 else "black")
    if path is not None:  # frame the decoded path's cells
        for layer, s in enumerate(path):
            ax.add_patch(Rectangle((layer - 0.47, s - 0.47), 0.94, 0.94, fill=False, ec="#ff7f0e", lw=2.2))
        ax.plot([], [], color="#ff7f0e", lw=2.2, label="decoded path")
        ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.08), frameon=False, borderaxespad=0)
    ax.set_xticks(range(n_layers), [str(i) for i in range(n_layers)], fontsize=8)
    ax.set_yticks(range(NUM_LEVELS), LEVEL_LABELS, fontsize=8)
    ax.set_xlabel("layer", fontsize=8)
    ax.set_ylabel("level (resolution)", fontsize=8)
    ax.set_title(f"P(layer at level), epoch {epochs[-1]:g}", fontsize=9)
    cax = subfig.add_subplot(gs[:, 1])
    subfig.colorbar(im, cax=cax).ax.tick_params(labelsize=7)
    for layer in range(n_layers):
        a = subfig.add_subplot(gs[layer // ncols, 3 + layer % ncols])
        m = marg[:, layer, :]
        a.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        if len(epochs) > 1:
            a.stackplot(epochs, m.T, colors=LEVEL_COLORS, alpha=0.9)
            a.set_xlim(epochs[0], epochs[-1])
        else:
            bottom = 0.0
            for s in range(NUM_LEVELS):
                a.bar(epochs, m[:, s], bottom=bottom, color=LEVEL_COLORS[s], width=0.6)
                bottom = bottom + m[:, s]
            a.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
            a.set_xticks(epochs)
        a.set_ylim(0, 1)
        a.set_title(f"layer {layer}", fontsize=8)
        a.tick_params(labelsize=7)
        a.set_xlabel("epoch", fontsize=7)
        if layer % ncols == 0:
            a.set_ylabel("P(level)", fontsize=7)
    subfig.suptitle(title, fontsize=11, fontweight="bold", x=0.02, ha="left")


def plot_betas(history: list[dict], path: str | os.PathLike) -> Path | None:
    entries = [e for e in history if "feature_betas" in e and "matching_betas" in e]
    if not entries:
        return None
    epochs = np.array([e.get("epoch", i) for i, e in enumerate(entries)], np.float64)
    genotype = _entry_genotype(entries[-1], PRIMITIVES)
    margs = {p: np.stack([level_marginals(np.asarray(e[f"{p}_betas"], np.float64)) for e in entries]) for p in PARTS}
    heights = [0.6 + 2.6 * max(1, -(-margs[p].shape[1] // 4)) for p in PARTS]
    fig = new_figure(14, 0.45 + sum(heights))
    header, *subfigs = fig.subfigures(3, 1, height_ratios=[0.45, *heights], hspace=0.0)
    header.text(0.01, 0.5, "left: P(layer at level) at the last epoch, framed: the decoded path;  right: the same "
                "per layer over the epochs", fontsize=9, color="#444444", va="center")
    handles = [Line2D([], [], color=c, linewidth=8, label=lab) for c, lab in zip(LEVEL_COLORS, LEVEL_LABELS)]
    header.legend(handles=handles, ncol=5, loc="center right", frameon=False, fontsize=8,
                  title="level:", title_fontsize=8, alignment="left")
    for sub, part in zip(subfigs, PARTS):
        if margs[part].shape[1] == 0:
            continue
        p = getattr(genotype, f"{part}_path") if genotype is not None else None
        if p is not None and len(p) != margs[part].shape[1]:
            p = None
        _plot_beta_trellis(sub, epochs, margs[part], p, f"{part} trellis: where the path goes (level marginals "
                           "from softmax(\u03b2))")
        sub.subplots_adjust(left=0.07, right=0.98, top=0.80, bottom=0.17)
    return save_figure(fig, path)


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


def _cell_legend(fig, primitives: Sequence[str], **kwargs) -> None:
    handles = [Line2D([], [], color=op_color(op, primitives), linestyle=op_style(op), linewidth=2, label=op)
               for op in primitives if op != "zero"]
    handles.append(Line2D([], [], color="#aaaaaa", linewidth=1, label="node output to concat"))
    fig.legend(handles=handles, ncol=len(handles), frameon=False, fontsize=9, **kwargs)


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
    fig = new_figure(13, 4.4)
    axes = fig.subplots(1, 2)
    for ax, part in zip(axes, PARTS):
        draw_cell(ax, getattr(genotype, f"{part}_cell"), f"{part} cell{suffix}", primitives)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.1, wspace=0.05)
    _cell_legend(fig, primitives, loc="lower center", bbox_to_anchor=(0.5, 0.0))
    return save_figure(fig, path)


def plot_paths(genotype: Genotype, path: str | os.PathLike, marginals: dict | None = None, suffix: str = "") -> Path:
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


def draw_genotype(genotype, path: str | os.PathLike) -> Path:
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


# ----------------------------------------------------------------------------- the whole search
def plot_search(history: list[dict], out_dir: str | os.PathLike,
                primitives: Sequence[str] | None = None) -> list[Path]:
    """alphas.png, betas.png, cells.png and paths.png of a search history; returns the paths written.

    Nothing is written for an empty history. ``primitives`` names the ops (default: the
    project's PRIMITIVES when the alphas have that many columns).
    """
    history = [e for e in (history or []) if isinstance(e, dict)]
    if not history:
        return []
    out = Path(out_dir)
    written = []
    for p in (plot_alphas(history, out / "alphas.png", primitives), plot_betas(history, out / "betas.png")):
        if p is not None:
            written.append(p)
    last = history[-1]
    n_ops = np.asarray(last.get("feature_alphas", [[0] * len(PRIMITIVES)])).shape[-1]
    prims = _primitives_for(n_ops, primitives)
    genotype = _entry_genotype(last, prims)
    if genotype is not None:
        epoch = last.get("epoch")
        suffix = f" (epoch {epoch})" if epoch is not None else ""
        written.append(plot_cells(genotype, out / "cells.png", prims, suffix))
        marginals = {}
        for part in PARTS:
            if f"{part}_betas" in last:
                marginals[part] = level_marginals(np.asarray(last[f"{part}_betas"], np.float64))
        written.append(plot_paths(genotype, out / "paths.png", marginals or None, suffix))
    return written
