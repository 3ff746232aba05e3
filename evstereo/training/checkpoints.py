"""What training writes to keep a run resumable, and how it reads it back.

Every checkpoint is plain data (dicts, lists, tuples, str, numbers, tensors), written under a
temporary name and renamed (:class:`AtomicCheckpointIO`), and read back with
``torch.load(weights_only=True)``: a resume file holding arbitrary Python objects is refused
without running anything (:func:`read_resume_checkpoint`).

``last.ckpt`` (:class:`LastCheckpoint`) is the resume point, ``epochNNN.ckpt``
(:class:`EpochCheckpoint`) the end of each finished epoch. :class:`ResumableCSVLogger` keeps
``metrics.csv`` across a resume (Lightning's CSVLogger deletes it), so the plots show the
whole run.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from evstereo.errors import InputError
from evstereo.fileio import atomic_path
from evstereo.models import read_checkpoint_file

START_OVER = "run the same command with --no-resume to start over"


def read_resume_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint to resume from, read as data only; InputError (saying how to start over)
    for a damaged, truncated or code-carrying file."""
    try:
        payload = read_checkpoint_file(path, "cpu", what="resume checkpoint")
    except InputError as exc:
        raise InputError(path, f"{exc.problem}; {START_OVER}") from None
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise InputError(path, f"is not a Lightning checkpoint of this run; {START_OVER}")
    return payload


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written atomically (a kill mid-write leaves the old file and a
    temporary that the next write removes) and read with ``weights_only=True`` only."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(tmp)
            if unsafe:  # a bug, not bad input: caught when written, not when the run is resumed
                raise TypeError(f"checkpoint {path} would not load with weights_only=True: it holds "
                                f"{', '.join(unsafe)} (checkpoints must be plain data)")

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        return read_resume_checkpoint(path)


def _epoch_done(trainer: L.Trainer, in_batch_end: bool = False) -> bool:
    """Whether every training batch of the current epoch has run (``in_batch_end``: counting
    the batch whose on_train_batch_end is running, not yet counted as completed)."""
    progress = trainer.fit_loop.epoch_loop.batch_progress
    return progress.is_last_batch or progress.current.completed + in_batch_end >= trainer.num_training_batches


class LastCheckpoint(L.Callback):
    """``last.ckpt``, the resume point: every ``every_n_steps`` steps and at each epoch end.

    Never at the last batch of an epoch, which is before its validation and epoch
    checkpoint: resuming from there would skip both. Resuming mid-epoch restarts that epoch's
    data loader (it is not resumable) but keeps the step count, so no step is trained twice
    or skipped.
    """

    def __init__(self, path: str | os.PathLike, every_n_steps: int):
        self.path, self.every_n_steps = Path(path), max(int(every_n_steps), 1)

    def _save(self, trainer: L.Trainer) -> None:
        # the whole training state (weights, optimiser, loops) as plain data, read back with
        # weights_only=True (read_resume_checkpoint); every rank calls it, rank 0 writes
        trainer.save_checkpoint(self.path)

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step % self.every_n_steps == 0 and not _epoch_done(trainer, in_batch_end=True):
            self._save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if _epoch_done(trainer):  # a run cut short (max_steps) must resume inside its epoch
            self._save(trainer)


class EpochCheckpoint(ModelCheckpoint):
    """``dirpath/epochNNN.ckpt`` at the end of every finished epoch (after its validation);
    a run cut short mid-epoch (max_steps) writes none for that epoch."""

    def __init__(self, dirpath: str | os.PathLike):
        super().__init__(dirpath=dirpath, filename="epoch{epoch:03d}", every_n_epochs=1, save_top_k=-1,
                         auto_insert_metric_name=False, enable_version_counter=False)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if _epoch_done(trainer):
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if _epoch_done(trainer):
            super().on_validation_end(trainer, pl_module)


def _row_step(row: dict) -> int | None:
    """A metrics.csv row's step; None for a line cut short by a kill."""
    if None in row or None in row.values():
        return None
    try:
        return int(float(row.get("step") or "x"))
    except ValueError:
        return None


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that a resumed run keeps the rows of the run so far
    (when it first writes, the rows it is about to log again, its first step onwards, go) and
    that rewriting the file for a new column is atomic (a kill then would lose the history)."""

    def __init__(self, log_dir: str, keep: bool):
        self._keep, self._kept = keep, None
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:  # the base class deletes metrics.csv here
        path = Path(self.metrics_file_path)
        if not self._keep:
            path.unlink(missing_ok=True)  # a fresh run starts a fresh log
        elif path.is_file():
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh)
                self._kept = (list(reader.fieldnames or []), list(reader))

    def _write(self, fieldnames: list[str], rows: list[dict]) -> None:
        with atomic_path(self.metrics_file_path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        with open(self.metrics_file_path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        self._write(fieldnames, rows)

    def save(self) -> None:
        if self._kept is not None and self.metrics:
            fields, rows = self._kept
            first = min(int(m["step"]) for m in self.metrics)
            self.metrics_keys = sorted(set(fields) | set().union(*self.metrics))
            self._write(self.metrics_keys, [r for r in rows if (s := _row_step(r)) is not None and s < first])
            self._kept = None
        super().save()


class ResumableCSVLogger(CSVLogger):
    """CSVLogger whose ``metrics.csv`` survives a resume (``resuming=True``) instead of being
    deleted; a fresh run (``resuming=False``) replaces it."""

    def __init__(self, save_dir: str | os.PathLike, resuming: bool, **kwargs: Any):
        super().__init__(save_dir, **kwargs)
        self._resuming = resuming

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(self.log_dir, keep=self._resuming)
        return self._experiment
