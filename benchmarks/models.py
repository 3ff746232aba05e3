"""Stereo network benchmarks: the reference and the fast configuration on one 260x346 stereo frame.

For the "reference" and the "fast" network (batch 1, fp32, CPU, eval mode, ``torch.no_grad``),
each read from a checkpoint, which carries its network's config and input: the one given with
``apps.bench --checkpoint NAME=PATH`` (``BenchOptions.checkpoints``), else the packaged
``evstereo/checkpoints/NAME.pt`` when it exists; without either, the network is built from the
checkout's ``configs/model/NAME.yaml`` with random weights (seed 0):

- forward time: best and median of several forwards after warm-up (the first forward compiles
  the LIF kernels and is excluded), timed round-robin over the two networks so that load from
  other processes on a shared machine hits both alike;
- peak memory of one forward: the process's peak resident memory above its resident memory
  just before the call (``evstereo.benchmarks.snn.peak_rss_bytes``: freed heap returned with
  ``malloc_trim``, the high-water mark reset through ``/proc/self/clear_refs``, then
  ``VmHWM - VmRSS``; Linux only, -1 elsewhere); weights and the input are already resident;
- parameters; SOPs, MACs and energy per frame from :class:`evstereo.snn.EnergyMeter`.

The input is real event data: one stereo sample per network, built from the network's own
``input_spec`` (the shipped configurations: SBT, 5 bins, 50 ms window ending at a GT
timestamp), from a 1 s synthetic recording written here with ``evstereo.simulation.synthesize``.
The spike rates behind the SOPs are whatever the weights make of that input: trained weights
when ``evstereo/checkpoints/<name>.pt`` exists (``fast.pt``, ``reference.pt``), else a random
initialisation (seed 0), which fires little. So two bounds are reported beside the measured
figure, both independent of the weights:

- "every neuron fires (SOP upper bound)": every spiking layer driven by an all-ones input
  (one accumulate per synapse, 0.9 pJ), the analog layers as measured (4.6 pJ per MAC);
- "every layer active (MAC upper bound)": every layer counted as a dense analog layer,
  ``EnergyMeter(model, kinds={"*": "analog"})``.

The energy target (same order as the paper's 6.7 mJ per frame, i.e. 0.67-67 mJ) is judged on
the measured figure only when the weights are trained; with random weights it is not judged.

Searched genotypes (the shipped ``configs/model/fast.yaml`` and the unshipped
``configs/model/searched_*.yaml``) are timed against the hand-picked cells they replaced
(``configs/model/handpicked.yaml``): all built from their configs with random weights (seed 0;
a CPU forward's time does not depend on the weights, the convolutions are dense), BatchNorm
folded, round-robin on the fast network's input. The target (issue 13): no more CPU time
than the hand-picked cells.

Per-layer energy tables go to ``BenchOptions.details`` (``apps.bench --details FILE``) when
it is given.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor, nn

import evstereo
from benchmarks import ROOT, BenchOptions, Row
from benchmarks.snn import peak_rss_bytes
from evstereo.errors import InputError
from evstereo.events.input_spec import InputSpec
from evstereo.snn.energy import EnergyMeter, format_energy_table
from evstereo.snn.layers import folded_for_inference

NETWORKS = ("reference", "fast")
CONFIGS = ROOT / "configs" / "model"  # NAME.yaml: in a checkout only
CHECKPOINTS = Path(evstereo.__file__).resolve().parent / "checkpoints"
H, W = 260, 346
PAPER_MJ = 6.7
ENERGY_RANGE = (PAPER_MJ / 10, PAPER_MJ * 10)
TARGET_FAST_MS = 100.0
PEERS = ("peers (issue figures, not measured here): StereoSpike 500 ms (27.5 G MACs), DTC-PDS 750 ms (32.7 G), "
         "DDES 900 ms (42.6 G), LEAStereo 2.7 s (50.8 G)")
def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def checkpoint_for(name: str, options: BenchOptions) -> Path | None:
    """The checkpoint of network ``name``: ``options.checkpoints[name]``, else the packaged
    ``CHECKPOINTS/<name>.pt`` when it exists, else None."""
    if name in options.checkpoints:
        return Path(options.checkpoints[name]).resolve()
    packaged = CHECKPOINTS / f"{name}.pt"
    return packaged if packaged.is_file() else None


def network_config(name: str) -> Path:
    """The checkout's ``configs/model/<name>.yaml``; InputError when there is none (an installed
    package has no configs/ beside it: give a checkpoint instead)."""
    path = CONFIGS / f"{name}.yaml"
    if not path.is_file():
        raise InputError(path, f"no checkpoint for the {name} network and no model config to build it from; "
                               f"give apps.bench --checkpoint {name}=PATH")
    return path


def load_network(name: str, options: BenchOptions) -> tuple[nn.Module, str, str]:
    """Network ``name`` in eval mode, a phrase saying which weights, and where its config came
    from: the checkpoint of :func:`checkpoint_for` (config inside), else ``network_config(name)``
    with random weights (seed 0)."""
    from evstereo.models import build_stereo_net, load_checkpoint

    ckpt = checkpoint_for(name, options)
    if ckpt is not None:
        return load_checkpoint(ckpt).eval(), f"trained weights ({_shown(ckpt)})", _shown(ckpt)
    config = network_config(name)
    torch.manual_seed(0)
    return build_stereo_net(config).eval(), "untrained weights (random init, seed 0)", _shown(config)


def real_samples(folder: Path, specs: dict[str, InputSpec], seed: int = 0,
                 seconds: float = 1.0) -> dict[str, tuple[Tensor, Tensor, str]]:
    """For each name, left/right [1, T, C, 260, 346] of one sample built for its input spec, at the
    middle GT frame of a synthetic recording written into ``folder``, and a phrase describing it."""
    from evstereo.datasets.samples import SampleSpec, make_sample
    from evstereo.recordings import open_recording
    from evstereo.simulation import synthesize

    info = synthesize(folder, "bench", seconds, seed)
    out = {}
    with open_recording(info["data"]) as rec:
        index = len(rec.gt_timestamps()) // 2
        for name, spec in specs.items():
            sample = make_sample(rec, index, SampleSpec.for_input(spec))
            left, right = (torch.from_numpy(sample[c])[None] for c in ("left", "right"))
            active = float((left != 0).float().mean())
            desc = (f"{spec.representation} {spec.bins} bins, {spec.window_us / 1000:g} ms window at GT frame "
                    f"{index} of a {seconds:g} s synthetic recording (seed {seed}, ~{info['rate_mev_s']['left']:.1f} "
                    f"M ev/s/camera; {100 * active:.1f}% of left input values non-zero)")
            out[name] = (left, right, desc)
    return out


def _sop_upper_bound(measured: dict, dense: dict) -> tuple[float, float]:
    """(SOPs, mJ) with every spiking layer's input all ones; analog layers as measured."""
    macs = {layer["name"]: layer["macs"] for layer in dense["layers"]}
    sops = sum(macs[layer["name"]] for layer in measured["layers"] if layer["kind"] != "analog")
    analog = sum(layer["macs"] for layer in measured["layers"] if layer["kind"] == "analog")
    return sops, (sops * measured["pj_per_ac"] + analog * measured["pj_per_mac"]) * 1e-9


