"""Energy accounting: synaptic operations of spiking layers, MACs of analog ones, from real inputs.

:class:`EnergyMeter` runs a model once with forward hooks on every ``Conv1d/2d/3d``,
``ConvTranspose1d/2d/3d`` and ``Linear`` and looks at what each one actually receives:

- **spiking** when every input value is in {-1, 0, 1} (spikes, or the signed SBT event
  input): each non-zero input is one accumulate per synapse it drives, so
  ``SOPs = sum over input spikes of (out_channels / groups) x (kernel taps whose output lies
  inside the output map)``. The border rule: only output positions that exist count, so with
  a 3x3 stride-1 "same" conv a spike in a corner drives 4 taps, on an edge 6, inside 9
  (exactly what the transposed count gives). It is computed by convolving the input's spike
  mask with an all-ones kernel with the layer's stride, padding, dilation and groups. A
  linear layer: ``spikes x out_features``.
- **analog** otherwise (e.g. after a layer switched to BN + ReLU), by formula:
  ``MACs = output elements x (in_channels / groups) x kernel volume`` for a conv (padding
  counted, the usual convention), ``input elements x (out_channels / groups) x kernel
  volume`` for a transposed conv, ``input rows x in x out`` for a linear layer.

- **its own count** for a layer with an ``energy_counts`` attribute: the stereo networks'
  first matching convolution is counted as it is computed, without the cost volume
  (``evstereo.models.cost_volume.volume_free_counts``), spiking or analog alike.

So the accounting follows the hybrid switch by itself. ``kinds`` can force a layer's kind
by name pattern. Work done by functions rather than layers (the stereo networks' trilinear
upsampling of the cost and their read-out) is added as analog rows of type "function" when
the model says how much it is (``model.functional_macs(*inputs) -> {name: MACs}``). Energy = ``SOPs x pj_per_ac + MACs x pj_per_mac`` (0.9 pJ and 4.6 pJ, 45 nm,
docs/method.md §5). Biases, BatchNorm (folded into the conv at inference), pooling and
neuron updates are not counted.

Besides this compute-only convention, every report has a **memory-access-aware** estimate,
``energy_memory_mj``: the compute energy plus ``memory_accesses`` x 5 pJ, one 32-bit access of
a small (8 KB) SRAM at 45 nm (half of the 10 pJ per 64-bit access in Horowitz, "Computing's
energy problem", ISSCC 2014). Accesses are counted with no data reuse, so it is an upper-end
figure: a synaptic operation reads its weight and reads and writes the target's membrane
potential (3); each neuron's leak and threshold pass per step reads and writes its potential
(2); a MAC reads a weight and an input (2) and an analog layer writes each output once; a
function's MAC reads two operands. :meth:`EnergyMeter.ann_equivalent` counts the same network as
an ANN (every layer dense MACs) the same way.

Inputs may be ``[B, T, ...]``: the hooked layers see every time step (time folded into the
batch) and everything is summed over all steps; every figure is reported **per frame**, i.e.
divided by the batch size B of the first tensor input (override with ``frames=``).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import math
import os
from typing import Any, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evstereo.fileio import write_text_atomic

DEFAULT_PJ_PER_AC = 0.9
DEFAULT_PJ_PER_MAC = 4.6
# memory-access-aware estimate (module doc): one 32-bit access of a small (8 KB) SRAM at 45 nm,
# half of Horowitz's 10 pJ per 64-bit access (ISSCC 2014, "Computing's energy problem")
DEFAULT_PJ_PER_ACCESS = 5.0
ACCESSES_PER_SOP = 3  # weight read, membrane potential read and write
ACCESSES_PER_NEURON_STEP = 2  # the leak / threshold pass reads and writes each potential
ACCESSES_PER_MAC = 2  # weight and input reads
ACCESSES_PER_OUTPUT = 1  # an analog layer writes each output once
KINDS = ("spiking", "analog")

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TCONVS = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_COUNTED = _CONVS + _TCONVS + (nn.Linear,)


def is_spike_tensor(x: Tensor) -> bool:
    """Whether every value of ``x`` is -1, 0 or 1 (spikes, or signed event counts)."""
    if x.dtype == torch.bool:
        return True
    return bool(((x == 0) | (x.abs() == 1)).all())


def _conv_fn(module: nn.Module):
    nd = len(module.kernel_size)
    if isinstance(module, _TCONVS):
        return {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[nd]
    return {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]


def synaptic_ops(module: nn.Module, x: Tensor) -> int:
    """Accumulates caused by the non-zero entries of ``x`` in ``module`` (border rule above)."""
    mask = (x != 0).to(torch.float32)
    if isinstance(module, nn.Linear):
        return int(mask.sum(dtype=torch.float64).item()) * module.out_features
    g = module.groups
    k = module.kernel_size
    if isinstance(module, _TCONVS):
        ones = torch.ones((module.in_channels, 1) + tuple(k), device=x.device)
        count = _conv_fn(module)(mask, ones, None, module.stride, module.padding, module.output_padding, g, module.dilation)
        return int(count.sum(dtype=torch.float64).item()) * (module.out_channels // g)
    ones = torch.ones((g, module.in_channels // g) + tuple(k), device=x.device)
    padding = module.padding
    if module.padding_mode != "zeros":
        # the module pads explicitly; do the same to the mask (reflected spikes are real inputs)
        mask = F.pad(mask, module._reversed_padding_repeated_twice, mode=module.padding_mode)
        padding = 0
    count = _conv_fn(module)(mask, ones, None, module.stride, padding, module.dilation, g)
    return int(count.sum(dtype=torch.float64).item()) * (module.out_channels // g)


def layer_counts(module: nn.Module, x: Tensor, y: Tensor, spiking: bool) -> tuple[int, int]:
    """(SOPs, MACs) of one call of ``module`` on input ``x`` giving ``y``: SOPs of the input's
    non-zero entries when ``spiking``, else dense MACs; a module with an ``energy_counts(module,
    x, spiking)`` attribute counts itself (SOPs then include any plain accumulates)."""
    custom = getattr(module, "energy_counts", None)  # a layer computed another way (the first matching conv)
    if custom is not None:
        return custom(module, x, spiking)
    if spiking:
        return synaptic_ops(module, x), 0
    return 0, multiply_accumulates(module, x, y)


def multiply_accumulates(module: nn.Module, x: Tensor, y: Tensor) -> int:
    """Dense MACs of ``module`` for input ``x`` and output ``y`` (formulas above)."""
    if isinstance(module, nn.Linear):
        return x.numel() * module.out_features
    kvol = math.prod(module.kernel_size)
    if isinstance(module, _TCONVS):
        return x.numel() * (module.out_channels // module.groups) * kvol
    return y.numel() * (module.in_channels // module.groups) * kvol


class EnergyMeter:
    """Measure SOPs, MACs and energy of ``model`` per layer on real inputs.

    ``EnergyMeter(model).measure(*inputs)`` runs ``model(*inputs)`` under ``torch.no_grad``
    (in whatever train/eval mode the model is in: call ``model.eval()`` for inference figures)
    and returns a JSON-ready dict: ``sops``, ``macs``, ``energy_mj``, ``energy_ac_mj``,
    ``energy_mac_mj``, ``frames``, ``pj_per_ac``, ``pj_per_mac`` and ``layers``, a list of
    ``{name, type, kind, calls, input_spike_rate, sops, macs, energy_mj}`` in model order
    (layers that did not run are left out). All counts are per frame.
    ``kinds`` maps fnmatch patterns of layer names to a forced kind.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        pj_per_ac: float = DEFAULT_PJ_PER_AC,
        pj_per_mac: float = DEFAULT_PJ_PER_MAC,
        kinds: Mapping[str, str] | None = None,
        pj_per_access: float = DEFAULT_PJ_PER_ACCESS,
    ) -> None:
        self.model = model
        self.pj_per_ac = float(pj_per_ac)
        self.pj_per_mac = float(pj_per_mac)
        self.pj_per_access = float(pj_per_access)
        self.kinds = dict(kinds or {})
        for kind in self.kinds.values():
            if kind not in KINDS:
                raise ValueError(f"unknown layer kind {kind!r}; choose one of {KINDS}")

    def _forced(self, name: str) -> str | None:
        kind = None
        for pattern, k in self.kinds.items():
            if fnmatch.fnmatchcase(name, pattern):
                kind = k
        return kind

    def measure(self, *inputs: Any, frames: int | None = None, **kwargs: Any) -> dict:
        """Run the model once on ``inputs`` (and ``kwargs``) and return the per-frame report."""
        if frames is None:
            first = next((t for t in inputs if isinstance(t, Tensor)), None)
            if first is None or first.dim() == 0:
                raise ValueError("EnergyMeter.measure needs a tensor input with a batch dimension, or frames=")
            frames = int(first.shape[0])
        if frames < 1:
            raise ValueError(f"frames must be at least 1, got {frames}")
        with self.recording() as rec, torch.no_grad():
            self.model(*inputs, **kwargs)
        functional = getattr(self.model, "functional_macs", None)
        return rec.report(frames, functional(*inputs, **kwargs) if functional is not None else {})

    def ann_equivalent(self, *inputs: Any, **kwargs: Any) -> dict:
        """The same network counted as an ANN: every layer dense (MACs by formula, whatever it
        receives), the functions as before; the same report as :meth:`measure`."""
        ann = EnergyMeter(self.model, pj_per_ac=self.pj_per_ac, pj_per_mac=self.pj_per_mac,
                          kinds={"*": "analog"}, pj_per_access=self.pj_per_access)
        return ann.measure(*inputs, **kwargs)

    @contextlib.contextmanager
    def recording(self, exclude: tuple[str, ...] = ()) -> Iterator["Recording"]:
        """Hooks on every counted layer (but those matching an ``exclude`` pattern) for whatever
        forwards run inside the block, gradients or not; ``.report(frames)`` afterwards."""
        rec = Recording(self)
        handles = [m.register_forward_hook(rec.hook(name)) for name, m in self.model.named_modules()
                   if isinstance(m, _COUNTED) and not any(fnmatch.fnmatchcase(name, p) for p in exclude)]
        try:
            yield rec
        finally:
            for h in handles:
                h.remove()

    def _mj(self, sops: float, macs: float) -> float:
        return (sops * self.pj_per_ac + macs * self.pj_per_mac) * 1e-9  # pJ -> mJ

    @staticmethod
    def table(result: Mapping[str, Any]) -> str:
        """A fixed-width text table of a :meth:`measure` result (per frame)."""
        return format_energy_table(result)

    @staticmethod
    def to_json(result: Mapping[str, Any], path: str | os.PathLike | None = None) -> str:
        """The result as JSON text; with ``path``, also written there (temporary name + rename)."""
        text = json.dumps(result, indent=2)
        if path is not None:
            write_text_atomic(path, text)
        return text


