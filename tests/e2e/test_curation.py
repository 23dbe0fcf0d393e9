"""The curation loop: the page in a real browser records a correction durably (a kill -9 after the 200 loses
nothing), it is ingested exactly once, the next steps read the corrected label and say so in their lineage, and the
routes refuse what the catalog cannot take in JSON."""
import os
import shutil
import signal

import pytest

from conftest import ROOT
from lookbench.align import AlignConfig, align_model
from lookbench.catalog import QualityConfig, ingest_catalog
from lookbench.curate import analyse_catalog
from lookbench.embed import embed_images, embed_texts
from lookbench.feedback import feedback_dir, ingest_feedback
from lookbench.models import load_model
from lookbench.score import ScoreConfig, score
from lookbench.serve import ServeConfig, create_app
from lookbench.splits import assign_splits, data_snapshot, split_items
from lookbench.testing import make_curation_fixture, start_server
from lookbench.warehouse import connect

TOKEN = 'curator-s3cret'


@pytest.fixture(scope='module')
def curated(tmp_path_factory):
    "The planted catalog: ingested, split, embedded, aligned (LiT, promoted), scored and analysed, as a build does"
    tmp = tmp_path_factory.mktemp('curation')
    path, planted = make_curation_fixture(tmp / 'catalog')
    warehouse = tmp / 'w.duckdb'
    with connect(warehouse) as con:
        ingest_catalog(con, 'manifest', path, cfg=QualityConfig(max_quarantine_pct=100), progress=False,
                       **planted['columns'])
        assign_splits(con, 20, [])
        lit = load_model('lit', 'cpu')
        embed_images(con, lit, progress=False)
        embed_texts(con, lit, [r[0] for r in con.execute('SELECT DISTINCT caption FROM items').fetchall()])
        align_model(con, lit, tmp / 'models', AlignConfig(epochs=20, batch_size=64))
        score(con, 'promoted', ScoreConfig(reference_size=20), device='cpu', progress=False)
        analyse_catalog(con, device='cpu')
    return dict(warehouse=warehouse, planted=planted, folder=tmp)


def test_refusals_are_json(curated):
    "No token, an unknown item, a label the catalog lacks, an unknown duplicate: each refused with a JSON 4xx"
    from fastapi.testclient import TestClient
    app = create_app(curated['warehouse'], cfg=ServeConfig(poll_s=3600, token=TOKEN), log=lambda m: None)
    with TestClient(app) as client:
        listing = client.get('/curate/issues', params={'kind': 'label', 'limit': 3}).json()
        good = dict(request_id=listing['request_id'], item_id=listing['items'][0]['item_id'], action='relabel',
                    label=listing['items'][0]['suggested_label'])
        auth = {'Authorization': f'Bearer {TOKEN}'}
        cases = {401: (good, {}), 404: (good | {'item_id': 'no-such-item'}, auth),
                 422: (good | {'label': 'Spaceship'}, auth)}
        for status, (body, headers) in cases.items():
            r = client.post('/curate/correct', json=body, headers=headers)
            assert r.status_code == status and r.json()['error'] and r.json()['request_id'], (status, r.text)
        dup = client.post('/curate/correct', json=good | {'action': 'duplicate', 'duplicate_of': 'ghost'}, headers=auth)
        assert dup.status_code == 422 and 'not another item' in dup.json()['error']
        assert client.post('/curate/correct', json=good | {'action': 'burn'}, headers=auth).status_code == 422
        assert client.get('/curate/confusion').json()['counts'] and client.get('/curate/map').json()['points']
    assert not list(feedback_dir(curated['warehouse']).glob('*.jsonl')) or not any(
        'correction' in p.read_text() for p in feedback_dir(curated['warehouse']).glob('*.jsonl'))


