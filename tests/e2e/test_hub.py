"""The hub backends end to end, against a hub on this machine: `lookbench models check` says what is missing and where
it comes from, `lookbench models fetch` fills the Hugging Face cache, and then both backends load with the network
off, through the same loading code a real hub model takes."""
import os
import subprocess

import pytest

from conftest import BIN
from lookbench.testing import fake_hub, make_tiny_hf_clip, make_tiny_open_clip

REPOS = {'hf': 'lookbench-test/tiny-clip', 'open_clip': 'lookbench-test/tiny-open-clip'}


@pytest.fixture
def hub(tmp_path):
    server, url = fake_hub({REPOS['hf']: make_tiny_hf_clip(tmp_path / 'hf'),
                            REPOS['open_clip']: make_tiny_open_clip(tmp_path / 'oc')})
    yield url, tmp_path / 'hf-home'
    server.shutdown()


def lookbench(*args, offline='1', endpoint='', home=''):
    env = {**os.environ, 'HF_HUB_OFFLINE': offline, 'HF_ENDPOINT': endpoint, 'HF_HOME': str(home),
           'WANDB_MODE': 'disabled', 'HF_HUB_DISABLE_PROGRESS_BARS': '1'}
    return subprocess.run([str(BIN / 'lookbench'), *args], env=env, capture_output=True, text=True, timeout=300)


LOAD = ("import sys; from lookbench.models import load_model; m = load_model(sys.argv[1], 'cpu'); "
        "print(m.encode_texts(['a red dress']).shape[-1], m.describe())")


def test_check_fetch_then_load_offline(hub):
    url, home = hub
    specs = [f"hf:{REPOS['hf']}", f"open_clip:hf-hub:{REPOS['open_clip']}"]
    before = lookbench('models', 'check', *specs, endpoint=url, home=home)
    assert before.returncode == 1, before.stdout + before.stderr
    lines = before.stdout.strip().splitlines()
    assert len(lines) == 2 and all('NOT on this machine' in line and 'models fetch' in line for line in lines), lines
    refused = lookbench('models', 'fetch', specs[0], endpoint=url, home=home)  # offline: one line, no attempt
    assert refused.returncode == 2 and refused.stderr.count('\n') == 1 and 'HF_HUB_OFFLINE=1' in refused.stderr
    fetched = lookbench('models', 'fetch', *specs, offline='0', endpoint=url, home=home)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    after = lookbench('models', 'check', *specs, endpoint=url, home=home)
    assert after.returncode == 0 and after.stdout.count(': on this machine: ') == 2, after.stdout
    for spec in specs:  # the network is off again; a reachable hub must not matter
        env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_HOME': str(home), 'HF_ENDPOINT': 'http://127.0.0.1:9'}
        p = subprocess.run([str(BIN / 'python'), '-c', LOAD, spec], env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0 and p.stdout.startswith('32 '), p.stdout + p.stderr[-2000:]


def test_a_repo_the_hub_lacks_is_one_line(hub):
    url, home = hub
    p = lookbench('models', 'fetch', 'hf:lookbench-test/no-such-model', offline='0', endpoint=url, home=home)
    assert p.returncode == 2 and p.stderr.startswith('error: hf:lookbench-test/no-such-model: fetching'), p.stderr
    assert p.stderr.count('\n') == 1
