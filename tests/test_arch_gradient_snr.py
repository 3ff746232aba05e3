"""scripts/arch_gradient_snr.py: the per-batch signal-to-noise of each choice the decoder makes,
on a real (tiny) search with its architecture step averaged over two batches."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from arch_gradient_snr import choices, lead_changes, snr_table  # noqa: E402

from evstereo.search.decode import decode_cell, edge_index, ranked_paths, softmax  # noqa: E402
from evstereo.search.genotypes import NUM_NODES  # noqa: E402


def _params(seed: int = 0) -> dict[str, np.ndarray]:
    g = np.random.default_rng(seed)
    return {"feature_alphas": g.normal(0, 0.5, (9, 3)), "feature_betas": g.normal(0, 0.5, (2, 4, 3)),
            "matching_alphas": g.normal(0, 0.5, (9, 3)), "matching_betas": g.normal(0, 0.5, (3, 4, 3))}


def _gradient(seed: int) -> dict[str, np.ndarray]:
    return {k: v * 0.01 for k, v in _params(seed).items()}


def test_choices_are_the_decoded_genotypes_each_with_a_positive_lead():
    p = _params()
    found = choices(p)
    # per part: two edges of each of three nodes, the second input of nodes with 3 and 4 inputs, the path
    assert len(found) == 2 * (2 * NUM_NODES + 2 + 1)
    assert all(c.lead(p) > 0 for c in found)
    for part in ("feature", "matching"):
        cell = decode_cell(p[f"{part}_alphas"])
        named = [c.name for c in found if c.name.startswith(part)]
        for k, node in enumerate(cell.nodes):
            for src, op in node:
                assert any(n.startswith(f"{part} node {k} input {src}: {op} over") for n in named)
        best, rival = ranked_paths(p[f"{part}_betas"], 0 if part == "feature" else None)[:2]
        path = [c for c in found if c.name.startswith(f"{part} path")][0]
        assert path.lead(p) == pytest.approx(best[1] - rival[1])


def test_lead_changes_match_the_softmax_jacobian_and_noise_averages_to_zero():
    p = _params()
    op = next(c for c in choices(p) if c.name.startswith("matching node 2 input"))
    # the analytic rate of an op choice's lead along -g: -(J g)[best] + (J g)[rival], J = diag(w) - w w^T
    k, src = 2, int(op.name.split("input ")[1].split(":")[0])
    e = edge_index(k, src)
    ops = ("skip_connect", "snn_b3", "snn_b5")
    best, rival = (ops.index(s) for s in op.name.split(": ")[1].split(" over "))
    g = _gradient(5)
    w = softmax(p["matching_alphas"][e])
    jg = (np.diag(w) - np.outer(w, w)) @ g["matching_alphas"][e]
    assert lead_changes(op, p, [g])[0] == pytest.approx(-jg[best] + jg[rival], rel=1e-5, abs=1e-12)
    # a gradient and its opposite: mean exactly zero, so the SNR is 0; a steady push: SNR far from 0
    rows = snr_table(p, [g, {k: -v for k, v in g.items()}])
    assert all(abs(r["mean"]) < 1e-12 and abs(r["snr"]) < 1e-9 for r in rows)
    steady = [{k: v + 1e-4 * n[k] for k, v in g.items()} for n in (_gradient(s) for s in range(10, 30))]
    assert np.median([abs(r["snr"]) for r in snr_table(p, steady)]) > 10


def test_on_a_real_tiny_search_with_two_batches_per_architecture_step(tmp_path):
    from evstereo.simulation import synthesize

    synthesize(tmp_path, "tr", 0.5, 21)
    synthesize(tmp_path, "va", 0.3, 22)
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "apps.search", "--config", str(ROOT / "configs/search/tiny.yaml"), "-q",
                        f"out={out}", f"data.train=[{tmp_path / 'tr_data.hdf5'}]", f"data.val=[{tmp_path / 'va_data.hdf5'}]",
                        "data.generate=[]", f"data.cache_dir={tmp_path / 'cache'}", "trainer.max_epochs=1",
                        "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "module.arch_start_epoch=0",
                        "module.energy_budget_mj=0.2", "module.arch_batches=2"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    script = [sys.executable, str(ROOT / "scripts/arch_gradient_snr.py")]
    r = subprocess.run([*script, str(out), "--batches", "3"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert "18 decoded choices, 3 batches" in lines[0] and len(lines) == 20
    assert all("SNR" in line for line in lines[1:19]) and lines[-1].startswith("median |SNR|")
    r = subprocess.run([*script, str(tmp_path / "nothing")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "no such search checkpoint" in r.stderr
