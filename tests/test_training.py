"""Training and search with real Lightning runs on CPU: loss goes down, search writes a genotype,
an interrupted run resumes from its saved step."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT
from evstereo.models import load_checkpoint
from evstereo.search.genotypes import Genotype


@pytest.fixture(scope="module")
def synth_pair(tmp_path_factory):
    from evstereo.simulation import synthesize

    d = tmp_path_factory.mktemp("train_data")
    synthesize(d, "tr", 0.6, 11)
    synthesize(d, "va", 0.35, 12)
    return d / "tr_data.hdf5", d / "va_data.hdf5"


def _run(app, config, tmp_path, synth_pair, *extra):
    tr, va = synth_pair
    cmd = [sys.executable, "-m", f"apps.{app}", "--config", str(ROOT / "configs" / app / config),
           f"out={tmp_path / 'run'}", f"data.train=[{tr}]", f"data.val=[{va}]", f"data.cache_dir={tmp_path / 'cache'}",
           *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_tiny_training_lowers_the_loss(tmp_path, synth_pair):
    r = _run("train", "tiny.yaml", tmp_path, synth_pair, "trainer.max_epochs=6", "trainer.limit_train_batches=3",
             "data.crop=[48,72]", "data.flip=0", "dgs.every_n_epochs=3", "dgs.max_batches=2", "module.lr=0.01",
             "trainer.log_every_n_steps=1")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _csv(tmp_path / "run" / "csv" / "metrics.csv")
    loss = [float(x["train/loss"]) for x in rows if x.get("train/loss")]
    epe = [float(x["val/mean_disparity_error"]) for x in rows if x.get("val/mean_disparity_error")]
    assert len(epe) == 6 and len(loss) == 18
    assert np.mean(loss[-3:]) < np.mean(loss[:3]) and epe[-1] < epe[0]
    assert any(x.get("val/energy_mj") for x in rows) and any(x.get("decay/feature") for x in rows)
    model = load_checkpoint(tmp_path / "run" / "model.pt")
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")  # Lightning checkpoints load too
    x = torch.zeros(1, 1, 5, 24, 36)
    torch.testing.assert_close(model(x, x), last(x, x))
    ck = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert any("DGSCallback" in k for k in ck["callbacks"]) and ck["callbacks"]


def test_tiny_search_changes_architecture_and_writes_genotype(tmp_path, synth_pair):
    r = _run("search", "tiny.yaml", tmp_path, synth_pair, "trainer.max_epochs=2", "trainer.limit_train_batches=3",
             "module.arch_start_epoch=0", "module.a_lr=0.05", "trainer.limit_val_batches=2")
    assert r.returncode == 0, r.stderr[-3000:]
    g = Genotype.load(tmp_path / "run" / "genotype.yaml")
    assert g.feature_path[-1] == 0 and len(g.matching_path) == 3
    ck = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    alphas = ck["state_dict"]["model.feature_net.trellis.alphas"]
    hist = ck["arch_history"]
    assert len(hist) == 2
    assert np.abs(alphas.numpy()).max() > 0.01  # moved away from the ~1e-3 initialisation
    assert not np.allclose(hist[0]["matching_betas"], hist[1]["matching_betas"])  # and kept moving


def test_training_killed_mid_epoch_resumes_from_the_saved_step(tmp_path, synth_pair):
    common = ("trainer.max_epochs=2", "trainer.limit_train_batches=8", "checkpoint.every_n_train_steps=3",
              "data.crop=[48,72]", "dgs.enabled=false", "trainer.limit_val_batches=1", "data.batch_size=1")
    # stop after 5 steps of the first epoch, as a kill would (last.ckpt was written at step 3)
    r = _run("train", "tiny.yaml", tmp_path, synth_pair, *common, "trainer.max_steps=5")
    assert r.returncode == 0, r.stderr[-3000:]
    ck = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    saved = ck["global_step"]
    assert 3 <= saved <= 5 and ck["epoch"] == 0
    r = _run("train", "tiny.yaml", tmp_path, synth_pair, *common)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming from" in r.stdout
    ck = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert ck["global_step"] == 16  # 2 epochs x 8 steps in all: nothing was trained twice or skipped
    assert torch.load(tmp_path / "run" / "checkpoints" / "epoch001.ckpt", weights_only=False)["global_step"] == 16
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "epoch000.ckpt", "epoch001.ckpt", "last.ckpt"]


@pytest.mark.parametrize("app,override,message", [
    ("train", "dgs.max_batches=0", "section 'dgs': DGS every_n_epochs and max_batches must be at least 1"),
    ("train", "module.lrr=0.1", "section 'module': StereoTrainModule.__init__() got an unexpected keyword argument 'lrr'"),
    ("search", "trainer.max_epoch=3", "section 'trainer': Trainer.__init__() got an unexpected keyword argument 'max_epoch'"),
    ("train", "data.batch_size=0", "data.batch_size must be an integer >= 1, not 0"),
    ("train", "trainer.max_epochs=two", "trainer.max_epochs must be an integer >= 1, not 'two'"),
])
def test_bad_config_values_are_one_line_naming_the_file(tmp_path, synth_pair, app, override, message):
    r = _run(app, "tiny.yaml", tmp_path, synth_pair, override)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert lines[-1] == f"error: {ROOT / 'configs' / app / 'tiny.yaml'}: {message}"
    assert "Traceback" not in r.stderr
