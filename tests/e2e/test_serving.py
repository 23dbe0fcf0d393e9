"""The service for real: a model swap under load while another process writes the warehouse, feedback reaching the
next fine-tune, onnxruntime, kill -9 after acknowledged feedback, and the page in headless Chromium."""
import asyncio
import json
import os
import shutil
import signal
import subprocess

import httpx
import pytest

from conftest import BIN, ROOT
from lookbench.feedback import feedback_dir, ingest_feedback
from lookbench.finetune import FinetuneConfig, PairCache, run_finetune
from lookbench.models import load_model
from lookbench.registry import promote, register_model
from lookbench.score import ScoreConfig, score
from lookbench.serve import ServeConfig, _poll, create_app
from lookbench.testing import fixture_image, make_tiny_open_clip, png_bytes_of, scored_warehouse, start_server
from lookbench.warehouse import connect


def env():
    return {**os.environ, 'WANDB_MODE': 'disabled', 'HF_HUB_OFFLINE': '1', 'PATH': f"{BIN}:{os.environ['PATH']}"}


def second_model(warehouse, folder):
    "Another tiny model, registered, promoted and scored: what a fine-tune plus a batch job would leave behind"
    spec = f'open_clip:local-dir:{make_tiny_open_clip(folder, seed=1)}'
    with connect(warehouse) as con:  # the writer lock: the service must not be holding the file
        fp = load_model(spec, 'cpu').fingerprint
        register_model(con, spec, fp, 'tiny-2', '', 'test', 'val_top1', 0.9, {})
        assert promote(con, fp)['promoted']
        score(con, 'promoted', ScoreConfig(reference_size=20), device='cpu', progress=False)
    return fp


async def swap_under_load(app, warehouse, folder):
    svc = app.state.service
    poller = asyncio.create_task(_poll(svc))
    before, statuses, served, stop = svc.served.version[0], [], set(), asyncio.Event()
    image = png_bytes_of(fixture_image(2, 'Jeans', 'Navy Blue'))

    async def client_loop(client, i):
        while not stop.is_set():
            r = await (client.get('/search', params={'q': f'navy jeans {i % 3}', 'k': 5}) if i % 2 else
                       client.post('/classify', files={'file': ('a.png', image, 'image/png')}))
            statuses.append(r.status_code)
            if r.status_code == 200:
                served.add(r.json()['model_id'])
            await asyncio.sleep(0)  # a cached search never suspends in process; a network client would yield here

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url='http://lookbench') as client:
        load = [asyncio.create_task(client_loop(client, i)) for i in range(8)]
        after = await asyncio.get_running_loop().run_in_executor(None, second_model, warehouse, folder)
        for _ in range(600):
            if svc.served.version[0] == after:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # keep the load on the new model for a while
        stop.set()
        await asyncio.gather(*load)
    poller.cancel()
    return before, after, statuses, served, svc.swaps


def test_the_promoted_model_swaps_in_under_load_without_a_failed_request(tmp_path):
    wh = scored_warehouse(tmp_path / 'w')
    app = create_app(wh['warehouse'], cfg=ServeConfig(poll_s=0.3), log=lambda m: None)
    before, after, statuses, served, swaps = asyncio.run(swap_under_load(app, wh['warehouse'], tmp_path / 'oc2'))
    assert before != after and swaps == 1
    assert served == {before, after}, served  # answers came from both models, in order
    assert len(statuses) > 50 and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}


def test_feedback_from_the_service_reaches_the_next_finetune(tmp_path):
    wh = scored_warehouse(tmp_path / 'w')
    with connect(wh['warehouse'], read_only=True) as con:
        train = {r[0] for r in con.execute("SELECT item_id FROM splits WHERE split = 'train' AND NOT heldout").fetchall()}
        other = con.execute("SELECT label FROM labels ORDER BY label").fetchall()[0][0]
    from fastapi.testclient import TestClient
    with TestClient(create_app(wh['warehouse'], cfg=ServeConfig(poll_s=3600), log=lambda m: None)) as client:
        found = client.get('/search', params={'q': 'striped summer jeans', 'k': 50}).json()
        liked = next(r['item_id'] for r in found['results'] if r['item_id'] in train)
        assert client.post('/feedback', json=dict(request_id=found['request_id'], item_id=liked,
                                                  kind='relevant')).status_code == 200
        judged = client.post('/classify', data={'item_id': liked}).json()
        assert client.post('/feedback', json=dict(request_id=judged['request_id'], item_id=liked,
                                                  kind='correct_label', label=other)).status_code == 200
    with connect(wh['warehouse']) as con:
        r = ingest_feedback(con, feedback_dir(wh['warehouse']))
        assert (r['feedback'], r['quarantined']) == (2, 0)
        cache = PairCache(con, load_model(wh['spec'], 'cpu'), 'train', feedback_pct=0)
        assert cache.feedback == 2 and 'striped summer jeans' in cache.captions
    cfg = FinetuneConfig(epochs=1, batch_size=16, lr=1e-4, use_feedback=True, feedback_holdout_pct=0)
    result = run_finetune(wh['warehouse'], wh['spec'], cfg, out_dir=tmp_path / 'ft', device='cpu', alphas=(1.0,))
    with connect(wh['warehouse'], read_only=True) as con:
        config = json.loads(con.execute('SELECT config FROM runs WHERE run_id = ?', [result['run_id']]).fetchone()[0])
    assert config['feedback_pairs'] == 2 and config['finetune']['use_feedback'] is True


