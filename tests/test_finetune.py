"Fine-tuning: every backend learns, a killed run resumes to the same weights, the CLI registers and gates models."
import math

import pytest
import torch

from lookbench.cli import main
from lookbench.data import ingest_fashion_mnist, assign_splits
from lookbench.finetune import FinetuneConfig, PairCache, StopTraining, finetune, select_trainable, load_checkpoint
from lookbench.models import load_model, make_tiny_hf_clip, register_tiny_open_clip
from lookbench.warehouse import connect


@pytest.fixture
def con(source, tmp_path):
    c = connect(tmp_path / 'w.duckdb'); ingest_fashion_mnist(c, source); assign_splits(c, val_pct=20, heldout_classes=['Bag'])
    yield c
    c.close()


def classes(con):
    return [r[0] for r in con.execute("SELECT label FROM labels WHERE label <> 'Bag' ORDER BY label_id").fetchall()]


def test_hf_clip_resume_is_equivalent_with_accumulation(con, tmp_path):
    spec = f'hf:{make_tiny_hf_clip(tmp_path / "hf")}'
    cfg = FinetuneConfig(epochs=2, batch_size=8, accum_steps=2, lr=1e-4, warmup_steps=1, patience=9)
    def fresh(): return load_model(spec, device='cpu')
    a = fresh(); train, val = PairCache(con, a, 'train', limit=48), PairCache(con, a, 'val')
    finetune(a, train, val, classes(con), cfg, out_dir=tmp_path / 'a')
    b = fresh(); steps = math.ceil(len(train) / (cfg.batch_size * cfg.accum_steps))
    with pytest.raises(StopTraining): finetune(b, train, val, classes(con), cfg, out_dir=tmp_path / 'b', stop_after_steps=steps + 1)
    b = fresh(); finetune(b, train, val, classes(con), cfg, out_dir=tmp_path / 'b', resume=True)
    for (n, p), (_, q) in zip(a.model.state_dict().items(), b.model.state_dict().items()): torch.testing.assert_close(p, q, msg=n)
    ck = load_checkpoint(tmp_path / 'b' / 'last.pt')  # weights_only=True load
    assert ck['epoch'] == 2 and ck['config']['accum_steps'] == 2 and ck['base_spec'] == spec


def test_locking_freezes_a_tower(con):
    m = load_model(f'open_clip:{register_tiny_open_clip()}', device='cpu')
    counts = select_trainable(m, lock='text')
    assert counts['text'] == 0 and counts['image'] > 0
    assert not m.model.token_embedding.weight.requires_grad and m.model.visual.proj.requires_grad


def test_cli_finetune_registers_and_gates(con, tmp_path, capsys):
    wh = con.execute('SELECT path FROM duckdb_databases() WHERE database_name = current_database()').fetchone()[0]
    con.close()
    base = f'open_clip:{register_tiny_open_clip()}'
    args = ['finetune', '--base', base, '--out', str(tmp_path / 'ft'), '--epochs', '1', '--batch-size', '16', '--lr', '1e-4',
            '--unlock-last', '0', '--device', 'cpu', '--warehouse', wh]
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
