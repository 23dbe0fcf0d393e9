"""Top-10 search latency over stored embeddings: the DuckDB query lookbench runs, against numpy brute force.

    .venv/bin/python benchmarks/search_latency.py [--sizes 100000 1000000] [--dim 256] [--queries 20]

Random unit vectors (the latency does not depend on what they mean), stored the way `lookbench score` stores them:
`embeddings` (FLOAT[], every model) and `search_index_<d>` (FLOAT[d], what `lookbench.retrieval.search` ranks).
Also measured: the same query casting FLOAT[] to FLOAT[d] per row (the fallback without the index). Baseline: numpy,
the whole matrix already in memory, one matrix-vector product and argpartition. Median of --queries queries, after a warm-up.
"""
import argparse, statistics, tempfile, time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from lookbench.retrieval import _ranked


def timed(fn, n):
    fn(0); out = []
    for i in range(n):
        t0 = time.perf_counter(); fn(i + 1); out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--sizes', type=int, nargs='+', default=[100_000, 1_000_000])
    ap.add_argument('--dim', type=int, default=256, help='embedding size (256: our LiT model; 512: CLIP ViT-B)')
    ap.add_argument('--queries', type=int, default=20)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(a.queries + 1, a.dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    print(f"dim {a.dim}, top-10, median of {a.queries} queries, {duckdb.execute('SELECT current_setting(?)', ['threads']).fetchone()[0]} DuckDB threads")
    for n in a.sizes:
        E = rng.normal(size=(n, a.dim)).astype(np.float32); E /= np.linalg.norm(E, axis=1, keepdims=True)
        with tempfile.TemporaryDirectory() as d:
            con = duckdb.connect(str(Path(d) / 'w.duckdb'))
            con.execute('CREATE TABLE items (item_id VARCHAR, label VARCHAR, caption VARCHAR)')
            con.execute('CREATE TABLE embeddings (fingerprint VARCHAR, modality VARCHAR, key VARCHAR, vec FLOAT[])')
            for s in range(0, n, 100_000):  # in chunks: a million Python lists at once would be the slow part
                chunk = pd.DataFrame({'key': [f'p{i}' for i in range(s, min(s + 100_000, n))], 'vec': list(E[s:s + 100_000])})
                con.register('_c', chunk)
                con.execute("INSERT INTO embeddings SELECT 'bench', 'image_embedding', key, vec::FLOAT[] FROM _c")
                con.execute("INSERT INTO items SELECT key, 'x', 'x' FROM _c"); con.unregister('_c')
            cast = timed(lambda i: _ranked(con, 'bench', queries[i], 10), a.queries)  # no index table yet: the fallback
            con.execute(f"CREATE TABLE search_index_{a.dim} AS SELECT 'bench' AS model_id, key AS item_id, vec::FLOAT[{a.dim}] AS vec FROM embeddings")
            ours = timed(lambda i: _ranked(con, 'bench', queries[i], 10), a.queries)
            def brute(i):
                s = E @ queries[i]; top = np.argpartition(-s, 10)[:10]; return top[np.argsort(-s[top])]
            base = timed(brute, a.queries)
            got = set(_ranked(con, 'bench', queries[1], 10).item_id); want = {f'p{i}' for i in brute(1)}
            assert got == want, 'DuckDB and numpy disagree on the top 10'
            con.close()
        print(f"{n:>9,} vectors: numpy brute force {base * 1e3:7.1f} ms | lookbench search (DuckDB, FLOAT[d] index) {ours * 1e3:7.1f} ms "
              f"= {ours / base:5.1f}x numpy's time | DuckDB casting FLOAT[] per query {cast * 1e3:7.1f} ms = {cast / base:5.1f}x")


if __name__ == '__main__': main()
