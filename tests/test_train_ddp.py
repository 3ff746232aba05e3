"""The distributed path without a GPU: apps.train with two CPU processes (DDP over gloo).

The two ranks train on different samples, only rank 0 writes files (checkpoints, plots,
model.pt), and a run cut short resumes under DDP. The test runs this file as a script (a
probe around ``apps.train.main`` that records, per rank, the samples of every training step
and every file it publishes); Lightning's launcher starts rank 1 by running the same script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE_DIR = "EVSTEREO_TEST_PROBE_DIR"


def probe(argv: list[str]) -> int:
    """apps.train, recording to PROBE_DIR/rankN.jsonl what rank N trains on and writes."""
    from apps import train
    from evstereo import fileio
    from evstereo.training import modules

    log = Path(os.environ[PROBE_DIR]) / f"rank{int(os.environ.get('LOCAL_RANK', 0))}.jsonl"

    def record(**entry) -> None:
        with open(log, "a") as fh:
            fh.write(json.dumps(entry) + "\n")

    training_step, publish = modules.StereoTrainModule.training_step, fileio.publish

    def recorded_step(self, batch, batch_idx):
        record(epoch=self.current_epoch, index=batch["index"].tolist())
        return training_step(self, batch, batch_idx)

    def recorded_publish(tmp, final) -> None:
        record(published=str(final))
        publish(tmp, final)

    modules.StereoTrainModule.training_step = recorded_step
    fileio.publish = recorded_publish
    return train.main(argv)


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_two_process_ddp_on_cpu_splits_data_writes_once_and_resumes(tmp_path):
    from evstereo.simulation import synthesize

    synthesize(tmp_path / "data", "tr", 0.6, 11)  # 10 training frames: 5 per rank, no padding
    synthesize(tmp_path / "data", "va", 0.35, 12)
    out, probes = tmp_path / "run", tmp_path / "probe"
    probes.mkdir()
    cmd = [sys.executable, __file__, "--config", str(ROOT / "configs" / "train" / "tiny.yaml"), f"out={out}",
           f"data.train=[{tmp_path / 'data' / 'tr_data.hdf5'}]", f"data.val=[{tmp_path / 'data' / 'va_data.hdf5'}]",
           "data.generate=[]", f"data.cache_dir={tmp_path / 'cache'}", "data.crop=[48,72]", "data.batch_size=1",
           "data.flip=0", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
           "trainer.max_epochs=2", "trainer.limit_val_batches=2", "checkpoint.every_n_train_steps=2",
           "dgs.every_n_epochs=1", "dgs.max_batches=2", "module.log_energy=false", "trainer.log_every_n_steps=1"]
    env = {**os.environ, PROBE_DIR: str(probes), "PYTHONPATH": str(ROOT)}

    first = subprocess.run(cmd + ["trainer.max_steps=3"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=900)
    assert first.returncode == 0, first.stderr[-4000:]
    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-4000:]
    assert f"resuming from {out / 'checkpoints' / 'last.ckpt'}" in second.stdout
    assert second.stdout.count("resuming from") == 1 and second.stdout.count("wrote ") == 4  # printed once, by rank 0
    for run in (first, second):
        text = run.stdout + run.stderr
        assert "Tip:" not in text and "sync_dist" not in text and text.count("Seed set") == 1, text[-3000:]

    ranks = [_read(probes / f"rank{r}.jsonl") for r in (0, 1)]
    for epoch in (0, 1):
        seen = [[i for e in rank if e.get("epoch") == epoch for i in e["index"]] for rank in ranks]
        assert seen[0] and seen[1] and not set(seen[0]) & set(seen[1]), seen  # each rank its own half
    # the resumed epoch 0 restarts its loader on both ranks; epoch 1 covers the 10 frames once
    assert sorted(i for rank in ranks for e in rank if e.get("epoch") == 1 for i in e["index"]) == sorted(
        set(i for rank in ranks for e in rank if "index" in e for i in e["index"]))

    def run_files(rank: list[dict]) -> list[str]:  # (time indexes of the recordings are written beside them)
        paths = [Path(e["published"]) for e in rank if "published" in e]
        return [p.relative_to(out).as_posix() for p in paths if p.is_relative_to(out)]

    written = run_files(ranks[0])
    assert not run_files(ranks[1])  # rank 1 writes nothing of the run
    for name in ("checkpoints/last.ckpt", "checkpoints/epoch000.ckpt", "checkpoints/epoch001.ckpt", "model.pt",
                 "plots/curves.png", "plots/dgs.png"):
        assert name in written, written

    import torch

    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 10  # 2 epochs x 5 steps per rank, the 3 steps before the cut included
    assert [r["epoch"] for r in last["callbacks"]["DGSCallback"]["history"]] == [0, 1]


if __name__ == "__main__":
    sys.exit(probe(sys.argv[1:]))