class Recording:
    """What the hooked layers of an :meth:`EnergyMeter.recording` block received."""

    def __init__(self, meter: EnergyMeter) -> None:
        self.meter = meter
        self.stats: dict[str, dict] = {}  # in the order the layers first ran

    def hook(self, name: str):
        def fn(module: nn.Module, args: tuple, output: Any) -> None:
            x = args[0].detach()
            y = output if isinstance(output, Tensor) else output[0]
            forced = self.meter._forced(name)
            spiking = is_spike_tensor(x) if forced is None else forced == "spiking"
            s = self.stats.setdefault(name, {"type": type(module).__name__, "kinds": set(), "calls": 0,
                                             "elements": 0, "nonzero": 0, "sops": 0, "macs": 0, "outputs": 0})
            s["calls"] += 1
            s["outputs"] += y.numel()
            s["elements"] += x.numel()
            s["nonzero"] += int((x != 0).sum().item())
            s["kinds"].add("spiking" if spiking else "analog")
            sops, macs = layer_counts(module, x, y, spiking)
            s["sops"] += sops
            s["macs"] += macs
        return fn

    def report(self, frames: int, functional: Mapping[str, int] | None = None) -> dict:
        """The per-frame report (see :class:`EnergyMeter`); ``functional``: MACs of the
        model's function parts for the whole batch (``model.functional_macs``)."""
        mj = self.meter._mj
        layers = []
        for name, s in self.stats.items():
            kind = next(iter(s["kinds"])) if len(s["kinds"]) == 1 else "mixed"
            sops, macs = s["sops"] / frames, s["macs"] / frames
            rate = s["nonzero"] / s["elements"] if s["elements"] else 0.0
            outputs = s["outputs"] / frames
            # a mixed layer's neurons are counted as spiking ones, its outputs once more as writes
            accesses = (ACCESSES_PER_SOP * sops + ACCESSES_PER_MAC * macs
                        + (ACCESSES_PER_NEURON_STEP if kind != "analog" else 0) * outputs
                        + (ACCESSES_PER_OUTPUT if kind != "spiking" else 0) * outputs)
            layers.append({"name": name, "type": s["type"], "kind": kind, "calls": s["calls"],
                           "input_spike_rate": rate if kind != "analog" else None,
                           "sops": sops, "macs": macs, "energy_mj": mj(sops, macs), "memory_accesses": accesses})
        for name, total in (functional or {}).items():
            macs = total / frames
            layers.append({"name": name, "type": "function", "kind": "analog", "calls": 1, "input_spike_rate": None,
                           "sops": 0.0, "macs": macs, "energy_mj": mj(0.0, macs),
                           "memory_accesses": ACCESSES_PER_MAC * macs})
        sops = sum(layer["sops"] for layer in layers)
        macs = sum(layer["macs"] for layer in layers)
        accesses = sum(layer["memory_accesses"] for layer in layers)
        return {"sops": sops, "macs": macs, "energy_mj": mj(sops, macs), "energy_ac_mj": mj(sops, 0.0),
                "energy_mac_mj": mj(0.0, macs), "memory_accesses": accesses,
                "energy_memory_mj": mj(sops, macs) + accesses * self.meter.pj_per_access * 1e-9,
                "frames": frames, "pj_per_ac": self.meter.pj_per_ac, "pj_per_mac": self.meter.pj_per_mac,
                "pj_per_access": self.meter.pj_per_access, "layers": layers}


