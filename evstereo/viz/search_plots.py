"""Pictures of an architecture search (PNG): the alpha and beta histories, and the result.

``plot_search(history, out_dir)`` turns the search module's per-epoch architecture history
(``StereoSearchModule.history``: ``epoch``, ``genotype`` data, ``feature_alphas`` [9, n_ops],
``feature_betas`` [L, 4, 3], ``matching_alphas``, ``matching_betas`` as nested lists) into

- ``alphas.png``: softmax(alpha) of every edge and op over the epochs, feature and matching cell;
- ``betas.png``:  the probability that each layer of the path sits at each level (1/3 .. 1/24),
  at the last epoch and over the epochs, feature and matching trellis;
- ``cells.png``:  the decoded cells of the last epoch as diagrams;
- ``paths.png``:  the decoded layer paths on the trellis grid.

The cells and paths are drawn by :mod:`evstereo.viz.architecture_plots` (which also draws any
genotype); the move probabilities and level marginals are the search's own
(:mod:`evstereo.search.trellis`). Figures and files as :mod:`evstereo.viz.figures` makes them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from evstereo.search.decode import decode_cell, edge_index, viterbi_path
from evstereo.search.genotypes import NUM_LEVELS, NUM_NODES, PRIMITIVES, CellGenotype, Genotype
from evstereo.search.trellis import level_marginals
from evstereo.viz.architecture_plots import (LEVEL_COLORS, LEVEL_LABELS, PARTS, op_color, op_legend, op_style,
                                             plot_cells, plot_paths)
from evstereo.viz.figures import new_figure, save_figure


# ----------------------------------------------------------------------------- helpers
def edge_label(node: int, src: int) -> str:
    """'n2<-in0' style name of the edge from input/node ``src`` into node ``node`` (0-based)."""
    return f"n{node + 2}\u2190" + (f"in{src}" if src < 2 else f"n{src}")


def _softmax(x: np.ndarray) -> np.ndarray:
    """softmax over the last axis (the ops of an edge), through torch as the search computes it."""
    return torch.softmax(torch.as_tensor(x, dtype=torch.float64), -1).numpy()


def _marginals(betas) -> np.ndarray:
    """[L, 4] level marginals of [L, 4, 3] betas (nested lists or an array), via the trellis's own."""
    betas = torch.as_tensor(np.asarray(betas, np.float64))
    return level_marginals(betas).numpy() if len(betas) else np.zeros((0, NUM_LEVELS))


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


def plot_alphas(history: list[dict], path: str | os.PathLike, primitives: Sequence[str] | None = None) -> Path | None:
    """alphas.png: softmax(alpha) per edge over the epochs; None without alphas in the history."""
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
    op_legend(fig, prims, loc="lower center", bbox_to_anchor=(0.5, 0.03))
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
    """betas.png: level marginals at the last epoch and over the epochs; None without betas."""
    entries = [e for e in history if "feature_betas" in e and "matching_betas" in e]
    if not entries:
        return None
    epochs = np.array([e.get("epoch", i) for i, e in enumerate(entries)], np.float64)
    genotype = _entry_genotype(entries[-1], PRIMITIVES)
    margs = {p: np.stack([_marginals(e[f"{p}_betas"]) for e in entries]) for p in PARTS}
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
                marginals[part] = _marginals(last[f"{part}_betas"])
        written.append(plot_paths(genotype, out / "paths.png", marginals or None, suffix))
    return written
