"""The service in process: the token, upload caps, JSON errors, and the batching queue."""
import asyncio

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookbench.serve import ServeConfig, create_app
from lookbench.testing import fixture_image, png_bytes_of, scored_warehouse


@pytest.fixture(scope='module')
def scored(tmp_path_factory):
    return scored_warehouse(tmp_path_factory.mktemp('served'))


def app_for(scored, **cfg):
    return create_app(scored['warehouse'], cfg=ServeConfig(poll_s=3600, **cfg), log=lambda m: None)


def search_once(client):
    body = client.get('/search', params={'q': 'red shirt', 'k': 3}).json()
    return body['request_id'], body['results'][0]['item_id']


def test_the_token_guards_feedback_and_admin_routes(scored):
    with TestClient(app_for(scored, token='s3cret')) as client:
        rid, item = search_once(client)  # reading needs no token
        fb = dict(request_id=rid, item_id=item, kind='click')
        for headers in ({}, {'Authorization': 'Bearer wrong'}, {'Authorization': 's3cret'}):
            r = client.post('/feedback', json=fb, headers=headers)
            assert r.status_code == 401 and 'bearer token' in r.json()['error'] and r.json()['request_id']
        assert client.post('/feedback', json=fb, headers={'Authorization': 'Bearer s3cret'}).status_code == 200
        assert client.post('/admin/reload').status_code == 401
        r = client.post('/admin/reload', headers={'Authorization': 'Bearer s3cret'})
        assert r.status_code == 200 and r.json()['swapped'] is False


def upload(client, blob, name='x.png'):
    return client.post('/classify', files={'file': (name, blob, 'application/octet-stream')})


def test_uploads_are_capped_in_bytes_and_pixels_and_must_be_images(scored):
    with TestClient(app_for(scored, max_upload_bytes=50_000, max_pixels=1_000_000)) as client:
        ok = png_bytes_of(fixture_image(3, 'Shirts', 'Red'))
        assert upload(client, ok).status_code == 200
        noise = png_bytes_of(Image.fromarray(np.random.default_rng(0).integers(0, 255, (150, 150, 3), np.uint8)))
        assert 50_000 < len(noise) < 50_000 + 65_536  # over the cap, under the declared-length shortcut
        for blob, status, says in [(noise, 413, '50,000-byte cap'), (b'x' * 300_000, 413, 'over the 50,000-byte'),
                                   (png_bytes_of(Image.new('L', (2000, 2000))), 413, '1,000,000 guard'),
                                   (b'%PDF-1.4 not an image', 415, 'not a usable image'),
                                   (ok[:len(ok) // 2], 415, 'not a usable image')]:
            r = upload(client, blob)
            assert r.status_code == status and says in r.json()['error'], (status, r.json())
            assert 'Traceback' not in r.text and r.json()['request_id'] == r.headers['x-request-id']


def test_every_error_is_json_with_the_request_id_and_no_stack_trace(scored):
    app = app_for(scored)
    with TestClient(app, raise_server_exceptions=False) as client:
        cases = [(client.get('/search', params={'q': 'x', 'k': 101}), 422, 'k'),
                 (client.get('/search', params={'q': 'x' * 1001}), 422, 'q'),
                 (client.get('/similar/no-such-item'), 404, "no product 'no-such-item'"),
                 (client.get('/image/../../etc/passwd'), 404, ''),
                 (client.post('/feedback', json={'kind': 'click'}), 422, 'request_id'),
                 (client.delete('/search'), 405, '')]
        svc = app.state.service
        svc.served.ann.query = lambda *a, **k: 1 / 0  # a bug in a handler
        cases.append((client.get('/search', params={'q': 'red shirt'}), 500, 'internal error'))
        for r, status, says in cases:
            body = r.json()
            assert r.status_code == status and says in body['error'], (status, r.status_code, body)
            assert body['request_id'] == r.headers['x-request-id'] and len(body['request_id']) == 16, body
            assert 'Traceback' not in r.text and 'ZeroDivisionError' not in r.text


async def classify_all(app, item_ids):
    "Every item classified at once, through the app's own batching queue"
    svc = app.state.service
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url='http://lookbench') as client:
        rs = await asyncio.gather(*[client.post('/classify', data={'item_id': i, 'top_k': 3}) for i in item_ids])
    return [r.json() for r in rs if r.status_code == 200], svc.images.sizes


def test_concurrent_classify_requests_share_a_forward_pass_and_get_their_own_answers(scored):
    app = app_for(scored, max_wait_ms=50)
    ids = [r['item_id'] for r in TestClient(app).get('/search', params={'q': 'shoe', 'k': 24}).json()['results']]
    batched, sizes = asyncio.run(classify_all(app, ids))
    alone, alone_sizes = asyncio.run(classify_all(app_for(scored, max_batch=1), ids))
    assert len(batched) == len(alone) == 24
    assert max(sizes) > 1 and max(alone_sizes) == 1, (sizes, alone_sizes)
    for a, b in zip(batched, alone):  # each request gets its own item's answer, batched or not
        assert a['item_id'] == b['item_id']
        for x, y in zip(a['predictions']['label'], b['predictions']['label']):
            assert x['label'] == y['label'] and x['prob'] == pytest.approx(y['prob'], abs=1e-3)
