"The console command runs every step of the slice on a fixture and prints one summary line per step."
import pytest

from lookbench.cli import main
from lookbench.warehouse import connect


def test_cli_steps_end_to_end(source, tmp_path, capsys):
    wh, heads = str(tmp_path / 'w.duckdb'), str(tmp_path / 'heads.pt')
    steps = [['ingest', 'fashion-mnist', str(source)], ['splits', '--val-pct', '20', '--heldout', 'Bag', '--heldout', 'Sandal'],
             ['embed', '--device', 'cpu'], ['align', '--out', heads, '--epochs', '3', '--batch-size', '32', '--device', 'cpu'],
             ['evaluate', '--model', 'lit', '--model', f'lit:{heads}', '--device', 'cpu']]
    for args in steps:
        assert main(args + ['--warehouse', wh]) == 0, args
        out = capsys.readouterr().out.strip().splitlines()
        assert all(line.startswith(f'{args[0]}: ') for line in out), out
    assert len(out) == 2 and 'heldout=' in out[1]
    with connect(wh, read_only=True) as con:
        kinds = con.execute('SELECT kind, count(*) FROM runs GROUP BY kind ORDER BY kind').fetchall()
        assert kinds == [('align', 1), ('evaluate', 2)]
        assert con.execute("SELECT count(DISTINCT fingerprint) FROM metrics WHERE class_set = 'heldout'").fetchone()[0] == 2
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
