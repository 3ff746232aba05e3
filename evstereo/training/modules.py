"""LightningModules: training a derived stereo network, and searching the supernet.

Both log the MVSEC metrics (``evstereo.metrics``: per frame, averaged over frames; the
averaging goes through torchmetrics so it stays right under DDP) and the energy per frame
(EnergyMeter on the first validation batch) at every validation.

``StereoTrainModule`` keeps the network's config and genotype in its hyper-parameters, so
``evstereo.models.load_checkpoint`` rebuilds the network from a Lightning checkpoint alone.
With ``spike_weight`` > 0 it adds that times the mean firing rate of every spiking neuron to
the task loss (``train/spike_rate``), a regulariser that trades accuracy for synaptic work.
``StereoSearchModule`` runs the first-order bi-level search: each step takes one batch
from each half of the training data (``arch_batches`` batches from the "arch" half, their
gradients averaged), an Adam step on the architecture (alphas, betas) on the
"arch" half (task loss, plus with an ``energy_budget_mj`` cost_weight x the ``budget_penalty``
of the decoded network's expected energy per frame at ``budget_size`` against the budget, and
with a ``dense_budget_gmacs`` the same penalty of its dense MACs per frame, the CPU's work,
against that budget, :mod:`evstereo.search.energy_cost`), then an SGD step on the weights on
the "weights" half.

Hyper-parameters and checkpoint extras (the search's architecture history) are plain data, so
checkpoints load with ``torch.load(weights_only=True)``. An option of the wrong type or value
is a TypeError or ValueError naming it, raised at construction rather than inside the fit loop.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import lightning as L
import numpy as np
import torch
from torchmetrics import MeanMetric

from evstereo.geometry import NOMINAL_HW
from evstereo.metrics import METRIC_NAMES, frame_metrics
from evstereo.models import NetConfig, SearchStereoNet, StereoNet
from evstereo.models.losses import smooth_l1, subpixel_cross_entropy
from evstereo.models.stereo_net import StereoBase
from evstereo.search.energy_cost import BUDGET_PENALTIES, area_ratio, budget_penalty
from evstereo.search.genotypes import Genotype
from evstereo.snn import EnergyMeter, learned_time_constants, spike_rates

LOSSES = ("smooth_l1", "subpixel_ce", "both")


def check_loss(loss: str) -> None:
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, not {loss!r}")


def check_options(kind: type, **options) -> None:
    """TypeError naming the first option that is not a ``kind`` (float: any real number;
    a bool is neither a number nor an integer here)."""
    words = {float: "a number", int: "an integer", bool: "true or false"}
    for name, value in options.items():
        ok = isinstance(value, bool) if kind is bool else (
            not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else kind))
        if not ok:
            raise TypeError(f"{name} must be {words[kind]}, not {value!r}")


def as_net_config(net: NetConfig | dict | None) -> NetConfig:
    """A NetConfig as given, or from its fields (what a checkpoint's hyper-parameters hold)."""
    return net if isinstance(net, NetConfig) else NetConfig(**(net or {}))


def stereo_loss(model: StereoBase, batch: dict, loss: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, predicted disparity) for a batch; the target is masked by ``valid``."""
    cost = model.cost(batch["left"], batch["right"])
    pred = model.readout(cost)
    gt, valid = batch["disparity"], batch["valid"]
    total = pred.new_zeros(())
    if loss in ("smooth_l1", "both"):
        total = total + smooth_l1(pred, gt, valid)
    if loss in ("subpixel_ce", "both"):
        total = total + subpixel_cross_entropy(cost, gt, valid)
    return total, pred


class _MetricsMixin:
    """Validation metrics and energy, shared by the train and search modules."""

    def _init_metrics(self) -> None:
        self.val_metrics = torch.nn.ModuleDict({n: MeanMetric() for n in METRIC_NAMES})
        self._energy = None

    def _validate(self, model, batch: dict, batch_idx: int) -> None:
        pred = model(batch["left"], batch["right"]).detach().cpu().numpy()
        gt = batch["disparity"].cpu().numpy()
        valid = batch["valid"].cpu().numpy()
        fb = batch["fB"].cpu().numpy()
        for i in range(len(pred)):
            m = frame_metrics(pred[i], gt[i], valid[i], None if np.isnan(fb[i]) else float(fb[i]))
            if m is None:
                continue
            for k, v in m.items():
                self.val_metrics[k].update(v)
        if batch_idx == 0 and self.log_energy:
            self._energy = EnergyMeter(model).measure(batch["left"][:1], batch["right"][:1])

    def _log_validation(self) -> None:
        for name, metric in self.val_metrics.items():
            if metric.update_count:
                self.log(f"val/{name}", metric.compute(), sync_dist=True)
            metric.reset()
        if self._energy is not None:
            self.log("val/energy_mj", float(self._energy["energy_mj"]), sync_dist=True)
            self.log("val/sops_g", float(self._energy["sops"]) / 1e9, sync_dist=True)
            self.log("val/macs_g", float(self._energy["macs"]) / 1e9, sync_dist=True)


# the NetConfig keys that change how a network runs in time, not its weights (the decays are
# per neuron type, not per step, so a T = 1 network may start a T = 5 one)
TEMPORAL_KEYS = ("stateful", "context_windows", "window_us", "time_steps")


def _weights_config(config: NetConfig) -> dict:
    return {k: v for k, v in config.as_dict().items() if k not in TEMPORAL_KEYS}


class StereoTrainModule(_MetricsMixin, L.LightningModule):
    """Train a derived network (DGS and learnable time constants come with the network)."""

    def __init__(self, net: NetConfig | dict | None = None, genotype: Genotype | dict | str = "reference",
                 loss: str = "smooth_l1",
                 lr: float = 1e-3, milestones: tuple[int, ...] = (50, 100, 150), gamma: float = 0.5,
                 weight_decay: float = 0.0, log_energy: bool = True, init: str | None = None,
                 spike_weight: float = 0.0):
        super().__init__()
        check_loss(loss)
        check_options(float, lr=lr, gamma=gamma, weight_decay=weight_decay, spike_weight=spike_weight)
        if spike_weight < 0:
            raise ValueError(f"spike_weight must be >= 0, not {spike_weight!r}")
        check_options(bool, log_energy=log_energy)
        if not isinstance(milestones, (list, tuple)):
            raise TypeError(f"milestones must be a list of epochs, not {milestones!r}")
        check_options(int, **{f"milestones[{i}]": m for i, m in enumerate(milestones)})
        config, genotype = as_net_config(net), Genotype.resolve(genotype)
        # plain data only (checkpoints load with weights_only=True); Lightning passes these back as dicts
        self.save_hyperparameters({"net": config.as_dict(), "genotype": genotype.to_data(), "loss": loss,
                                   "lr": lr, "milestones": list(milestones), "gamma": gamma,
                                   "weight_decay": weight_decay, "log_energy": log_energy, "init": init,
                                   "spike_weight": spike_weight})
        self.model = StereoNet(genotype, config)
        if init is not None:
            self._start_from(init)
        self.log_energy = log_energy
        self._init_metrics()

    def _start_from(self, path: str) -> None:
        """Fine-tuning: the weights of an evstereo checkpoint (read as data) whose network is
        this one (same config and genotype, except how it runs in time: ``TEMPORAL_KEYS``, so
        a stateless network may start a streaming one or one of more steps per window); a
        resumed run then replaces them."""
        from evstereo.models import load_checkpoint

        other = load_checkpoint(path)
        if _weights_config(other.config) != _weights_config(self.model.config) or \
                other.genotype.to_data() != self.model.genotype.to_data():
            raise ValueError(f"init {path}: its network (config and genotype) differs from the model section's")
        self.model.load_state_dict(other.state_dict())

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return self.model(left, right)

    def dgs_loss(self, batch: dict) -> torch.Tensor:
        return stereo_loss(self.model, batch, self.hparams.loss)[0]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        weight = self.hparams.get("spike_weight", 0.0)
        with spike_rates(self.model) if weight else contextlib.nullcontext([]) as rates:
            loss, pred = stereo_loss(self.model, batch, self.hparams.loss)
        with torch.no_grad():
            v = batch["valid"]
            epe = (pred - batch["disparity"]).abs()[v].mean() if v.any() else pred.new_zeros(())
        self.log("train/loss", loss, prog_bar=True, batch_size=len(pred))
        self.log("train/epe", epe, prog_bar=True, batch_size=len(pred))
        if rates:  # the energy regulariser: the mean firing rate over every spiking neuron
            rate = torch.stack(rates).mean()
            self.log("train/spike_rate", rate, prog_bar=True, batch_size=len(pred))
            loss = loss + weight * rate
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._validate(self.model, batch, batch_idx)

    def on_validation_epoch_end(self) -> None:
        self._log_validation()
        for name, value in learned_time_constants(self.model).items():
            if isinstance(value, float):
                self.log(f"decay/{name}", value, sync_dist=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.model.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(self.hparams.milestones), self.hparams.gamma)
        return {"optimizer": opt, "lr_scheduler": sched}


class StereoSearchModule(_MetricsMixin, L.LightningModule):
    """First-order bi-level search of the supernet with the cost constraint."""

    def __init__(self, net: NetConfig | dict | None = None, feature_layers: int = 2, matching_layers: int = 4,
                 loss: str = "smooth_l1", w_lr: float = 0.025, w_momentum: float = 0.9, w_weight_decay: float = 3e-4,
                 a_lr: float = 1e-3, a_weight_decay: float = 1e-3, cost_weight: float = 1.0,
                 energy_budget_mj: float | None = None, budget_size: list | None = None, arch_start_epoch: int = 0,
                 log_energy: bool = False, budget_penalty: str = "target", dense_budget_gmacs: float | None = None,
                 arch_batches: int = 1):
        super().__init__()
        check_loss(loss)
        check_options(float, w_lr=w_lr, w_momentum=w_momentum, w_weight_decay=w_weight_decay, a_lr=a_lr,
                      a_weight_decay=a_weight_decay, cost_weight=cost_weight)
        check_options(int, feature_layers=feature_layers, matching_layers=matching_layers,
                      arch_start_epoch=arch_start_epoch, arch_batches=arch_batches)
        check_options(bool, log_energy=log_energy)
        if arch_batches < 1:
            raise ValueError(f"arch_batches must be at least 1, not {arch_batches!r}")
        if energy_budget_mj is not None:
            check_options(float, energy_budget_mj=energy_budget_mj)
            if not energy_budget_mj > 0:
                raise ValueError(f"energy_budget_mj must be positive (mJ per frame), not {energy_budget_mj!r}")
        if dense_budget_gmacs is not None:
            check_options(float, dense_budget_gmacs=dense_budget_gmacs)
            if not dense_budget_gmacs > 0:
                raise ValueError(f"dense_budget_gmacs must be positive (G MACs per frame), not {dense_budget_gmacs!r}")
        if cost_weight < 0:
            raise ValueError(f"cost_weight must not be negative, not {cost_weight!r}")
        if budget_penalty not in BUDGET_PENALTIES:
            raise ValueError(f"budget_penalty must be one of {', '.join(BUDGET_PENALTIES)}, not {budget_penalty!r}")
        if budget_size is not None and (not isinstance(budget_size, (list, tuple)) or len(budget_size) != 2 or any(
                isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in budget_size)):
            raise ValueError(f"budget_size must be [height, width] in pixels, not {budget_size!r}")
        config = as_net_config(net)
        budget_size = list(budget_size or config.nominal_size or NOMINAL_HW)
        net = config.as_dict()  # save_hyperparameters reads the arguments' current values: plain data
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.model = SearchStereoNet(feature_layers, matching_layers, config)
        self.log_energy = log_energy
        self.history: list[dict] = []  # architecture weights after every epoch (for the plots)
        self._init_metrics()

    def dgs_loss(self, batch: dict) -> torch.Tensor:
        return stereo_loss(self.model, batch, self.hparams.loss)[0]

    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_w, opt_a = self.optimizers()
        hp = self.hparams
        if self.current_epoch >= hp.arch_start_epoch and "arch" in batch:
            opt_a.zero_grad()
            logged = self.arch_backward(batch["arch"], self.manual_backward)
            opt_a.step()
            for k, v in logged.items():
                self.log(k, v, batch_size=len(batch["arch"]["left"]))
        b = batch["weights"]
        loss, _ = stereo_loss(self.model, b, hp.loss)
        opt_w.zero_grad()
        self.manual_backward(loss)
        torch.nn.utils.clip_grad_norm_(self.model.weight_parameters(), 5.0)
        opt_w.step()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(b["left"]))
        if self.trainer.is_last_batch:  # here, not in on_train_epoch_end: checkpoint callbacks run before that hook
            self.history.append(self.arch_snapshot())

    def arch_backward(self, b: dict, backward: Callable[[torch.Tensor], None]) -> dict[str, float]:
        """Accumulate the gradient of the architecture loss, averaged over the frames of ``b``,
        which the arch loader serves as ``arch_batches`` batches at once: each is forwarded
        alone (BatchNorm statistics as in a one-batch step), so one Adam step follows the mean of
        their gradients, less noisy than one batch's. Returns the figures to log, averaged alike."""
        n = len(b["left"])
        size = -(-n // self.hparams.arch_batches)
        logged: dict[str, float] = {}
        for start in range(0, n, size):
            part = {k: v[start:start + size] if torch.is_tensor(v) else v for k, v in b.items()}
            share = len(part["left"]) / n
            loss, figures = self._arch_loss(part)
            backward(loss * share)
            for k, v in figures.items():
                logged[k] = logged.get(k, 0.0) + float(v) * share
        return logged

    def _arch_loss(self, b: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The architecture loss of one batch (task, plus cost_weight x each budget's penalty)
        and the figures to log."""
        hp = self.hparams
        # the probe makes an arch step about 1.4x slower: only with a budget or log_energy
        probing = hp.energy_budget_mj is not None or hp.dense_budget_gmacs is not None or self.log_energy
        with self.model.energy_probe(b["left"], b["right"]) if probing else contextlib.nullcontext() as reading:
            task, _ = stereo_loss(self.model, b, hp.loss)
        loss, figures = task, {"search/arch_loss": task.detach()}
        if probing:  # per frame of budget_size (log_energy without a budget: to choose one)
            area = area_ratio(tuple(hp.budget_size), tuple(b["left"].shape[-2:]))
            expected, dense = reading.energy_mj() * area, reading.dense_gmacs() * area
            figures.update({"search/expected_mj": expected.detach(), "search/dense_gmacs": dense.detach()})
            if hp.energy_budget_mj is not None:
                penalty = budget_penalty(expected, hp.energy_budget_mj, hp.budget_penalty)
                loss = loss + hp.cost_weight * penalty
                figures["search/budget_penalty"] = penalty.detach()
            if hp.dense_budget_gmacs is not None:
                penalty = budget_penalty(dense, hp.dense_budget_gmacs, hp.budget_penalty)
                loss = loss + hp.cost_weight * penalty
                figures["search/dense_penalty"] = penalty.detach()
        return loss, figures

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._validate(self.model, batch, batch_idx)

    def on_validation_epoch_end(self) -> None:
        self._log_validation()

    def arch_snapshot(self) -> dict:
        f, m = self.model.feature_net.trellis, self.model.matching_net.trellis
        return {"epoch": self.current_epoch, "genotype": self.model.genotype().to_data(),
                **{k: v.detach().cpu().tolist() for k, v in
                   (("feature_alphas", f.alphas), ("feature_betas", f.betas),
                    ("matching_alphas", m.alphas), ("matching_betas", m.betas))}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["arch_history"] = self.history

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.history = list(checkpoint.get("arch_history", []))

    def configure_optimizers(self):
        hp = self.hparams
        opt_w = torch.optim.SGD(self.model.weight_parameters(), lr=hp.w_lr, momentum=hp.w_momentum,
                                weight_decay=hp.w_weight_decay)
        opt_a = torch.optim.Adam(self.model.arch_parameters(), lr=hp.a_lr, betas=(0.5, 0.999),
                                 weight_decay=hp.a_weight_decay)
        return [opt_w, opt_a]
