"""The LIF kernels behind :class:`evstereo.snn.neuron.LIF`, and the choice of how they run.

Dynamics (docs/method.md §1.1), over the time axis of ``[B, T, C, ...]`` currents
(``[B, T, C, H, W]`` for 2D layers, ``[B, T, C, D, H, W]`` for 3D ones, any trailing shape
works), with the membrane starting at 0 for every sample of every call:

    hard reset (default)  u[t] = decay * u[t-1] * (1 - s[t-1]) + I[t]
    soft reset            u[t] = decay * (u[t-1] - V_th * s[t-1]) + I[t]
    s[t] = H(u[t] - V_th)          (strict: a spike needs u > V_th)

A call may continue an earlier one (stateful streaming): ``initial`` is the post-reset
membrane ``r`` that call ended with (``return_state=True``), so ``u[0] = decay * r + I[0]``
and two calls over consecutive steps give exactly the spikes of one call over all of them.
The carried state is a constant (no gradient flows into the earlier call: a truncation of
back-propagation through time at the call boundary; the decay still gets its gradient).

IF is ``decay = 1``. The reset path is differentiated too (as in the reference code's
``mem * decay * (1 - spike)``); ``detach_reset=True`` cuts it as snntorch does.

Speed. The whole T loop is one autograd node (:class:`_LIFFunction`) that saves only the
membrane ``u`` (one float per neuron per step); spikes and the surrogate are recomputed in
backward, which then runs as a few whole-tensor operations plus one multiply-add per step.
For large tensors (``>= COMPILE_MIN_NUMEL`` elements) the forward and backward kernels are
compiled with ``torch.compile`` (fused loops, about 10x faster than eager on CPU); small
tensors and machines where compilation fails use the same kernels eagerly. The choice is
:func:`set_backend` (or the ``EVSTEREO_SNN_BACKEND`` environment variable): ``"auto"``,
``"compile"`` or ``"eager"``. One step from rest without gradient (a T = 1 network at
inference) needs no kernel: its spikes are ``current > V_th``, computed as such.
"""

from __future__ import annotations

import os
import types
import warnings

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from evstereo.snn.surrogate import SURROGATES, surrogate_grad

RESETS = ("hard", "soft")
BACKENDS = ("auto", "compile", "eager")
# Below this many elements compiling costs more than it saves (and keeps small tests fast).
COMPILE_MIN_NUMEL = 1 << 18

_backend = os.environ.get("EVSTEREO_SNN_BACKEND", "auto")
_compile_failed = False
_kernel_cache: dict[tuple, object] = {}


def set_backend(name: str) -> None:
    """Choose how the LIF kernels run: ``"auto"`` (compile large tensors), ``"compile"``, ``"eager"``."""
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"unknown SNN backend {name!r}; choose one of {BACKENDS}")
    _backend = name


def get_backend() -> str:
    """The current LIF kernel backend (see :func:`set_backend`)."""
    return _backend


# ------------------------------------------------------------------------------ the kernels
# Both work on currents reshaped to [B, T, C, M] with decay as [C or 1, 1], so 2D, 3D and
# linear layers share one compiled kernel per variant.


def _lif_forward_kernel(current: Tensor, decay: Tensor, threshold: Tensor, hard: bool,
                        fused: bool = False) -> tuple[Tensor, Tensor]:
    """Membrane potentials ``u`` and spikes for all steps.

    ``fused`` (compiled): a functional stack, which inductor turns into one loop; eager: in-place
    writes into the output, so no per-step list doubles the memory.
    """
    u = current[:, 0]
    steps = current.shape[1]
    if fused:
        us = [u]
    else:
        u_all = torch.empty_like(current)
        u_all[:, 0] = u
    for t in range(1, steps):
        fired = u > threshold
        kept = torch.where(fired, torch.zeros_like(u), u) if hard else torch.where(fired, u - threshold, u)
        u = kept * decay + current[:, t]
        if fused:
            us.append(u)
        else:
            u_all[:, t] = u
    if fused:
        u_all = torch.stack(us, 1)
    return u_all, (u_all > threshold).to(current.dtype)


