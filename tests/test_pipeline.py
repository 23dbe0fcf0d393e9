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
    assert all(ran.values()) and set(ran) == {'ingest', 'splits', 'embed', 'align', 'finetune', 'evaluate', 'score', 'report'}
    assert (tmp_path / 'reports' / 'report.html').stat().st_size > 50_000  # figures are embedded
    receipt = json.loads((tmp_path / 'data' / 'receipts' / 'evaluate.json').read_text())
    assert 0 <= receipt['runs']['lit (aligned)']['all/top1'] <= 1 and 'lit (fine-tuned)' in receipt['runs']
    assert json.loads((tmp_path / 'data' / 'receipts' / 'finetune.json').read_text())['spec'].startswith('ft:')
    scored = json.loads((tmp_path / 'data' / 'receipts' / 'score.json').read_text())
    assert scored['scored'] + scored['quarantined'] == 160 and not scored['nothing_new']  # every item of the fixture catalog

    assert not any(build(tmp_path, source).values())

    ran = build(tmp_path, source, epochs=4)
    assert {t for t, r in ran.items() if r} == {'align', 'finetune', 'evaluate', 'score', 'report'}
