"""The pieces that keep a training run resumable, on toy data: atomic plain-data checkpoints,
a resume point that keeps every epoch's validation, a CSV log that survives a resume (the
whole apps.train runs are in test_training.py)."""

from __future__ import annotations

import csv

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from evstereo.training.checkpoints import AtomicCheckpointIO, EpochCheckpoint, LastCheckpoint, ResumableCSVLogger


def test_checkpoints_that_would_not_load_as_data_are_not_written(tmp_path):
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}, "when": (1, 2)}, tmp_path / "ok.ckpt")
    assert torch.load(tmp_path / "ok.ckpt", weights_only=True)["when"] == (1, 2)
    with pytest.raises(TypeError, match="pathlib.PosixPath"):
        io.save_checkpoint({"state_dict": {}, "where": tmp_path}, tmp_path / "bad.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.ckpt"]  # no half file, no temporary


def _rows(path):
    with open(path, newline="") as fh:
        return [{k: v for k, v in r.items() if v} for r in csv.DictReader(fh)]


def test_csv_log_keeps_the_history_on_resume_and_starts_afresh_otherwise(tmp_path):
    first = ResumableCSVLogger(tmp_path, resuming=False, name="csv", version="")
    for step in range(5):
        first.log_metrics({"loss": float(step)}, step)
    first.log_metrics({"val": 9.0}, 4)  # a new column: the file is rewritten (atomically)
    first.save()
    metrics = tmp_path / "csv" / "metrics.csv"
    with open(metrics, "a") as fh:
        fh.write("7,0.")  # the line a kill cut short
    resumed = ResumableCSVLogger(tmp_path, resuming=True, name="csv", version="")
    resumed.log_metrics({"loss": 30.0, "epe": 1.0}, 3)  # the checkpoint was taken after step 2
    resumed.save()
    assert _rows(metrics) == [{"loss": "0.0", "step": "0"}, {"loss": "1.0", "step": "1"},
                              {"loss": "2.0", "step": "2"}, {"epe": "1.0", "loss": "30.0", "step": "3"}]
    fresh = ResumableCSVLogger(tmp_path, resuming=False, name="csv", version="")  # --no-resume
    fresh.log_metrics({"loss": 5.0}, 0)
    fresh.save()
    assert _rows(metrics) == [{"loss": "5.0", "step": "0"}]
    assert sorted(p.name for p in metrics.parent.iterdir()) == ["metrics.csv"]


class _Toy(L.LightningModule):
    """A linear layer on random data; counts its validations per epoch."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.validated: list[int] = []

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self):
        self.validated.append(self.current_epoch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class _CrashInValidation(L.Callback):
    def on_validation_start(self, trainer, pl_module):
        raise RuntimeError("killed during validation")


def _fit(tmp_path, epochs, *extra, ckpt_path=None):
    data = DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=1)
    toy = _Toy()
    trainer = L.Trainer(max_epochs=epochs, callbacks=[EpochCheckpoint(tmp_path), LastCheckpoint(tmp_path / "last.ckpt", 4),
                                                      *extra],
                        plugins=[AtomicCheckpointIO()], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path)
    trainer.fit(toy, data, data, ckpt_path=ckpt_path, weights_only=True)
    return toy


def test_resume_point_is_never_between_an_epochs_last_step_and_its_validation(tmp_path):
    """A kill during the validation at an epoch's end resumes before that epoch's last steps,
    so the validation and the epoch checkpoint happen (resuming after them would skip both)."""
    with pytest.raises(RuntimeError, match="killed during validation"):
        _fit(tmp_path, 1, _CrashInValidation())
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 4  # not 8
    toy = _fit(tmp_path, 2, ckpt_path=tmp_path / "last.ckpt")
    assert toy.validated == [0, 1]
    assert [torch.load(tmp_path / f"epoch00{e}.ckpt", weights_only=True)["global_step"] for e in (0, 1)] == [8, 16]