def format_energy_table(result: Mapping[str, Any]) -> str:
    """Per-layer table and totals of an :meth:`EnergyMeter.measure` result."""
    head = f"{'layer':<32} {'type':<16} {'kind':<8} {'in rate':>8} {'SOPs (M)':>11} {'MACs (M)':>11} {'energy (mJ)':>12}"
    lines = [head, "-" * len(head)]
    for layer in result["layers"]:
        rate = "" if layer["input_spike_rate"] is None else f"{layer['input_spike_rate']:.3f}"
        lines.append(f"{layer['name'][:32]:<32} {layer['type']:<16} {layer['kind']:<8} {rate:>8} "
                     f"{layer['sops'] / 1e6:>11.3f} {layer['macs'] / 1e6:>11.3f} {layer['energy_mj']:>12.5f}")
    lines.append("-" * len(head))
    lines.append(f"{'total per frame':<32} {'':<16} {'':<8} {'':>8} {result['sops'] / 1e6:>11.3f} "
                 f"{result['macs'] / 1e6:>11.3f} {result['energy_mj']:>12.5f}")
    lines.append(f"({result['pj_per_ac']} pJ per accumulate, {result['pj_per_mac']} pJ per MAC, "
                 f"{result['frames']} frame(s) measured)")
    return "\n".join(lines)
