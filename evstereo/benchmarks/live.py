"""Live depth benchmark: ``python -m apps.live_depth REC --max-speed --headless --out DIR`` end to end.

Each run is a child process, exactly as a user starts it; its ``timings.json`` gives:

- frames/s end to end: frames / wall time from the first window to the last, every output
  included (composite view, MP4 video, depth PNG and disparity NPY per frame, a PLY cloud
  every 10 frames); start-up (imports, model load) and the untimed warm-up window excluded;
- latency p50/p95: at --max-speed, a window's processing time (read + represent + model + post);
- each stage's share: its per-frame median over the sum of the medians of read, represent,
  model, post and output (composing the view, and the wait for the background writer when it
  is two frames behind), since timings.json keeps percentiles, not means;
- peak memory: the child's peak resident memory (``VmHWM`` of ``/proc/PID/status``, polled
  every 20 ms while it runs, so a rise in its last 20 ms would be missed; Linux only, -1
  elsewhere). Not ``ru_maxrss``: Linux carries the parent's high-water mark into a child
  across fork + exec, which would make every child look as large as the benchmark process.

Networks: the fast configuration with ``evstereo/checkpoints/fast.pt`` when it exists, else the
untrained fast network (``configs/model/fast.yaml``, random init, seed 0) saved as a checkpoint
(random weights cost the same time as trained ones); and OpenCV's SGBM for comparison, on the
same synthetic 346x260 recording (``evstereo.simulation.synthesize``). Where CUDA is available
the fast network also runs with ``--device cuda``.

Flat memory: the fast network over a short and a long recording of uniformly random events
(``write_random_mvsec``, 300 k events/s per camera, 20 Hz random GT, real calibration;
synthesizing 60 s of scene would take minutes here); every window of both is processed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from evstereo.benchmarks import Row
from evstereo.benchmarks.models import CONFIGS, ROOT, OtherLoad, checkpoint_for

TARGET_FPS = 10.0
TARGET_FLAT = 1.2  # long-recording peak <= this x the short one's
RANDOM_RATE = 300_000.0
OUTPUT_STAGE = "output"
POLL_S = 0.02  # VmHWM polling interval of the live_depth child


def fast_checkpoint(folder: Path) -> tuple[Path, str]:
    """The fast network's checkpoint (``apps.bench --checkpoint fast=PATH`` or the shipped one;
    else an untrained one saved in ``folder``) and a phrase saying which."""
    ckpt = checkpoint_for("fast")
    if ckpt.is_file():
        rel = ckpt.relative_to(ROOT) if ckpt.is_relative_to(ROOT) else ckpt
        return ckpt, f"trained weights ({rel})"
    from evstereo.models import build_stereo_net, save_checkpoint

    torch.manual_seed(0)
    path = folder / "fast_untrained.pt"
    save_checkpoint(build_stereo_net(CONFIGS["fast"]), path)
    return path, "untrained weights (configs/model/fast.yaml, random init seed 0; no evstereo/checkpoints/fast.pt yet)"


def read_timings(path: str | os.PathLike) -> dict:
    """The benchmark's figures from a live_depth ``timings.json``."""
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
        "skipped": int(t["frames_skipped"]),
        "wall_s": float(t["wall_s"]),
        "fps": float(t["fps"]),
        "latency_p50_ms": float(t["latency_ms"]["p50"]),
        "latency_p95_ms": float(t["latency_ms"]["p95"]),
        "stage_p50_ms": stages,
        "shares": {s: v / total if total > 0 else 0.0 for s, v in stages.items()},
    }