def energy(model: nn.Module, left: Tensor, right: Tensor) -> dict:
    """EnergyMeter figures per frame: ``measured`` (the input's spikes), ``dense`` (every layer
    analog: the MAC upper bound), and ``sop_bound_sops``/``sop_bound_mj`` (every neuron fires)."""
    measured = EnergyMeter(model).measure(left, right)
    dense = EnergyMeter(model, kinds={"*": "analog"}).measure(left, right)
    sops, mj = _sop_upper_bound(measured, dense)
    spiking = [layer for layer in measured["layers"] if layer["kind"] != "analog"]
    silent = sum(1 for layer in spiking if not layer["sops"])
    return {"measured": measured, "dense": dense, "sop_bound_sops": sops, "sop_bound_mj": mj,
            "spiking_layers": len(spiking), "silent_layers": silent}


def time_forwards(models: dict[str, nn.Module], inputs: dict[str, tuple[Tensor, Tensor]], repeat: int,
                  warmup: int = 1) -> dict[str, list[float]]:
    """Forward times (s) of each model on its (left, right) input, ``repeat`` rounds taken
    round-robin after ``warmup``."""
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.no_grad():
        for name, model in models.items():
            for _ in range(warmup):
                model(*inputs[name])
        for _ in range(repeat):
            for name, model in models.items():
                t = time.perf_counter()
                model(*inputs[name])
                times[name].append(time.perf_counter() - t)
    return times


def peak_forward_bytes(model: nn.Module, left: Tensor, right: Tensor) -> int:
    """Peak resident memory of one forward above the resident memory before it (-1 if unsupported)."""
    def forward() -> None:
        with torch.no_grad():
            model(left, right)
    return peak_rss_bytes(forward)


