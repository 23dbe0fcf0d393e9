"""Top-10 search latency over stored embeddings: the DuckDB query lookbench runs, against numpy brute force.

    .venv/bin/python benchmarks/search_latency.py [--sizes 100000 1000000] [--dim 256] [--queries 20]

Random unit vectors (the latency does not depend on what they mean), stored the way `lookbench score` stores them:
`embeddings` (FLOAT[], every model) and `search_index_<d>` (FLOAT[d], what `lookbench.retrieval.search` ranks).
Also measured: the same query casting FLOAT[] to FLOAT[d] per row (the fallback without the index). Baseline: numpy,
the whole matrix already in memory, one matrix-vector product and argpartition. Median of --queries queries, after a
warm-up.
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from lookbench.retrieval import _ranked
from lookbench.warehouse import registered


def timed(fn, n):
    "Median seconds of `fn(1..n)`, after one warm-up call"
    fn(0)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i + 1)
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def unit_vectors(rng, n, dim):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def store(con, E, chunk=100_000):
    "Write `E` as the scored embeddings of model 'bench', in chunks (a million Python lists at once is the slow part)"
    con.execute('CREATE TABLE items (item_id VARCHAR, label VARCHAR, caption VARCHAR)')
    con.execute('CREATE TABLE embeddings (fingerprint VARCHAR, modality VARCHAR, key VARCHAR, vec FLOAT[])')
    for s in range(0, len(E), chunk):
        rows = pd.DataFrame({'key': [f'p{i}' for i in range(s, min(s + chunk, len(E)))], 'vec': list(E[s:s + chunk])})
        with registered(con, _c=rows):
            con.execute("INSERT INTO embeddings SELECT 'bench', 'image_embedding', key, vec::FLOAT[] FROM _c")
            con.execute("INSERT INTO items SELECT key, 'x', 'x' FROM _c")


def numpy_top10(E, q):
    s = E @ q
    top = np.argpartition(-s, 10)[:10]
    return top[np.argsort(-s[top])]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--sizes', type=int, nargs='+', default=[100_000, 1_000_000])
    ap.add_argument('--dim', type=int, default=256, help='embedding size (256: our LiT model; 512: CLIP ViT-B)')
    ap.add_argument('--queries', type=int, default=20)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    queries = unit_vectors(rng, a.queries + 1, a.dim)
    threads = duckdb.execute('SELECT current_setting(?)', ['threads']).fetchone()[0]
    print(f"dim {a.dim}, top-10, median of {a.queries} queries, {threads} DuckDB threads")
    for n in a.sizes:
        E = unit_vectors(rng, n, a.dim)
        with tempfile.TemporaryDirectory() as d:
            con = duckdb.connect(str(Path(d) / 'w.duckdb'))
            store(con, E)
            cast = timed(lambda i: _ranked(con, 'bench', queries[i], 10), a.queries)  # no index table yet: the fallback
            con.execute(f"CREATE TABLE search_index_{a.dim} AS SELECT 'bench' AS model_id, key AS item_id, "
                        f"vec::FLOAT[{a.dim}] AS vec FROM embeddings")
            ours = timed(lambda i: _ranked(con, 'bench', queries[i], 10), a.queries)
            base = timed(lambda i: numpy_top10(E, queries[i]), a.queries)
            got = set(_ranked(con, 'bench', queries[1], 10).item_id)
            assert got == {f'p{i}' for i in numpy_top10(E, queries[1])}, 'DuckDB and numpy disagree on the top 10'
            con.close()
        print(f"{n:>9,} vectors: numpy brute force {base * 1e3:7.1f} ms | lookbench search (DuckDB, FLOAT[d] index) "
              f"{ours * 1e3:7.1f} ms = {ours / base:5.1f}x numpy's time | DuckDB casting FLOAT[] per query "
              f"{cast * 1e3:7.1f} ms = {cast / base:5.1f}x")


if __name__ == '__main__':
    main()
