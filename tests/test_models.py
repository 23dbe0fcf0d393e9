"Real loading code, tested on tiny random models; what cannot be had offline fails fast and says what to do."
import time

import pytest
import torch

from lookbench.data import ingest_fashion_mnist, assign_splits
from lookbench.evaluate import run_evaluation
from lookbench.embed import embed_images
from lookbench.models import load_model, register_tiny_open_clip, make_tiny_hf_clip
from lookbench.warehouse import LookbenchError, connect


@pytest.fixture
def warehouse(source, tmp_path):
    con = connect(tmp_path / 'w.duckdb'); ingest_fashion_mnist(con, source)
    assign_splits(con, heldout_classes=['Bag', 'Sandal', 'Shirt'])
    yield con
    con.close()


@pytest.fixture(params=['open_clip', 'hf'])
def tiny_model(request, tmp_path):
    if request.param == 'open_clip': return load_model(f'open_clip:{register_tiny_open_clip()}', device='cpu')
    return load_model(f'hf:{make_tiny_hf_clip(tmp_path / "tiny-hf")}', device='cpu')


def test_tiny_clip_backends_run_embed_and_zero_shot(warehouse, tiny_model):
    r = run_evaluation(warehouse, tiny_model, 'test')
    m = r['metrics'].set_index(['class_set', 'metric']).value
    assert {('all', 'top1'), ('heldout', 'top1'), ('seen', 'top1'), ('all', 'linear_probe_top1')} <= set(m.index)
    assert m.between(0, 1).all()
    assert len(r['predictions']) == 40
    # evaluation embedded exactly the train and test items; val is left, and then nothing is
    n_val = warehouse.execute("SELECT count(*) FROM splits WHERE split = 'val'").fetchone()[0]
    assert n_val > 0 and embed_images(warehouse, tiny_model, progress=False)['embedded'] == n_val
    assert embed_images(warehouse, tiny_model, progress=False)['embedded'] == 0


def test_open_clip_local_checkpoint(tmp_path):
    name = register_tiny_open_clip()
    a = load_model(f'open_clip:{name}', device='cpu')
    torch.save(a.model.state_dict(), tmp_path / 'tiny.pt')
    b = load_model(f'open_clip:{name}@{tmp_path / "tiny.pt"}', device='cpu')
    texts = ['a red dress', 'a leather bag']
    torch.testing.assert_close(a.encode_texts(texts), b.encode_texts(texts))
    assert b.fingerprint != a.fingerprint and b.fingerprint == load_model(f'open_clip:{name}@{tmp_path / "tiny.pt"}', device='cpu').fingerprint


@pytest.mark.parametrize('spec', ['open_clip:ViT-B-32@laion2b_s34b_b79k', 'open_clip:hf-hub:Marqo/marqo-fashionCLIP',
                                  'hf:patrickjohncyh/fashion-clip'])
def test_uncached_hub_models_fail_fast_with_advice(spec, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    t0 = time.time()
    with pytest.raises(LookbenchError) as e: load_model(spec, device='cpu')
    assert time.time() - t0 < 30
    assert repr(spec) in str(e.value) and 'local path' in str(e.value)


def test_lit_model_is_honest_about_what_it_is(lit_towers):
    from lookbench.models import load_lit
    m = load_lit(towers=lit_towers)
    assert 'LiT' in m.name and 'CLIP' not in m.name and 'untrained' in m.name
