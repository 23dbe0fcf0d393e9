"""The console command runs every step of the slice on a fixture, prints one summary line per step, and takes its
defaults from the library's configs."""
import pytest
import typer

from lookbench.cli import app, main
from lookbench.warehouse import connect


@pytest.mark.slow  # seconds of subprocesses or waiting: the full layer runs it, the fast one stays under 2 minutes
def test_cli_steps_end_to_end(source, tmp_path, capsys):
    wh, models = str(tmp_path / 'w.duckdb'), str(tmp_path / 'models')
    steps = [['ingest', 'fashion-mnist', str(source)],
             ['splits', '--val-pct', '20', '--heldout', 'Bag', '--heldout', 'Sandal'],
             ['embed', '--device', 'cpu'],
             ['align', '--out', models, '--epochs', '3', '--batch-size', '32', '--device', 'cpu'],
             ['evaluate', '--model', 'lit', '--model', 'promoted', '--device', 'cpu']]
    for args in steps:
        assert main(args + ['--warehouse', wh]) == 0, args
        out = capsys.readouterr().out.strip().splitlines()
        assert all(line.startswith(f'{args[0]}: ') for line in out), out
    assert len(out) == 2 and 'heldout=' in out[1] and out[1].startswith('evaluate: promoted on test')
    with connect(wh, read_only=True) as con:
        kinds = con.execute('SELECT kind, count(*) FROM runs GROUP BY kind ORDER BY kind').fetchall()
        assert kinds == [('align', 1), ('evaluate', 2)]
        sql = "SELECT count(DISTINCT fingerprint) FROM metrics WHERE class_set = 'heldout'"
        heldout_runs = con.execute(sql).fetchone()
        assert heldout_runs == (2,)
    # rerunning embed finds nothing new to embed
    assert main(['embed', '--device', 'cpu', '--warehouse', wh]) == 0
    assert 'embed: 0 images and 0 texts' in capsys.readouterr().out


def test_cli_usage_error_is_not_a_traceback(capsys):
    assert main(['evaluate', '--no-such-flag']) == 2
    assert 'No such option' in capsys.readouterr().err


def test_cli_needs_earlier_steps(tmp_path, capsys):
    wh = str(tmp_path / 'w.duckdb')
    connect(wh).close()
    assert main(['splits', '--warehouse', wh]) == 2
    assert 'table `items` is missing' in capsys.readouterr().err


@pytest.mark.parametrize('command, config, names', [
    ('finetune', 'lookbench.finetune:FinetuneConfig',
     ['epochs', 'batch_size', 'accum_steps', 'lr', 'lock', 'unlock_last', 'max_train']),
    ('align', 'lookbench.align:AlignConfig', ['epochs', 'batch_size', 'lr']),
    ('score', 'lookbench.score:ScoreConfig', ['limit', 'batch_size', 'chunk_size', 'reuse_features']),
    ('ingest', 'lookbench.catalog:QualityConfig', ['max_quarantine_pct', 'rare_classes', 'min_class_count', 'image_root',
                                                   'allow_private_urls', 'max_caption_chars'])])
def test_cli_defaults_are_the_configs(command, config, names):
    "The command line and a notebook that builds the config run the same (they once disagreed on lr and unlock_last)"
    import importlib
    module, cls = config.split(':')
    defaults = getattr(importlib.import_module(module), cls)()
    params = {p.name: p.default for p in typer.main.get_command(app).commands[command].params}
    for name in names:
        assert params[name] == getattr(defaults, name), (command, name)
