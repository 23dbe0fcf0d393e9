#!/usr/bin/env bash
# GPU check for the fine-tuning loop (bf16 autocast, pinned data, non-blocking copies). Prints samples/s and peak memory.
# Usage on a CUDA machine, from the project root, after `make setup`: bash benchmarks/gpu_check.sh [extra args]
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled PYTHONUNBUFFERED=1
PY=${PY:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 480 "$PY" benchmarks/gpu_check.py "$@"
