"""GPU check: a short bf16 fine-tune of a ViT-B-32-sized CLIP (random weights) with lookbench's loop; prints samples/s
and peak GPU memory. Needs CUDA and finishes in a few minutes on one modern GPU. Run it with benchmarks/gpu_check.sh.

It uses Fashion-MNIST-shaped random data written to a temporary warehouse, so it needs neither the dataset nor a hub.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault('WANDB_MODE', 'disabled')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import torch  # noqa: E402 -- after the environment is set

from lookbench.finetune import FinetuneConfig, PairCache, finetune  # noqa: E402
from lookbench.models import load_open_clip  # noqa: E402
from lookbench.splits import class_names  # noqa: E402
from lookbench.testing import fixture_warehouse  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--model', default='ViT-B-32')
    ap.add_argument('--n', type=int, default=4096)
    ap.add_argument('--batch-size', type=int, default=256)
    ap.add_argument('--epochs', type=int, default=2)
    ap.add_argument('--compile', action='store_true')
    ap.add_argument('--grad-checkpointing', action='store_true')
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit('gpu_check: no CUDA device here; run it on a GPU machine')
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  bf16 autocast")
    with tempfile.TemporaryDirectory() as d:
        con = fixture_warehouse(d, n_train=a.n, n_test=64, val_pct=5)
        torch.manual_seed(0)
        model = load_open_clip(a.model, device='cuda')
        model.spec = f'open_clip:{a.model}'
        train, val = PairCache(con, model, 'train'), PairCache(con, model, 'val', limit=256)
        cfg = FinetuneConfig(epochs=a.epochs, batch_size=a.batch_size, lr=1e-5, precision='bf16', compile=a.compile,
                             grad_checkpointing=a.grad_checkpointing, patience=99)
        stamps = [time.perf_counter()]

        def log(m):
            if 'samples_per_s' in m:
                torch.cuda.synchronize()
                stamps.append(time.perf_counter())
        torch.cuda.reset_peak_memory_stats()
        r = finetune(model, train, val, class_names(con), cfg, out_dir=Path(d) / 'ft', log=log)
        steps = [later - earlier for earlier, later in zip(stamps[1:], stamps[2:])]
        steady = sorted(a.batch_size / s for s in steps)[len(steps) // 2] if steps else float('nan')
    trainable = sum(r['trainable'].values())
    print(f"model {a.model}: {len(train)} pairs x {a.epochs} epochs, batch {a.batch_size}, "
          f"trainable {trainable:,} params")
    print(f"median step throughput: {steady:.0f} samples/s; "
          f"whole run incl. validation: {r['samples_per_s']:.0f} samples/s")
    print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB; val top1 {r['best']['val_top1']:.3f}")


if __name__ == '__main__':
    main()
