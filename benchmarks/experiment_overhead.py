"""What an experiment axis costs: a trial that changes only the prompts, against the first trial, measured in one run.

    .venv/bin/python benchmarks/experiment_overhead.py [--sample 2000] [--source auto]

The first trial of a fresh experiment root pays for everything: ingesting the catalog, the towers' image and text
features (cached in the data warehouse), training the LiT heads, evaluating. A second trial that changes only the
prompt set finds the data, the features and the heads cached (heads are keyed by what trains them, not by prompts) and
pays for text encoding and evaluation only. Both run in this process, one after the other, on the same towers.
"""
import argparse
import tempfile
import time
from pathlib import Path

from lookbench.experiment import run_experiment
from lookbench.models import LitTowers


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--sample', type=int, default=2000, help='demo catalog items per original split')
    ap.add_argument('--source', default='auto')
    a = ap.parse_args()
    towers = LitTowers()
    with tempfile.TemporaryDirectory() as d:
        times = {}
        for prompts in ('ensemble', 'one'):
            exp = Path(d) / f'{prompts}.yaml'
            exp.write_text(f"name: overhead\nbase: {{data: {{sample: {a.sample}, source: '{a.source}'}}, "
                           f"prompts: {prompts}, recipe: lit}}\n")
            t0 = time.perf_counter()
            r = run_experiment(exp, Path(d) / 'root', towers=towers, progress=False)
            times[prompts] = time.perf_counter() - t0
            assert r['ran'] == 1, r
    first, prompt_only = times['ensemble'], times['one']
    print(f"demo catalog, {a.sample} items per split, LiT heads, CPU")
    print(f"{'first trial':>28}: {first:7.1f} s (ingest, features, heads, evaluation)")
    print(f"{'prompt-only trial, cached':>28}: {prompt_only:7.1f} s (text encoding, evaluation)")
    print(f"{'ratio':>28}: {prompt_only / first:7.3f} of the first trial's time")


if __name__ == '__main__':
    main()
