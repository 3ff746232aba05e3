"""Spike functions with surrogate gradients, and DGS (differentiable surrogate-gradient search).

Forward, every spike function is the Heaviside step ``s = H(u - V_th)`` with ``H(x) = 1`` for
``x > 0`` and ``0`` otherwise (strict, as the reference code's ``input.gt(thresh)`` and
snntorch). Backward replaces ``dH/dx`` by a surrogate with a temperature ``b`` (larger b:
sharper, narrower). All three surrogates integrate to 1 over the real line:

    dspike   b * (1 - tanh(b x)^2) / (2 tanh(b / 2))   for |x| < 0.5, else 0   (docs/method.md §2.1)
    sigmoid  b * sig(b x) * (1 - sig(b x))
    atan     (b / 2) / (1 + (pi / 2 * b * x)^2)

with ``x = u - V_th``. The dspike support is open: exactly ``|x| = 0.5`` gets 0.

DGS (docs/method.md §2.2) evolves each spiking layer's ``b`` during training. One *phase*
(run by :func:`run_dgs_phase`, or by the Lightning callback in ``evstereo.training.dgs``):

1. every DGS-capable layer (a module with the ``dgs_*`` protocol, e.g.
   :class:`evstereo.snn.layers.SpikingLayer` in spiking mode) gets K copies of its synapse
   weights, candidate k using the surrogate temperature ``b + deltas[k]``, and mixing logits
   ``alpha`` (K values, initialised to ``alpha_init``);
2. for each of up to ``max_batches`` batches: for each candidate k, all layers switch to
   candidate k at once and the candidate weights take one SGD step on the task loss (so the
   cost per batch is K + 1 forward/backward passes, not L * (K + 1)); then all layers switch to
   *mix* mode, where a layer's membrane current is ``sum_k softmax(alpha)_k * I_k`` fed to its
   neuron at the current ``b`` (as in the reference code), and ``alpha`` takes one Adam step
   (lr ``alpha_lr``) on the task loss; ``softmax(alpha)`` is accumulated per layer;
3. afterwards ``b <- clamp(b + deltas[argmax accumulated softmax(alpha)], b_min, b_max)``.

Only candidate weights and ``alpha`` are updated during a phase: the model's own parameters
are untouched, and every model buffer (BatchNorm running statistics, ...) is restored after
the phase, so a phase changes nothing but ``b`` (and, with ``adopt_weights``, copies the
winning candidate's weights into the layer).
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

SURROGATES = ("dspike", "sigmoid", "atan")
DEFAULT_DELTAS = (-0.4, -0.2, 0.0, 0.2, 0.4)
# Candidate temperatures never go below this (b + delta <= 0 would make dspike 0/0).
MIN_CANDIDATE_B = 1e-2


def surrogate_grad(x: Tensor, b: Tensor | float, kind: str = "dspike") -> Tensor:
    """The surrogate ``dH/dx`` at ``x = u - V_th`` for temperature ``b`` (see the module docstring)."""
    if not isinstance(b, Tensor):
        b = torch.tensor(float(b), dtype=x.dtype, device=x.device)
    b = b.to(x.dtype)
    if kind == "dspike":
        # 1 - tanh^2 = 1 / cosh^2: one transcendental instead of two; cosh overflow gives 0, not NaN
        scale = b / (2.0 * torch.tanh(b / 2.0))
        return torch.where(x.abs() < 0.5, scale / torch.cosh(b * x).square(), torch.zeros_like(x))
    if kind == "sigmoid":
        sg = torch.sigmoid(b * x)
        return b * sg * (1.0 - sg)
    if kind == "atan":
        return (b / 2.0) / (1.0 + (math.pi / 2.0 * b * x).square())
    raise ValueError(f"unknown surrogate {kind!r}; choose one of {SURROGATES}")


class SpikeFunction(torch.autograd.Function):
    """Heaviside forward, surrogate backward; ``threshold`` and ``b`` get no gradient."""

    @staticmethod
    def forward(ctx, u: Tensor, threshold: Tensor | float, b: Tensor | float, kind: str) -> Tensor:
        ctx.save_for_backward(u)
        ctx.threshold, ctx.b, ctx.kind = threshold, b, kind
        return (u > threshold).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (u,) = ctx.saved_tensors
        return grad * surrogate_grad(u - ctx.threshold, ctx.b, ctx.kind), None, None, None


def spike(u: Tensor, threshold: Tensor | float = 0.5, b: Tensor | float = 3.0, surrogate: str = "dspike") -> Tensor:
    """Spikes ``H(u - threshold)`` (same dtype as ``u``) with the named surrogate gradient."""
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}; choose one of {SURROGATES}")
    return SpikeFunction.apply(u, threshold, b, surrogate)


def dspike(u: Tensor, threshold: Tensor | float = 0.5, b: Tensor | float = 3.0) -> Tensor:
    """Spikes ``H(u - threshold)`` whose backward is the Dspike surrogate with temperature ``b``."""
    return SpikeFunction.apply(u, threshold, b, "dspike")


def sigmoid_spike(u: Tensor, threshold: Tensor | float = 0.5, b: Tensor | float = 4.0) -> Tensor:
    """Spikes with the sigmoid-derivative surrogate (``b = 4`` peaks at 1, like dspike near b = 2)."""
    return SpikeFunction.apply(u, threshold, b, "sigmoid")


def atan_spike(u: Tensor, threshold: Tensor | float = 0.5, b: Tensor | float = 2.0) -> Tensor:
    """Spikes with the arctangent surrogate (SpikingJelly's ATan; ``b = 2`` is its default)."""
    return SpikeFunction.apply(u, threshold, b, "atan")


# --------------------------------------------------------------------------------------- DGS


@dataclass
class DGSConfig:
    """Everything DGS can be told; the defaults are the reference settings of docs/method.md §2.2.

    ``layers``/``exclude`` are fnmatch patterns over module names (``model.named_modules()``);
    ``layers=None`` takes every DGS-capable layer whose neuron is spiking. ``sgd_lr=None`` lets
    the Lightning callback use the training optimizer's current learning rate (0.01 elsewhere).
    Phases run before the epochs ``start_epoch, start_epoch + every_n_epochs, ...``.
    """

    deltas: Sequence[float] = DEFAULT_DELTAS
    every_n_epochs: int = 5
    start_epoch: int = 0
    max_batches: int = 200
    sgd_lr: float | None = None
    alpha_lr: float = 0.01
    alpha_init: float = 1e-3
    b_min: float = 1.0
    b_max: float = 6.0
    layers: Sequence[str] | None = None
    exclude: Sequence[str] = field(default_factory=tuple)
    adopt_weights: bool = False
    # a layer leaves b only when its winner's advantage over the 0-delta candidate (the mean over
    # batches of the difference of their alpha gradients) is this many standard errors; 0: off
    min_z: float = 3.0

    def __post_init__(self) -> None:
        self.deltas = tuple(float(d) for d in self.deltas)
        if not self.deltas:
            raise ValueError("DGS needs at least one candidate delta")
        if self.every_n_epochs < 1 or self.max_batches < 1:
            raise ValueError("DGS every_n_epochs and max_batches must be at least 1")
        if not self.min_z >= 0:
            raise ValueError(f"DGS min_z must be >= 0, not {self.min_z}")
        if not self.b_min < self.b_max:
            raise ValueError(f"DGS needs b_min < b_max, got [{self.b_min}, {self.b_max}]")
        self.layers = None if self.layers is None else tuple(self.layers)
        self.exclude = tuple(self.exclude)

    @classmethod
    def three_candidates(cls, **kwargs: Any) -> DGSConfig:
        """The lighter variant of docs/method.md §2.2: candidates ``b - 0.2, b, b + 0.2``."""
        return cls(deltas=(-0.2, 0.0, 0.2), **kwargs)

    def is_phase_epoch(self, epoch: int) -> bool:
        """Whether a DGS phase runs before ``epoch`` (0-based)."""
        return epoch >= self.start_epoch and (epoch - self.start_epoch) % self.every_n_epochs == 0

    def as_dict(self) -> dict:
        return asdict(self)


def supports_dgs(module: nn.Module) -> bool:
    """Whether ``module`` implements the DGS protocol and is currently spiking.

    The protocol: ``dgs_attach(deltas, alpha_init)``, ``dgs_select(k | "mix" | None)``,
    ``dgs_candidate_parameters(k)``, ``dgs_alpha`` (a Parameter), ``dgs_detach(adopt)``,
    ``surrogate_b`` (the 0-d buffer holding b) and ``dgs_enabled`` (False when analog).
    """
    return hasattr(module, "dgs_attach") and bool(getattr(module, "dgs_enabled", False))


def dgs_layers(model: nn.Module, config: DGSConfig | None = None) -> list[tuple[str, nn.Module]]:
    """The (name, module) pairs a DGS phase would search, in ``named_modules`` order."""
    config = config or DGSConfig()
    out = []
    for name, m in model.named_modules():
        if not supports_dgs(m):
            continue
        if config.layers is not None and not any(fnmatch.fnmatchcase(name, p) for p in config.layers):
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in config.exclude):
            continue
        out.append((name, m))
    return out


