"""Live depth benchmark: the library's live session (``evstereo.live``) at max speed, headless, end to end.

Each run is what ``python -m apps.live_depth REC --max-speed --headless --out DIR`` does, run
in-process through ``evstereo.live.run_live`` inside a child process started with
multiprocessing's "spawn" (a fresh interpreter, as a user's command would be: it imports the
library, loads the model and runs the session). Its ``timings.json`` gives:

- frames/s end to end: frames / wall time from the first window to the last, every output
  included (composite view, MP4 video, depth PNG and disparity NPY per frame, a PLY cloud
  every 10 frames); start-up (imports, model load) and the untimed warm-up window excluded;
- latency p50/p95: at max speed, a window's processing time (read + represent + model + post);
- each stage's share: its per-frame median over the sum of the medians of read, represent,
  model, post and output (composing the view, and the wait for the background writer when it
  is two frames behind), since timings.json keeps percentiles, not means;
- peak memory: the child's peak resident memory, its own ``VmHWM`` (``/proc/self/status``)
  read when the session has finished, so nothing is missed between polls; the child is a
  fresh exec'd interpreter, so its high-water mark starts at zero, not at the benchmark
  process's (Linux only, -1 elsewhere).

Networks: the fast network from its checkpoint (``apps.bench --checkpoint fast=PATH``, else
the shipped ``evstereo/checkpoints/fast.pt``; without either the untrained fast network of the
checkout's ``configs/model/fast.yaml``, random init seed 0, saved as a checkpoint: random
weights cost the same time as trained ones); its input (representation, window) is the
network's own. And OpenCV's SGBM for comparison, on the same synthetic 346x260 recording
(``evstereo.simulation.synthesize``). Where CUDA is available the fast network also runs on
the GPU.

Sparse events: the fast network on the real stereo DVS128 pendulum of ``../shared/data`` (when
the folder is beside the checkout; converted first, as ``data_tools.convert`` does), with the
longer windows of sparse events (the default) and with the network's fixed window
(``--min-event-density 0``), taking turns: what the longer windows cost in frame rate.

Flat memory: the fast network over a short and a long recording of uniformly random events
(``write_random_mvsec``, 300 k events/s per camera, 20 Hz random GT, real calibration;
synthesizing 60 s of scene would take minutes here); every window of both is processed.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
import traceback
from pathlib import Path

import torch

from benchmarks import ROOT, BenchOptions, Row
from benchmarks.models import OtherLoad, checkpoint_for, network_config

TARGET_FPS = 10.0
PENDULUM = ROOT.parent / "shared" / "data" / "real" / "pendulum_left_30cm_2.tsv.npz"
TARGET_FLAT = 1.2  # long-recording peak <= this x the short one's
RANDOM_RATE = 300_000.0
OUTPUT_STAGE = "output"


def fast_checkpoint(folder: Path, options: BenchOptions | None = None) -> tuple[Path, str]:
    """The fast network's checkpoint (``options.checkpoints["fast"]`` or the shipped one; else an
    untrained one saved in ``folder``) and a phrase saying which."""
    options = options or BenchOptions()
    ckpt = checkpoint_for("fast", options)
    if ckpt is not None:
        return ckpt, f"trained weights ({ckpt.name})"
    from evstereo.models import build_stereo_net, save_checkpoint

    config = network_config("fast")
    torch.manual_seed(0)
    path = folder / "fast_untrained.pt"
    save_checkpoint(build_stereo_net(config), path)
    return path, "untrained weights (configs/model/fast.yaml, random init seed 0; no evstereo/checkpoints/fast.pt yet)"


def read_timings(path: str | os.PathLike) -> dict:
    """The benchmark's figures from a live session's ``timings.json``."""
    t = json.loads(Path(path).read_text())
    if not t.get("frames_produced"):
        raise ValueError(f"{path}: no frames were produced (status {t.get('status')!r})")
    stages = {s: float(v["p50"]) for s, v in t["stages_ms"].items()}
    stages[OUTPUT_STAGE] = float(t["output_ms"]["p50"])
    total = sum(stages.values())
    return {
        "model": t["model"],
        "device": t["device"],
        "frames": int(t["frames_produced"]),
        "window_ms": float(t["window_ms"]),
        "skipped": int(t["frames_skipped"]),
        "wall_s": float(t["wall_s"]),
        "fps": float(t["fps"]),
        "latency_p50_ms": float(t["latency_ms"]["p50"]),
        "latency_p95_ms": float(t["latency_ms"]["p95"]),
        "stage_p50_ms": stages,
        "shares": {s: v / total if total > 0 else 0.0 for s, v in stages.items()},
        "scale": t.get("scale"),
        "network_size": t.get("network_size"),
        "windows_ms": t.get("windows_ms"),
    }


def _own_peak_rss_bytes() -> int:
    """This process's peak resident memory (Linux ``VmHWM``; -1 where unknown)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return -1


