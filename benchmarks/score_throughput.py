"""Scoring throughput: `lookbench score` against a plain loop, and the Metaflow flow (2 shards) against it.

    .venv/bin/python benchmarks/score_throughput.py [--n 2000] [--flow-n 8000] [--source auto]

Part 1, in this process, same model object, same items, fresh warehouses:
  baseline: per item, read its PNG, decode, preprocess, forward one image, softmax, insert one prediction row;
  ours: `lookbench.score.score` (what `lookbench score` runs: chunked reads, batched forward, a transaction per chunk).
  Stored features are not reused (`reuse_features=False`): both decode every image.
Part 2, end to end as a user runs them (process start, model load, scoring, writes), on copies of one warehouse:
  `lookbench score` against `python flows/score_flow.py run --shards 2`.
The model is the offline LiT model (EfficientNet-Lite0 + MiniLM) with saved, untrained heads.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from lookbench.catalog import write_items
from lookbench.data import load_fashion_mnist
from lookbench.images import decode_image
from lookbench.models import load_model, save_lit
from lookbench.score import ScoreConfig, build_classifiers, default_label_sets, score
from lookbench.splits import assign_splits
from lookbench.warehouse import connect

ROOT = Path(__file__).resolve().parents[1]


def plain_loop(con, model, label_sets):
    "The baseline: one item at a time, one row at a time"
    con.execute('CREATE TABLE plain_predictions (item_id VARCHAR, label_set VARCHAR, label VARCHAR, prob DOUBLE)')
    clfs = build_classifiers(model, label_sets)
    ids = [r[0] for r in con.execute('SELECT item_id FROM items ORDER BY item_id').fetchall()]
    with torch.no_grad():
        for item_id in ids:
            blob = con.execute('SELECT image FROM items WHERE item_id = ?', [item_id]).fetchone()[0]
            emb = model.encode_images(model.preprocess(decode_image(blob))[None])
            for name, clf in clfs.items():
                p = (model.logit_scale * emb @ clf).softmax(-1)[0]
                row = [item_id, name, label_sets[name][int(p.argmax())], float(p.max())]
                con.execute('INSERT INTO plain_predictions VALUES (?, ?, ?, ?)', row)
    return len(ids)


def fresh_warehouse(path, items, labels):
    con = connect(path)
    write_items(con, items, labels)
    assign_splits(con, 10, [])
    return con


def part1(model, items, labels, folder):
    "Items per second of the plain loop and of `score`, in this process"
    rates = {}
    for name in ('plain loop', 'lookbench score'):
        con = fresh_warehouse(Path(folder) / f"{name.replace(' ', '_')}.duckdb", items, labels)
        t0 = time.perf_counter()
        if name == 'plain loop':
            n = plain_loop(con, model, default_label_sets(con))
        else:
            n = score(con, model, ScoreConfig(reuse_features=False), device='cpu', progress=False)['scored']
        rates[name] = n / (time.perf_counter() - t0)
        con.close()
    return rates


def run(cmd, env):
    "Seconds a command takes, start to finish"
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return time.perf_counter() - t0


def part2(spec, items, labels, folder):
    "Seconds of `lookbench score` and of the Metaflow flow with 2 shards, each on a copy of one warehouse"
    base = Path(folder) / 'flow_base.duckdb'
    fresh_warehouse(base, items, labels).close()
    env = dict(os.environ, USERNAME=os.environ.get('USERNAME', 'bench'), WANDB_MODE='disabled', HF_HUB_OFFLINE='1')
    commands = {'lookbench score': [str(Path(sys.executable).parent / 'lookbench'), 'score', '--no-progress'],
                'metaflow, 2 shards': [sys.executable, 'flows/score_flow.py', '--quiet', 'run', '--shards', '2',
                                       '--staging', f'{folder}/staging']}
    times = {}
    for name, cmd in commands.items():
        wh = Path(folder) / f"{name[:4]}.duckdb"
        shutil.copy(base, wh)
        times[name] = run(cmd + ['--model', spec, '--device', 'cpu', '--warehouse', str(wh)], env)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=2000, help='items for part 1 (half from each original split)')
    ap.add_argument('--flow-n', type=int, default=8000, help='items for part 2 (0 skips it)')
    ap.add_argument('--source', default='auto')
    a = ap.parse_args()
    torch.manual_seed(0)
    model = load_model('lit', 'cpu')
    with tempfile.TemporaryDirectory() as d:
        spec = f"lit:{save_lit(model, Path(d) / 'heads.pt')}"
        items, labels = load_fashion_mnist(a.source, sample=a.n // 2)
        rates = part1(model, items, labels, d)
        print(f"model: {model.name}  threads: {torch.get_num_threads()}")
        print(f"part 1, {len(items)} items, scoring only (drift check included in ours):")
        for name, r in rates.items():
            print(f"{name:>18}: {r:8.1f} items/s")
        print(f"{'ratio':>18}: {rates['lookbench score'] / rates['plain loop']:8.2f}x (lookbench score / plain loop)")
        if not a.flow_n:
            return
        items, labels = load_fashion_mnist(a.source, sample=a.flow_n // 2)
        times = part2(spec, items, labels, d)
        print(f"part 2, {len(items)} items, end to end (process start, model load, scoring, writes, drift), "
              f"{os.cpu_count()} cores:")
        for name, t in times.items():
            print(f"{name:>18}: {t:7.1f} s  {len(items) / t:7.1f} items/s")
        ratio = times['lookbench score'] / times['metaflow, 2 shards']
        print(f"{'ratio':>18}: {ratio:8.2f}x (metaflow throughput / lookbench score)")


if __name__ == '__main__':
    main()