def measure_model(model: nn.Module, left: Tensor, right: Tensor, repeat: int = 3, warmup: int = 1) -> dict:
    """Everything the table reports about one network on one input (used by the tests too)."""
    times = time_forwards({"m": model}, {"m": (left, right)}, repeat, warmup)["m"]
    return {"best_ms": min(times) * 1e3, "median_ms": statistics.median(times) * 1e3,
            "peak_bytes": peak_forward_bytes(model, left, right),
            "params": sum(p.numel() for p in model.parameters()), **energy(model, left, right)}


def _cpu_seconds() -> tuple[float, float] | None:
    """(busy CPU seconds of the whole machine, CPU seconds of this process and its reaped children)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        tick = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    busy = sum(v) - v[3] - v[4]  # user nice system irq softirq steal: all but idle and iowait
    t = os.times()
    return busy / tick, t.user + t.system + t.children_user + t.children_system


class OtherLoad:
    """Context manager: how many cores other processes kept busy meanwhile (Linux; else unknown).

    Timings on a shared machine are only as good as the quiet they were taken in; the load
    average is no help here since it counts this benchmark's own threads.
    """

    def __enter__(self) -> "OtherLoad":
        self.cores: float | None = None
        self._t, self._c = time.perf_counter(), _cpu_seconds()
        return self

    def __exit__(self, *exc) -> None:
        wall, c = time.perf_counter() - self._t, _cpu_seconds()
        if self._c is not None and c is not None and wall > 0:
            self.cores = max(0.0, ((c[0] - self._c[0]) - (c[1] - self._c[1])) / wall)

    def note(self) -> str:
        if self.cores is None:
            return ""
        return f"other processes kept {self.cores:.1f} of {os.cpu_count()} cores busy meanwhile"


def run(quick: bool, options: BenchOptions | None = None) -> list[Row]:
    options = options or BenchOptions()
    repeat = 3 if quick else 10
    nets, weights, source = {}, {}, {}
    for name in NETWORKS:
        nets[name], weights[name], source[name] = load_network(name, options)
    tmp = Path(tempfile.mkdtemp(prefix="evstereo-bench-models-"))
    try:
        samples = real_samples(tmp, {k: m.input_spec for k, m in nets.items()}, seed=0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    inputs = {k: samples[k][:2] for k in nets}
    # what evaluate and live_depth run: BatchNorm folded into the convolutions (timed alternately)
    folded = {f"{k}, folded": folded_for_inference(m) for k, m in nets.items()}
    with OtherLoad() as load:
        times = time_forwards({**nets, **folded}, {**inputs, **{f"{k}, folded": inputs[k] for k in nets}},
                              repeat, warmup=1)
    peaks = {k: peak_forward_bytes(m, *inputs[k]) for k, m in nets.items()}
    en = {k: energy(m, *inputs[k]) for k, m in nets.items()}
    for k in nets:
        options.write_details(f"{k} network ({source[k]}), {weights[k]}: energy per layer, "
                              f"spike rates measured on {samples[k][2]}", format_energy_table(en[k]["measured"]))
    options.write_details("reference network: every layer active (MAC upper bound), "
                          "EnergyMeter(kinds={'*': 'analog'})", format_energy_table(en["reference"]["dense"]))

    threads = torch.get_num_threads()
    best = {k: min(v) * 1e3 for k, v in times.items()}
    median = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    rows: list[Row] = []
    for k, model in nets.items():
        e = en[k]
        m = e["measured"]
        group = f"{k} network ({source[k]}), one {H}x{W} stereo frame, batch 1, fp32 CPU"
        data = samples[k][2]
        time_note = f"best of {repeat} after warm-up (median {median[k]:.0f} ms), eval, no_grad, {threads} threads"
        if load.cores is not None:
            time_note += f"; {load.note()}"
        if k == "fast":
            ratio = f"{best['reference'] / best['fast']:.1f}x faster than the reference network"
            rows.append(Row(group, "forward time", best[k], "ms", ratio, f"<= {TARGET_FAST_MS:g} ms per frame",
                            best[k] <= TARGET_FAST_MS, f"{time_note}; {PEERS}"))
        else:
            rows.append(Row(group, "forward time", best[k], "ms", note=time_note))
        bf = best[f"{k}, folded"]
        rows.append(Row(group, "forward time, BatchNorm folded (as evaluate and live_depth run it)", bf, "ms",
                        f"{best[k] / bf:.2f}x faster than unfolded", note="same inputs, timed alternately with the row above"))
        rows.append(Row(group, "peak memory of one forward", peaks[k] / 2**20 if peaks[k] >= 0 else -1, "MB",
                        note="peak RSS rise above the RSS before the call (VmHWM after clear_refs); "
                             "weights and input already resident"))
        rows.append(Row(group, "parameters", sum(p.numel() for p in model.parameters()) / 1e6, "M"))
        rows.append(Row(group, "SOPs per frame (measured spikes)", m["sops"] / 1e9, "G",
                        note=f"{weights[k]}; {e['silent_layers']} of {e['spiking_layers']} spiking layers got no "
                             f"input spike"))
        rows.append(Row(group, "MACs per frame (analog layers)", m["macs"] / 1e9, "G",
                        note=f"dense MACs of all layers: {e['dense']['macs'] / 1e9:.2f} G"))
        trained = weights[k].startswith("trained")
        lo, hi = ENERGY_RANGE
        if k == "reference":
            target = f"same order as the paper's {PAPER_MJ:g} mJ ({lo:g}-{hi:g} mJ)"
            met = (lo <= m["energy_mj"] <= hi) if trained else None
            judged = ("judged on this figure (trained weights)" if trained else
                      "not judged: untrained weights fire little, so almost all of it is the analog layers' "
                      "fixed MACs, and trained weights can only add spikes to it: a trained network lies "
                      "between this figure and the SOP upper bound below")
        else:
            target, met, judged = "", None, ""
        rows.append(Row(group, "energy per frame (measured spike rates)", m["energy_mj"], "mJ",
                        f"{m['energy_mj'] / PAPER_MJ:.2g}x the paper's {PAPER_MJ:g} mJ", target, met,
                        f"{weights[k]}; spike rates on {data}; {m['energy_ac_mj']:.3g} mJ accumulates "
                        f"(0.9 pJ) + {m['energy_mac_mj']:.3g} mJ MACs (4.6 pJ)" + (f"; {judged}" if judged else "")))
        rows.append(Row(group, "energy per frame, every neuron fires (SOP upper bound)", e["sop_bound_mj"], "mJ",
                        f"{e['sop_bound_mj'] / PAPER_MJ:.2g}x the paper's {PAPER_MJ:g} mJ",
                        note=f"every spiking layer's input all ones: {e['sop_bound_sops'] / 1e9:.2f} G SOPs; "
                             f"analog layers as measured; independent of the weights"))
        rows.append(Row(group, "energy per frame, every layer active (MAC upper bound)", e["dense"]["energy_mj"],
                        "mJ", f"{e['dense']['energy_mj'] / PAPER_MJ:.2g}x the paper's {PAPER_MJ:g} mJ",
                        note=f"EnergyMeter(kinds={{'*': 'analog'}}): {e['dense']['macs'] / 1e9:.2f} G MACs at 4.6 pJ; "
                             f"independent of the weights"))
    return rows + searched_rows(inputs["fast"], repeat)


def searched_rows(inputs: tuple[Tensor, Tensor], repeat: int) -> list[Row]:
    """Forward time of the searched genotypes (``fast.yaml``, ``searched_*.yaml``) against the
    hand-picked cells of ``handpicked.yaml`` (module doc); none without a checkout's configs."""
    from evstereo.models import build_stereo_net

    baseline = CONFIGS / "handpicked.yaml"
    paths = [p for p in [CONFIGS / "fast.yaml", *sorted(CONFIGS.glob("searched_*.yaml"))] if p.is_file()]
    if not paths or not baseline.is_file():
        return []
    nets = {}
    for path in [baseline, *paths]:
        torch.manual_seed(0)
        nets[path.stem] = folded_for_inference(build_stereo_net(path).eval())
    with OtherLoad() as load:
        times = time_forwards(nets, {k: inputs for k in nets}, repeat, warmup=1)
    best = {k: min(v) * 1e3 for k, v in times.items()}
    median = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    base = baseline.stem
    rows = []
    for path in paths:
        k = path.stem
        group = f"searched network ({_shown(path)}) against the hand-picked cells (handpicked.yaml), one {H}x{W} frame"
        note = (f"both random weights (seed 0), BatchNorm folded, timed round-robin, best of {repeat} "
                f"(median {median[k]:.0f} against {median[base]:.0f} ms: {median[k] / median[base]:.2f}x); "
                f"{load.note()}")
        rows.append(Row(group, "forward time", best[k], "ms", f"{best[k] / best[base]:.2f}x the hand-picked cells'",
                        "<= 1.00x the hand-picked cells' time", best[k] <= best[base], note))
    return rows