def _session_child(conn, recording: str, out: str, checkpoint: str | None, baseline: str | None,
                   options: dict) -> None:
    """In the spawned child: one headless session at max speed, as apps.live_depth runs it; sends
    back (None, peak RSS bytes) or (the error's traceback, -1)."""
    try:
        from evstereo.live import LiveOptions, build_model, run_live
        from evstereo.runtime import keep_freed_memory

        keep_freed_memory()  # as apps.live_depth does
        model, name = build_model(checkpoint, baseline)
        result = run_live(recording, model, name, LiveOptions(max_speed=True, **options), headless=True, out=out,
                          info=lambda *a, **k: None)
        if result.failure is not None:
            raise result.failure
        conn.send((None, _own_peak_rss_bytes()))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send((traceback.format_exc(), -1))
    finally:
        conn.close()


def run_live(recording: Path, out: Path, checkpoint: str | os.PathLike | None = None, baseline: str | None = None,
             **options) -> dict:
    """One headless max-speed session (``evstereo.live``; ``options``: more ``LiveOptions`` fields)
    into ``out``, in a spawned child process; its timings.json figures (``read_timings``) plus
    ``peak_rss_bytes``, the child's peak resident memory, and ``load``, an :class:`OtherLoad`
    (cores other processes kept busy during the run). The child is spawned, so it imports the
    caller's main module again: a script calling this needs an ``if __name__ == "__main__"`` guard."""
    out.parent.mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    args = (send, str(recording), str(out), None if checkpoint is None else str(checkpoint), baseline, options)
    with OtherLoad() as load:
        child = ctx.Process(target=_session_child, args=args, name="evstereo-bench-live")
        child.start()
        send.close()
        try:
            error, peak = receive.recv()
        except EOFError:
            error, peak = "the child ended without a result", -1
        child.join()
    if error is not None or child.exitcode != 0:
        raise RuntimeError(f"live session on {recording} (exit code {child.exitcode}) failed:\n{error}")
    result = read_timings(out / "timings.json")
    result["peak_rss_bytes"] = peak
    result["load"] = load
    return result


def _remove(folder: Path, *patterns: str) -> None:
    """Delete what matches in ``folder`` (recordings and outputs are large; free the disk early)."""
    for pattern in patterns:
        for p in folder.glob(pattern):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _shares(r: dict) -> str:
    return ", ".join(f"{s} {100 * v:.0f}%" for s, v in r["shares"].items())


def _rows(group: str, label: str, r: dict, weights: str, fps_ratio: str = "", judged: bool = True) -> list[Row]:
    mb = r["peak_rss_bytes"] / 2**20 if r["peak_rss_bytes"] >= 0 else -1
    return [
        Row(group, f"{label}: frames/s end to end", r["fps"], "frames/s", fps_ratio,
            f">= {TARGET_FPS:g} frames/s" if judged else "", (r["fps"] >= TARGET_FPS) if judged else None,
            f"{weights}; {r['frames']} frames in {r['wall_s']:.1f} s, every output written; peak RSS {mb:.0f} MB"
            + (f"; {r['load'].note()}" if r["load"].cores is not None else "")),
        Row(group, f"{label}: latency p50", r["latency_p50_ms"], "ms", note="window processing time at --max-speed"),
        Row(group, f"{label}: latency p95", r["latency_p95_ms"], "ms"),
        Row(group, f"{label}: model share of the frame time", 100 * r["shares"]["model"], "%",
            note=f"per-stage medians: {_shares(r)} (output = composing the view + waiting for the video/PNG/NPY/PLY writer thread, which runs beside the next frames)"),
    ]


def _pendulum_rows(tmp: Path, ckpt: Path, weights: str) -> list[Row]:
    """Live depth on the real DVS128 pendulum with sparse windows and with fixed ones (module doc);
    none without ``../shared/data``."""
    if not PENDULUM.is_file():
        return []
    from evstereo.recordings.convert import convert

    rec = tmp / "pendulum_data.hdf5"
    convert([PENDULUM], "npz", rec, right_offset=(0, -4))
    runs: dict[str, list[dict]] = {"sparse": [], "fixed": []}
    for turn in range(2):  # alternating, so a slower minute hits both
        runs["sparse"].append(run_live(rec, tmp / f"out_pend_s{turn}", checkpoint=ckpt))
        runs["fixed"].append(run_live(rec, tmp / f"out_pend_f{turn}", checkpoint=ckpt, min_event_density=0.0))
    best = {k: max(v, key=lambda r: r["fps"]) for k, v in runs.items()}
    sparse, fixed = best["sparse"], best["fixed"]
    group = (f"live_depth --max-speed --headless, the real stereo DVS128 pendulum ({PENDULUM.name}, "
             f"{sparse['frames']} windows, input scale x{sparse['scale']:g}), CPU")
    windows = sparse.get("windows_ms") or {}
    # frames/s and latency p50 of each (the first two of ``_rows``)
    return (_rows(group, f"fast network, longer windows for sparse events (the default; windows p50 "
                         f"{windows.get('p50', 0):g} ms, max {windows.get('max', 0):g} ms)", sparse, weights,
                  f"{sparse['fps'] / fixed['fps']:.2f}x the fixed windows' frames/s")[:2]
            + _rows(group, "fast network, the network's fixed 50 ms window (--min-event-density 0)", fixed, weights,
                    judged=False)[:2])


