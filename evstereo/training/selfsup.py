"""Self-supervised stereo: the loss that needs no ground truth, and the module that adapts with it.

A network adapted to a user's own rig (``apps.adapt``) learns from three facts about a
correct disparity, each a pure function below:

- photometric: the right camera's event image warped into the left view by the left
  disparity matches the left camera's (:func:`photometric_loss`: SSIM and L1, as in
  Monodepth), counted only where either view has events and the warp stays inside the image;
- smoothness: disparity changes little where the image has no edge
  (:func:`smoothness_loss`, on disparity divided by its mean, so that it cannot win by
  shrinking the disparity);
- left-right consistency: the right view's disparity, warped into the left view, equals the
  left one (:func:`lr_consistency_loss`).

The right view's disparity comes from the same network by mirroring both images and swapping
them, the trick of :class:`evstereo.datasets.transforms.HorizontalFlipSwap`:
``disparity_right = flip(model(flip(right), flip(left)))`` (:func:`right_disparity`). Every
term is computed in both views (the mirrored view is a left view too), so both cameras teach.

Shapes and units: event images [B, C, H, W] (the blurred, 0..1 images of
:mod:`evstereo.datasets.unlabelled`), disparities [B, H, W] in px of the rectified view they
belong to, positive: left pixel x sees what the right camera sees at x - d. Masks [B, H, W]
bool. The network is used only through ``forward(left, right) -> disparity``.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from evstereo.errors import InputError
from evstereo.models import NetConfig, StereoNet
from evstereo.models.photometric import event_mask, masked_mean, photometric_error, photometric_loss, warp
from evstereo.search.genotypes import Genotype
from evstereo.snn import learned_time_constants
from evstereo.training.modules import as_net_config, check_options

__all__ = ["AdaptModule", "LossWeights", "event_mask", "lr_consistency_loss", "masked_mean", "photometric_error",
           "photometric_loss", "right_disparity", "selfsup_loss", "smoothness_loss", "warp"]


def smoothness_loss(disparity: Tensor, image: Tensor, edge_weight: float = 10.0) -> Tensor:
    """Edge-aware smoothness: |gradient of disparity / its mean| x exp(-edge_weight x |image gradient|)
    (0 for a constant disparity). ``image`` [B, C, H, W] is the view the disparity belongs to."""
    d = disparity / disparity.mean((1, 2), keepdim=True).abs().clamp(min=1e-3)
    gray = image.mean(1)
    dx, dy = (d[:, :, 1:] - d[:, :, :-1]).abs(), (d[:, 1:] - d[:, :-1]).abs()
    wx = torch.exp(-edge_weight * (gray[:, :, 1:] - gray[:, :, :-1]).abs())
    wy = torch.exp(-edge_weight * (gray[:, 1:] - gray[:, :-1]).abs())
    return (dx * wx).mean() + (dy * wy).mean()


def lr_consistency_loss(disparity_left: Tensor, disparity_right: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean |d_L(x) - d_R(x - d_L(x))| in px, where the warp is inside the image (and ``mask``)."""
    warped, inside = warp(disparity_right.unsqueeze(1), disparity_left)
    keep = inside if mask is None else inside & mask
    return masked_mean((disparity_left - warped[:, 0]).abs(), keep)


def right_disparity(model: torch.nn.Module, left: Tensor, right: Tensor) -> Tensor:
    """The right view's disparity [B, H, W] from a left-view network: mirror both inputs
    ([B, T, C, H, W]), swap them, predict, mirror back (see HorizontalFlipSwap)."""
    return model(right.flip(-1), left.flip(-1)).flip(-1)


@dataclass(frozen=True)
class LossWeights:
    """The weights of the terms, and the photometric term's options."""

    photometric: float = 1.0
    smoothness: float = 0.05
    lr_consistency: float = 0.02  # per px of disagreement
    ssim: float = 0.85
    threshold: float = 0.05  # event image value that counts as "has events"
    scales: int = 3  # photometric term over full, 1/2 and 1/4 resolution (see photometric_loss)


def _one_view(left_img: Tensor, right_img: Tensor, d_left: Tensor, d_right: Tensor | None,
              w: LossWeights) -> dict[str, Tensor]:
    photometric, mask = photometric_loss(left_img, right_img, d_left, w.ssim, w.threshold, w.scales)
    terms = {"photometric": photometric, "smoothness": smoothness_loss(d_left, left_img)}
    if d_right is not None:
        terms["lr_consistency"] = lr_consistency_loss(d_left, d_right, mask)
    return terms


def selfsup_loss(left_img: Tensor, right_img: Tensor, d_left: Tensor, d_right: Tensor | None = None,
                 weights: LossWeights = LossWeights()) -> dict[str, Tensor]:
    """The weighted sum (``"loss"``) and each term, averaged over the views that have a
    disparity (the left one; the right one too when ``d_right`` is given, in the mirrored view)."""
    views = [_one_view(left_img, right_img, d_left, d_right, weights)]
    if d_right is not None:
        views.append(_one_view(right_img.flip(-1), left_img.flip(-1), d_right.flip(-1), d_left.flip(-1), weights))
    terms = {k: sum(v[k] for v in views) / len(views) for k in views[0]}
    terms["loss"] = sum(getattr(weights, k) * v for k, v in terms.items())
    return terms


