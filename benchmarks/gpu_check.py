"""GPU check: the embed step and a short bf16 fine-tune of a ViT-B-32-sized CLIP (random weights) with lookbench's
code; prints images/s embedding, samples/s fine-tuning, peak GPU memory and MFU. Needs CUDA and finishes in a few
minutes on one modern GPU. Run it with benchmarks/gpu_check.sh (`--device cpu --n 64 --batch-size 16 --epochs 1`
smoke-tests the script itself on a CPU).

It uses Fashion-MNIST-shaped random data written to a temporary warehouse, so it needs neither the dataset nor a hub.
MFU = model FLOPs per second (forward and backward of one training step, counted by torch's FlopCounterMode) over
the GPU's dense bf16 peak (from its name: H100/H200, A100, L40S, L4, A10, RTX 4090; otherwise achieved FLOP/s only).
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
from open_clip import ClipLoss  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from lookbench.embed import image_embeddings  # noqa: E402
from lookbench.finetune import FinetuneConfig, PairCache, _autocast, finetune  # noqa: E402
from lookbench.models import load_open_clip  # noqa: E402
from lookbench.splits import class_names  # noqa: E402
from lookbench.testing import fixture_warehouse  # noqa: E402

PEAK_BF16 = {'H200': 989e12, 'H100': 989e12, 'A100': 312e12, 'L40S': 362e12, 'L4': 121e12, 'A10': 125e12,
             'RTX 4090': 165e12}  # dense bf16 tensor-core FLOP/s from the vendors' data sheets


def step_flops(model, pixels, texts, cfg):
    "FLOPs of one training step (forward, loss, backward) on this batch"
    with FlopCounterMode(display=False) as counter:
        with _autocast(model.device, cfg)():
            img, txt = model.train_forward(pixels, texts)
            loss = ClipLoss()(img.float(), txt.float(), model.logit_scale_param().exp())
        loss.backward()
    model.trainable_root().zero_grad(set_to_none=True)
    return counter.get_total_flops()


def embed_rate(con, model, n):
    "Images/s of the embed step (decode, preprocess, forward; not stored), after a warm-up batch"
    ids = [r[0] for r in con.execute('SELECT item_id FROM items ORDER BY item_id LIMIT ?', [n]).fetchall()]
    image_embeddings(con, model, ids[:64], store=False)
    sync()
    t0 = time.perf_counter()
    image_embeddings(con, model, ids, store=False)
    sync()
    return len(ids) / (time.perf_counter() - t0)


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--model', default='ViT-B-32')
    ap.add_argument('--n', type=int, default=4096)
    ap.add_argument('--batch-size', type=int, default=256)
    ap.add_argument('--epochs', type=int, default=2)
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--compile', action='store_true')
    ap.add_argument('--grad-checkpointing', action='store_true')
    a = ap.parse_args()
    if a.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('gpu_check: no CUDA device here; run it on a GPU machine')
    name = torch.cuda.get_device_name() if a.device == 'cuda' else 'cpu'
    print(f"device: {name}  torch {torch.__version__}  {'bf16 autocast' if a.device == 'cuda' else 'fp32'}")
    with tempfile.TemporaryDirectory() as d:
        con = fixture_warehouse(d, n_train=a.n, n_test=64, val_pct=5)
        torch.manual_seed(0)
        model = load_open_clip(a.model, device=a.device)
        model.spec = f'open_clip:{a.model}'
        images_per_s = embed_rate(con, model, a.n)
        train, val = PairCache(con, model, 'train'), PairCache(con, model, 'val', limit=256)
        cfg = FinetuneConfig(epochs=a.epochs, batch_size=a.batch_size, lr=1e-5, precision='bf16', compile=a.compile,
                             grad_checkpointing=a.grad_checkpointing, patience=99)
        flops = step_flops(model, train.pixels[:a.batch_size].to(a.device), train.captions[:a.batch_size], cfg)
        stamps = [time.perf_counter()]

        def log(m):
            if 'samples_per_s' in m:
                sync()
                stamps.append(time.perf_counter())
        if a.device == 'cuda':
            torch.cuda.reset_peak_memory_stats()
        r = finetune(model, train, val, class_names(con), cfg, out_dir=Path(d) / 'ft', log=log)
        steps = [later - earlier for earlier, later in zip(stamps[1:], stamps[2:])]
        steady = sorted(a.batch_size / s for s in steps)[len(steps) // 2] if steps else float('nan')
    trainable = sum(r['trainable'].values())
    achieved = flops / a.batch_size * steady
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    print(f"model {a.model}: {len(train)} pairs x {a.epochs} epochs, batch {a.batch_size}, "
          f"trainable {trainable:,} params")
    print(f"embed step: {images_per_s:.0f} images/s (decode + preprocess + forward)")
    print(f"fine-tune median step: {steady:.0f} samples/s; whole run incl. validation: {r['samples_per_s']:.0f} "
          f"samples/s")
    print(f"model FLOPs: {flops / a.batch_size / 1e9:.1f} GFLOP per sample per step, {achieved / 1e12:.1f} TFLOP/s; "
          + (f"MFU {achieved / peak:.1%} of {peak / 1e12:.0f} TFLOP/s bf16" if peak else "MFU: peak of this device "
             "unknown"))
    if a.device == 'cuda':
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB; "
              f"val top1 {r['best']['val_top1']:.3f}")


if __name__ == '__main__':
    main()