def surrogate_temperatures(model: nn.Module) -> dict[str, float]:
    """``{layer name: b}`` for every DGS-capable layer (spiking or not)."""
    return {n: float(m.surrogate_b) for n, m in model.named_modules() if hasattr(m, "dgs_attach")}


def _advantage_z(alpha_grads: list[Tensor], k: int, config: DGSConfig) -> float | None:
    """How many standard errors candidate k's per-batch advantage over the 0-delta candidate
    (g_stay - g_k: a descent step on alpha favours k by this much) is from zero; None without a
    0-delta candidate or with fewer than 2 batches."""
    if 0.0 not in config.deltas or len(alpha_grads) < 2:
        return None
    stay = config.deltas.index(0.0)
    if k == stay:
        return 0.0
    g = torch.stack(alpha_grads).double()
    advantage = g[:, stay] - g[:, k]
    se = advantage.std(unbiased=True) / math.sqrt(len(advantage))
    mean = float(advantage.mean())
    if float(se) == 0.0:
        return math.copysign(1e9, mean) if mean else 0.0  # no spread at all (finite: the history is JSON)
    return mean / float(se)


def _decide(accumulated: Tensor, alpha_grads: list[Tensor], config: DGSConfig) -> tuple[int, float | None, int]:
    """A layer's (proposed candidate: argmax of its accumulated softmax(alpha); its z, see
    ``_advantage_z``; the candidate taken: the proposed one unless its z is below
    ``config.min_z``, then the 0-delta one)."""
    proposed = int(torch.argmax(accumulated))
    z = _advantage_z(alpha_grads, proposed, config)
    moves = config.min_z <= 0 or z is None or z >= config.min_z
    return proposed, z, proposed if moves else config.deltas.index(0.0)