class AdaptModule(L.LightningModule):
    """Fine-tune a derived network with :func:`selfsup_loss` on unlabelled windows.

    Batches are those of :class:`evstereo.datasets.unlabelled.UnlabelledDataset`. The
    hyper-parameters hold the network's config and genotype (plain data), so
    ``evstereo.models.load_checkpoint`` rebuilds the network from a checkpoint of this module
    too. With ``lr_consistency`` 0 the mirrored pass is skipped (half the work per step).

    BatchNorm keeps the statistics it was trained with unless ``update_bn_stats``: re-estimated
    from a few small crops of a sparse recording they hurt. Measured on the pendulum pair with a
    2 px vertical offset (``data_tools.real_pair``, fast.pt at input scale 2.25): 40 forward
    passes in training mode on 96x128 crops, with no weight change, took the mean error at the
    event pixels from 0.96 to 3.28 px.
    """

    def __init__(self, net: NetConfig | dict, genotype: Genotype | dict | str, lr: float = 1e-4,
                 weight_decay: float = 0.0, photometric: float = 1.0, smoothness: float = LossWeights.smoothness,
                 lr_consistency: float = LossWeights.lr_consistency, ssim: float = LossWeights.ssim,
                 threshold: float = LossWeights.threshold, scales: int = LossWeights.scales,
                 update_bn_stats: bool = False):
        super().__init__()
        check_options(float, lr=lr, weight_decay=weight_decay, photometric=photometric, smoothness=smoothness,
                      lr_consistency=lr_consistency, ssim=ssim, threshold=threshold)
        check_options(int, scales=scales)
        check_options(bool, update_bn_stats=update_bn_stats)
        if scales < 1:
            raise ValueError(f"scales must be 1 or more, not {scales!r}")
        if not lr > 0:
            raise ValueError(f"lr must be positive, not {lr!r}")
        if not 0 <= ssim <= 1:
            raise ValueError(f"ssim must be between 0 and 1, not {ssim!r}")
        config, genotype = as_net_config(net), Genotype.resolve(genotype)
        self.save_hyperparameters({"net": config.as_dict(), "genotype": genotype.to_data(), "lr": lr,
                                   "weight_decay": weight_decay, "photometric": photometric, "smoothness": smoothness,
                                   "lr_consistency": lr_consistency, "ssim": ssim, "threshold": threshold,
                                   "scales": scales, "update_bn_stats": update_bn_stats})
        self.weights = LossWeights(photometric, smoothness, lr_consistency, ssim, threshold, scales)
        self.model = StereoNet(genotype, config)

    @classmethod
    def from_network(cls, model: StereoNet, **options) -> "AdaptModule":
        """A module that starts from ``model``'s weights (e.g. ``load_checkpoint``'s network)."""
        module = cls(model.config, model.genotype, **options)
        module.model.load_state_dict(model.state_dict())
        return module

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        return self.model(left, right)

    def train(self, mode: bool = True) -> "AdaptModule":
        super().train(mode)
        if mode and not self.hparams.update_bn_stats:
            for m in self.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def on_train_start(self) -> None:
        self.train()  # Lightning keeps whatever mode the module has; training mode, BatchNorm as chosen

    def losses(self, batch: dict) -> dict[str, Tensor]:
        d_left = self.model(batch["left"], batch["right"])
        d_right = right_disparity(self.model, batch["left"], batch["right"]) if self.weights.lr_consistency else None
        terms = selfsup_loss(batch["left_image"], batch["right_image"], d_left, d_right, self.weights)
        terms["mean_disparity"] = d_left.detach().mean()  # a sanity signal: no ground truth here
        return terms

    def dgs_loss(self, batch: dict) -> Tensor:  # DGSCallback's protocol (off by default in apps.adapt)
        return self.losses(batch)["loss"]

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        terms = self.losses(batch)
        n = len(batch["left"])
        self.log("train/loss", terms["loss"], prog_bar=True, batch_size=n)
        self.log_dict({f"adapt/{k}": v for k, v in terms.items() if k != "loss"}, batch_size=n)
        return terms["loss"]

    def on_train_epoch_end(self) -> None:
        for name, value in learned_time_constants(self.model).items():  # for time_constants.png
            if isinstance(value, float):
                self.log(f"decay/{name}", value)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # before the weights load: a mismatch would otherwise be a long state-dict traceback
        hp = checkpoint.get("hyper_parameters") or {}
        if (hp.get("net"), hp.get("genotype")) != (self.hparams.net, self.hparams.genotype):
            raise InputError(self.trainer.ckpt_path, "adapts a different network than the one given to start "
                                                      "from; use another output folder, or --no-resume to start over")

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
