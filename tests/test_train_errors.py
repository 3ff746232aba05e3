"""apps.train / apps.search on bad input: one line naming the file or option, exit status 2,
before any training; resume files are read as data only; the tiny configs run from nothing.

The apps run in-process (``main(argv)``): every case fails before the fit loop, so no
subprocess start-up is needed.
"""

from __future__ import annotations

import argparse

import h5py
import pytest
import torch
import yaml

from conftest import ROOT
from evstereo.datasets.datamodule import StereoDataModule
from evstereo.fileio import read_yaml

INTERRUPTED = "interrupted: run the same command again to resume"


def run_app(app: str, capsys, tmp_path, recording, *extra: str, config: str = "tiny.yaml") -> tuple[int, list[str]]:
    """(exit status, stderr lines) of ``python -m apps.APP`` run in this process on ``recording``."""
    from apps import search, train

    main = {"train": train.main, "search": search.main}[app]
    code = main(["--config", str(ROOT / "configs" / app / config), f"out={tmp_path / 'run'}",
                 f"data.train=[{recording}]", f"data.val=[{recording}]", "data.generate=[]",
                 f"data.cache_dir={tmp_path / 'cache'}", *extra])
    return code, capsys.readouterr().err.strip().splitlines()


def source(app: str) -> str:
    return str(ROOT / "configs" / app / "tiny.yaml")


@pytest.mark.parametrize("app,override,message", [
    ("train", "dgs.max_batches=0", "section 'dgs': DGS every_n_epochs and max_batches must be at least 1"),
    ("train", "module.lrr=0.1", "section 'module': StereoTrainModule.__init__() got an unexpected keyword argument 'lrr'"),
    ("search", "trainer.max_epoch=3", "section 'trainer': Trainer.__init__() got an unexpected keyword argument 'max_epoch'"),
    ("train", "data.batch_size=0", "data.batch_size must be an integer >= 1, not 0"),
    ("train", "trainer.max_epochs=two", "trainer.max_epochs must be an integer >= 1, not 'two'"),
    ("train", "module.lr=fast", "section 'module': lr must be a number, not 'fast'"),
    ("train", "module.spike_weight=-1", "section 'module': spike_weight must be >= 0, not -1"),
    ("train", "module.milestones=[2,x]", "section 'module': milestones[1] must be an integer, not 'x'"),
    ("search", "module.w_lr=fast", "section 'module': w_lr must be a number, not 'fast'"),
    ("train", "data.crop=96", "section 'data': crop must be [height, width] in pixels, not 96"),
    ("train", "trainer.strategy=nonsense", "section 'trainer': You selected an invalid strategy name"),
    ("train", "then=5", "then must be a list of steps, not 5"),
    ("train", "then=[{module: {lr: 0.1}}]", "then.0 must be a mapping with a name (letters, digits, - or _)"),
    ("train", "then=[{name: a}, {name: a}]", "then.1: step name 'a' is used twice"),
    ("train", "then=[{name: a, out: x}]", "then.0: unknown or fixed section(s) out (a step's out is OUT/NAME)"),
    ("train", "then=[{name: a, module: {init: x.pt}}]", "then.0: module.init is the previous step's model.pt"),
    ("train", "then=[{name: a, trainer: {max_epochs: 0}}]", "trainer.max_epochs must be an integer >= 1, not 0"),
    ("train", "then=[{name: a, module: {lr: fast}}]", "section 'module': lr must be a number, not 'fast'"),
    ("search", "then=[{name: a}]", "override 'then=[{name: a}]': unknown section 'then'"),
])
def test_bad_config_values_are_one_line_naming_the_file(tmp_path, capsys, random_recording, app, override, message):
    code, err = run_app(app, capsys, tmp_path, random_recording, override)
    assert code == 2, err
    assert err[-1].startswith(f"error: {source(app)}: {message}"), err[-1]
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_override_of_a_step_that_does_not_exist(tmp_path, capsys, random_recording):
    code, err = run_app("train", capsys, tmp_path, random_recording, "then=[{name: a}]", "then.1.module.lr=1")
    assert code == 2 and err[-1] == (f"error: {source('train')}: override 'then.1.module.lr=1': '1' is not an index "
                                     f"of a 1-item list"), err


