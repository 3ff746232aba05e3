"""Learnable time constants: one decay per neuron type, shared by every neuron of that type.

Neurons belong to named *types* ("stem", "feature", "matching", ...). A
:class:`TimeConstants` registry, owned by the model as an ordinary submodule, holds one
parameter ``w`` per type (a scalar, or one value per channel) and maps it to a bounded decay
``decay = lo + (hi - lo) * sigmoid(w)`` (default bounds (0, 1)); every
:class:`~evstereo.snn.neuron.LIF` created with ``time_constants=registry,
neuron_type="feature"`` reads its decay from the registry, so all neurons of a type share (and
jointly learn) one time constant. Because ``w`` is a parameter of the model it is trained by
the model's optimizer and saved in its state_dict; :meth:`TimeConstants.values` (or
:func:`learned_time_constants` on a whole model) reads the learned decays back per type
(docs/method.md §1.2).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import torch
from torch import Tensor, nn


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


class TimeConstants(nn.Module):
    """Registry of learnable decays, one per neuron type, shared by every neuron of that type.

    ``decay = lo + (hi - lo) * sigmoid(w)``; ``w`` is a parameter named ``w.<type>`` (so a model
    owning the registry as ``self.time_constants`` saves ``time_constants.w.stem`` etc.).
    A type is a scalar or, with ``channels=C``, one decay per channel (all neurons of that type
    must then have C channels). Types not declared are added on first use as scalars with
    the registry's ``init``. ``learnable=False`` freezes all of them.

    Example::

        tc = TimeConstants({"stem": 0.2, "feature": 0.2, "matching": 0.3})
        lif = LIF(time_constants=tc, neuron_type="feature")
        ...train...
        tc.values()  # {"stem": 0.19, "feature": 0.23, "matching": 0.31}
    """

    def __init__(
        self,
        types: Mapping[str, float] | Iterable[str] | None = None,
        *,
        init: float = 0.2,
        channels: Mapping[str, int] | None = None,
        bounds: tuple[float, float] = (0.0, 1.0),
        learnable: bool = True,
    ) -> None:
        super().__init__()
        lo, hi = map(float, bounds)
        if not lo < hi:
            raise ValueError(f"time constant bounds must satisfy lo < hi, got {bounds}")
        self.lo, self.hi, self.init, self.learnable = lo, hi, float(init), learnable
        self.w = nn.ParameterDict()
        channels = dict(channels or {})
        if types is not None:
            items = types.items() if isinstance(types, Mapping) else ((t, self.init) for t in types)
            for name, value in items:
                self.add(name, value, channels=channels.get(name))

    def add(self, name: str, init: float | None = None, channels: int | None = None) -> None:
        """Declare type ``name`` with initial decay ``init`` (strictly inside the bounds)."""
        if "." in name or not name:
            raise ValueError(f"neuron type names must be non-empty and contain no '.', got {name!r}")
        if name in self.w:
            raise ValueError(f"neuron type {name!r} is already declared")
        init = self.init if init is None else float(init)
        if not self.lo < init < self.hi:
            raise ValueError(f"initial decay {init} of type {name!r} must lie strictly inside "
                             f"({self.lo}, {self.hi})")
        w0 = _logit((init - self.lo) / (self.hi - self.lo))
        shape = () if channels is None else (int(channels),)
        self.w[name] = nn.Parameter(torch.full(shape, w0), requires_grad=self.learnable)

    def names(self) -> list[str]:
        """The declared neuron types."""
        return list(self.w.keys())

    def decay(self, name: str) -> Tensor:
        """The decay tensor of type ``name`` (0-d or ``[C]``), differentiable w.r.t. ``w``."""
        if name not in self.w:
            self.add(name)
        return self.lo + (self.hi - self.lo) * torch.sigmoid(self.w[name])

    def values(self) -> dict[str, float | list[float]]:
        """The current (learned) decay of every type: a float, or a list for per-channel types."""
        out: dict[str, float | list[float]] = {}
        with torch.no_grad():
            for name in self.w:
                d = self.decay(name)
                out[name] = d.item() if d.dim() == 0 else d.tolist()
        return out

    def taus(self) -> dict[str, float | list[float]]:
        """The same as time constants ``tau = 1 / (1 - decay)`` (decay 0.2 <-> tau 1.25)."""
        conv = lambda d: 1.0 / (1.0 - d)  # noqa: E731
        return {k: (conv(v) if isinstance(v, float) else [conv(x) for x in v]) for k, v in self.values().items()}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v if isinstance(v, float) else 'per-channel'}" for k, v in self.values().items())


def learned_time_constants(model: nn.Module) -> dict[str, float | list[float]]:
    """Decays per neuron type of every :class:`TimeConstants` in ``model``.

    With one registry the keys are the type names; with several, ``"<module path>.<type>"``.
    """
    regs = [(n, m) for n, m in model.named_modules() if isinstance(m, TimeConstants)]
    if len(regs) == 1:
        return regs[0][1].values()
    return {f"{n}.{k}" if n else k: v for n, m in regs for k, v in m.values().items()}

