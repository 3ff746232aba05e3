"""Training and search with real Lightning runs on CPU: loss goes down, search writes a genotype,
Ctrl-C ends with one line, a killed run resumes with its whole history, output stays quiet.

Bad config values and bad resume files are in test_train_errors.py (in-process, fast); the
two-process DDP run is in test_train_ddp.py (slow).
"""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest
import torch

from conftest import ROOT
from evstereo.models import load_checkpoint
from evstereo.search.genotypes import Genotype

INTERRUPTED = "interrupted: run the same command again to resume"
ADVERTISING = ("💡", "Tip:", "litlogger", "litmodels", "LitServe", "lightning.ai")


@pytest.fixture(scope="module")
def synth_pair(tmp_path_factory):
    from evstereo.simulation import synthesize

    d = tmp_path_factory.mktemp("train_data")
    synthesize(d, "tr", 0.6, 11)
    synthesize(d, "va", 0.35, 12)
    return d / "tr_data.hdf5", d / "va_data.hdf5"


def _cmd(app, config, tmp_path, synth_pair, *extra):
    tr, va = synth_pair
    return [sys.executable, "-m", f"apps.{app}", "--config", str(ROOT / "configs" / app / config),
            f"out={tmp_path / 'run'}", f"data.train=[{tr}]", f"data.val=[{va}]", "data.generate=[]",
            f"data.cache_dir={tmp_path / 'cache'}", *extra]


def _run(app, config, tmp_path, synth_pair, *extra):
    return subprocess.run(_cmd(app, config, tmp_path, synth_pair, *extra), cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _ckpt(path):
    return torch.load(path, weights_only=True)  # every checkpoint the project writes is plain data


def assert_quiet_output(text: str) -> None:
    """No advertising, no warning printed twice (progress-bar redraws aside)."""
    assert not [a for a in ADVERTISING if a in text], text[-3000:]
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines()]
    warnings = Counter(ln for ln in lines if "Warning" in ln or "warn" in ln.lower())
    assert all(n == 1 for n in warnings.values()), warnings


def no_temporaries(folder) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]


