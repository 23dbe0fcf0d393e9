"""JupyterLab opens the project's notebooks: Ploomber's contents manager breaks on Jupyter Server 2's async default;
`make setup` installs jupyter_server_config.json into the venv to fix it."""
import json
import os
import secrets
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import ROOT, BIN


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_until_up(url, tries=120)->bool:
    for _ in range(tries):
        try:
            urllib.request.urlopen(url, timeout=1)
            return True
        except OSError:
            time.sleep(0.5)
    return False


@pytest.fixture
def server(tmp_path):
    port, token = free_port(), secrets.token_hex(8)
    env = {**os.environ, 'JUPYTER_RUNTIME_DIR': str(tmp_path / 'rt'), 'PATH': f"{BIN}:{os.environ['PATH']}"}
    cmd = [str(BIN / 'jupyter'), 'server', '--no-browser', f'--port={port}', '--ip=127.0.0.1', '--allow-root',
           f'--IdentityProvider.token={token}']
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f'http://127.0.0.1:{port}'
    if not wait_until_up(f'{base}/api/status?token={token}'):
        p.kill()
        pytest.fail('jupyter server did not start: ' + p.stdout.read()[-2000:])
    yield base, token
    p.terminate()
    p.wait(20)


def test_server_opens_task_and_library_notebooks(server):
    base, token = server
    for path in ('tasks/ingest.ipynb', 'nbs/08_models.ipynb'):
        with urllib.request.urlopen(f'{base}/api/contents/{path}?token={token}&content=1', timeout=30) as r:
            nb = json.loads(r.read())
        assert r.status == 200 and nb['type'] == 'notebook' and nb['content']['cells'], path


def test_make_lab_runs_as_root():
    "Jupyter refuses root without --allow-root; the Makefile passes it exactly when the user is root"
    p = subprocess.run(['make', '--no-print-directory', '-n', 'lab'], cwd=ROOT, capture_output=True, text=True)
    line = [cmd for cmd in p.stdout.splitlines() if 'jupyter lab' in cmd][0]
    assert ('--allow-root' in line) == (os.geteuid() == 0), line
