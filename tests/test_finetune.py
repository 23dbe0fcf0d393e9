"Fine-tuning: every backend learns, a killed run resumes to the same weights, the CLI registers and gates models."
import math
from pathlib import Path

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


def test_resume_under_other_settings_is_refused(con, tmp_path, capsys, tiny_open_clip, tiny_hf_clip):
    "A resumed run must be the run its checkpoint records: another --lr, --lock or --base is refused in one line"
    wh = con.execute('SELECT path FROM duckdb_databases() WHERE database_name = current_database()').fetchone()[0]
    con.close()
    args = ['finetune', '--base', tiny_open_clip, '--out', str(tmp_path / 'ft'), '--epochs', '1', '--batch-size', '16',
            '--device', 'cpu', '--warehouse', wh]
    assert main(args) == 0
    capsys.readouterr()
    for change, says in ((['--lr', '1e-3'], 'it was trained with lr=1e-05 and this run asks for lr=0.001'),
                         (['--lock', 'text'], "it was trained with lock='none' and this run asks for lock='text'")):
        assert main(args + ['--resume'] + change) == 2
        err = capsys.readouterr().err
        assert err.startswith('error: cannot resume') and says in err and err.count('\n') == 1, err
    other = [a if a != tiny_open_clip else tiny_hf_clip for a in args]
    assert main(other + ['--resume']) == 2
    assert 'it was fine-tuned from open_clip:local-dir:' in capsys.readouterr().err


def test_registered_checkpoints_load_from_anywhere(con, tmp_path, capsys, monkeypatch, tiny_open_clip):
    "A relative --out is recorded as an absolute path, so cron or Metaflow, in another directory, load the model"
    wh = con.execute('SELECT path FROM duckdb_databases() WHERE database_name = current_database()').fetchone()[0]
    con.close()
    monkeypatch.chdir(tmp_path)
    assert main(['finetune', '--base', tiny_open_clip, '--out', 'ft1', '--epochs', '1', '--batch-size', '16',
                 '--device', 'cpu', '--warehouse', wh]) == 0
    with connect(wh, read_only=True) as c:
        spec = c.execute("SELECT spec FROM models WHERE spec LIKE 'ft:%'").fetchone()[0]
    assert spec.startswith(f'ft:{tmp_path.resolve()}/ft1/best-finetune-'), spec
    (tmp_path / 'elsewhere').mkdir()
    monkeypatch.chdir(tmp_path / 'elsewhere')
    assert load_model(spec, device='cpu').spec == spec
    Path(spec[3:]).unlink()  # a registered checkpoint gone: say which, and of which model
    assert main(['score', '--model', spec, '--device', 'cpu', '--warehouse', wh]) == 2
    assert f'checkpoint {spec[3:]} of registered model' in capsys.readouterr().err
