"""Image-embedding throughput of the embed step against a plain per-image loop, on the same model and items.

    .venv/bin/python benchmarks/embed_throughput.py [--n 1024] [--model lit] [--source auto]

Baseline: for each item, read its PNG from the warehouse, PIL-decode, preprocess, forward one at a time, insert
one row. Ours: `lookbench.embed.embed_images` (chunked reads, DataLoader, batched forward, one insert per chunk).
Both run in this one process, one after the other, on fresh warehouses with the same items.
"""
import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lookbench.catalog import write_items
from lookbench.data import load_fashion_mnist
from lookbench.embed import embed_images
from lookbench.models import load_model
from lookbench.schema import ensure_tables
from lookbench.warehouse import connect


def plain_loop(con, model):
    ensure_tables(con, 'embeddings')
    ids = [r[0] for r in con.execute('SELECT item_id FROM items ORDER BY item_id').fetchall()]
    for item_id in ids:
        blob = con.execute('SELECT image FROM items WHERE item_id = ?', [item_id]).fetchone()[0]
        x = model.preprocess(Image.open(io.BytesIO(blob)))[None]
        vec = model.image_features(x)[0].cpu().numpy().astype(np.float32)
        con.execute("INSERT INTO embeddings VALUES (?, 'image', ?, ?)",
                    [model.feature_fingerprint, item_id, vec.tolist()])
    return len(ids)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=1024, help='items to embed (half from each original split)')
    ap.add_argument('--model', default='lit')
    ap.add_argument('--source', default='auto')
    ap.add_argument('--batch-size', type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    items, labels = load_fashion_mnist(a.source, sample=a.n // 2)
    model = load_model(a.model, 'cpu')
    with tempfile.TemporaryDirectory() as d:
        results = {}
        for name in ('plain loop', 'embed_images'):
            con = connect(Path(d) / f'{name.replace(" ", "_")}.duckdb')
            write_items(con, items, labels)
            t0 = time.perf_counter()
            if name == 'plain loop':
                n = plain_loop(con, model)
            else:
                n = embed_images(con, model, batch_size=a.batch_size, progress=False)['embedded']
            results[name] = n / (time.perf_counter() - t0)
            con.close()
    print(f"model: {model.name}  items: {len(items)}  threads: {torch.get_num_threads()}")
    for name, ips in results.items():
        print(f"{name:>14}: {ips:8.1f} images/s")
    print(f"{'ratio':>14}: {results['embed_images'] / results['plain loop']:8.2f}x (embed_images / plain loop)")


if __name__ == '__main__':
    main()
