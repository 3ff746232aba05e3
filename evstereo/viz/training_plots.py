"""Pictures of a training run (PNG): DGS surrogate temperatures, learned time constants, curves.

- ``plot_dgs_history(history, path)``: the surrogate temperature b of every DGS layer over the
  DGS phases (the records of ``DGSCallback.history``: ``epoch``, ``global_step``, ``batches``,
  ``layers: {name: {b_before, b_after, delta, weights}}``), as the b in effect per epoch and a
  layer x phase map of b after each phase with the chosen delta written in;
- ``plot_time_constants(csv, path)``: the learned membrane decays (``decay/<type>`` columns of
  Lightning's CSV log ``metrics.csv``) over the epochs;
- ``plot_training_curves(csv, path)``: training loss and the validation metrics
  (``train/loss``, ``val/mean_disparity_error``, ``val/one_pixel_accuracy``, ``val/energy_mj``,
  and the search's ``search/arch_loss``/``search/expected_mj``) as far as the log has them.

Each returns the path written, or None when there is nothing to plot (no record, no column,
no file). Plain data in, PNG out: this module knows nothing of Lightning or training code.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from evstereo.viz.figures import new_figure, save_figure

GROUP_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")

CURVES = (  # (column, title, x axis: "step" or "epoch")
    ("train/loss", "training loss", "step"),
    ("val/mean_disparity_error", "validation: mean disparity error (px)", "epoch"),
    ("val/one_pixel_accuracy", "validation: 1-px accuracy", "epoch"),
    ("val/energy_mj", "validation: energy per frame (mJ)", "epoch"),
    ("search/arch_loss", "search: architecture loss", "step"),
    ("search/expected_mj", "search: decoded network's expected energy (mJ/frame)", "step"),
)


# ----------------------------------------------------------------------------- DGS
def _short_names(names: Sequence[str]) -> list[str]:
    """Layer names without the common leading components (e.g. 'model.')."""
    parts = [n.split(".") for n in names]
    common = 0
    if len(parts) > 1:
        while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
            common += 1
    elif parts and parts[0][0] == "model" and len(parts[0]) > 1:
        common = 1
    return [".".join(p[common:]) or "(model)" for p in parts]


def _group(short: str) -> str:
    return short.split(".")[0] if "." in short else "other"


def plot_dgs_history(history: list[dict], path: str | os.PathLike) -> Path | None:
    """Surrogate temperature b per layer over the DGS phases; None when no phase changed any layer."""
    records = sorted((r for r in (history or []) if isinstance(r, dict) and r.get("layers")),
                     key=lambda r: (r.get("epoch") is None, r.get("epoch") or 0))
    if not records:
        return None
    names: list[str] = []
    for r in records:
        names += [n for n in r["layers"] if n not in names]
    short = _short_names(names)
    phases = [r.get("epoch") if r.get("epoch") is not None else i for i, r in enumerate(records)]
    b_after = np.full((len(names), len(records)), np.nan)
    delta = np.full_like(b_after, np.nan)
    b_start = np.full(len(names), np.nan)
    for j, r in enumerate(records):
        for i, n in enumerate(names):
            v = r["layers"].get(n)
            if v is None:
                continue
            b_after[i, j] = float(v["b_after"])
            delta[i, j] = float(v.get("delta", v["b_after"] - v["b_before"]))
            if np.isnan(b_start[i]):
                b_start[i] = float(v["b_before"])

    n = len(names)
    height = max(4.2, 1.4 + 0.2 * n)
    fig = new_figure(14, height, layout="constrained")
    ax, hm = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.0, 1.0]})

    # b in effect during each epoch: b_before until the phase at its epoch, b_after from then on
    end = phases[-1] + 1
    xs = np.array([phases[0], *phases, end], np.float64)
    b_eff = np.empty((n, len(xs)))
    for i in range(n):
        b = b_start[i]
        b_eff[i, 0] = b
        for j in range(len(phases)):
            b = b if np.isnan(b_after[i, j]) else b_after[i, j]
            b_eff[i, j + 1] = b
        b_eff[i, -1] = b
    groups = list(dict.fromkeys(_group(x) for x in short))
    for k, g in enumerate(groups):
        rows = b_eff[[i for i in range(n) if _group(short[i]) == g]]
        color = GROUP_COLORS[k % len(GROUP_COLORS)]
        ax.fill_between(xs, np.nanmin(rows, 0), np.nanmax(rows, 0), step="post", color=color, alpha=0.15, lw=0)
        ax.step(xs, np.nanmean(rows, 0), where="post", color=color, lw=2,
                label=f"{g} ({len(rows)} layer{'s' if len(rows) > 1 else ''}): mean, min-max band")
    if len(groups) > 1:
        ax.step(xs, np.nanmean(b_eff, 0), where="post", color="black", lw=1.5, ls="--", label="all layers: mean")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(xs[0] - 0.2, xs[-1])
    ax.set_xlabel("epoch (grey lines: a DGS phase at the start of that epoch)", fontsize=9)
    ax.set_ylabel("surrogate temperature b", fontsize=9)
    ax.set_title("b in effect during training", fontsize=11, fontweight="bold")
    for e in phases:
        ax.axvline(e, color="#cccccc", lw=0.8, zorder=0)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="best")

    im = hm.imshow(b_after, cmap="viridis", aspect="auto", interpolation="nearest")
    hm.set_xticks(range(len(phases)), [str(e) for e in phases], fontsize=8)
    hm.set_yticks(range(n), short, fontsize=7 if n <= 40 else 5)
    hm.set_xlabel("DGS phase (epoch)", fontsize=9)
    hm.set_title("b after each phase (chosen \u0394b written in)", fontsize=11, fontweight="bold")
    if n * len(phases) <= 600:
        lo, hi = np.nanmin(b_after), np.nanmax(b_after)
        for i in range(n):
            for j in range(len(phases)):
                if np.isfinite(delta[i, j]):
                    light = (b_after[i, j] - lo) / (hi - lo) > 0.6 if hi > lo else False
                    hm.text(j, i, f"{delta[i, j]:+.2g}" if delta[i, j] else "0", ha="center", va="center",
                            fontsize=6.5, color="black" if light else "white")
    fig.colorbar(im, ax=hm, label="b", fraction=0.05, pad=0.02).ax.tick_params(labelsize=7)
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- CSV logs
def read_metrics_csv(path: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """Lightning's metrics.csv as {column: float array} (NaN where a row has no value); None if absent."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return None
    out: dict[str, np.ndarray] = {}
    for key in rows[0]:
        if key is None:
            continue
        vals = []
        for r in rows:
            try:
                vals.append(float(r.get(key) or "nan"))
            except ValueError:
                vals.append(math.nan)
        out[key] = np.asarray(vals, np.float64)
    return out