def test_onnx_runtime_serves_the_same_answers_as_torch(tmp_path):
    wh = scored_warehouse(tmp_path / 'w')
    from fastapi.testclient import TestClient
    answers = {}
    for runtime in ('torch', 'onnx'):
        with TestClient(create_app(wh['warehouse'], cfg=ServeConfig(poll_s=3600, runtime=runtime),
                                   log=lambda m: None)) as client:
            assert client.get('/model').json()['runtime'] == runtime
            found = client.get('/search', params={'q': 'red shirt', 'k': 5}).json()['results']
            labels = client.post('/classify', data={'item_id': 'fmnist-test-00000', 'top_k': 50}).json()['predictions']['label']
            answers[runtime] = dict(hits={r['item_id']: r['score'] for r in found},
                                    probs={p['label']: p['prob'] for p in labels})
    # The two runtimes sum in other orders (rounding: ~1e-6), so the same answers means the same scores to 1e-4, and
    # the same ranking except where two products' scores are within that of each other (a tie either may break).
    torch_hits, onnx_hits = answers['torch']['hits'], answers['onnx']['hits']
    assert list(onnx_hits.values()) == pytest.approx(list(torch_hits.values()), abs=1e-4)
    for item, value in onnx_hits.items():
        assert item in torch_hits or value <= min(torch_hits.values()) + 1e-4, (item, torch_hits)
    assert answers['onnx']['probs'] == pytest.approx(answers['torch']['probs'], abs=1e-4)


def test_acknowledged_feedback_survives_kill_9_and_is_ingested_once(tmp_path):
    wh = scored_warehouse(tmp_path / 'w')
    server, url = start_server(wh['warehouse'], '--device', 'cpu')
    try:
        found = httpx.get(f'{url}/search', params={'q': 'black watch', 'k': 10}).json()
        acked = [httpx.post(f'{url}/feedback', json=dict(request_id=found['request_id'], item_id=r['item_id'],
                                                         kind='click')) for r in found['results']]
        assert all(r.status_code == 200 for r in acked)
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # no shutdown, no flush on exit: only what was fsynced counts
        server.wait(30)
    p = subprocess.run([str(BIN / 'lookbench'), 'feedback', 'ingest', '--warehouse', wh['warehouse']], env=env(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and '1 new answers, 10 new feedback, 0 quarantined' in p.stdout, p.stdout + p.stderr
    again = subprocess.run([str(BIN / 'lookbench'), 'feedback', 'ingest', '--warehouse', wh['warehouse']],
                           env=env(), capture_output=True, text=True, timeout=120)
    assert '0 new answers, 0 new feedback, 0 quarantined' in again.stdout, again.stdout
    with connect(wh['warehouse'], read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT event_id) FROM feedback").fetchone() == (10, 10)


@pytest.mark.skipif(not shutil.which('chromium'), reason='needs the chromium package (apt install chromium)')
def test_the_page_searches_takes_feedback_and_classifies_in_a_real_browser(tmp_path):
    from playwright.sync_api import sync_playwright
    wh = scored_warehouse(tmp_path / 'w')
    server, url = start_server(wh['warehouse'], '--device', 'cpu')
    shot = ROOT / 'reports' / 'serve-page.png'
    upload = tmp_path / 'jeans.png'
    upload.write_bytes(png_bytes_of(fixture_image(4, 'Jeans', 'Navy Blue', size=96)))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which('chromium'), args=['--no-sandbox'])
            page = browser.new_page(viewport={'width': 1100, 'height': 900})
            page.goto(url)
            page.wait_for_function("document.getElementById('model').textContent.includes('products')")
            page.fill('#q', 'navy blue jeans')
            page.click('#search button')
            page.wait_for_selector('.card img')
            assert page.locator('.card').count() == 24
            page.locator('.card .up').first.click()
            page.wait_for_function("document.getElementById('status').textContent.startsWith('thanks: relevant')")
            page.locator('.card .down').nth(1).click()
            page.wait_for_function("document.getElementById('status').textContent.startsWith('thanks: irrelevant')")
            page.set_input_files('#file', str(upload))
            page.click('#classify button')
            page.wait_for_selector('#labels table tr')
            assert 'label' in page.inner_text('#labels')
            shot.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    assert shot.stat().st_size > 20_000
    with connect(wh['warehouse']) as con:
        r = ingest_feedback(con, feedback_dir(wh['warehouse']))
        counted = dict(con.execute('SELECT kind, count(*) FROM feedback GROUP BY kind').fetchall())
    assert r['quarantined'] == 0 and counted == {'relevant': 1, 'irrelevant': 1}, (r, counted)
