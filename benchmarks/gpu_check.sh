#!/usr/bin/env bash
# The GPU acceptance run, in one script that fits in a few minutes of one modern GPU:
#  1. benchmarks/gpu_check.py: the embed step and a bf16 fine-tune of a ViT-B-32-sized CLIP (random weights) with
#     lookbench's own code: images/s embedding, samples/s fine-tuning, MFU, peak GPU memory;
#  2. the main job's smoke build with `model` set to that ViT-B-32 saved as a local open_clip checkpoint, on CUDA:
#     every task runs (embed with the model's own 224-px preprocessing, align takes it as it is, finetune in bf16,
#     evaluate, score, report), and its per-task times are printed.
# Usage on a CUDA machine, from the project root, after `make setup`: bash benchmarks/gpu_check.sh [gpu_check.py args]
# Nothing here needs a hub or the network: the weights are random and the data is the Debian Fashion-MNIST package
# (or, without it, a generated Fashion-MNIST-format folder).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled PYTHONUNBUFFERED=1 PLOOMBER_STATS_ENABLED=false PLOOMBER_VERSION_CHECK_DISABLED=1
BIN=${BIN:-.venv/bin}
DEVICE=${DEVICE:-cuda}        # DEVICE=cpu ARCH=tiny SAMPLE=200 checks the script itself on a CPU
ARCH=${ARCH:-ViT-B-32}        # tiny: lookbench.testing's tiny CLIP
SAMPLE=${SAMPLE:-2000}        # products per original split in the smoke build
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi here"
if [ "$ARCH" != tiny ]; then
  timeout 300 "$BIN/python" benchmarks/gpu_check.py --device "$DEVICE" "$@"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$BIN/python" - "$work" "$ARCH" <<'PY'
import sys
from pathlib import Path
from lookbench.data import resolve_source
from lookbench.testing import make_fixture_source, make_tiny_open_clip
work, arch = Path(sys.argv[1]), sys.argv[2]
make_tiny_open_clip(work / 'model', arch=None if arch == 'tiny' else arch)
try:
    source = resolve_source('auto')
except Exception:
    source = make_fixture_source(work / 'fmnist', n_train=4000, n_test=1000)
(work / 'source').write_text(str(source))
PY
start=$(date +%s)
timeout 600 "$BIN/ploomber" build --env--data "$work/data" --env--reports "$work/reports" --env--sample "$SAMPLE" \
  --env--source "$(cat "$work/source")" --env--format fashion-mnist --env--device "$DEVICE" \
  --env--model "open_clip:local-dir:$work/model" --env--ft_max_train 4000 --env--batch_size 256 2>&1 \
  | grep -E '^(name|-+|[a-z]+ +(True|False))' || { echo "gpu_check: the smoke build FAILED"; exit 1; }
echo "smoke build with $ARCH (random weights) on $DEVICE: $(( $(date +%s) - start )) s"
"$BIN/python" - "$work" <<'PY'
import json, sys
from pathlib import Path
data = Path(sys.argv[1]) / 'data' / 'receipts'
ft, ev = (json.loads((data / f'{t}.json').read_text()) for t in ('finetune', 'evaluate'))
print(f"fine-tune in the build: {ft['samples_per_s']:.0f} pairs/s; promoted: {ft['promoted']}")
for role, run in ev['runs'].items():
    print(f"{role}: test top1 all {run['all/top1']:.3f}, t2i R@10 {run['all/t2i_recall@10']:.3f} ({run['what']})")
PY
