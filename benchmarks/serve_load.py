"""Load on `lookbench serve` over 127.0.0.1: latency percentiles and requests/s for /search and /classify.

    .venv/bin/python benchmarks/serve_load.py [--warehouse data/warehouse.duckdb] [--requests 300] [--seconds 20]

Side by side in one run, each server started fresh with `lookbench serve` on a free port: torch with the batching
queue (max batch 32), torch without it (max batch 1), and onnxruntime with it. Each is loaded by 1, 8 and 32
concurrent clients (httpx, one event loop in this process), for a fixed number of requests or a time limit,
whichever comes first. Search queries are catalog captions in shop phrasings ("a navy striped pullover", "navy
striped pullover for women", ...): no query is asked twice in a run, so the query cache never helps; classify
uploads are catalog images as PNG. Client and server share the machine's cores.
Needs a built warehouse (`make build`): the promoted model and its scored products.
"""
import argparse
import asyncio
import itertools
import os
import random
import signal
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from lookbench.testing import start_server
from lookbench.warehouse import connect

PHRASINGS = ['{}', 'a {}', '{} for women', '{} for men', 'cheap {}', '{} on sale', 'new {}', 'classic {}',
             '{} in stock', 'best {}', 'buy {}', '{} gift', 'summer {}', 'winter {}', '{} size m', '{} size l']


async def load(url, make_request, clients, total, seconds):
    "Latencies (s) of up to `total` requests from `clients` concurrent clients within `seconds`; and the wall time"
    latencies, errors, sent = [], 0, 0
    deadline = time.perf_counter() + seconds

    async def client(c):
        nonlocal errors, sent
        while sent < total and time.perf_counter() < deadline:
            sent += 1
            t0 = time.perf_counter()
            r = await make_request(c, sent)
            latencies.append(time.perf_counter() - t0)
            errors += r.status_code != 200

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=clients)) as c:
        await make_request(c, 0)  # warm-up
        t0 = time.perf_counter()
        await asyncio.gather(*[client(c) for _ in range(clients)])
        wall = time.perf_counter() - t0
    return np.array(latencies), wall, errors


def row(name, clients, lat, wall, errors):
    ms = lambda q: np.percentile(lat, q) * 1e3  # noqa: E731
    return (f"  {name:<26} {clients:>3} clients: p50 {ms(50):7.1f} ms  p95 {ms(95):7.1f} ms  p99 {ms(99):7.1f} ms  "
            f"{len(lat) / wall:7.1f} req/s  ({len(lat)} requests, {errors} errors)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--warehouse', default='data/warehouse.duckdb')
    ap.add_argument('--requests', type=int, default=300, help='requests per cell (a cell: server x endpoint x clients)')
    ap.add_argument('--seconds', type=float, default=20, help='time limit per cell')
    ap.add_argument('--clients', type=int, nargs='+', default=[1, 8, 32])
    a = ap.parse_args()
    if not Path(a.warehouse).exists():
        sys.exit(f'{a.warehouse} does not exist: run `make build` first (or pass --warehouse)')
    with connect(a.warehouse, read_only=True) as con:  # read, then let go: the servers must find the file free
        captions = [r[0] for r in con.execute('SELECT DISTINCT caption FROM items ORDER BY caption').fetchall()]
        images = [r[0] for r in con.execute('SELECT image FROM items ORDER BY md5(item_id) LIMIT 64').fetchall()]
        products = con.execute('SELECT count(*) FROM items').fetchall()[0][0]
    queries = [t.format(c) for c in captions for t in PHRASINGS]
    random.Random(0).shuffle(queries)
    print(f"{products:,} products, {len(queries):,} distinct queries; {os.cpu_count()} cores shared by "
          f"clients and server; {a.requests} requests or {a.seconds:.0f} s per cell")

    asked = itertools.count()  # across every cell and server: never the same query twice

    def search(c, i):
        return c.get('/search', params={'q': queries[next(asked)], 'k': 10})

    def classify(c, i):
        return c.post('/classify', files={'file': ('p.png', images[i % len(images)], 'image/png')})

    servers = [('torch, batched (32)', ['--max-batch', '32']), ('torch, unbatched', ['--max-batch', '1']),
               ('onnxruntime, batched (32)', ['--runtime', 'onnx', '--max-batch', '32'])]
    for name, args in servers:
        p, url = start_server(a.warehouse, '--device', 'cpu', *args)
        try:
            print(f"{name}:", flush=True)
            for endpoint, fn in (('/search', search), ('/classify', classify)):
                for clients in a.clients:
                    lat, wall, errors = asyncio.run(load(url, fn, clients, a.requests, a.seconds))
                    print(row(f'{endpoint}', clients, lat, wall, errors), flush=True)
        finally:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(30)


if __name__ == '__main__':
    main()
