"`ploomber build` runs the whole DAG, reruns nothing when nothing changed, and only what a change touches."
import json, re, subprocess, os

from conftest import ROOT, BIN


def build(tmp_path, source, **env):
    args = {'data': tmp_path / 'data', 'reports': tmp_path / 'reports', 'source': source, 'epochs': 3, 'device': 'cpu',
            'ft_epochs': 1, 'ft_max_train': 64, **env}
    cmd = [str(BIN / 'ploomber'), 'build'] + [a for k, v in args.items() for a in (f'--env--{k}', str(v))]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                       env={**os.environ, 'PATH': f"{BIN}:{os.environ['PATH']}"})
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return {m.group(1): m.group(2) == 'True' for m in re.finditer(r'^(\w+)\s+(True|False)\s', p.stdout, re.M)}


def test_build_then_nothing_then_only_downstream(tmp_path, source):
    ran = build(tmp_path, source)
    assert all(ran.values()) and set(ran) == {'ingest', 'splits', 'quality', 'embed', 'align', 'finetune', 'evaluate', 'score', 'report'}
    assert (tmp_path / 'reports' / 'report.html').stat().st_size > 50_000  # figures are embedded
    receipt = json.loads((tmp_path / 'data' / 'receipts' / 'evaluate.json').read_text())
    assert 0 <= receipt['runs']['lit (aligned)']['all/top1'] <= 1 and 'lit (fine-tuned)' in receipt['runs']
    assert json.loads((tmp_path / 'data' / 'receipts' / 'finetune.json').read_text())['spec'].startswith('ft:')
    scored = json.loads((tmp_path / 'data' / 'receipts' / 'score.json').read_text())
    assert scored['scored'] + scored['quarantined'] == 160 and not scored['nothing_new']  # every item of the fixture catalog

    assert not any(build(tmp_path, source).values())

    ran = build(tmp_path, source, epochs=4)
    assert {t for t, r in ran.items() if r} == {'align', 'finetune', 'evaluate', 'score', 'report'}


def test_build_on_kagl_and_manifest_catalogs(tmp_path):
    "The same DAG runs end to end on a KAGL-layout catalog and on a manifest, and the reports show quality, zero-shot and retrieval"
    from lookbench.catalog import make_kagl_fixture, make_manifest_fixture
    from lookbench.warehouse import connect
    make_kagl_fixture(tmp_path / 'kagl')
    manifest, exp = make_manifest_fixture(tmp_path / 'manifest', 'jsonl')
    runs = {'kagl': dict(format='kagl', source=tmp_path / 'kagl', catalog_options='{"label_column": "articleType"}'),
            'manifest': dict(format='manifest', source=manifest, catalog_options=json.dumps(exp['columns']), max_quarantine_pct=10)}
    for name, env in runs.items():
        out = tmp_path / name
        ran = build(out, env.pop('source'), heldout_classes='["Watches", "Handbags"]', near_dup_bits=4, **env)
        assert all(ran.values()) and 'quality' in ran, (name, ran)
        quality = (out / 'reports' / 'quality.html').read_text()
        assert 'quarantine' in quality and 'image_too_small' in quality, name
        with connect(out / 'data' / 'warehouse.duckdb', read_only=True) as con:
            b = con.execute('SELECT rows_in, accepted, quarantined FROM ingest_batches').fetchone()
            assert b[0] == b[1] + b[2] and b[2] > 0, (name, b)
            metrics = {r[0] for r in con.execute("SELECT DISTINCT class_set || '/' || metric FROM metrics").fetchall()}
            assert {'heldout/top1', 'all/t2i_recall@10', 'all/i2t_mrr', 'all/category_precision@1'} <= metrics, (name, metrics)
            assert con.execute('SELECT count(DISTINCT item_id) FROM predictions').fetchone()[0] == b[1]
        report = (out / 'reports' / 'report.html').read_text()
        assert 't2i_recall@10' in report and 'search:' in report, name