def test_crop_larger_than_the_sensor_names_the_recording(tmp_path, capsys, random_recording):
    code, err = run_app("train", capsys, tmp_path, random_recording, "data.crop=[300,400]")
    assert code == 2
    assert err == [f"error: {random_recording}: the crop 300x400 (data.crop) is larger than this recording's "
                   "260x346 sensor"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_gpu_accelerator_without_cuda(tmp_path, capsys, random_recording, accelerator):
    code, err = run_app("train", capsys, tmp_path, random_recording, f"trainer.accelerator={accelerator}")
    assert code == 2
    assert len(err) == 1 and err[0].startswith(
        f"error: {source('train')}: trainer.accelerator={accelerator}: CUDA is not available on this machine")
    assert err[0].endswith("use trainer.accelerator=cpu")


class _Payload:
    """Unpickling this would create ``marker``: what a hostile checkpoint could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _bad_resume_file(kind: str, path, marker):
    path.parent.mkdir(parents=True)
    if kind == "pickled code":
        torch.save({"state_dict": {}, "epoch": 0, "global_step": 3, "hook": _Payload(marker)}, path)
    else:  # a real checkpoint cut short
        torch.save({"state_dict": {"w": torch.zeros(20000)}, "epoch": 0, "global_step": 3}, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("app", ["train", "search"])
@pytest.mark.parametrize("kind,problem", [("pickled code", "holds arbitrary Python objects"),
                                          ("truncated", "cannot be read as a resume checkpoint")])
def test_resume_file_that_is_not_plain_data_is_refused(tmp_path, capsys, random_recording, app, kind, problem):
    last, marker = tmp_path / "run" / "checkpoints" / "last.ckpt", tmp_path / "pwned"
    _bad_resume_file(kind, last, marker)
    code, err = run_app(app, capsys, tmp_path, random_recording)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {last}: {problem}")
    assert err[0].endswith("run the same command with --no-resume to start over")
    assert not marker.exists()  # nothing in the file ran
    assert not (tmp_path / "cache").exists()  # refused before any data was prepared


def test_truncated_training_cache_is_named_and_rebuilt_on_request(tmp_path, random_recording):
    kwargs = dict(train=[str(random_recording)], spec={"bins": 5}, cache_dir=str(tmp_path / "cache"), progress=False)
    StereoDataModule(**kwargs).prepare_data()
    (cache,) = (tmp_path / "cache").glob("*.h5")
    cache.write_bytes(cache.read_bytes()[:4096])
    with pytest.raises(Exception) as info:
        StereoDataModule(**kwargs).prepare_data()
    assert str(info.value).startswith(f"{cache}: is a damaged or truncated training cache")
    assert "--no-resume" in str(info.value)
    StereoDataModule(**kwargs, rebuild_damaged_cache=True).prepare_data()  # what --no-resume does
    with h5py.File(cache, "r") as f:
        assert len(f["frames"]) > 0


def test_datamodule_hyper_parameters_are_plain_data(tmp_path, random_recording):
    """They go into every Lightning checkpoint; a PosixPath there would not load with weights_only=True."""
    dm = StereoDataModule(train=[random_recording], val=random_recording, cache_dir=tmp_path / "cache", crop=(64, 96))
    torch.save(dict(dm.hparams), tmp_path / "hp.pt")
    hp = torch.load(tmp_path / "hp.pt", weights_only=True)
    assert hp["train"] == [str(random_recording)] and hp["cache_dir"] == str(tmp_path / "cache")
    assert hp["crop"] == [64, 96]


@pytest.mark.parametrize("app", ["train", "search"])
def test_every_option_has_help_and_quiet_exists(app, capsys):
    from apps import search, train
    from evstereo.training.runner import add_run_arguments

    parser = argparse.ArgumentParser()
    add_run_arguments(parser, "configs/x", "a.b=1")
    assert all(action.help for action in parser._actions), [a.dest for a in parser._actions if not a.help]
    with pytest.raises(SystemExit):
        {"train": train.main, "search": search.main}[app](["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "-q, --quiet less output: no progress bars" in out and "--no-resume start afresh" in out


@pytest.mark.parametrize("app", ["train", "search"])
def test_tiny_configs_generate_their_own_recordings(app):
    """The README's `python -m apps.APP --config configs/APP/tiny.yaml` works on a fresh checkout."""
    cfg = read_yaml(ROOT / "configs" / app / "tiny.yaml", "config")
    generated = {f"{e['out']}/{e['name']}_data.hdf5" for e in cfg["data"]["generate"]}
    assert set(cfg["data"]["train"]) | set(cfg["data"]["val"]) <= generated
    assert sum(e["seconds"] for e in cfg["data"]["generate"]) <= 4  # a minute or so of synthesis
    assert yaml.safe_load((ROOT / "configs" / "search" / "tiny.yaml").read_text())["data"]["generate"] == \
        yaml.safe_load((ROOT / "configs" / "train" / "tiny.yaml").read_text())["data"]["generate"]  # shared


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "configs" / "train").glob("*.yaml")))
def test_every_training_config_reads_and_builds_each_step(config):
    from apps.train import check_step
    from evstereo.training.runner import load_run_config, training_steps

    for step in training_steps(load_run_config(ROOT / "configs" / "train" / config, chain=True)):
        check_step(step)


def test_the_shipped_recipe_is_one_config_whose_steps_match_fast_pt():
    """sim_fast.yaml's two steps are the run that fast.pt records: 20 epochs, then 3 from that
    run's model.pt with DGS off (no phase in the second step's history)."""
    from evstereo.models import read_checkpoint_file, shipped_checkpoint
    from evstereo.training.runner import load_run_config, training_steps

    first, second = training_steps(load_run_config(ROOT / "configs" / "train" / "sim_fast.yaml", chain=True))
    extra = read_checkpoint_file(shipped_checkpoint())["extra"]
    assert extra["init"]["epochs"] == first["trainer"]["max_epochs"] == 20
    assert extra["epochs"] == second["trainer"]["max_epochs"] == 3 and extra["dgs_history"] == []
    assert second["module"]["init"] == extra["init"]["checkpoint"] == "runs/sim_fast/model.pt"
    assert second["dgs"]["enabled"] is False and second["module"]["lr"] == first["module"]["lr"] / 10
    assert second["data"]["train"] == first["data"]["train"] and second["out"] == "runs/sim_fast/finetune"
    # the README's variants: the first step alone, a step renamed and changed from the command line
    assert len(training_steps(load_run_config(ROOT / "configs" / "train" / "sim_fast.yaml", ["then=[]"],
                                              chain=True))) == 1
    _, sparse = training_steps(load_run_config(ROOT / "configs" / "train" / "sim_fast.yaml",
                                               ["then.0.data.augment.p_sparse_windows=0.5", "then.0.name=sparse_ft"],
                                               chain=True))
    assert sparse["out"] == "runs/sim_fast/sparse_ft" and sparse["data"]["augment"] == {"p_sparse_windows": 0.5}
    assert sparse["module"] == second["module"]
