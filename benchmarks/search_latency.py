"""Top-10 search over stored product vectors: lookbench's USearch index and its exact DuckDB path, against numpy.

    .venv/bin/python benchmarks/search_latency.py [--sizes 100000 1000000] [--shapeless 100000] [--queries 200]

For each size, side by side on the same vectors and queries: build time, memory, p50/p99 latency of one top-10
query and recall@10 against exact search (numpy's answer), for
  numpy      brute force, the whole float32 matrix already in memory (the baseline of every ratio);
  SQL exact  `lookbench.search.rank_exact`: DuckDB with the pruning bounds (`lookbench search --exact`);
  SQL brute  the same table ranked without the bounds (what lookbench did before them);
  USearch    `lookbench.search.build_ann` / `AnnIndex.query`: the index `lookbench search` uses.
Vectors are `lookbench.testing.catalog_like_vectors` (shaped like the demo model's embeddings); `--shapeless`
sizes add uniform random unit vectors, the worst case for both the index and the bounds. Vectors are written the
way `lookbench score` writes them (`store_search_vectors`, 100k per transaction); "build" is that write for the
SQL paths and the index build (reading the vectors back included) for USearch.
"""
import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from lookbench.search import AnnConfig, _brute_sql, _normalised, build_ann, rank_exact, store_search_vectors
from lookbench.testing import catalog_like_vectors
from lookbench.warehouse import transaction

MODEL = 'bench'


def latencies(fn, queries):
    "Seconds of fn(q) per query, after one warm-up call"
    fn(queries[0])
    out = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        out.append(time.perf_counter() - t0)
    return np.array(out)


def numpy_top10(E, q):
    s = E @ q
    top = np.argpartition(-s, 10)[:10]
    return top[np.argsort(-s[top])]


def store(con, ids, E, chunk=100_000):
    "Write the vectors as `lookbench score` does; return the seconds it took"
    t0 = time.perf_counter()
    for s in range(0, len(E), chunk):
        with transaction(con):
            store_search_vectors(con, MODEL, pd.DataFrame({'item_id': ids[s:s + chunk], 'vec': list(E[s:s + chunk])}))
    con.execute('CHECKPOINT')
    return time.perf_counter() - t0


def recall(found_ids, truth_ids):
    return np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found_ids, truth_ids)])


def row(name, build, memory, lat, rec, base):
    p50, p99 = np.median(lat) * 1e3, np.percentile(lat, 99) * 1e3
    return (f"  {name:<10} build {build:7.1f} s | memory {memory / 2**20:7.0f} MiB | p50 {p50:8.2f} ms "
            f"| p99 {p99:8.2f} ms | recall@10 {rec:5.3f} | p50 = {p50 / base:6.3f}x numpy's")


def run_size(n, dim, kind, n_queries, n_brute, rng):
    X = (catalog_like_vectors(rng, n + n_queries, dim) if kind == 'catalog-like'
         else _normalised(rng.normal(size=(n + n_queries, dim))))
    E, Q = X[:n], X[n:]
    ids = np.array([f'p{i:08d}' for i in range(n)])
    truth = [ids[numpy_top10(E, q)] for q in Q]
    print(f"{n:,} {kind} vectors of {dim} dims, {n_queries} queries (SQL brute: {n_brute}), top-10", flush=True)
    np_lat = latencies(lambda q: numpy_top10(E, q), Q)
    base = np.median(np_lat) * 1e3
    lines = [row('numpy', 0.0, E.nbytes, np_lat, 1.0, base)]
    with tempfile.TemporaryDirectory() as d:
        con = duckdb.connect(str(Path(d) / 'w.duckdb'))
        build = store(con, ids, E)
        disk = os.path.getsize(Path(d) / 'w.duckdb')
        exact = [rank_exact(con, MODEL, q, 10).item_id.tolist() for q in Q]
        lines.append(row('SQL exact', build, disk, latencies(lambda q: rank_exact(con, MODEL, q, 10), Q),
                         recall(exact, truth), base))
        brute = _brute_sql(con, f'search_index_{dim}', dim)
        ask = lambda q: con.execute(brute, dict(q=q.tolist(), m=MODEL, x=None, k=10)).fetchall()  # noqa: E731
        lines.append(row('SQL brute', build, disk, latencies(ask, Q[:n_brute]),
                         recall([[r[0] for r in ask(q)] for q in Q[:n_brute]], truth[:n_brute]), base))
        t0 = time.perf_counter()
        ann = build_ann(con, MODEL, AnnConfig(exact_below=0))
        built = time.perf_counter() - t0
        found = [ann.query(q, 10).item_id.tolist() for q in Q]
        lines.append(row('USearch', built, ann.index.memory_usage, latencies(lambda q: ann.query(q, 10), Q),
                         recall(found, truth), base))
        con.close()
    print('\n'.join(lines), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--sizes', type=int, nargs='+', default=[100_000, 1_000_000], help='catalog-like vectors')
    ap.add_argument('--shapeless', type=int, nargs='*', default=[100_000], help='uniform random vectors (worst case)')
    ap.add_argument('--dim', type=int, default=256, help='embedding size (256: our LiT model; 512: CLIP ViT-B)')
    ap.add_argument('--queries', type=int, default=200, help='queries per path (p99 needs a couple of hundred)')
    ap.add_argument('--brute-queries', type=int, default=30, help='queries for the slow SQL brute force')
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    threads = duckdb.execute('SELECT current_setting(?)', ['threads']).fetchall()[0][0]
    print(f"{os.cpu_count()} cores, {threads} DuckDB threads, USearch {AnnConfig()}")
    for n in a.sizes:
        run_size(n, a.dim, 'catalog-like', a.queries, a.brute_queries, rng)
    for n in a.shapeless:
        run_size(n, a.dim, 'shapeless', a.queries, a.brute_queries, rng)
    print(f"peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")


if __name__ == '__main__':
    main()
