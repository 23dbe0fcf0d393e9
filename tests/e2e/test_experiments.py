"""Experiments survive a real kill and resume with only the unfinished trials; `make paper` twice changes no file."""
import json
import os
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, BIN
from lookbench.testing import make_fixture_source
from lookbench.warehouse import connect


@pytest.fixture
def experiment(tmp_path):
    "A 2 x 2 grid with 2 seeds on a few hundred fixture items"
    src = make_fixture_source(tmp_path / 'src', n_train=200, n_test=80)
    folder = tmp_path / 'experiments'
    folder.mkdir()
    path = folder / 'grid.yaml'
    path.write_text(f'''name: grid
description: A 2 x 2 grid with 2 seeds
base:
  data: {{source: {src}, sample: null}}
  align: {{epochs: 3, batch_size: 64}}
  calibration: {{gamma: auto}}
grid:
  recipe: [lit, lit_locked_text]
  prompts: [one, ensemble]
  seed: [0, 1]
''')
    return path


def env():
    return {**os.environ, 'WANDB_MODE': 'disabled', 'HF_HUB_OFFLINE': '1', 'PATH': f"{BIN}:{os.environ['PATH']}"}


def finished(root:Path)->int:
    with connect(root / 'ledger.duckdb', read_only=True) as con:
        return con.execute("SELECT count(*) FROM trials WHERE status = 'finished'").fetchone()[0]


def test_a_killed_experiment_resumes_with_the_unfinished_trials(experiment, tmp_path):
    root = tmp_path / 'root'
    cmd = [str(BIN / 'lookbench'), 'experiment', 'run', str(experiment), '--root', str(root)]
    job = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in job.stdout:  # kill -9 as the third trial starts: no handler, no clean-up
        if line.startswith('trial 2/8'):
            job.send_signal(signal.SIGKILL)
            break
    job.wait(60)
    assert job.returncode == -signal.SIGKILL
    before = finished(root)
    assert 2 <= before < 8
    p = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert f'{8 - before} trials run, {before} already finished, of 8' in p.stdout, p.stdout
    assert finished(root) == 8
    with connect(root / 'ledger.duckdb', read_only=True) as con:  # each trial's results once, none half-written
        counts = con.execute("SELECT count(DISTINCT trial_id), count(*) FROM trial_items WHERE class_set = 'all'").fetchone()
    assert counts == (8, 8 * 80)
    status = subprocess.run([str(BIN / 'lookbench'), 'experiment', 'status', str(experiment), '--root', str(root)],
                            env=env(), capture_output=True, text=True)
    assert status.stdout.strip().endswith('experiment: 8 trials: 8 finished'), status.stdout


def test_make_paper_twice_changes_no_file(experiment, tmp_path):
    "Byte for byte; every interval holds its value; an experiment whose weights are missing is skipped in one line"
    (experiment.parent / 'needs-weights.yaml').write_text("name: needs-weights\ngrid: {model: ['open_clip:ViT-B-32@openai']}\n")
    args = (f"PAPER_ARGS=--env--experiments {experiment.parent} --env--data {tmp_path / 'data'} "
            f"--env--reports {tmp_path / 'reports'}")
    first = subprocess.run(['make', '--no-print-directory', 'paper', args], cwd=ROOT, env=env(), capture_output=True,
                           text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    paper = tmp_path / 'reports' / 'paper'
    results = pd.read_csv(paper / 'results.csv')
    outside = results[(results.value < results.ci_low - 1e-12) | (results.value > results.ci_high + 1e-12)]
    assert outside.empty and {'ausuc', 'gamma'} <= set(results.metric), outside.head()
    assert json.loads((paper / 'MANIFEST.json').read_text())['skipped'] == {
        'needs-weights': ['weights of open_clip:ViT-B-32@openai']}
    files = sorted(p for p in paper.rglob('*') if p.is_file())
    assert {p.relative_to(paper).as_posix() for p in files} >= {'results.csv', 'MANIFEST.json', 'tables/grid.tex',
                                                                'tables/grid.md', 'figures/grid-confusion.svg'}
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    again = subprocess.run(['make', '--no-print-directory', 'paper', args], cwd=ROOT, env=env(), capture_output=True,
                           text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
    html = (tmp_path / 'reports' / 'paper.html').read_text()
    assert '0 trials run, 8 already finished' in html and 'skipped needs-weights' in html
    tex = (paper / 'tables' / 'grid.tex').read_text().splitlines()
    assert len({line.count('&') for line in tex if line.endswith('\\\\')}) == 1  # every row has the same cells


def test_model_specs_fine_tune_in_a_grid_with_retrieval_and_intervals(tmp_path, tiny_open_clip, tiny_hf_clip):
    "Two backends x (zero-shot, fine-tuned) x two seeds: FashionCLIP's before/after, paired on the same test items"
    from lookbench.paper import paper
    src = make_fixture_source(tmp_path / 'src', n_train=160, n_test=60)
    folder = tmp_path / 'experiments'
    folder.mkdir()
    (folder / 'clips.yaml').write_text(f'''name: clips
description: Two tiny CLIPs, before and after fine-tuning
base:
  data: {{format: fashion-mnist, source: {src}, sample: null, heldout_classes: [Bag, Sandal]}}
  device: cpu
grid:
  model: ['{tiny_open_clip}', '{tiny_hf_clip}']
  finetune: [null, {{epochs: 1, batch_size: 16, max_train: 64, lr: 0.0001}}]
  seed: [0, 1]
report:
  metrics: [top1, weighted_f1, t2i_recall@5, i2t_mrr]
  class_sets: [all, heldout]
''')
    r = paper(folder, tmp_path / 'root', tmp_path / 'paper', progress=False)
    assert (r['ran'], r['trials'], r['not_run']) == (8, 8, {})
    with connect(tmp_path / 'root' / 'ledger.duckdb', read_only=True) as con:
        metrics = {m for (m,) in con.execute('SELECT DISTINCT metric FROM trial_results').fetchall()}
        queries = con.execute("SELECT count(DISTINCT trial_id), count(*) FILTER (direction = 'i2t') FROM trial_queries")
        assert queries.fetchone() == (8, 8 * 60)  # every trial ranked every test image among the captions
        tuned = con.execute("SELECT count(*) FROM trials WHERE config->>'finetune' IS NOT NULL "
                            "AND config->>'finetune' <> 'null'").fetchone()[0]
    assert {'t2i_recall@1', 't2i_mrr', 'i2t_recall@10', 'top1', 'gzsl_h'} <= metrics and tuned == 4
    assert (tmp_path / 'root' / 'finetune').is_dir()
    table = (tmp_path / 'paper' / 'tables' / 'clips.md').read_text().strip().splitlines()
    assert len(table) == 2 + 4 and all(line.count('|') == table[0].count('|') for line in table), table
    assert 'all t2i_recall@5' in table[0] and 'heldout top1' in table[0] and 'heldout i2t_mrr' not in table[0]
