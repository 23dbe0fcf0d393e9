"""Training throughput of lookbench's fine-tuning loop against open_clip's own trainer (open_clip_train.main).

    .venv/bin/python benchmarks/finetune_throughput.py [--n 1024] [--batch-size 32]

Same tiny ViT CLIP config (embed 64, width 128, 2 layers per tower, 64 px), same Fashion-MNIST train pairs (exported
as PNG files + CSV for open_clip's `--dataset-type csv`), same batch size, fp32, CPU, one epoch each, one after the
other in this run. Throughput is the median over steps of batch_size / step time (open_clip's own `/s` figure; ours
is measured the same way from the step log), skipping the first 3 steps as warm-up. Wall time of the whole epoch,
start-up and data preparation included, is printed too.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault('WANDB_MODE', 'disabled')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import open_clip  # noqa: E402 -- after the environment is set
import torch  # noqa: E402

from lookbench.catalog import write_items  # noqa: E402
from lookbench.data import load_fashion_mnist  # noqa: E402
from lookbench.finetune import FinetuneConfig, PairCache, finetune  # noqa: E402
from lookbench.models import load_open_clip  # noqa: E402
from lookbench.splits import assign_splits, class_names  # noqa: E402
from lookbench.warehouse import connect  # noqa: E402

CFG = {'embed_dim': 64,
       'vision_cfg': {'image_size': 64, 'layers': 2, 'width': 128, 'patch_size': 8, 'head_width': 64},
       'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 128, 'heads': 2, 'layers': 2}}
NAME = 'lookbench-bench-vit'


def median_rate(rates, skip=3):
    return statistics.median(rates[skip:] if len(rates) > skip + 1 else rates)


def run_ours(con, cfg_dir, batch_size, workdir):
    torch.manual_seed(0)
    model = load_open_clip(NAME, device='cpu')
    model.spec = f'open_clip:{NAME}'
    t0 = time.time()
    train, val = PairCache(con, model, 'train'), PairCache(con, model, 'val', limit=64)
    stamps = []
    def log(m):
        if 'samples_per_s' in m:
            stamps.append(time.perf_counter())
    cfg = FinetuneConfig(epochs=1, batch_size=batch_size, lr=1e-4, warmup_steps=10, patience=9)
    finetune(model, train, val, class_names(con), cfg, out_dir=workdir / 'ours', log=log)
    wall = time.time() - t0
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    return median_rate([batch_size / s for s in steps]), wall, len(train)


def run_open_clip(csv, cfg_dir, batch_size, n, workdir):
    code = (f"import open_clip, sys; open_clip.add_model_config({str(cfg_dir)!r}); "
            "from open_clip_train.main import main; main(sys.argv[1:])")
    args = ['--train-data', str(csv), '--dataset-type', 'csv', '--csv-img-key', 'filepath',
            '--csv-caption-key', 'title', '--csv-separator', ',', '--model', NAME, '--batch-size', str(batch_size),
            '--epochs', '1', '--lr', '1e-4',
            '--warmup', '10', '--precision', 'fp32', '--workers', '1', '--log-every-n-steps', '1', '--report-to', '',
            '--save-frequency', '0', '--logs', str(workdir / 'oc_logs'), '--name', 'bench', '--seed', '0']
    t0 = time.time()
    env = {**os.environ, 'CUDA_VISIBLE_DEVICES': ''}
    p = subprocess.run([sys.executable, '-c', code] + args, capture_output=True, text=True, env=env)
    wall = time.time() - t0
    if p.returncode != 0:
        sys.exit('open_clip_train failed:\n' + p.stdout[-3000:] + p.stderr[-3000:])
    rates = [float(x) for x in re.findall(r', ([0-9.]+)/s, ', p.stdout + p.stderr)]
    return median_rate(rates), wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=1024,
                    help='Fashion-MNIST train items (a 10%% val slice is carved from them)')
    ap.add_argument('--batch-size', type=int, default=32)
    ap.add_argument('--source', default='auto')
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        cfg_dir = d / 'cfg'
        cfg_dir.mkdir()
        (cfg_dir / f'{NAME}.json').write_text(json.dumps(CFG))
        open_clip.add_model_config(cfg_dir)  # the benchmark's own architecture, known to both trainers
        items, labels = load_fashion_mnist(a.source, sample=a.n)
        con = connect(d / 'w.duckdb')
        write_items(con, items, labels)
        assign_splits(con, val_pct=10)
        pairs = con.execute('''SELECT s.item_id, i.caption, i.image FROM splits s JOIN items i USING (item_id)
                               WHERE s.split = 'train' ORDER BY s.item_id''').fetchall()
        (d / 'img').mkdir()
        with open(d / 'train.csv', 'w') as f:
            f.write('filepath,title\n')
            for item_id, caption, png in pairs:
                (d / 'img' / f'{item_id}.png').write_bytes(png)
                f.write(f'{d / "img" / item_id}.png,"{caption}"\n')
        ours, ours_wall, n_train = run_ours(con, cfg_dir, a.batch_size, d)
        theirs, theirs_wall = run_open_clip(d / 'train.csv', cfg_dir, a.batch_size, n_train, d)
    print(f"tiny ViT CLIP (64 px, 2+2 layers), {n_train} train pairs, batch {a.batch_size}, fp32, "
          f"CPU threads {torch.get_num_threads()}")
    print(f"{'lookbench finetune':>22}: {ours:7.1f} samples/s (median step)   "
          f"epoch wall {ours_wall:6.1f} s (decode cache + val included)")
    print(f"{'open_clip_train.main':>22}: {theirs:7.1f} samples/s (median step)   "
          f"epoch wall {theirs_wall:6.1f} s (process start-up included)")
    print(f"{'ratio':>22}: {ours / theirs:7.2f}x (lookbench / open_clip_train)")


if __name__ == '__main__':
    main()
