"""`ploomber build` runs the whole DAG on every catalog layout, reruns nothing when nothing changed, and only what a
change touches. The three full builds run side by side, once per session, and the tests share them."""
import json
import os
import re
import signal
import subprocess
import threading
import time

import httpx
import pytest

from conftest import ROOT, BIN
from lookbench.testing import make_fixture_source, make_kagl_fixture, make_manifest_fixture, start_server
from lookbench.warehouse import connect

TASKS = {"ingest", "splits", "quality", "feedback", "embed", "align", "finetune", "evaluate", "score", "curate", "report"}
SMALL = dict(epochs=3, device='cpu', ft_epochs=1, ft_max_train=64)


def start_build(out, source, threads=None, **env):
    "Start `ploomber build` into `out`/data and `out`/reports; returns the process"
    args = {'data': out / 'data', 'reports': out / 'reports', 'source': source, **SMALL, **env}
    cmd = [str(BIN / 'ploomber'), 'build'] + [a for k, v in args.items() for a in (f'--env--{k}', str(v))]
    environ = {**os.environ, 'PATH': f"{BIN}:{os.environ['PATH']}"}
    if threads:  # builds side by side on a small machine: one thread each, or they fight over the cores
        environ |= dict(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return subprocess.Popen(cmd, cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_build(p)->dict:
    "Wait for a build; return {task: whether it ran} and its output"
    stdout, stderr = p.communicate(timeout=1200)
    assert p.returncode == 0, stdout[-3000:] + stderr[-3000:]
    ran = {m.group(1): m.group(2) == 'True' for m in re.finditer(r'^(\w+)\s+(True|False)\s', stdout, re.M)}
    return dict(ran=ran, output=stdout + stderr)


def build(out, source, **env)->dict:
    return finish_build(start_build(out, source, **env))


@pytest.fixture(scope='session')
def builds(tmp_path_factory):
    "Full builds of the default (fashion-attributes) catalog, a KAGL folder and a JSONL manifest, run side by side"
    tmp = tmp_path_factory.mktemp('builds')
    make_kagl_fixture(tmp / 'kagl-src')
    manifest, exp = make_manifest_fixture(tmp / 'manifest-src', 'jsonl')
    catalogs = dict(heldout_classes='["Watches", "Handbags"]', near_dup_bits=4)
    specs = {'default': dict(source=make_fixture_source(tmp / 'fmnist', n_train=120, n_test=40)),
             'kagl': dict(source=tmp / 'kagl-src', format='kagl', catalog_options='{"label_column": "articleType"}',
                          **catalogs),
             'manifest': dict(source=manifest, format='manifest', catalog_options=json.dumps(exp['columns']),
                              max_quarantine_pct=10, **catalogs)}
    running = {name: start_build(tmp / name, threads=1, **spec) for name, spec in specs.items()}
    return {name: dict(out=tmp / name, source=specs[name]['source'], **finish_build(p)) for name, p in running.items()}


def test_default_build_writes_every_product(builds):
    b, out = builds['default'], builds['default']['out']
    assert all(b['ran'].values()) and set(b['ran']) == TASKS
    assert 'DAG build with warnings' not in b['output']  # ploomber's pyflakes pass over the task notebooks is clean
    assert (out / 'reports' / 'report.html').stat().st_size > 50_000  # figures are embedded
    receipt = json.loads((out / 'data' / 'receipts' / 'evaluate.json').read_text())
    with connect(out / 'data' / 'warehouse.duckdb', read_only=True) as con:
        run_id = receipt['runs']['base']['run_id']
        stored = con.execute("SELECT value FROM metrics WHERE run_id = ? AND class_set = 'all' AND metric = 'top1'",
                             [run_id]).fetchone()[0]
    assert receipt['runs']['base']['all/top1'] == pytest.approx(stored, abs=1e-4)
    assert list(receipt['runs']) == ['untrained', 'base', 'fine-tuned']  # the LiT heads were trained by align
    assert 'not CLIP' in receipt['runs']['base']['what']
    assert json.loads((out / 'data' / 'receipts' / 'finetune.json').read_text())['spec'].startswith('ft:')
    scored = json.loads((out / 'data' / 'receipts' / 'score.json').read_text())
    assert scored['scored'] + scored['quarantined'] == 160 and not scored['nothing_new']  # every item of the catalog


def test_reports_show_results_not_noise(builds):
    "What a person reads: no progress bars, no widget warnings from stderr"
    for name in builds:
        for report in ('report.html', 'quality.html'):
            html = (builds[name]['out'] / 'reports' / report).read_text()
            for noise in ('IProgress not found', 'it/s]', 'Loading weights'):
                assert noise not in html, (name, report, noise)


@pytest.mark.parametrize('name', ['kagl', 'manifest'])
def test_catalog_builds_show_quality_zero_shot_and_retrieval(builds, name):
    "The same DAG runs end to end on a KAGL-layout catalog and on a manifest"
    b, out = builds[name], builds[name]['out']
    assert all(b['ran'].values()) and set(b['ran']) == TASKS, b['ran']
    quality = (out / 'reports' / 'quality.html').read_text()
    assert 'quarantine' in quality and 'image_too_small' in quality
    with connect(out / 'data' / 'warehouse.duckdb', read_only=True) as con:
        batch = con.execute('SELECT rows_in, accepted, quarantined FROM ingest_batches').fetchone()
        rows_in, accepted, quarantined = batch
        assert rows_in == accepted + quarantined and quarantined > 0
        metrics = {r[0] for r in con.execute("SELECT DISTINCT class_set || '/' || metric FROM metrics").fetchall()}
        assert {'heldout/top1', 'all/t2i_recall@10', 'all/i2t_mrr', 'all/category_precision@1'} <= metrics, metrics
        assert con.execute('SELECT count(DISTINCT item_id) FROM predictions').fetchone()[0] == accepted
    report = (out / 'reports' / 'report.html').read_text()
    assert 't2i_recall@10' in report and 'search:' in report


def test_the_served_lit_model_exports_to_onnx_with_parity(builds):
    "The real offline model (EfficientNet-Lite0 + MiniLM + heads, fine-tuned): its ONNX graphs agree with torch"
    warehouse = builds['kagl']['out'] / 'data' / 'warehouse.duckdb'
    p = subprocess.run([str(BIN / 'lookbench'), 'export', 'onnx', '--warehouse', str(warehouse)], capture_output=True,
                       text=True, timeout=900, env={**os.environ, 'WANDB_MODE': 'disabled', 'HF_HUB_OFFLINE': '1'})
    assert p.returncode == 0 and '(ok)' in p.stdout, p.stdout + p.stderr[-3000:]
    cosines = [float(x) for x in re.findall(r'(?:image|text) ([01]\.\d+)', p.stdout)]
    assert len(cosines) == 2 and min(cosines) >= 0.999, p.stdout


def test_rebuild_reruns_nothing_then_only_downstream_while_the_service_serves(builds):
    """Runs last: it changes the default build (a new epochs value reruns align and everything after it), and the
    service keeps answering from the same warehouse all the while, then follows the newly promoted model"""
    out, source = builds['default']['out'], builds['default']['source']
    assert not any(build(out, source)['ran'].values())
    warehouse = out / 'data' / 'warehouse.duckdb'
    server, url = start_server(warehouse, '--device', 'cpu')
    statuses, stop = [], threading.Event()

    def ask():
        while not stop.is_set():
            statuses.append(httpx.get(f'{url}/search', params={'q': 'red dress', 'k': 5}, timeout=30).status_code)
            time.sleep(0.2)
    asker = threading.Thread(target=ask)
    asker.start()
    try:
        ran = build(out, source, epochs=4)['ran']  # every write of the build gets the file while the service serves
        assert {t for t, r in ran.items() if r} == {'align', 'finetune', 'evaluate', 'score', 'curate', 'report'}
        with connect(warehouse, read_only=True) as con:
            promoted = con.execute('SELECT model_id FROM models WHERE promoted').fetchone()[0]
        for _ in range(300):  # the service follows the promoted model (and the products it scored)
            if httpx.get(f'{url}/model', timeout=30).json()['model_id'] == promoted:
                break
            time.sleep(0.5)
        assert httpx.get(f'{url}/model', timeout=30).json()['model_id'] == promoted
    finally:
        stop.set()
        asker.join()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
    assert len(statuses) > 20 and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}


@pytest.fixture(scope='session')
def clip_builds(tmp_path_factory, tiny_open_clip, tiny_hf_clip):
    "The whole DAG with `model` set to a CLIP checkpoint of each backend, saved as real ones are, side by side"
    tmp = tmp_path_factory.mktemp('clip-builds')
    source = make_fixture_source(tmp / 'fmnist', n_train=120, n_test=40)
    specs = {'open_clip': tiny_open_clip, 'hf': tiny_hf_clip}
    running = {name: start_build(tmp / name, source, threads=1, model=spec) for name, spec in specs.items()}
    return {name: dict(out=tmp / name, spec=specs[name], **finish_build(p)) for name, p in running.items()}


def lookbench(*args):
    env = {**os.environ, 'WANDB_MODE': 'disabled', 'HF_HUB_OFFLINE': '1'}
    return subprocess.run([str(BIN / 'lookbench'), *map(str, args)], capture_output=True, text=True, timeout=900, env=env)


@pytest.mark.parametrize('backend', ['open_clip', 'hf'])
def test_a_clip_drives_every_step(clip_builds, backend):
    "align takes the CLIP as it is, finetune starts from it, and the tuned model is scored, served and exported"
    b = clip_builds[backend]
    data, spec = b['out'] / 'data', b['spec']
    assert all(b['ran'].values()) and set(b['ran']) == TASKS, b['ran']
    align = json.loads((data / 'receipts' / 'align.json').read_text())
    assert (align['spec'], align['trained'], align['untrained_spec']) == (spec, False, None)
    evaluated = json.loads((data / 'receipts' / 'evaluate.json').read_text())['runs']
    assert list(evaluated) == ['base', 'fine-tuned'] and 'local weights' in evaluated['base']['what']
    warehouse = data / 'warehouse.duckdb'
    with connect(warehouse, read_only=True) as con:
        base_id = con.execute("SELECT fingerprint FROM runs WHERE kind = 'align'").fetchone()[0]
        lineage = con.execute("""SELECT parent_fingerprint, config->>'base_spec', fingerprint FROM runs
                                 WHERE kind = 'finetune'""").fetchall()
        tuned = con.execute("SELECT model_id FROM models WHERE spec LIKE 'ft:%'").fetchall()
        models = con.execute('SELECT count(*) FROM models').fetchone()[0]
    assert lineage == [(base_id, spec, tuned[0][0])] and models == 2  # the base, then what was tuned from it
    tuned_id = tuned[0][0]
    scored = lookbench('score', '--model', tuned_id, '--device', 'cpu', '--no-progress', '-w', warehouse)
    assert scored.returncode == 0 and 'score: 160 items scored' in scored.stdout, scored.stdout + scored.stderr
    exported = lookbench('export', 'onnx', '--model', tuned_id, '-w', warehouse)
    assert exported.returncode == 0 and '(ok)' in exported.stdout, exported.stdout + exported.stderr[-3000:]
    server, url = start_server(warehouse, '--model', tuned_id, '--device', 'cpu')
    try:
        assert httpx.get(f'{url}/model', timeout=30).json()['model_id'] == tuned_id
        hits = httpx.get(f'{url}/search', params={'q': 'ankle boot', 'k': 3}, timeout=30).json()['results']
        assert len(hits) == 3
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