def run(quick: bool, options: BenchOptions | None = None) -> list[Row]:
    from evstereo.simulation import synthesize
    from tests.random_recording import write_random_mvsec

    rows: list[Row] = []
    tmp = Path(tempfile.mkdtemp(prefix="evstereo-bench-live-"))
    try:
        ckpt, weights = fast_checkpoint(tmp, options)
        seconds = 3.0 if quick else 10.0
        info = synthesize(tmp, "live", seconds, seed=5)
        rec = Path(info["data"])
        fast = run_live(rec, tmp / "out_fast", checkpoint=ckpt)
        sgbm = run_live(rec, tmp / "out_sgbm", baseline="sgbm")
        rate = info["rate_mev_s"]["left"]
        group = (f"live_depth --max-speed --headless, {seconds:g} s synthetic 346x260 recording "
                 f"(~{rate:.1f} M ev/s/camera, {fast['window_ms']:g} ms windows at the 20 Hz GT), CPU")
        rows += _rows(group, "fast network", fast, weights,
                      f"{fast['fps'] / sgbm['fps']:.2f}x SGBM's frames/s")
        rows += _rows(group, "SGBM baseline", sgbm, "OpenCV StereoSGBM on event images, max disparity 63 px",
                      judged=False)
        # a DVS128 rig: the input scale (rule, then its fit on the first 8 windows) sets the work
        small = synthesize(tmp, "live128", seconds, seed=6, sensor="dvs128")
        fast128 = run_live(Path(small["data"]), tmp / "out_fast128", checkpoint=ckpt)
        n = fast128["network_size"]
        group128 = (f"live_depth --max-speed --headless, {seconds:g} s synthetic 128x128 DVS128-rig recording "
                    f"(~{small['rate_mev_s']['left']:.1f} M ev/s/camera, {fast128['window_ms']:g} ms windows), CPU")
        rows += _rows(group128, f"fast network (input scale x{fast128['scale']:.2f}: {n['width']}x{n['height']})",
                      fast128, weights, f"{fast128['fps'] / fast['fps']:.2f}x the 346x260 frames/s")
        rows += _pendulum_rows(tmp, ckpt, weights)
        if torch.cuda.is_available():
            gpu = run_live(rec, tmp / "out_cuda", checkpoint=ckpt, device="cuda")
            rows += _rows(group.replace(", CPU", f", GPU ({torch.cuda.get_device_name(0)})"), "fast network",
                          gpu, weights, f"{gpu['fps'] / fast['fps']:.1f}x the CPU's frames/s", judged=False)
        _remove(tmp, "live*", "out_*")

        short_s, long_s = (1.0, 3.0) if quick else (10.0, 60.0)
        peaks = {}
        for i, s in enumerate((short_s, long_s)):
            path = write_random_mvsec(tmp, f"mem{i}", s, RANDOM_RATE, gt_hz=20.0, seed=10 + i)
            r = run_live(path, tmp / f"out_mem{i}", checkpoint=ckpt)
            peaks[s] = (r["peak_rss_bytes"], r["frames"])
            _remove(tmp, f"mem{i}_*", "out_*")
        group = (f"peak memory of live_depth --max-speed --headless (fast network), random-event recordings "
                 f"({RANDOM_RATE / 1e3:.0f} k ev/s/camera, 20 Hz GT)")
        (p_short, n_short), (p_long, n_long) = peaks[short_s], peaks[long_s]
        note = "VmHWM of the spawned child running the session, read at its end; every window processed"
        rows.append(Row(group, f"{short_s:g} s recording", p_short / 2**20, "MB", note=f"{n_short} frames; {note}"))
        ok = p_short > 0 and p_long > 0
        rows.append(Row(group, f"{long_s:g} s recording", p_long / 2**20, "MB",
                        f"{p_long / p_short:.2f}x the {short_s:g} s peak" if ok else "",
                        f"<= {TARGET_FLAT:g}x the {short_s:g} s peak (flat)",
                        (p_long <= TARGET_FLAT * p_short) if ok else None, f"{n_long} frames; {note}"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows
