"""DGS (differentiable surrogate-gradient search) as a Lightning callback.

Add ``DGSCallback()`` (or ``DGSCallback(every_n_epochs=..., max_batches=..., deltas=...)``,
any :class:`~evstereo.snn.surrogate.DGSConfig` field) to a Trainer and every DGS-capable
spiking layer of the LightningModule (e.g. :class:`~evstereo.snn.layers.SpikingConv` in
spiking mode; ``layers``/``exclude`` patterns narrow the choice) gets its surrogate
temperature ``b`` searched: before each phase epoch (``start_epoch + n * every_n_epochs``)
the callback runs :func:`~evstereo.snn.surrogate.run_dgs_phase` on up to ``max_batches``
batches of the Trainer's own train dataloader, then the normal epoch follows.

Loss protocol. If the module defines ``dgs_loss(batch) -> Tensor`` (the batch already on
the module's device), the phase uses it. Otherwise it calls ``training_step(batch,
batch_idx)`` and takes the returned tensor (or its ``"loss"`` entry); ``self.log`` and
``self.log_dict`` are silenced meanwhile so the phase's K + 1 passes per batch do not
pollute the metrics. Manual optimisation (``automatic_optimization = False``) steps
optimizers inside ``training_step``, so it requires ``dgs_loss``. ``sgd_lr=None`` uses the
first optimizer's current learning rate for the candidates' SGD steps.

History. Each phase's record (epoch, global step, per layer ``b_before``, ``b_after``,
chosen ``delta`` and the accumulated mixing ``weights``) is appended to ``history``, logged as
``dgs_b/<layer>`` (epoch-level metrics), and saved in checkpoints through the callback's
``state_dict`` as plain data (lists, dicts, numbers: checkpoints load with
``weights_only=True``); ``b`` itself is a buffer of the model, so it is saved with the model's
weights. After a resume, a phase already in the history is not run again. Under a
multi-process strategy the new b values are broadcast from rank 0, so all ranks agree.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Callable

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import CombinedLoader

from evstereo.snn.surrogate import DGSConfig, dgs_layers, run_dgs_phase


class DGSCallback(pl.Callback):
    """Run a DGS phase before every ``every_n_epochs``-th training epoch (see the module docstring)."""

    def __init__(self, config: DGSConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        self.config = replace(config, **overrides) if config is not None else DGSConfig(**overrides)
        self.history: list[dict] = []

    # ---------------------------------------------------------------- Lightning hooks
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        if not self.config.is_phase_epoch(epoch) or any(r.get("epoch") == epoch for r in self.history):
            return
        if not dgs_layers(pl_module, self.config):
            return
        loss_fn = self._loss_fn(pl_module)
        record = run_dgs_phase(pl_module, self._batches(trainer, pl_module), loss_fn, self.config,
                               sgd_lr=self._sgd_lr(trainer), epoch=epoch)
        self._sync_across_ranks(trainer, pl_module, record)
        record["global_step"] = trainer.global_step
        self.history.append(record)
        if record["layers"]:
            pl_module.log_dict({f"dgs_b/{name}": v["b_after"] for name, v in record["layers"].items()},
                               on_step=False, on_epoch=True, sync_dist=True)  # equal on all ranks after the sync

    def state_dict(self) -> dict[str, Any]:
        return {"history": copy.deepcopy(self.history), "config": self.config.as_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = copy.deepcopy(list(state_dict.get("history", [])))

    # ---------------------------------------------------------------- reading the history
    def b_history(self) -> dict[str, list[tuple[int, float]]]:
        """``{layer: [(epoch, b after that phase), ...]}`` over all recorded phases."""
        out: dict[str, list[tuple[int, float]]] = {}
        for record in self.history:
            for name, v in record["layers"].items():
                out.setdefault(name, []).append((record["epoch"], v["b_after"]))
        return out

    # ---------------------------------------------------------------- helpers
    def _sgd_lr(self, trainer: pl.Trainer) -> float:
        if self.config.sgd_lr is not None:
            return float(self.config.sgd_lr)
        if trainer.optimizers:
            return float(trainer.optimizers[0].param_groups[0]["lr"])
        return 0.01

    @staticmethod
    def _batches(trainer: pl.Trainer, pl_module: pl.LightningModule) -> Iterator[Any]:
        loader = trainer.train_dataloader
        if loader is None:
            return iter(())
        combined = isinstance(loader, (Mapping, list, tuple))
        if combined:  # several train loaders: one batch of each, as the fit loop gives them
            loader = CombinedLoader(loader, "max_size_cycle")

        def gen() -> Iterator[Any]:
            for item in loader:
                batch = item[0] if combined else item  # CombinedLoader yields (batch, idx, loader idx)
                batch = pl_module.on_before_batch_transfer(batch, 0)
                batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
                yield pl_module.on_after_batch_transfer(batch, 0)

        return gen()

    @staticmethod
    def _loss_fn(pl_module: pl.LightningModule) -> Callable[[Any], torch.Tensor]:
        custom = getattr(pl_module, "dgs_loss", None)
        if callable(custom):
            return custom
        if not pl_module.automatic_optimization:
            raise RuntimeError(f"{type(pl_module).__name__} uses manual optimisation: DGS needs it to define "
                               "dgs_loss(batch) -> loss, since its training_step steps the optimizers")
        counter = {"i": 0}

        def loss(batch: Any) -> torch.Tensor:
            with _silenced_logging(pl_module):
                out = pl_module.training_step(batch, counter["i"])
            counter["i"] += 1
            value = out.get("loss") if isinstance(out, Mapping) else out
            if not isinstance(value, torch.Tensor):
                raise RuntimeError(f"{type(pl_module).__name__}.training_step returned {type(out).__name__}; "
                                   "DGS needs a loss tensor (or a dict with 'loss'), or define dgs_loss(batch)")
            return value

        return loss

    @staticmethod
    def _sync_across_ranks(trainer: pl.Trainer, pl_module: pl.LightningModule, record: dict) -> None:
        if trainer.world_size <= 1 or not record["layers"]:
            return
        chosen = trainer.strategy.broadcast({n: v["b_after"] for n, v in record["layers"].items()}, src=0)
        modules = dict(pl_module.named_modules())
        with torch.no_grad():
            for name, b in chosen.items():
                modules[name].surrogate_b.fill_(b)
                record["layers"][name]["b_after"] = b


@contextmanager
def _silenced_logging(module: pl.LightningModule):
    """Make ``module.log``/``log_dict`` no-ops (instance attributes shadow the methods)."""
    noop = lambda *args, **kwargs: None  # noqa: E731
    object.__setattr__(module, "log", noop)
    object.__setattr__(module, "log_dict", noop)
    try:
        yield
    finally:
        del module.__dict__["log"]
        del module.__dict__["log_dict"]
