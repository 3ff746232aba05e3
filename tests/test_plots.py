"""PNG plots of a search (architecture weights, cells, paths) and of a training run (DGS, decays, curves).

Inputs are built by hand with the shapes the producers write: StereoSearchModule.history
entries, DGSCallback.history records and Lightning's CSV log.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from evstereo.search.decode import NUM_EDGES, decode_cell, viterbi_path
from evstereo.search.genotypes import NUM_LEVELS, PRIMITIVES, REFERENCE, Genotype
from evstereo.viz.architecture_plots import draw_genotype, load_genotype
from evstereo.viz.search_plots import plot_search
from evstereo.viz.training_plots import plot_dgs_history, plot_time_constants, plot_training_curves

ROOT = Path(__file__).resolve().parents[1]


def assert_picture(path) -> np.ndarray:
    """A readable PNG with real content: not one colour, a fair number of distinct colours."""
    path = Path(path)
    assert path.suffix == ".png" and path.is_file(), path
    img = cv2.imread(str(path))
    assert img is not None, f"{path} is not a readable image"
    assert img.shape[0] > 200 and img.shape[1] > 300
    assert img.std() > 5, f"{path} is (almost) a single colour"
    packed = img.reshape(-1, 3).astype(np.int32) @ np.array([1 << 16, 1 << 8, 1], np.int32)
    assert len(np.unique(packed)) > 20
    assert (img < 128).any() and (img > 200).any()  # some ink on a light background
    return img


def no_temp_files(folder: Path) -> bool:
    return not [p for p in Path(folder).iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]


def search_history(epochs: int = 3, feature_layers: int = 2, matching_layers: int = 4, seed: int = 0) -> list[dict]:
    """What StereoSearchModule.history holds: one entry per epoch, weights as nested lists."""
    rng = np.random.default_rng(seed)
    fa, ma = rng.normal(0, 1e-3, (2, NUM_EDGES, len(PRIMITIVES)))
    fb = rng.normal(0, 1e-3, (feature_layers, NUM_LEVELS, 3))
    mb = rng.normal(0, 1e-3, (matching_layers, NUM_LEVELS, 3))
    history = []
    for epoch in range(epochs):
        fa, ma = fa + rng.normal(0, 0.6, fa.shape), ma + rng.normal(0, 0.6, ma.shape)
        fb, mb = fb + rng.normal(0, 0.6, fb.shape), mb + rng.normal(0, 0.6, mb.shape)
        g = Genotype(decode_cell(fa), viterbi_path(fb), decode_cell(ma), viterbi_path(mb))
        history.append({"epoch": epoch, "genotype": g.to_data(),
                        "feature_alphas": fa.tolist(), "feature_betas": fb.tolist(),
                        "matching_alphas": ma.tolist(), "matching_betas": mb.tolist()})
    return history


def dgs_history(phases=(0, 2, 4)) -> list[dict]:
    """What DGSCallback.history holds: per phase, per layer b_before/b_after/delta/weights."""
    names = ["model.feature_net.stem2", "model.feature_net.cells.0.nodes.0", "model.feature_net.cells.0.nodes.1",
             "model.matching_net.stem0", "model.matching_net.cells.0.nodes.0", "model.matching_net.cells.1.nodes.2"]
    deltas = (-0.2, 0.0, 0.2)
    b = dict.fromkeys(names, 3.0)
    history = []
    for j, epoch in enumerate(phases):
        record = {"epoch": epoch, "batches": 4, "layers": {}, "global_step": 10 * epoch}
        for i, name in enumerate(names):
            k = (i + j) % 3
            weights = [0.2, 0.2, 0.2]
            weights[k] = 0.6
            record["layers"][name] = {"b_before": b[name], "b_after": b[name] + deltas[k], "delta": deltas[k],
                                      "weights": weights}
            b[name] += deltas[k]
        history.append(record)
    return history


def write_metrics_csv(path: Path, epochs: int = 3, decay: bool = True) -> Path:
    """Lightning's CSVLogger layout: one row per logged step, validation rows at epoch ends."""
    cols = (["decay/feature", "decay/matching", "decay/stem"] if decay else []) + [
        "epoch", "step", "train/epe", "train/loss", "val/energy_mj", "val/mean_disparity_error",
        "val/one_pixel_accuracy"]
    step = 0
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, cols)
        w.writeheader()
        for e in range(epochs):
            for _ in range(5):
                step += 2
                w.writerow({"epoch": e, "step": step, "train/loss": 4.0 / (1 + 0.1 * step), "train/epe": 5 - 0.1 * step})
            row = {"epoch": e, "step": step, "val/energy_mj": 0.05 + 0.001 * e,
                   "val/mean_disparity_error": 6.0 - e, "val/one_pixel_accuracy": 0.05 * (e + 1)}
            if decay:
                row.update({"decay/feature": 0.2 + 0.01 * e, "decay/matching": 0.2 - 0.01 * e, "decay/stem": 0.2})
            w.writerow(row)
    return path


# ----------------------------------------------------------------------------- search plots
def test_plot_search_writes_four_pictures(tmp_path):
    out = tmp_path / "plots"
    written = plot_search(search_history(3), out)
    assert [p.name for p in written] == ["alphas.png", "betas.png", "cells.png", "paths.png"]
    for p in written:
        assert p.parent == out
        assert_picture(p)
    assert no_temp_files(out)


