"""The benchmark modules' measuring pieces on tiny inputs, so the benchmark code cannot rot
(no timing is asserted). The benchmarks are the checkout's top-level ``benchmarks/`` folder."""

from __future__ import annotations

import shutil
import sys

import pytest
import torch

from benchmarks import MODULES, BenchOptions
from benchmarks import live, models


def test_models_and_live_are_registered():
    assert MODULES[-2:] == ["models", "live"]


@pytest.fixture
def one_thread():
    """One torch thread: tiny problems gain nothing from two, and a shared machine's load hurts
    multi-threaded regions badly."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_searched_networks_are_timed_against_the_hand_picked_cells(tmp_path, monkeypatch, one_thread):
    for name in ("handpicked", "fast"):
        shutil.copy(models.CONFIGS / f"{name}.yaml", tmp_path / f"{name}.yaml")
    shutil.copy(models.CONFIGS / "handpicked.yaml", tmp_path / "searched_same.yaml")
    monkeypatch.setattr(models, "CONFIGS", tmp_path)
    left = (torch.rand(1, 1, 5, 48, 72) < 0.1).float()
    rows = models.searched_rows((left, torch.roll(left, -2, dims=-1)), repeat=1)
    assert [r.name for r in rows] == ["forward time"] * 2
    assert "fast.yaml" in rows[0].group and "searched_same.yaml" in rows[1].group
    for r in rows:  # no timing asserted: a row has a time, a ratio and a verdict
        assert r.value > 0 and float(r.ratio.split("x ")[0]) > 0 and r.ratio.endswith("the hand-picked cells'")
        assert isinstance(r.met, bool) and "round-robin" in r.note
    (tmp_path / "searched_same.yaml").unlink()
    (tmp_path / "fast.yaml").unlink()
    assert models.searched_rows((left, left), repeat=1) == []


def test_model_measurement_on_a_small_input(tmp_path, monkeypatch, one_thread):
    net, weights, source = models.load_network("fast", BenchOptions())
    assert "weights" in weights and source
    torch.manual_seed(1)
    left = (torch.rand(1, 1, 5, 64, 96) < 0.1).float() * torch.randint(0, 2, (1, 1, 5, 64, 96)).mul(2).sub(1)
    right = torch.roll(left, -2, dims=-1)
    m = models.measure_model(net, left, right, repeat=1, warmup=0)
    assert m["best_ms"] > 0 and m["median_ms"] >= m["best_ms"]
    assert m["params"] == sum(p.numel() for p in net.parameters()) > 0
    if sys.platform.startswith("linux"):
        assert m["peak_bytes"] >= 0
    measured, dense = m["measured"], m["dense"]
    assert measured["layers"] and dense["macs"] > 0
    assert dense["macs"] >= measured["macs"]
    # the bounds bound the measured figure whatever the weights
    assert measured["energy_mj"] <= m["sop_bound_mj"] + 1e-12 <= dense["energy_mj"] + 1e-12
    assert 0 <= m["silent_layers"] <= m["spiking_layers"]

    details = tmp_path / "details.md"
    options = BenchOptions(details=details)
    options.write_details("one", "table 1")
    options.write_details("two", models.format_energy_table(measured))
    BenchOptions().write_details("nowhere", "no file without a details path")
    text = details.read_text()
    assert text.index("## one") < text.index("## two") and "total per frame" in text


def test_live_run_and_timings_reader(random_recording, tmp_path, monkeypatch):
    monkeypatch.setenv("EVSTEREO_SNN_BACKEND", "eager")  # no kernel compilation in a 2-frame run
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ckpt, weights = live.fast_checkpoint(tmp_path)
    assert ckpt.is_file() and "weights" in weights
    r = live.run_live(random_recording, tmp_path / "out", checkpoint=ckpt, max_frames=2, ply_every=0)
    assert r["model"].startswith("StereoNet") and r["frames"] == 2 and r["fps"] > 0
    assert 0 < r["latency_p50_ms"] <= r["latency_p95_ms"]
    assert set(r["shares"]) == {"read", "represent", "model", "post", "output"}
    assert sum(r["shares"].values()) == pytest.approx(1.0)
    assert r["windows_ms"]["p50"] == 100.0  # 0.09 events per pixel in 50 ms: sparse, the windows double
    if sys.platform.startswith("linux"):
        assert r["peak_rss_bytes"] > 50 * 2**20  # a Python process with torch loaded
    rows = live._rows("g", "fast network", r, weights)
    assert rows[0].unit == "frames/s" and rows[0].met is not None and rows[-1].unit == "%"


def test_shipped_checkpoint_is_used_when_present(tmp_path, monkeypatch):
    from evstereo.models import build_stereo_net, save_checkpoint

    save_checkpoint(build_stereo_net(models.network_config("fast")), tmp_path / "fast.pt")
    monkeypatch.setattr(models, "CHECKPOINTS", tmp_path)
    net, weights, source = models.load_network("fast", BenchOptions())
    assert weights.startswith("trained weights") and "differs" not in weights and not net.training
    assert source.endswith("fast.pt")  # the network's config comes from its checkpoint
    assert models.load_network("reference", BenchOptions())[1].startswith("untrained")
    assert live.fast_checkpoint(tmp_path / "unused")[0] == tmp_path / "fast.pt"
    # apps.bench --checkpoint reference=PATH: weights from anywhere, named in the rows
    (tmp_path / "elsewhere").mkdir()
    torch.manual_seed(3)
    save_checkpoint(build_stereo_net(models.network_config("reference")), tmp_path / "elsewhere" / "ref.pt")
    options = BenchOptions(checkpoints={"reference": tmp_path / "elsewhere" / "ref.pt"})
    net, weights, _ = models.load_network("reference", options)
    assert weights.startswith("trained weights") and "ref.pt" in weights
    assert live.fast_checkpoint(tmp_path / "unused", options)[0] == tmp_path / "fast.pt"


def test_a_network_without_checkpoint_or_config_is_one_clear_error(tmp_path, monkeypatch):
    """An installed package has no configs/ beside it: say to give a checkpoint."""
    from evstereo.errors import InputError

    monkeypatch.setattr(models, "CHECKPOINTS", tmp_path)
    monkeypatch.setattr(models, "CONFIGS", tmp_path / "configs")
    with pytest.raises(InputError, match="--checkpoint reference=PATH"):
        models.load_network("reference", BenchOptions())


def test_bench_checkpoint_option_is_checked(capsys):
    from apps.bench import main

    with pytest.raises(SystemExit):
        main(["--only", "models", "--checkpoint", "reference=/no/such/file.pt"])
    assert "need reference=PATH or fast=PATH" in capsys.readouterr().err


def test_first_pass_reads_from_dropped_pages(tmp_path):
    """The first-pass row's pieces: dropping a (read-only) file's pages keeps it readable and
    intact, and a pass over both event layouts times every window of each."""
    from random_recording import write_random_mvsec

    from benchmarks import reading
    from evstereo.recordings.mvsec import MVSECRecording

    plain = write_random_mvsec(tmp_path, "p", 0.5, 100_000, compress_events=False)
    packed = write_random_mvsec(tmp_path, "z", 0.5, 100_000, compress_events=True)
    before = plain.read_bytes()
    plain.chmod(0o444)
    if not reading.can_drop_cache():
        pytest.skip("this system cannot drop a file's pages (no posix_fadvise)")
    reading.drop_cache(plain)
    assert plain.read_bytes() == before
    recs = [MVSECRecording(plain), MVSECRecording(packed)]
    try:
        times = reading._first_pass(recs, windows=4, repeats=2)
        assert len(times) == 2 and all(0 < t < 1e4 for t in times)
        t0 = recs[0].time_range("left")[0]
        a, b = (r.events("left", t0, t0 + 50_000) for r in recs)
        assert len(a) > 1000 and len(a) == len(b)  # same seed and rate: the same window either way
    finally:
        for r in recs:
            r.close()
