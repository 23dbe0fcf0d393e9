"The batch job across a hard kill, and on Metaflow started as a user starts it (`make flow`)."
import os
import signal
import subprocess
import sys

from conftest import ROOT
from lookbench.cli import main
from lookbench.warehouse import connect

KILLER = '''
import os, signal, sys
from lookbench.warehouse import connect
from lookbench.score import ScoreConfig, score
def die(k, n):
    if k == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # no exception handler, no rollback, no clean close
with connect(sys.argv[1]) as con:
    score(con, 'promoted', ScoreConfig(chunk_size=16, reference_size=40), device='cpu', progress=False, on_chunk=die)
'''


def predictions(wh):
    with connect(wh, read_only=True) as con:
        sql = "SELECT count(*), count(DISTINCT item_id) FROM predictions WHERE label_set = 'label'"
        return con.execute(sql).fetchone()


def user_env(**extra):
    "The environment of a user at a shell: no test settings, no user name variables (root in a container has none)"
    env = {k: v for k, v in os.environ.items() if k not in ('USERNAME', 'METAFLOW_USER', 'LOGNAME', 'USER')}
    return env | dict(WANDB_MODE='disabled', HF_HUB_OFFLINE='1', PYTHONPATH=str(ROOT / 'src')) | extra


def test_a_hard_killed_job_rerun_scores_every_item_exactly_once(scoring_catalog):
    wh = scoring_catalog['warehouse']
    p = subprocess.run([sys.executable, '-c', KILLER, wh], env=user_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    assert predictions(wh) == (48, 48)  # three chunks of 16 committed, nothing of the fourth
    assert main(['score', '--chunk-size', '16', '--device', 'cpu', '--no-progress', '-w', wh]) == 0
    assert predictions(wh) == (160, 160)
    with connect(wh, read_only=True) as con:
        status = con.execute("SELECT status, count(*) FROM runs WHERE kind = 'score' GROUP BY 1 ORDER BY 1").fetchall()
        assert status == [('finished', 1), ('killed', 1)]  # the rerun found the killed run's process gone
        runs, n = con.execute("SELECT batch_runs, n_items FROM drift WHERE label_set = 'label'").fetchone()
        assert len(runs) == 2 and n == 160  # the killed run's items were drift-checked with the rerun's


def test_make_flow_scores_in_two_shards_then_finds_nothing_new(scoring_catalog, tmp_path):
    "As a user runs it: `make flow`, with no USERNAME (Metaflow refuses to start without a user name it accepts)"
    staging = tmp_path / 'staging'
    cmd = ['make', '--no-print-directory', 'flow', f"WAREHOUSE={scoring_catalog['warehouse']}",
           f'FLOW_ARGS=--staging {staging} --device cpu']
    for expected in ('160 items scored, 0 quarantined', 'nothing new to score'):
        p = subprocess.run(cmd, env=user_env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0 and expected in p.stdout + p.stderr, (p.stdout + p.stderr)[-3000:]
    assert predictions(scoring_catalog['warehouse']) == (160, 160)
    assert not staging.exists() or not any(staging.iterdir())  # staged Parquet removed once loaded
    with connect(scoring_catalog['warehouse'], read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs WHERE kind = 'score' AND status = 'finished'").fetchone()[0] == 1


SLOW_SCORER = '''
import sys, time
from lookbench.score import ScoreConfig, score
def pause(k, n):
    print(f'chunk {k}', flush=True)
    time.sleep(1.0)  # stands in for the forward pass of a big chunk, during which the file is free
r = score(sys.argv[1], 'promoted', ScoreConfig(chunk_size=16, reference_size=40), device='cpu', progress=False,
          on_chunk=pause)
print('scored', r['scored'], flush=True)
'''


def test_search_gets_in_while_the_batch_job_runs(scoring_catalog, capsys):
    "The batch job holds the file only per chunk: a search from another process answers while the job goes on"
    wh = scoring_catalog['warehouse']
    job = subprocess.Popen([sys.executable, '-c', SLOW_SCORER, wh], env=user_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    assert job.stdout.readline().strip() == 'chunk 1', job.stderr.read()[-2000:]
    assert main(['search', 'ankle boot', '-k', '3', '--device', 'cpu', '-w', wh]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 4
    assert job.poll() is None  # the job was still running when the search answered
    out, err = job.communicate(timeout=300)
    assert job.returncode == 0 and 'scored 160' in out, err[-2000:]
