"Test settings: nothing reaches a network or an account, and everything is small."
import os, sys
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')        # a missing hub model fails in 0.02 s instead of retrying for minutes
os.environ['WANDB_MODE'] = 'disabled'
os.environ.setdefault('PLOOMBER_STATS_ENABLED', 'false')
os.environ.setdefault('PLOOMBER_VERSION_CHECK_DISABLED', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

@pytest.fixture
def source(tmp_path):
    "A tiny, valid Fashion-MNIST-format folder (random images, balanced labels)"
    from lookbench.data import make_fixture_source
    return make_fixture_source(tmp_path / 'fmnist', n_train=120, n_test=40)

@pytest.fixture(scope='session')
def lit_towers():
    "The LiT towers, loaded once per session (MiniLM takes seconds to load)"
    from lookbench.models import LitTowers
    return LitTowers()
