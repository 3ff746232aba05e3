"""`python -m data_tools.prepare ... --out DIR` writes the cache that training with
``data.cache_dir=DIR`` (the DataModule) reads: one name for both (``prepared.cache_path``),
so the DataModule neither rebuilds it nor writes a second file beside it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import evstereo.datasets.prepared as prepared
from data_tools.prepare import main as prepare_main
from evstereo.datasets.datamodule import StereoDataModule
from evstereo.datasets.samples import SampleSpec

SPEC = {"representation": "counts", "bins": 2, "time_steps": 1, "window_us": 20_000}
ARGS = ["--representation", "counts", "--bins", "2", "--time-steps", "1", "--window-ms", "20"]


def _rebuilt(*args, **kwargs):
    raise AssertionError("the DataModule rebuilt the cache that data_tools.prepare wrote")


@pytest.mark.parametrize("right_gt, flip", [(False, 0.0), (True, 0.5)], ids=["plain", "right-gt-for-flip"])
def test_datamodule_reads_the_cache_data_tools_prepare_wrote(random_recording, tmp_path, monkeypatch, capsys,
                                                             right_gt, flip):
    cache_dir = tmp_path / "cache"
    argv = [str(random_recording), "--out", str(cache_dir), *ARGS, "--json", "-q"] + (["--right-gt"] if right_gt else [])
    assert prepare_main(argv) == 0
    (cache,) = [Path(p) for p in json.loads(capsys.readouterr().out)["caches"]]
    assert re.fullmatch(r"rand_data-[0-9a-f]{12}\.h5", cache.name), cache.name
    assert sorted(cache_dir.iterdir()) == [cache]
    before = cache.stat()

    # the spy: building a cache makes samples; reading a finished one does not
    monkeypatch.setattr(prepared, "make_sample", _rebuilt)
    dm = StereoDataModule(train=[str(random_recording)], spec=SPEC, flip=flip, batch_size=2, cache_dir=str(cache_dir),
                          progress=False)
    assert dm._cache_path(random_recording, None, right_gt) == cache
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))

    after = cache.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    assert sorted(cache_dir.iterdir()) == [cache]  # no second cache, no .partial
    ds = dm.datasets["train"]
    assert ds.path == cache
    assert batch["left"].shape[1:] == (2, 2, 260, 346)
    with h5py.File(cache, "r") as f:  # the samples are the file's rows
        assert len(ds) == len(f["frames"]) > 0
        assert f.attrs["key"] == prepared.cache_key(random_recording, f["frames"][:], SampleSpec(**SPEC), right_gt)
        if flip == 0.0:  # no augmentation: item 0 is row 0
            item = ds[0]
            assert torch.equal(item["left"], torch.from_numpy(f["left"][0].astype(np.float32)))
            assert torch.equal(item["disparity"], torch.from_numpy(f["disparity"][0]))


def test_cache_path_is_the_one_name(random_recording, tmp_path):
    spec = SampleSpec(**SPEC)
    name = prepared.cache_path(tmp_path, random_recording, spec)
    with prepared.open_recording(random_recording) as rec:
        frames = prepared.valid_frames(rec, spec)
    assert name == tmp_path / f"rand_data-{prepared.cache_key(random_recording, frames, spec, False)}.h5"
    assert prepared.cache_path(tmp_path, random_recording, spec, frames) == name  # frames given: no change
    assert prepared.cache_path(tmp_path, random_recording, spec, with_right_gt=True) != name
    assert prepared.cache_path(tmp_path, random_recording, spec, frames[1:]) != name


def test_two_runs_preparing_the_same_cache_at_once_take_turns(random_recording, tmp_path):
    """Two trainings started together on one cache folder once wrote the same partial file at
    once and both failed; now the second waits and reuses the first's cache."""
    import subprocess
    import sys

    from conftest import ROOT

    cache_dir = tmp_path / "cache"
    argv = [sys.executable, "-m", "data_tools.prepare", str(random_recording), "--out", str(cache_dir), *ARGS, "-q"]
    procs = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    assert all(rc == 0 for _, _, rc in results), [err[-500:] for _, err, _ in results]
    (cache,) = cache_dir.iterdir()
    assert cache.suffix == ".h5" and not cache.name.startswith(".")
