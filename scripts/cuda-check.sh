#!/usr/bin/env sh
# The one prepared GPU check (`make cuda-check`): the CUDA tests, one training step of the
# reference network at full MVSEC resolution (fwd+bwd times), one apps.train step on the GPU,
# and 100 frames of live depth with --device cuda --max-speed. Prints times; exit 1 on failure.
# CUDA_CHECK_DEVICE=cpu runs the same steps on the CPU (to try the script without a GPU).
set -eu
VPY="${1:-.venv/bin/python}"
DEV="${CUDA_CHECK_DEVICE:-cuda}"
WORK="${CUDA_CHECK_DIR:-$(mktemp -d)}"
export PYTHONWARNINGS=ignore
echo "== device"
"$VPY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
if [ "$DEV" = cuda ]; then
  echo "== CUDA tests"
  "$VPY" -m pytest -q -o addopts="-p no:cacheprovider" -m cuda tests/test_cuda.py
fi
echo "== reference network, one training step (260x346, batch 2, Adam)"
"$VPY" - "$DEV" <<'PY'
import sys, time, torch
from evstereo.models import build_stereo_net
from evstereo.models.losses import smooth_l1
dev = torch.device(sys.argv[1])
net = build_stereo_net("configs/model/reference.yaml").to(dev)
opt = torch.optim.Adam(net.parameters(), 1e-3)
g = torch.Generator().manual_seed(0)
left = (torch.rand(2, 1, 5, 260, 346, generator=g) < 0.05).float().to(dev)
right, gt = left.roll(-6, dims=-1), torch.full((2, 260, 346), 6.0, device=dev)
def step():
    opt.zero_grad(set_to_none=True)
    loss = smooth_l1(net(left, right), gt, gt > 0)
    loss.backward()
    opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return float(loss)
t0 = time.perf_counter(); step(); first = time.perf_counter() - t0
times = []
for _ in range(5):
    t0 = time.perf_counter(); loss = step(); times.append(time.perf_counter() - t0)
times.sort()
peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")
print(f"first step {first:.2f} s; median step {times[2] * 1e3:.1f} ms (5 steps); loss {loss:.3f}; peak GPU memory {peak:.2f} GiB")
PY
echo "== apps.train, tiny config, one step on the accelerator"
ACC=gpu; [ "$DEV" = cpu ] && ACC=cpu
start=$(date +%s)
"$VPY" -m apps.train --config configs/train/tiny.yaml -q trainer.accelerator=$ACC trainer.devices=1 \
  trainer.max_steps=1 trainer.limit_val_batches=1 "out=$WORK/train" >/dev/null
echo "apps.train: $(( $(date +%s) - start )) s wall (with generating its recordings)"
echo "== live depth, 100 frames, --device $DEV --max-speed"
"$VPY" -m data_tools.synth -q --out "$WORK/synth" --name live --seconds 5.2 --seed 7
"$VPY" -m apps.live_depth "$WORK/synth/live_data.hdf5" --device "$DEV" --max-speed --headless -q \
  --out "$WORK/live" --max-frames 100 --ply-every 0
"$VPY" - "$WORK/live/timings.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
keys = ("device", "frames_produced", "wall_s", "fps", "latency_ms", "stages_ms")
print({k: t[k] for k in keys if k in t})
PY
echo "cuda-check done ($WORK)"