def test_plot_search_one_epoch_other_depths_and_empty(tmp_path):
    assert plot_search([], tmp_path / "none") == []
    assert not (tmp_path / "none").exists()
    # a single entry (a one-epoch search) and deeper trellises; an entry without the decoded genotype
    history = search_history(1, feature_layers=3, matching_layers=6, seed=1)
    del history[0]["genotype"]
    for p in plot_search(history, tmp_path / "one"):
        assert_picture(p)
    assert len(list((tmp_path / "one").glob("*.png"))) == 4


def test_level_marginals_the_plots_draw_are_the_trellis_ones():
    """betas.png and paths.png draw the trellis's own marginals (no numpy twin in viz)."""
    torch = pytest.importorskip("torch")
    from evstereo.search import trellis
    from evstereo.viz import search_plots

    betas = np.random.default_rng(3).normal(0, 1, (5, NUM_LEVELS, 3))
    t = torch.tensor(betas, dtype=torch.float64)
    probs = trellis.move_probabilities(t).numpy()
    np.testing.assert_allclose(probs.sum(-1), 1.0)
    assert probs[:, 0, 0].sum() == 0 and probs[:, NUM_LEVELS - 1, 2].sum() == 0  # no move off the trellis
    marg = search_plots._marginals(betas.tolist())
    np.testing.assert_allclose(marg, trellis.level_marginals(t).numpy(), atol=1e-12)
    np.testing.assert_allclose(marg.sum(1), 1.0)
    assert marg[0, 2:].sum() == 0  # the first layer can only be at 1/3 or 1/6


def test_draw_genotype_reference_config_and_data(tmp_path):
    assert_picture(draw_genotype(REFERENCE, tmp_path / "reference.png"))
    assert_picture(draw_genotype(ROOT / "configs" / "model" / "fast.yaml", tmp_path / "fast.png"))
    assert load_genotype(ROOT / "configs" / "model" / "reference.yaml") == REFERENCE
    assert load_genotype(REFERENCE.to_data()) == REFERENCE
    assert load_genotype("reference") == REFERENCE
    REFERENCE.save(tmp_path / "genotype.yaml")
    assert load_genotype(tmp_path / "genotype.yaml") == REFERENCE
    assert no_temp_files(tmp_path)


def test_draw_genotype_bad_file_is_one_sentence(tmp_path):
    from evstereo.errors import InputError

    with pytest.raises(InputError, match="does not exist"):
        draw_genotype(tmp_path / "missing.yaml", tmp_path / "x.png")
    bad = tmp_path / "bad.yaml"
    bad.write_text("feature: [1, 2\n")
    with pytest.raises(InputError, match="bad.yaml"):
        draw_genotype(bad, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# ----------------------------------------------------------------------------- training plots
def test_plot_dgs_history(tmp_path):
    p = plot_dgs_history(dgs_history(), tmp_path / "dgs.png")
    assert p == tmp_path / "dgs.png"
    assert_picture(p)
    assert plot_dgs_history(dgs_history(phases=(0,)), tmp_path / "dgs1.png") is not None
    assert plot_dgs_history([], tmp_path / "none.png") is None
    assert plot_dgs_history([{"epoch": 0, "batches": 0, "layers": {}}], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
    assert no_temp_files(tmp_path)


def test_plot_time_constants_and_curves(tmp_path):
    metrics = write_metrics_csv(tmp_path / "metrics.csv")
    assert_picture(plot_time_constants(metrics, tmp_path / "plots" / "time_constants.png"))
    assert_picture(plot_training_curves(metrics, tmp_path / "plots" / "curves.png"))
    # one epoch only still draws
    one = write_metrics_csv(tmp_path / "one.csv", epochs=1)
    assert_picture(plot_time_constants(one, tmp_path / "plots" / "tc1.png"))
    assert_picture(plot_training_curves(one, tmp_path / "plots" / "curves1.png"))
    assert no_temp_files(tmp_path / "plots")


def test_training_plots_with_nothing_to_plot(tmp_path):
    no_decay = write_metrics_csv(tmp_path / "metrics.csv", decay=False)
    assert plot_time_constants(no_decay, tmp_path / "tc.png") is None
    assert plot_time_constants(tmp_path / "missing.csv", tmp_path / "tc.png") is None
    assert plot_training_curves(tmp_path / "missing.csv", tmp_path / "c.png") is None
    (tmp_path / "empty.csv").write_text("epoch,step\n")
    assert plot_training_curves(tmp_path / "empty.csv", tmp_path / "c.png") is None
    assert not (tmp_path / "tc.png").exists() and not (tmp_path / "c.png").exists()


def test_train_app_writes_its_plots(tmp_path):
    from apps.train import write_plots
    from evstereo.training.dgs import DGSCallback

    (tmp_path / "csv").mkdir()
    write_metrics_csv(tmp_path / "csv" / "metrics.csv")
    cb = DGSCallback()
    cb.history = dgs_history()
    written = write_plots(SimpleNamespace(callbacks=[object(), cb]), tmp_path)
    assert [p.name for p in written] == ["dgs.png", "time_constants.png", "curves.png"]
    assert all(p.parent == tmp_path / "plots" for p in written)
    # no DGS callback (dgs.enabled: false): no dgs.png
    assert [p.name for p in write_plots(SimpleNamespace(callbacks=[]), tmp_path)] == ["time_constants.png",
                                                                                     "curves.png"]


def test_viz_plots_keep_the_layering():
    """viz never imports training, and the plot modules leave pyplot (global state) alone."""
    code = ("import sys, evstereo.viz.search_plots, evstereo.viz.training_plots, evstereo.viz.architecture_plots; "
            "bad = [m for m in sys.modules if m.startswith('evstereo.training') or m == 'matplotlib.pyplot']; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
