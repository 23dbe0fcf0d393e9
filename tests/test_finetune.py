"Fine-tuning: every backend learns, a killed run resumes to the same weights, the CLI registers and gates models."
import math

import pytest
import torch

from lookbench.cli import main
from lookbench.finetune import FinetuneConfig, PairCache, finetune
from lookbench.models import load_checkpoint, load_model, select_trainable
from lookbench.splits import class_names
from lookbench.testing import fixture_warehouse
from lookbench.warehouse import connect


@pytest.fixture
def con(tmp_path):
    c = fixture_warehouse(tmp_path, n_train=120, n_test=40, val_pct=20, heldout=['Bag'])
    yield c
    c.close()


class Killed(Exception):
    "Stands in for kill -9: raised from outside the loop, through its `log` callback"


def kill_at(step):
    def log(metrics):
        if metrics.get('step') == step and 'loss' in metrics:
            raise Killed(f'killed at step {step}')
    return log


def test_hf_clip_resume_is_equivalent_with_accumulation(con, tmp_path, tiny_hf_clip):
    cfg = FinetuneConfig(epochs=2, batch_size=8, accum_steps=2, lr=1e-4, warmup_steps=1, patience=9)
    classes = class_names(con, seen_only=True)
    a = load_model(tiny_hf_clip, device='cpu')
    train, val = PairCache(con, a, 'train', limit=48), PairCache(con, a, 'val')
    finetune(a, train, val, classes, cfg, out_dir=tmp_path / 'a')
    steps = math.ceil(len(train) / (cfg.batch_size * cfg.accum_steps))
    b = load_model(tiny_hf_clip, device='cpu')
    with pytest.raises(Killed):
        finetune(b, train, val, classes, cfg, out_dir=tmp_path / 'b', log=kill_at(steps + 1))
    b = load_model(tiny_hf_clip, device='cpu')
    finetune(b, train, val, classes, cfg, out_dir=tmp_path / 'b', resume=True)
    for (n, p), (_, q) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        torch.testing.assert_close(p, q, msg=n)
    ck = load_checkpoint(tmp_path / 'b' / 'last.pt')  # weights_only=True load
    assert ck['epoch'] == 2 and ck['config']['accum_steps'] == 2 and ck['base_spec'] == tiny_hf_clip


def test_locking_freezes_a_tower(tiny_open_clip):
    m = load_model(tiny_open_clip, device='cpu')
    counts = select_trainable(m, lock='text')
    assert counts['text'] == 0 and counts['image'] > 0
    assert not m.model.token_embedding.weight.requires_grad and m.model.visual.proj.requires_grad


def test_cli_finetune_registers_and_gates(con, tmp_path, capsys, tiny_open_clip):
    wh = con.execute('SELECT path FROM duckdb_databases() WHERE database_name = current_database()').fetchone()[0]
    con.close()
    args = ['finetune', '--base', tiny_open_clip, '--out', str(tmp_path / 'ft'), '--epochs', '1', '--batch-size', '16',
            '--lr', '1e-4', '--unlock-last', '0', '--device', 'cpu', '--warehouse', wh]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith('finetune: ft:') and ('promoted' in out)
    with connect(wh, read_only=True) as c:
        # two rows: the base (the warehouse's first model, registered and promoted first) and the tuned model
        assert c.execute("SELECT count(*), count(*) FILTER (spec LIKE 'ft:%') FROM models").fetchone() == (2, 1)
        fp, spec = c.execute("SELECT model_id, spec FROM models WHERE spec LIKE 'ft:%'").fetchone()
        assert c.execute("SELECT count(*) FROM metrics WHERE metric LIKE 'wiseft@%'").fetchone()[0] > 0
    assert main(['promote', fp, '--warehouse', wh]) == 0
    assert 'promote: ' in capsys.readouterr().out
    assert load_model(spec, device='cpu').fingerprint == fp
