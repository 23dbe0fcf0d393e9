"""Test settings: nothing reaches a network or an account, and everything is small.

Two layers: `tests/*.py` are fast (seconds each: `make test-fast`); `tests/e2e/` runs whole pipeline builds, servers
and subprocesses (minutes: `make test` runs both). Tests under `tests/e2e/` are marked `slow` here.
"""
import os
import sys
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')  # a missing hub model fails in 0.02 s instead of retrying for minutes
os.environ['WANDB_MODE'] = 'disabled'
os.environ.setdefault('PLOOMBER_STATS_ENABLED', 'false')
os.environ.setdefault('PLOOMBER_VERSION_CHECK_DISABLED', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

import pytest  # noqa: E402 -- after the environment is set

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if 'e2e' in item.path.parts:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def source(tmp_path):
    "A tiny, valid Fashion-MNIST-format folder (random images, balanced labels)"
    from lookbench.testing import make_fixture_source
    return make_fixture_source(tmp_path / 'fmnist', n_train=120, n_test=40)


@pytest.fixture(scope='session')
def lit_towers():
    "The LiT towers, loaded once per session (MiniLM takes seconds to load)"
    from lookbench.models import LitTowers
    return LitTowers()


@pytest.fixture(scope='session')
def tiny_open_clip(tmp_path_factory):
    "Spec of a tiny random open_clip model saved as a `local-dir` folder (loads in any process, like a real checkpoint)"
    from lookbench.testing import make_tiny_open_clip
    return f"open_clip:local-dir:{make_tiny_open_clip(tmp_path_factory.mktemp('tiny-open-clip'))}"


@pytest.fixture(scope='session')
def tiny_hf_clip(tmp_path_factory):
    "Spec of a tiny random `transformers` CLIPModel folder"
    from lookbench.testing import make_tiny_hf_clip
    return f"hf:{make_tiny_hf_clip(tmp_path_factory.mktemp('tiny-hf-clip'))}"


@pytest.fixture
def scoring_catalog(tmp_path, tiny_open_clip):
    "A fixture warehouse (160 items) whose promoted model is the tiny open_clip model"
    from lookbench.models import load_model
    from lookbench.registry import promote, register_model
    from lookbench.testing import fixture_warehouse
    with fixture_warehouse(tmp_path, n_train=120, n_test=40, val_pct=20, heldout=['Bag']) as con:
        fp = load_model(tiny_open_clip, 'cpu').fingerprint
        register_model(con, tiny_open_clip, fp, 'tiny', '', 'test', 'val_top1', 0.1, {})
        promote(con, fp)
    return dict(warehouse=str(tmp_path / 'w.duckdb'), spec=tiny_open_clip, model_id=fp, items=160)