def run_dgs_phase(
    model: nn.Module,
    batches: Iterable[Any],
    loss_fn: Callable[[Any], Tensor],
    config: DGSConfig | None = None,
    *,
    sgd_lr: float | None = None,
    epoch: int | None = None,
) -> dict:
    """Run one DGS phase over at most ``config.max_batches`` of ``batches`` and update every b.

    ``loss_fn(batch)`` runs the model on one batch and returns the scalar task loss (the batch
    must already be on the model's device). Returns the phase record: ``{"epoch", "batches",
    "layers": {name: {"b_before", "b_after", "delta", "weights"}}}`` where ``weights`` is the
    accumulated softmax(alpha), normalised to sum to 1. With no DGS-capable layer or no batch,
    nothing changes and ``layers`` is empty.
    """
    config = config or DGSConfig()
    lr = float(sgd_lr if sgd_lr is not None else (config.sgd_lr if config.sgd_lr is not None else 0.01))
    layers = dgs_layers(model, config)
    record: dict = {"epoch": epoch, "batches": 0, "layers": {}}
    if not layers:
        return record
    was_training = model.training
    # the phase must not leave traces in running statistics (BN) or other buffers
    saved_buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    for _, m in layers:
        m.dgs_attach(config.deltas, config.alpha_init)
    alphas = [m.dgs_alpha for _, m in layers]
    opt = torch.optim.Adam(alphas, lr=config.alpha_lr)
    acc = [torch.zeros_like(a) for a in alphas]
    alpha_grads: list[list[Tensor]] = [[] for _ in alphas]  # per layer, per batch
    n_batches = 0
    decisions: list[tuple[int, float | None, int] | None] = []
    try:
        model.train()
        with torch.enable_grad():
            for batch in batches:
                if n_batches >= config.max_batches:
                    break
                for k in range(len(config.deltas)):
                    for _, m in layers:
                        m.dgs_select(k)
                    params = [p for _, m in layers for p in m.dgs_candidate_parameters(k)]
                    grads = torch.autograd.grad(loss_fn(batch), params, allow_unused=True)
                    with torch.no_grad():
                        for p, g in zip(params, grads):
                            if g is not None:
                                p.sub_(lr * g)
                for _, m in layers:
                    m.dgs_select("mix")
                grads = torch.autograd.grad(loss_fn(batch), alphas, allow_unused=True)
                for a, g, seen in zip(alphas, grads, alpha_grads):
                    a.grad = torch.zeros_like(a) if g is None else g
                    seen.append(a.grad.detach().clone())
                opt.step()
                opt.zero_grad(set_to_none=True)
                with torch.no_grad():
                    for s, a in zip(acc, alphas):
                        s += torch.softmax(a, 0)
                n_batches += 1
    finally:
        with torch.no_grad():
            for n, b in model.named_buffers():
                if n in saved_buffers:
                    b.copy_(saved_buffers[n])
        for (name, m), s, seen in zip(layers, acc, alpha_grads):
            decision = _decide(s, seen, config) if n_batches else None
            decisions.append(decision)
            m.dgs_detach(adopt=decision[2] if (config.adopt_weights and decision is not None) else None)
        model.train(was_training)
    record["batches"] = n_batches
    if n_batches == 0:
        return record
    with torch.no_grad():
        for (name, m), s, (proposed, z, k) in zip(layers, acc, decisions):
            before = float(m.surrogate_b)
            after = min(max(before + config.deltas[k], config.b_min), config.b_max)
            m.surrogate_b.fill_(after)
            record["layers"][name] = {
                "b_before": before,
                "b_after": after,
                "delta": config.deltas[k],
                "weights": (s / s.sum()).tolist(),
                "proposed_delta": config.deltas[proposed],  # before the significance test
                "z": z,
            }
    return record