def test_a_page_correction_survives_kill_9_is_ingested_once_and_reaches_training(curated, monkeypatch):
    from playwright.sync_api import sync_playwright
    warehouse = curated['warehouse']
    monkeypatch.setenv('LOOKBENCH_TOKEN', TOKEN)
    server, url = start_server(warehouse, '--device', 'cpu')
    shot = ROOT / 'reports' / 'curate-page.png'
    shot.parent.mkdir(exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which('chromium'), args=['--no-sandbox'])
            page = browser.new_page(viewport={'width': 1400, 'height': 1100})
            page.on('dialog', lambda d: d.accept(TOKEN))  # the page asks for the token on the first 401
            page.goto(f'{url}/curate')
            page.wait_for_selector('.issue')
            assert page.evaluate('points.length') > 200  # the map drew the catalog
            page.select_option('#kind', 'label')
            page.wait_for_function("document.querySelector('#list .kind')?.textContent === 'label'")
            first = page.locator('.issue').first
            item = first.get_attribute('data-item')
            first.click()
            suggested = page.locator('#relabel').input_value()
            page.fill('#who', 'ana')
            page.click('#do-relabel')
            page.wait_for_function("document.getElementById('status').textContent.startsWith('recorded: relabel')")
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # after the 200: the event must already be on disk
        server.wait(60)
    with connect(warehouse) as con:
        before = data_snapshot(con)
        assert ingest_feedback(con, feedback_dir(warehouse))['corrections'] == 1
        assert ingest_feedback(con, feedback_dir(warehouse))['corrections'] == 0  # exactly once
        row = con.execute('SELECT item_id, action, new_label, who FROM label_corrections').fetchall()
        assert row == [(item, 'relabel', suggested, 'ana')]
        split = con.execute('SELECT split FROM splits WHERE item_id = ?', [item]).fetchone()[0]
        assert split_items(con, split).set_index('item_id').label[item] == suggested  # what training reads now
        after = data_snapshot(con)
        assert after != before and '+label_corrections:1:' in after
        run = align_model(con, load_model('lit', 'cpu'), curated['folder'] / 'models-2', AlignConfig(epochs=1))
        recorded = con.execute('SELECT data_snapshot FROM runs WHERE run_id = ?', [run['run_id']]).fetchone()[0]
    assert recorded == after  # the next align's lineage names the corrected data
    assert item in curated['planted']['flipped']  # the page's worst label issue was a planted flip


def test_the_fix_loop_from_the_page_to_a_retrained_model(tmp_path, monkeypatch):
    "Build, correct the worst label issues on the page, `make retrain`: the report compares the models, paired"
    import json
    import shlex
    import subprocess
    from playwright.sync_api import sync_playwright
    from conftest import BIN
    from lookbench.curate import correction_effect
    path, planted = make_curation_fixture(tmp_path / 'catalog')
    env = dict(data=tmp_path / 'data', reports=tmp_path / 'reports', source=path, format='manifest',
               catalog_options=json.dumps(planted['columns']), heldout_classes='[]', epochs=10, device='cpu',
               ft_epochs=1, ft_max_train=128)
    args = [a for k, v in env.items() for a in (f'--env--{k}', str(v))]
    environ = {**os.environ, 'PATH': f"{BIN}:{os.environ['PATH']}", 'WANDB_MODE': 'disabled'}
    first = subprocess.run([str(BIN / 'ploomber'), 'build', *args], cwd=ROOT, env=environ, capture_output=True,
                           text=True, timeout=1200)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    warehouse = tmp_path / 'data' / 'warehouse.duckdb'
    monkeypatch.setenv('LOOKBENCH_TOKEN', TOKEN)
    server, url = start_server(warehouse, '--device', 'cpu')
    fixed = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which('chromium'), args=['--no-sandbox'])
            page = browser.new_page()
            page.on('dialog', lambda d: d.accept(TOKEN))
            page.goto(f'{url}/curate')
            page.wait_for_selector('.issue')
            page.select_option('#kind', 'label')
            page.wait_for_function("document.querySelector('#list .kind')?.textContent === 'label'")
            for k in range(5):  # the five worst label issues: take the suggested label
                issue = page.locator('.issue').nth(k)
                fixed.append(issue.get_attribute('data-item'))
                issue.click()
                page.click('#do-relabel')
                page.wait_for_function(f"document.getElementById('status').textContent.includes('{fixed[-1]}')")
            page.select_option('#kind', 'mismatch')  # and the product whose title is another product's: remove it
            page.wait_for_function("document.querySelector('#list .kind')?.textContent === 'mismatch'")
            odd = page.locator('.issue').first
            removed = odd.get_attribute('data-item')
            odd.click()
            page.click('#do-remove')
            page.wait_for_function(f"document.getElementById('status').textContent.includes('remove for {removed}')")
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(60)
    retrain = subprocess.run(['make', '--no-print-directory', 'retrain', f'ENV_ARGS={shlex.join(args)}'], cwd=ROOT,
                             env=environ, capture_output=True, text=True, timeout=1800)
    assert retrain.returncode == 0, retrain.stdout[-3000:] + retrain.stderr[-3000:]
    with connect(warehouse, read_only=True) as con:
        relabelled = con.execute("SELECT item_id FROM label_corrections WHERE action = 'relabel'").fetchall()
        assert sorted(r[0] for r in relabelled) == sorted(fixed)
        assert not con.execute('SELECT count(*) FROM splits WHERE item_id = ?', [removed]).fetchone()[0]  # out of training
        effect = correction_effect(con)
    assert removed == planted['mismatch']
    assert set(fixed) <= set(planted['flipped'])  # the worst five were planted flips
    assert list(effect.split) == ['val', 'test'] and (effect.ci_low <= effect['diff']).all(), effect
    report = (tmp_path / 'reports' / 'report.html').read_text()
    assert 'before_model' in report and 'relabel' in report
    quality = (tmp_path / 'reports' / 'quality.html').read_text()
    assert 'Removed by curation' in quality and removed in quality  # listed with its reason
    print(effect.to_string())  # the closing note's before/after
