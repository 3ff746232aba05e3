"""Checkpoints are data, never code: weights_only loading, and one clear line for every bad file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from evstereo.errors import InputError
from evstereo.models import build_stereo_net, load_checkpoint, save_checkpoint, shipped_checkpoint

ROOT = Path(__file__).resolve().parents[1]


class _RunsCode:
    """Unpickling this calls os.system: a loader that runs it creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _tiny(tmp_path: Path) -> Path:
    model = build_stereo_net({"genotype": "reference", "max_disparity": 9, "feature_filters": 2,
                              "matching_filters": 2})
    path = tmp_path / "tiny.pt"
    save_checkpoint(model, path)
    return path


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    good = torch.load(_tiny(tmp_path), weights_only=True)
    good["extra"] = {"payload": _RunsCode(marker)}
    torch.save(good, evil)
    with pytest.raises(InputError, match="arbitrary Python objects"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_malicious_checkpoint_through_the_app_is_one_line(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "evstereo-stereonet-1", "x": _RunsCode(marker)}, evil)
    rec = tmp_path / "missing.hdf5"  # never reached: the checkpoint is refused first
    r = subprocess.run([sys.executable, "-m", "apps.evaluate", "--checkpoint", str(evil), "--data", str(rec),
                        "--out", str(tmp_path / "r.json")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert not marker.exists()
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_shipped_checkpoint_loads_as_data():
    payload = torch.load(shipped_checkpoint(), weights_only=True)
    assert payload["format"] == "evstereo-stereonet-1"
    assert load_checkpoint(shipped_checkpoint()).config.max_disparity == payload["config"]["max_disparity"]


def test_shipped_checkpoint_is_the_searched_genotype_with_its_time_constants_and_dgs_history():
    """What the README says of fast.pt: configs/model/fast.yaml's genotype; its three learnable
    decays, which one step per window leaves at their 0.2 start; fine-tuned (the `then` step of
    sim_fast.yaml, DGS off) from the first step's network, whose four DGS phases moved some surrogate
    temperatures, mostly up."""
    from evstereo.models import model_parts
    from evstereo.snn import learned_time_constants

    net = load_checkpoint(shipped_checkpoint())
    assert net.genotype == model_parts(ROOT / "configs" / "model" / "fast.yaml")[1]
    assert learned_time_constants(net) == pytest.approx({"stem": 0.2, "feature": 0.2, "matching": 0.2})
    extra = torch.load(shipped_checkpoint(), weights_only=True)["extra"]
    assert extra["epochs"] == 3 and extra["dgs_history"] == []
    assert extra["init"]["checkpoint"] == "runs/sim_fast/model.pt" and extra["init"]["epochs"] == 20
    history = extra["init"]["dgs_history"]
    assert [phase["epoch"] for phase in history] == [0, 5, 10, 15]
    deltas = [layer["delta"] for phase in history for layer in phase["layers"].values()]
    moved = [d for d in deltas if d != 0]
    assert len(deltas) == 4 * 30 and len(moved) == 26 and sum(d > 0 for d in moved) == 24


@pytest.mark.parametrize("change, message", [
    (lambda p: p["config"].update(colour="red"), "unknown model option"),
    (lambda p: p.pop("genotype"), "without its genotype"),
    (lambda p: p.update(genotype=None), "has no genotype"),
    (lambda p: p.update(genotype={"feature": "nonsense"}), "invalid genotype"),
    (lambda p: p["config"].update(max_disparity="wide"), "max_disparity must be a positive integer"),
    (lambda p: p.update(state_dict={"nothing": torch.zeros(1)}), "weights do not fit"),
])
def test_bad_checkpoint_contents(tmp_path, change, message):
    payload = torch.load(_tiny(tmp_path), weights_only=True)
    change(payload)
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    with pytest.raises(InputError, match=message) as info:
        load_checkpoint(bad)
    assert str(bad) in str(info.value)


def test_truncated_and_foreign_files(tmp_path):
    full = _tiny(tmp_path).read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(full[: len(full) // 3])
    with pytest.raises(InputError, match="damaged or truncated"):
        load_checkpoint(cut)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(InputError, match="not an evstereo checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_lightning_checkpoint_without_genotype(tmp_path):
    path = tmp_path / "search.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"net": {}, "genotype": None}}, path)
    with pytest.raises(InputError, match="without a genotype"):
        load_checkpoint(path)