def test_tiny_training_lowers_the_loss(tmp_path, synth_pair):
    r = _run("train", "tiny.yaml", tmp_path, synth_pair, "trainer.max_epochs=6", "trainer.limit_train_batches=3",
             "data.crop=[48,72]", "data.flip=0", "dgs.every_n_epochs=3", "dgs.max_batches=2", "module.lr=0.01",
             "trainer.log_every_n_steps=1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Epoch 5" in r.stdout  # Lightning's progress bar
    assert_quiet_output(r.stdout + r.stderr)
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
    ck = _ckpt(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert [r["epoch"] for r in ck["callbacks"]["DGSCallback"]["history"]] == [0, 3]
    assert ck["hyper_parameters"]["genotype"] == Genotype.from_data(ck["hyper_parameters"]["genotype"]).to_data()


def test_tiny_search_changes_architecture_and_writes_genotype(tmp_path, synth_pair):
    r = _run("search", "tiny.yaml", tmp_path, synth_pair, "trainer.max_epochs=2", "trainer.limit_train_batches=3",
             "module.arch_start_epoch=0", "module.a_lr=0.05", "trainer.limit_val_batches=2",
             "module.energy_budget_mj=0.2", "module.dense_budget_gmacs=0.5", "trainer.log_every_n_steps=1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert_quiet_output(r.stdout + r.stderr)
    g = Genotype.load(tmp_path / "run" / "genotype.yaml")
    assert g.feature_path[-1] == 0 and len(g.matching_path) == 3
    ck = _ckpt(tmp_path / "run" / "checkpoints" / "last.ckpt")
    alphas = ck["state_dict"]["model.feature_net.trellis.alphas"]
    hist = ck["arch_history"]
    assert len(hist) == 2
    assert np.abs(alphas.numpy()).max() > 0.01  # moved away from the ~1e-3 initialisation
    assert not np.allclose(hist[0]["matching_betas"], hist[1]["matching_betas"])  # and kept moving
    assert _ckpt(tmp_path / "run" / "checkpoints" / "epoch001.ckpt")["arch_history"] == hist
    # the README's promise: with a budget, the decoded network's energy and the penalty are logged
    # (the default "target" penalty, |E / budget - 1|)
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    logged = [(float(r["search/expected_mj"]), float(r["search/budget_penalty"])) for r in rows if r.get("search/expected_mj")]
    assert logged and all(e > 0 and o == pytest.approx(abs(e / 0.2 - 1), rel=1e-4, abs=1e-6) for e, o in logged)
    # and with a budget on the dense MACs (the CPU's work), those and their penalty
    dense = [(float(r["search/dense_gmacs"]), float(r["search/dense_penalty"])) for r in rows if r.get("search/dense_gmacs")]
    assert dense and all(d > 0 and o == pytest.approx(abs(d / 0.5 - 1), rel=1e-4, abs=1e-6) for d, o in dense)


def _wait_for(proc, what, condition, timeout=300.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"training ended (status {proc.returncode}) before {what}: {proc.communicate()[1][-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} after {timeout} s")
        time.sleep(0.05)


def _last_epoch(path):
    try:
        return _ckpt(path)["epoch"]
    except (OSError, RuntimeError, EOFError, KeyError):
        return None


def test_ctrl_c_says_how_to_resume_and_exits_130(tmp_path, synth_pair):
    proc = subprocess.Popen(_cmd("train", "tiny.yaml", tmp_path, synth_pair, "trainer.max_epochs=100",
                                 "trainer.limit_train_batches=8", "checkpoint.every_n_train_steps=2",
                                 "data.crop=[48,72]", "dgs.enabled=false", "data.batch_size=1",
                                 "trainer.limit_val_batches=1", "module.log_energy=false"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    _wait_for(proc, "last.ckpt", last.exists)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == INTERRUPTED
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert _ckpt(last)["global_step"] >= 2 and not no_temporaries(tmp_path / "run")


def test_killed_mid_epoch_resumes_with_the_whole_history(tmp_path, synth_pair):
    """kill -9 in epoch 1, then the same command: every epoch's validation, epoch checkpoint,
    log rows and DGS phase are there once, no step is trained twice, nothing temporary is left."""
    common = ("trainer.max_epochs=3", "trainer.limit_train_batches=8", "checkpoint.every_n_train_steps=3",
              "data.crop=[48,72]", "dgs.every_n_epochs=2", "dgs.max_batches=2", "trainer.limit_val_batches=1",
              "data.batch_size=1", "module.log_energy=false", "trainer.log_every_n_steps=1")
    ckpts = tmp_path / "run" / "checkpoints"
    proc = subprocess.Popen(_cmd("train", "tiny.yaml", tmp_path, synth_pair, *common), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(proc, "a checkpoint inside epoch 1", lambda: _last_epoch(ckpts / "last.ckpt") == 1)
    proc.kill()
    out, err = proc.communicate(timeout=60)
    assert_quiet_output(out + err)
    saved = _ckpt(ckpts / "last.ckpt")["global_step"]
    assert 9 <= saved < 16 and not (ckpts / "epoch001.ckpt").exists()
    # what a kill during a write leaves: temporaries of a process that is gone
    gone = subprocess.Popen(["true"])
    gone.wait()
    for name in ("last.ckpt", "epoch001.ckpt"):
        (ckpts / f".{name}.{gone.pid}-x1y2.tmp.ckpt").write_bytes(b"half")

    r = _run("train", "tiny.yaml", tmp_path, synth_pair, *common, "-q")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resuming from {ckpts / 'last.ckpt'}" in r.stdout
    assert "Epoch 2" not in r.stdout + r.stderr and "prepare" not in r.stderr  # -q: no progress bars
    assert not no_temporaries(tmp_path / "run"), no_temporaries(tmp_path / "run")
    assert sorted(p.name for p in ckpts.iterdir()) == ["epoch000.ckpt", "epoch001.ckpt", "epoch002.ckpt", "last.ckpt"]
    assert [_ckpt(ckpts / f"epoch00{e}.ckpt")["global_step"] for e in range(3)] == [8, 16, 24]
    last = _ckpt(ckpts / "last.ckpt")
    assert last["global_step"] == 24  # 3 epochs x 8 steps: nothing trained twice or skipped
    assert [r["epoch"] for r in last["callbacks"]["DGSCallback"]["history"]] == [0, 2]
    rows = _csv(tmp_path / "run" / "csv" / "metrics.csv")
    train_rows = [r for r in rows if r.get("train/loss")]
    assert [int(r["step"]) for r in train_rows] == list(range(24))
    assert [int(r["epoch"]) for r in train_rows] == [e for e in range(3) for _ in range(8)]
    assert [int(r["epoch"]) for r in rows if r.get("val/mean_disparity_error")] == [0, 1, 2]
    assert (tmp_path / "run" / "plots" / "curves.png").is_file() and (tmp_path / "run" / "plots" / "dgs.png").is_file()
    # model.pt keeps the DGS history beside the weights, as data
    from evstereo.models import read_checkpoint_file

    extra = read_checkpoint_file(tmp_path / "run" / "model.pt")["extra"]
    assert [r["epoch"] for r in extra["dgs_history"]] == [0, 2] and extra["steps"] == 24
    # a fine-tune from that model.pt keeps its record under extra.init (shipped fast.pt is one)
    first = tmp_path / "first.pt"
    (tmp_path / "run" / "model.pt").rename(first)
    r = _run("train", "tiny.yaml", tmp_path, synth_pair, *common, f"module.init={first}", "trainer.max_epochs=1",
             "dgs.enabled=false", "-q", "--no-resume")
    assert r.returncode == 0, r.stderr[-3000:]
    tuned = read_checkpoint_file(tmp_path / "run" / "model.pt")["extra"]
    assert tuned["steps"] == 8 and tuned["dgs_history"] == []
    assert tuned["init"]["checkpoint"] == str(first) and tuned["init"]["dgs_history"] == extra["dgs_history"]


def test_modules_take_objects_once_and_keep_plain_hyperparameters():
    """The config and genotype arrive as objects; only the hyper-parameters hold them as data
    (what Lightning saves, and passes back as keyword arguments when it rebuilds a module)."""
    from evstereo.models import NetConfig
    from evstereo.search.genotypes import REFERENCE
    from evstereo.training.modules import StereoSearchModule, StereoTrainModule

    cfg = NetConfig(max_disparity=9, feature_filters=2, matching_filters=2)
    module = StereoTrainModule(net=cfg, genotype=REFERENCE, log_energy=False)
    assert module.model.genotype is REFERENCE and module.model.config is cfg
    hp = dict(module.hparams)
    assert hp["net"] == cfg.as_dict() and hp["genotype"] == REFERENCE.to_data()
    again = StereoTrainModule(**hp)  # as load_from_checkpoint does
    assert again.model.genotype == REFERENCE and again.model.config == cfg
    search = StereoSearchModule(net=cfg, feature_layers=1, matching_layers=2)
    assert search.model.config is cfg and search.hparams["net"] == cfg.as_dict()
    assert StereoSearchModule(**dict(search.hparams)).model.config == cfg


def test_run_config_model_genotype_path_is_relative_to_the_model_file(tmp_path, monkeypatch):
    from evstereo.search.genotypes import REFERENCE
    from evstereo.training.runner import load_run_config, model_options

    other = Genotype(REFERENCE.feature_cell, (0, 0), REFERENCE.matching_cell, (1, 0))
    (tmp_path / "models").mkdir()
    other.save(tmp_path / "models" / "g.yaml")
    (tmp_path / "models" / "m.yaml").write_text("genotype: g.yaml\nmax_disparity: 12\n")
    (tmp_path / "run.yaml").write_text(f"model: {tmp_path / 'models' / 'm.yaml'}\n")
    monkeypatch.chdir(ROOT)  # neither the cwd nor the run config's folder holds g.yaml
    for overrides in ([], ["model.max_disparity=15"]):  # an override turns the model file into a mapping
        net, genotype = model_options(load_run_config(tmp_path / "run.yaml", overrides))
        assert genotype == other and net.max_disparity == (15 if overrides else 12)


def test_spike_weight_adds_the_firing_rate_to_the_loss_and_lowers_it():
    """``module.spike_weight``: the loss gains weight x the mean firing rate of the spiking
    neurons, whose gradient (through the surrogate) lowers that rate faster than the task alone."""
    from evstereo.models import NetConfig
    from evstereo.search.genotypes import REFERENCE
    from evstereo.snn import spike_rates
    from evstereo.training.modules import StereoTrainModule

    cfg = NetConfig(max_disparity=9, feature_filters=2, matching_filters=2)
    gen = torch.Generator().manual_seed(0)
    left = (torch.rand(2, 1, 5, 24, 36, generator=gen) < 0.3).float()
    batch = {"left": left, "right": torch.roll(left, -2, dims=-1), "disparity": torch.full((2, 24, 36), 2.0),
             "valid": torch.ones(2, 24, 36, dtype=torch.bool)}

    def rate_after(weight: float, steps: int = 5) -> float:
        torch.manual_seed(0)
        module = StereoTrainModule(net=cfg, genotype=REFERENCE, log_energy=False, spike_weight=weight)
        module.log = lambda *a, **k: None  # no trainer attached
        opt = torch.optim.SGD(module.parameters(), lr=0.1)
        for _ in range(steps):
            opt.zero_grad()
            module.training_step(batch, 0).backward()
            opt.step()
        with torch.no_grad(), spike_rates(module.model) as rates:
            module.model(batch["left"], batch["right"])
        assert len(rates) > 10  # one per spiking neuron layer
        return torch.stack(rates).mean().item()

    torch.manual_seed(0)
    task = StereoTrainModule(net=cfg, genotype=REFERENCE, log_energy=False)
    regularised = StereoTrainModule(net=cfg, genotype=REFERENCE, log_energy=False, spike_weight=2.0)
    regularised.load_state_dict(task.state_dict())
    logged = {}
    task.log = lambda *a, **k: None
    regularised.log = lambda name, value, **k: logged.__setitem__(name, float(value.detach()))
    difference = regularised.training_step(batch, 0) - task.training_step(batch, 0)
    assert 0 < logged["train/spike_rate"] < 1
    assert difference.item() == pytest.approx(2.0 * logged["train/spike_rate"], rel=1e-4)

    plain, some, more = rate_after(0.0), rate_after(100.0), rate_after(300.0)
    assert more < some < plain and more < 0.9 * plain, (plain, some, more)
    with pytest.raises(ValueError, match="spike_weight"):
        StereoTrainModule(net=cfg, genotype=REFERENCE, spike_weight=-1.0)


def _weights(path) -> dict:
    return load_checkpoint(path).state_dict()


def test_then_chains_a_step_equal_to_the_same_fine_tune_run_alone(tmp_path, synth_pair):
    """One command trains both steps of a ``then`` chain; the second is the fine-tune one would
    run by hand from the first's model.pt (same weights); the command again resumes both at their end."""
    common = ("trainer.max_epochs=1", "trainer.limit_train_batches=3", "data.crop=[48,72]", "data.batch_size=1",
              "trainer.limit_val_batches=1", "module.log_energy=false", "dgs.enabled=false", "-q")
    step = "then=[{name: ft, module: {lr: 0.0005, milestones: [1]}, trainer: {max_epochs: 2}}]"
    r = _run("train", "tiny.yaml", tmp_path, synth_pair, *common, step)
    assert r.returncode == 0, r.stderr[-3000:]
    first, second = tmp_path / "run" / "model.pt", tmp_path / "run" / "ft" / "model.pt"
    assert f"step 2 of 2: {tmp_path / 'run' / 'ft'} (from {first})" in r.stdout
    w1, w2 = _weights(first), _weights(second)
    assert any(not torch.equal(w1[k], w2[k]) for k in w1)  # the second step trained
    alone = tmp_path / "alone"
    r = _run("train", "tiny.yaml", tmp_path, synth_pair, *common, f"out={alone}", f"module.init={first}",
             "module.lr=0.0005", "module.milestones=[1]", "trainer.max_epochs=2")
    assert r.returncode == 0, r.stderr[-3000:]
    by_hand = _weights(alone / "model.pt")
    assert w2.keys() == by_hand.keys() and all(torch.equal(w2[k], by_hand[k]) for k in w2)
    from evstereo.models import read_checkpoint_file

    extra = read_checkpoint_file(second)["extra"]
    assert extra["init"]["checkpoint"] == str(first) and extra["steps"] == 6 and extra["init"]["steps"] == 3
    # the same command again: both steps are finished, nothing is trained again
    r = _run("train", "tiny.yaml", tmp_path, synth_pair, *common, step)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("resuming from") == 2
    assert _ckpt(tmp_path / "run" / "ft" / "checkpoints" / "last.ckpt")["global_step"] == 6
    again = _weights(second)
    assert all(torch.equal(w2[k], again[k]) for k in w2)