def _series(data: dict[str, np.ndarray], column: str, x: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(x, y) for the rows of ``column`` that have a value; epoch-level logs are averaged per x."""
    if column not in data:
        return None
    y = data[column]
    xs = data.get(x)
    if xs is None:
        xs = np.arange(len(y), dtype=np.float64)
    ok = np.isfinite(y) & np.isfinite(xs)
    if not ok.any():
        return None
    xs, y = xs[ok], y[ok]
    order = np.argsort(xs, kind="stable")
    xs, y = xs[order], y[order]
    ux = np.unique(xs)
    if len(ux) < len(xs):  # several rows per x (e.g. a resumed run logging an epoch twice): keep the last
        last = np.array([np.nonzero(xs == v)[0][-1] for v in ux])
        xs, y = ux, y[last]
    return xs, y


def _column(data: dict[str, np.ndarray], name: str) -> str | None:
    for c in (name, f"{name}_epoch", f"{name}_step"):
        if c in data and np.isfinite(data[c]).any():
            return c
    return None


def plot_time_constants(csv_metrics_path: str | os.PathLike, path: str | os.PathLike) -> Path | None:
    """Learned membrane decays (columns ``decay/<type>``) over the epochs; None when the log has none."""
    data = read_metrics_csv(csv_metrics_path)
    if data is None:
        return None
    series = {}
    for col in sorted(c for c in data if c.startswith("decay/")):
        s = _series(data, col, "epoch")
        if s is not None:
            series[col[len("decay/"):]] = s
    if not series:
        return None
    fig = new_figure(7.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    single = all(len(xs) == 1 for xs, _ in series.values())
    for k, (name, (xs, y)) in enumerate(series.items()):
        ax.plot(xs, y, marker="o", markersize=4, lw=1.8, color=GROUP_COLORS[k % len(GROUP_COLORS)], label=name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if single:
        e = next(iter(series.values()))[0][0]
        ax.set_xlim(e - 0.5, e + 0.5)
        ax.set_xticks([e])
    ax.set_xlabel("epoch (value at each validation)", fontsize=9)
    ax.set_ylabel("membrane decay (learned)", fontsize=9)
    ax.set_title("learned time constants per neuron type", fontsize=11, fontweight="bold")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="neuron type", title_fontsize=8)
    fig.subplots_adjust(left=0.13, right=0.97, top=0.9, bottom=0.13)
    return save_figure(fig, path)


def plot_training_curves(csv_metrics_path: str | os.PathLike, path: str | os.PathLike) -> Path | None:
    """Loss and validation metrics over steps/epochs, one panel each; None when none is in the log."""
    data = read_metrics_csv(csv_metrics_path)
    if data is None:
        return None
    panels = []
    for name, title, x in CURVES:
        col = _column(data, name)
        if col is None:
            continue
        if col.endswith("_epoch"):
            x = "epoch"
        s = _series(data, col, x)
        if s is not None:
            panels.append((name, title, x, s))
    if not panels:
        return None
    ncols = min(len(panels), 2)
    nrows = -(-len(panels) // ncols)
    fig = new_figure(6.0 * ncols, 0.6 + 3.2 * nrows)
    for k, (name, title, x, (xs, y)) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        color = GROUP_COLORS[k % len(GROUP_COLORS)]
        if x == "step" and len(xs) > 30:  # noisy per-step values: raw, faint, plus a moving average
            ax.plot(xs, y, color=color, alpha=0.3, lw=0.8)
            w = max(len(xs) // 20, 2)
            smooth = np.convolve(y, np.ones(w) / w, mode="valid")
            ax.plot(xs[w - 1:], smooth, color=color, lw=1.8, label=f"moving mean ({w} logs)")
            ax.legend(fontsize=7)
        else:
            ax.plot(xs, y, color=color, lw=1.8, marker="o", markersize=4)
        if len(xs) == 1:
            ax.set_xlim(xs[0] - 0.5, xs[0] + 0.5)
            ax.set_xticks(xs)
            ax.annotate(f"{y[0]:.4g}", (xs[0], y[0]), textcoords="offset points", xytext=(6, 6), fontsize=8)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("training step" if x == "step" else "epoch", fontsize=9)
        ax.set_title(title, fontsize=10, fontweight="bold")
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if name == "val/one_pixel_accuracy":
            ax.set_ylabel("fraction of valid pixels within 1 px", fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.97, top=1 - 0.5 / (0.6 + 3.2 * nrows), bottom=0.5 / (0.6 + 3.2 * nrows),
                        hspace=0.45, wspace=0.25)
    return save_figure(fig, path)