def _vm_hwm_bytes(pid: int) -> int | None:
    """Peak resident memory so far of process ``pid`` (Linux ``VmHWM``; None where unknown).

    Not ``ru_maxrss`` of ``os.wait4``: Linux carries the parent's high-water mark into a child
    over fork/vfork + exec, so every child would report at least the benchmark process's peak.
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_live(recording: Path, out: Path, *options: str) -> dict:
    """Run live_depth --max-speed --headless into ``out`` as a child process; its timings.json
    figures (``read_timings``) plus ``peak_rss_bytes``, the child's peak resident memory,
    and ``load``, an :class:`OtherLoad` (cores other processes kept busy during the run)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "apps.live_depth", str(recording), "--max-speed", "--headless",
           "--out", str(out), *options]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    log = out.parent / f"{out.name}.log"
    with open(log, "w") as f, OtherLoad() as load:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
        peak = -1
        while proc.poll() is None:
            hwm = _vm_hwm_bytes(proc.pid)
            if hwm is not None:
                peak = max(peak, hwm)
            time.sleep(POLL_S)
        code = proc.returncode
    if code != 0:
        tail = "\n".join(log.read_text().splitlines()[-5:])
        raise RuntimeError(f"{' '.join(cmd)} exited with {code}:\n{tail}")
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


def run(quick: bool) -> list[Row]:
    from evstereo.datasets.random_recording import write_random_mvsec
    from evstereo.simulation import synthesize

    rows: list[Row] = []
    tmp = Path(tempfile.mkdtemp(prefix="evstereo-bench-live-"))
    try:
        ckpt, weights = fast_checkpoint(tmp)
        seconds = 3.0 if quick else 10.0
        info = synthesize(tmp, "live", seconds, seed=5)
        rec = Path(info["data"])
        fast = run_live(rec, tmp / "out_fast", "--checkpoint", str(ckpt))
        sgbm = run_live(rec, tmp / "out_sgbm", "--baseline", "sgbm")
        rate = info["rate_mev_s"]["left"]
        group = (f"live_depth --max-speed --headless, {seconds:g} s synthetic 346x260 recording "
                 f"(~{rate:.1f} M ev/s/camera, 50 ms windows at the 20 Hz GT), CPU")
        rows += _rows(group, "fast network", fast, weights,
                      f"{fast['fps'] / sgbm['fps']:.2f}x SGBM's frames/s")
        rows += _rows(group, "SGBM baseline", sgbm, "OpenCV StereoSGBM on event images, max disparity 63 px",
                      judged=False)
        if torch.cuda.is_available():
            gpu = run_live(rec, tmp / "out_cuda", "--checkpoint", str(ckpt), "--device", "cuda")
            rows += _rows(group.replace(", CPU", f", GPU ({torch.cuda.get_device_name(0)})"), "fast network",
                          gpu, weights, f"{gpu['fps'] / fast['fps']:.1f}x the CPU's frames/s", judged=False)
        _remove(tmp, "live_*", "out_*")

        short_s, long_s = (1.0, 3.0) if quick else (10.0, 60.0)
        peaks = {}
        for i, s in enumerate((short_s, long_s)):
            path = write_random_mvsec(tmp, f"mem{i}", s, RANDOM_RATE, gt_hz=20.0, seed=10 + i)
            r = run_live(path, tmp / f"out_mem{i}", "--checkpoint", str(ckpt))
            peaks[s] = (r["peak_rss_bytes"], r["frames"])
            _remove(tmp, f"mem{i}_*", "out_*")
        group = (f"peak memory of live_depth --max-speed --headless (fast network), random-event recordings "
                 f"({RANDOM_RATE / 1e3:.0f} k ev/s/camera, 20 Hz GT)")
        (p_short, n_short), (p_long, n_long) = peaks[short_s], peaks[long_s]
        note = f"the child's VmHWM, polled every {POLL_S * 1e3:g} ms; every window processed"
        rows.append(Row(group, f"{short_s:g} s recording", p_short / 2**20, "MB", note=f"{n_short} frames; {note}"))
        ok = p_short > 0 and p_long > 0
        rows.append(Row(group, f"{long_s:g} s recording", p_long / 2**20, "MB",
                        f"{p_long / p_short:.2f}x the {short_s:g} s peak" if ok else "",
                        f"<= {TARGET_FLAT:g}x the {short_s:g} s peak (flat)",
                        (p_long <= TARGET_FLAT * p_short) if ok else None, f"{n_long} frames; {note}"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows
