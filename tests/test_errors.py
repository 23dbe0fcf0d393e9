"""Every user error is one `error:` line and exit status 2, never a traceback; a damaged warehouse never passes for an
empty one; a warehouse held by another process is waited for, then named with its holder."""
import os
import shutil
import subprocess
import sys

import pytest

from lookbench.cli import main


def run(capsys, *args):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_error_line(rc, err):
    return rc == 2 and err.startswith('error: ') and err.count('\n') == 1


@pytest.mark.parametrize('args, says', [
    (['search', 'dress', '-k', '0'], "Invalid value for '-k'"),
    (['search', 'dress', '-k', '-1'], "Invalid value for '-k'"),
    (['similar', 'fmnist-test-00001', '-k', '0'], "Invalid value for '-k'"),
    (['score', '--chunk-size', '0'], "Invalid value for '--chunk-size'"),
    (['score', '--limit', '-1'], "Invalid value for '--limit'"),
    (['score', '--batch-size', '0'], "Invalid value for '--batch-size'"),
    (['search', '   '], 'the search query is empty'),
    (['score', '--model', 'lit:/etc/passwd', '--device', 'cpu'], '/etc/passwd is not a LiT heads checkpoint'),
    (['evaluate', '--model', 'ft:/etc/hostname', '--device', 'cpu'], '/etc/hostname is not a fine-tuning checkpoint'),
    (['no-such-command'], "No such command 'no-such-command'")])
def test_bad_options_are_one_line(scoring_catalog, capsys, args, says):
    rc, out, err = run(capsys, *args, '--warehouse', scoring_catalog['warehouse'])
    assert one_error_line(rc, err) and says in err, err


@pytest.mark.parametrize('damage', ['garbage', 'truncated', 'garbage in the middle'])
@pytest.mark.parametrize('command', [['score', '--device', 'cpu', '--no-progress'], ['search', 'dress'],
                                     ['similar', 'fmnist-test-00001']])
def test_a_damaged_warehouse_is_never_an_empty_one(scoring_catalog, tmp_path, capsys, damage, command):
    wh = tmp_path / 'damaged.duckdb'
    shutil.copy(scoring_catalog['warehouse'], wh)
    size = wh.stat().st_size
    with open(wh, 'r+b') as f:
        if damage == 'garbage':
            f.write(os.urandom(size))
        if damage == 'truncated':
            f.truncate(size // 2)
        if damage == 'garbage in the middle':  # the header and catalog intact, the table data not
            f.seek(size // 4)
            f.write(os.urandom(size // 2))
    rc, out, err = run(capsys, *command, '--warehouse', wh)
    assert one_error_line(rc, err) and f'warehouse {wh} cannot be read' in err, (rc, out, err)
    assert 'nothing new' not in out


HOLD = '''
import sys, time
from lookbench.warehouse import connect
con = connect(sys.argv[1])
print('held', flush=True)
time.sleep(float(sys.argv[2]))
'''


@pytest.mark.slow  # seconds of subprocesses or waiting: the full layer runs it, the fast one stays under 2 minutes
def test_a_held_warehouse_is_waited_for_then_named(scoring_catalog, capsys, monkeypatch):
    wh = scoring_catalog['warehouse']
    holder = subprocess.Popen([sys.executable, '-c', HOLD, wh, '4'], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == 'held'
    monkeypatch.setenv('LOOKBENCH_LOCK_WAIT', '1')
    rc, out, err = run(capsys, 'score', '--device', 'cpu', '--no-progress', '--warehouse', wh)
    assert one_error_line(rc, err) and f'(PID {holder.pid})' in err and 'LOOKBENCH_LOCK_WAIT' in err, err
    monkeypatch.setenv('LOOKBENCH_LOCK_WAIT', '30')  # long enough for the holder to finish: then the job runs
    rc, out, err = run(capsys, 'score', '--device', 'cpu', '--no-progress', '--warehouse', wh)
    assert rc == 0 and 'items scored' in out, err
    holder.wait()
