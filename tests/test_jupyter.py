"JupyterLab opens the project's notebooks: Ploomber's contents manager breaks on Jupyter Server 2's async default; `make setup` installs jupyter_server_config.json into the venv to fix it."
import json, secrets, socket, subprocess, time, urllib.request, os

import pytest

from conftest import ROOT, BIN


def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port, token = free_port(), secrets.token_hex(8)
    env = {**os.environ, 'JUPYTER_RUNTIME_DIR': str(tmp_path / 'rt'), 'PATH': f"{BIN}:{os.environ['PATH']}"}
    p = subprocess.Popen([str(BIN / 'jupyter'), 'server', '--no-browser', f'--port={port}', '--ip=127.0.0.1', '--allow-root',
                          f'--IdentityProvider.token={token}'], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f'http://127.0.0.1:{port}'
    for _ in range(120):
        try: urllib.request.urlopen(f'{base}/api/status?token={token}', timeout=1); break
        except OSError: time.sleep(0.5)
    else:
        p.kill(); pytest.fail('jupyter server did not start: ' + p.stdout.read()[-2000:])
    yield base, token
    p.terminate(); p.wait(20)


def test_server_opens_task_and_library_notebooks(server):
    base, token = server
    for path in ('tasks/ingest.ipynb', 'nbs/03_models.ipynb'):
        with urllib.request.urlopen(f'{base}/api/contents/{path}?token={token}&content=1', timeout=30) as r:
            nb = json.loads(r.read())
        assert r.status == 200 and nb['type'] == 'notebook' and nb['content']['cells'], path
