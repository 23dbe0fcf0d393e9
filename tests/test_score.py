"The batch job: `lookbench score` and the Metaflow flow score every item exactly once, even across a hard kill."
import os, signal, subprocess, sys

import pytest
import torch

from conftest import ROOT
from lookbench.cli import main
from lookbench.warehouse import connect

ENV = dict(os.environ, USERNAME='lookbench-test', WANDB_MODE='disabled', HF_HUB_OFFLINE='1', PYTHONPATH=str(ROOT / 'src'))


@pytest.fixture
def catalog(source, tmp_path):
    "A fixture warehouse whose promoted model is a tiny open_clip ViT saved as a local checkpoint"
    import open_clip
    from lookbench.data import ingest_fashion_mnist, assign_splits
    from lookbench.models import load_model, register_tiny_open_clip
    from lookbench.finetune import register_model, promote
    torch.manual_seed(0)
    ckpt = tmp_path / 'tiny.pt'
    torch.save(open_clip.create_model(register_tiny_open_clip()).state_dict(), ckpt)
    spec = f'open_clip:lookbench-tiny-vit@{ckpt}'
    wh = tmp_path / 'w.duckdb'
    with connect(wh) as con:
        ingest_fashion_mnist(con, source); assign_splits(con, 20, ['Bag'])
        fp = load_model(spec, 'cpu').fingerprint
        register_model(con, spec, fp, 'tiny', '', 'test', 'val_top1', 0.1, {}); promote(con, fp)
    return dict(warehouse=str(wh), spec=spec, model_id=fp, items=160)


def predictions(wh):
    with connect(wh, read_only=True) as con:
        return con.execute("SELECT count(*), count(DISTINCT item_id) FROM predictions WHERE label_set = 'label'").fetchone()


def test_cli_scores_once_quarantines_corrupt_images_and_says_when_nothing_is_new(catalog, capsys):
    wh = catalog['warehouse']
    with connect(wh) as con:
        con.execute("UPDATE items SET image = ?::BLOB WHERE item_id = 'fmnist-train-00007'", [b'\x89PNG\r\n\x1a\n broken'])
    assert main(['score', '--limit', '50', '--chunk-size', '16', '--device', 'cpu', '--no-progress', '-w', wh]) == 0
    assert '49 items scored, 1 quarantined' in capsys.readouterr().out
    assert predictions(wh) == (49, 49)
    assert main(['score', '--chunk-size', '16', '--label-set', 'tone=dark,light', '--device', 'cpu', '--no-progress', '-w', wh]) == 0
    out = capsys.readouterr().out
    assert '159 items scored, 0 quarantined' in out and catalog['model_id'] in out  # 110 new items, 49 old ones for the new label set
    with connect(wh, read_only=True) as con:
        assert con.execute("SELECT item_id, reason FROM score_quarantine").fetchall() == [('fmnist-train-00007', 'image_unreadable')]
        assert con.execute('''SELECT label_set, count(*), count(DISTINCT item_id), count(DISTINCT run_id) FROM predictions
                              GROUP BY 1 ORDER BY 1''').fetchall() == [('label', 159, 159, 2), ('tone', 159, 159, 1)]
        assert con.execute("SELECT count(*) FROM runs WHERE kind = 'score' AND status = 'finished'").fetchone()[0] == 2
    assert main(['score', '--label-set', 'tone=dark,light', '--device', 'cpu', '-w', wh]) == 0
    assert capsys.readouterr().out.strip() == f"score: nothing new to score for {catalog['model_id']}"
    # the scored embeddings answer searches: a text query, and products similar to one product
    assert main(['search', 'ankle boot', '-k', '3', '--device', 'cpu', '-w', wh]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ['item_id', 'score', 'label', 'caption'] and len(lines) == 4
    assert main(['similar', 'fmnist-test-00001', '-k', '2', '-w', wh]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 3 and 'fmnist-test-00001 ' not in out
    assert main(['similar', 'no-such-item', '-w', wh]) == 2
    assert "item 'no-such-item' has no embedding" in capsys.readouterr().err


def test_cli_score_needs_a_promoted_model(source, tmp_path, capsys):
    from lookbench.data import ingest_fashion_mnist
    wh = str(tmp_path / 'w.duckdb')
    with connect(wh) as con: ingest_fashion_mnist(con, source)
    assert main(['score', '-w', wh]) == 2
    assert 'no model is promoted in table `models`' in capsys.readouterr().err


KILLER = '''
import os, signal, sys
from lookbench.warehouse import connect
from lookbench.score import ScoreConfig, score
def die(k, n):
    if k == 3: os.kill(os.getpid(), signal.SIGKILL)  # no exception handler, no rollback, no clean close
with connect(sys.argv[1]) as con: score(con, 'promoted', ScoreConfig(chunk_size=16, reference_size=40), device='cpu', progress=False, on_chunk=die)
'''

def test_a_hard_killed_job_rerun_scores_every_item_exactly_once(catalog):
    wh = catalog['warehouse']
    p = subprocess.run([sys.executable, '-c', KILLER, wh], env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    assert predictions(wh) == (48, 48)  # three chunks of 16 committed, nothing of the fourth
    assert main(['score', '--chunk-size', '16', '--device', 'cpu', '--no-progress', '-w', wh]) == 0
    assert predictions(wh) == (160, 160)
    with connect(wh, read_only=True) as con:
        assert con.execute("SELECT status, count(*) FROM runs WHERE kind = 'score' GROUP BY 1 ORDER BY 1").fetchall() == [('finished', 1), ('running', 1)]
        runs, n = con.execute("SELECT batch_runs, n_items FROM drift WHERE label_set = 'label'").fetchone()
        assert len(runs) == 2 and n == 160  # the killed run's items were drift-checked with the rerun's


def test_metaflow_flow_scores_in_two_shards_then_finds_nothing_new(catalog, tmp_path):
    cmd = [sys.executable, str(ROOT / 'flows' / 'score_flow.py'), '--quiet', 'run', '--warehouse', catalog['warehouse'],
           '--shards', '2', '--staging', str(tmp_path / 'staging'), '--device', 'cpu']
    for expected in ('160 items scored, 0 quarantined', 'nothing new to score'):
        p = subprocess.run(cmd, env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0 and expected in p.stdout + p.stderr, (p.stdout + p.stderr)[-3000:]
    assert predictions(catalog['warehouse']) == (160, 160)
    assert not (tmp_path / 'staging').exists() or not any((tmp_path / 'staging').iterdir())  # staged Parquet removed once loaded
    with connect(catalog['warehouse'], read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs WHERE kind = 'score' AND status = 'finished'").fetchone()[0] == 1
