"Real loading code, tested on tiny random models; what cannot be had offline fails fast and says what to do."
import json
import time

import open_clip
import pytest
import torch

from lookbench.embed import embed_images
from lookbench.evaluate import run_evaluation
from lookbench.models import load_lit, load_model
from lookbench.testing import TINY_OPEN_CLIP_CFG, fixture_warehouse
from lookbench.warehouse import LookbenchError


@pytest.fixture
def warehouse(tmp_path):
    con = fixture_warehouse(tmp_path, n_train=120, n_test=40, heldout=['Bag', 'Sandal', 'Shirt'])
    yield con
    con.close()


@pytest.fixture(params=['open_clip', 'hf'])
def tiny_model(request, tiny_open_clip, tiny_hf_clip):
    return load_model(tiny_open_clip if request.param == 'open_clip' else tiny_hf_clip, device='cpu')


def test_tiny_clip_backends_run_embed_and_zero_shot(warehouse, tiny_model):
    r = run_evaluation(warehouse, tiny_model, 'test')
    m = r['metrics'].set_index(['class_set', 'metric']).value
    assert {('all', 'top1'), ('heldout', 'top1'), ('seen', 'top1'), ('all', 'linear_probe_top1')} <= set(m.index)
    preds = r['predictions']
    assert len(preds) == 40
    assert m['all', 'top1'] == pytest.approx((preds.pred == preds.label).mean())  # the metric is what was predicted
    # evaluation embedded train, val (calibrated stacking picks its gamma there) and test: nothing is left
    cached = warehouse.execute("SELECT count(DISTINCT key) FROM embeddings WHERE fingerprint = ? AND modality = 'image'",
                               [tiny_model.feature_fingerprint]).fetchone()[0]
    n_split = warehouse.execute("SELECT count(*) FROM splits").fetchone()[0]
    assert cached == n_split
    assert embed_images(warehouse, tiny_model, progress=False)['embedded'] == 0


def test_open_clip_local_checkpoint(tmp_path):
    "An architecture by name with `@/path/weights.pt`, as open_clip users save fine-tunes"
    (tmp_path / 'cfg').mkdir()
    (tmp_path / 'cfg' / 'bench-tiny-vit.json').write_text(json.dumps(TINY_OPEN_CLIP_CFG))
    open_clip.add_model_config(tmp_path / 'cfg')  # the test's own architecture, as a user's config dir would add it
    a = load_model('open_clip:bench-tiny-vit', device='cpu')
    torch.save(a.model.state_dict(), tmp_path / 'tiny.pt')
    b = load_model(f'open_clip:bench-tiny-vit@{tmp_path / "tiny.pt"}', device='cpu')
    texts = ['a red dress', 'a leather bag']
    torch.testing.assert_close(a.encode_texts(texts), b.encode_texts(texts))
    again = load_model(f'open_clip:bench-tiny-vit@{tmp_path / "tiny.pt"}', device='cpu')
    assert b.fingerprint != a.fingerprint and b.fingerprint == again.fingerprint


@pytest.mark.parametrize('spec', ['open_clip:ViT-B-32@laion2b_s34b_b79k', 'open_clip:hf-hub:Marqo/marqo-fashionCLIP',
                                  'hf:patrickjohncyh/fashion-clip'])
def test_uncached_hub_models_fail_fast_with_advice(spec, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    t0 = time.time()
    with pytest.raises(LookbenchError) as e:
        load_model(spec, device='cpu')
    assert time.time() - t0 < 30
    assert repr(spec) in str(e.value) and f'lookbench models fetch {spec}' in str(e.value) and 'its path' in str(e.value)


def test_lit_model_is_honest_about_what_it_is(lit_towers):
    m = load_lit(towers=lit_towers)
    assert 'LiT' in m.name and 'CLIP' not in m.name and 'untrained' in m.name