def _lif_backward_kernel(
    u: Tensor, grad_s: Tensor, decay: Tensor, threshold: Tensor, b: Tensor,
    hard: bool, kind: str, detach_reset: bool, need_decay_grad: bool, fused: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Gradients w.r.t. the currents and (summed per channel) the decay, from the saved membrane.

    With ``r[t]`` the post-reset membrane (``u (1 - s)`` hard, ``u - V_th s`` soft) and
    ``u[t+1] = decay r[t] + I[t+1]``: ``gu[t] = gs[t] sg[t] + gu[t+1] decay dr[t]/du[t]``,
    ``gI = gu`` and ``g_decay = sum_t gu[t+1] r[t]``. Everything is computed step by step from
    ``u[:, t]`` (spikes and surrogate recomputed), so no whole-tensor temporaries exist; compiled
    (``fused``) the steps are stacked functionally and inductor makes one pass of it, eagerly
    they are written in place.
    """
    steps = u.shape[1]
    outs: list[Tensor] = []
    grad_i = None if fused else torch.empty_like(u)
    grad_decay = None
    g = None
    for t in range(steps - 1, -1, -1):
        ut = u[:, t]
        sg = surrogate_grad(ut - threshold, b, kind)
        direct = grad_s[:, t] * sg
        if g is not None:  # gu[t+1] flows back through u[t+1] = decay r[t] + I[t+1]
            fired = ut > threshold
            if hard:
                keep = (~fired).to(u.dtype)
                carry = keep if detach_reset else keep - ut * sg
            else:
                carry = torch.ones_like(ut) if detach_reset else 1.0 - threshold * sg
            if need_decay_grad:
                r = torch.where(fired, torch.zeros_like(ut), ut) if hard else torch.where(fired, ut - threshold, ut)
                step_gd = (g * r).sum(dim=(0, 2))
                grad_decay = step_gd if grad_decay is None else grad_decay + step_gd
            g = direct + g * (carry * decay)
        else:
            g = direct
        if fused:
            outs.append(g)
        else:
            grad_i[:, t] = g
    if fused:
        grad_i = torch.stack(outs[::-1], 1)
    if need_decay_grad and grad_decay is None:  # a single step: the decay is never used
        grad_decay = torch.zeros(u.shape[2], dtype=u.dtype, device=u.device)
    return grad_i, grad_decay


def _renamed(fn, tag: str):
    """A copy of ``fn`` with its own code object, so each variant gets its own dynamo cache."""
    code = fn.__code__.replace(co_name=f"{fn.__name__}_{tag}")
    return types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)


def _use_compile(numel: int) -> bool:
    if _backend == "compile":
        return True
    return _backend == "auto" and not _compile_failed and numel >= COMPILE_MIN_NUMEL


def _run(kind: str, key: tuple, fn, numel: int, *args):
    """Call ``fn`` compiled (cached per variant) or eagerly; "auto" falls back to eager for good."""
    global _compile_failed
    if not _use_compile(numel):
        return fn(*args, fused=False)
    try:
        compiled = _kernel_cache.get((kind,) + key)
        if compiled is None:
            compiled = torch.compile(_renamed(fn, "_".join(map(str, (kind,) + key))))
            _kernel_cache[(kind,) + key] = compiled
        return compiled(*args, fused=True)
    except Exception as err:  # no C++ compiler, unsupported platform, ...
        if _backend == "compile":
            raise
        _compile_failed = True
        warnings.warn(f"torch.compile failed for the LIF kernels ({type(err).__name__}: {err}); "
                      "using eager kernels", RuntimeWarning, stacklevel=3)
        return fn(*args, fused=False)


class _LIFFunction(torch.autograd.Function):
    """The whole T loop as one autograd node; saves only the membrane."""

    @staticmethod
    def forward(ctx, current: Tensor, decay: Tensor, threshold: Tensor, b: Tensor,
                hard: bool, kind: str, detach_reset: bool) -> tuple[Tensor, Tensor]:
        u, spikes = _run("fwd", (hard,), _lif_forward_kernel, current.numel(), current, decay, threshold, hard)
        ctx.save_for_backward(u, decay, threshold, b)
        ctx.hard, ctx.kind, ctx.detach_reset = hard, kind, detach_reset
        last = u[:, -1]
        ctx.mark_non_differentiable(last)  # the membrane a next call continues from: a constant
        return spikes, last

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_s: Tensor, _grad_last: Tensor | None = None):
        u, decay, threshold, b = ctx.saved_tensors
        need_gd = ctx.needs_input_grad[1]
        key = (ctx.hard, ctx.kind, ctx.detach_reset, need_gd)
        grad_i, grad_d = _run("bwd", key, _lif_backward_kernel, u.numel(), u, grad_s.contiguous(), decay,
                              threshold, b, ctx.hard, ctx.kind, ctx.detach_reset, need_gd)
        if grad_d is not None:
            grad_d = grad_d.reshape(-1, 1) if decay.shape[0] > 1 else grad_d.sum().reshape(1, 1)
        return grad_i, grad_d, None, None, None, None, None


def _as_scalar_tensor(value: Tensor | float, like: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().to(device=like.device, dtype=like.dtype).reshape(())
    return torch.tensor(float(value), device=like.device, dtype=like.dtype)


def _decay_column(decay: Tensor | float, current: Tensor) -> Tensor:
    """Decay as a [C or 1, 1] tensor on the current's device and dtype (keeps its graph)."""
    channels = current.shape[2]
    d = decay if isinstance(decay, Tensor) else torch.tensor(float(decay))
    d = d.to(device=current.device, dtype=current.dtype)
    if d.numel() not in (1, channels):
        raise ValueError(f"decay has {d.numel()} values but the input has {channels} channels "
                         f"(dimension 2 of [B, T, C, ...]); use one value or one per channel")
    return d.reshape(-1, 1)


def _post_reset(u: Tensor, threshold: Tensor, hard: bool) -> Tensor:
    """The membrane a neuron carries into the next step: ``u (1 - s)`` (hard) or ``u - V_th s`` (soft)."""
    fired = u > threshold
    return torch.where(fired, torch.zeros_like(u), u) if hard else torch.where(fired, u - threshold, u)


def _continue(c4: Tensor, decay: Tensor, initial: Tensor | None) -> Tensor:
    """Currents [B, T, C, M] whose first step also holds the carried membrane ``decay * initial``."""
    if initial is None:
        return c4
    carried = decay * initial.detach().reshape(c4[:, 0].shape).to(c4.dtype)
    return torch.cat([c4[:, :1] + carried[:, None], c4[:, 1:]], 1)


def lif_multistep(
    current: Tensor,
    decay: Tensor | float = 0.2,
    threshold: Tensor | float = 0.5,
    *,
    reset: str = "hard",
    surrogate: str = "dspike",
    b: Tensor | float = 3.0,
    detach_reset: bool = False,
    initial: Tensor | None = None,
    return_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Spikes ``[B, T, C, ...]`` of LIF neurons driven by ``current`` (same shape, T >= 1).

    ``decay`` is a float, a 0-d tensor or one value per channel (``[C]``); tensors that require
    grad receive gradients. ``threshold`` and ``b`` are not learned. ``initial`` (shape of one
    step, ``[B, C, ...]``): the state an earlier call returned, to continue it (module doc);
    ``return_state``: also return the state this call ends with (detached).
    """
    if current.dim() < 3:
        raise ValueError(f"LIF input must be [B, T, C, ...], got shape {tuple(current.shape)}")
    if reset not in RESETS:
        raise ValueError(f"unknown reset {reset!r}; choose one of {RESETS}")
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}; choose one of {SURROGATES}")
    shape = current.shape
    th = _as_scalar_tensor(threshold, current)
    if shape[1] == 1 and initial is None and not return_state and not (torch.is_grad_enabled() and current.requires_grad):
        # one step from rest, no gradient: u = I, so the spikes are a threshold (as the kernel
        # computes them) without the reshape to [B, T, C, M], the kernel call or the saved membrane;
        # written straight into a float tensor of the input's layout (a bool tensor and a cast: 4x slower)
        return torch.gt(current, th, out=torch.empty_like(current))
    c4 = current.reshape(shape[0], shape[1], shape[2], -1)
    d = _decay_column(decay, current)
    c4 = _continue(c4, d, initial)
    if not c4.is_contiguous():
        c4 = c4.contiguous()
    spikes, last = _LIFFunction.apply(c4, d, th, _as_scalar_tensor(b, current), reset == "hard", surrogate,
                                      detach_reset)
    spikes = spikes.reshape(shape)
    if not return_state:
        return spikes
    return spikes, _post_reset(last, th, reset == "hard").reshape(shape[:1] + shape[2:])


def membrane_readout(current: Tensor, decay: Tensor | float = 0.2, initial: Tensor | None = None,
                     return_state: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Non-firing leaky integration ``u[t] = decay * u[t-1] + I[t]``; returns ``u`` for all steps
    (and, with ``return_state``, the last one, detached: the ``initial`` of a next call)."""
    d = _decay_column(decay, current).reshape((1, -1) + (1,) * (current.dim() - 3))
    u = current[:, 0] if initial is None else current[:, 0] + d * initial.detach()
    out = [u]
    for t in range(1, current.shape[1]):
        u = d * u + current[:, t]
        out.append(u)
    us = torch.stack(out, 1)
    return (us, us[:, -1].detach()) if return_state else us
