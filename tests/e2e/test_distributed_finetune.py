"""`lookbench finetune --nproc 2` under torchrun: it trains and registers, and a killed 2-process run resumes exactly."""
import os
import signal
import subprocess
import time

import torch

from conftest import BIN, ROOT
from lookbench.models import load_checkpoint
from lookbench.testing import fixture_warehouse, make_tiny_open_clip


def env():
    return {**os.environ, 'WANDB_MODE': 'disabled', 'HF_HUB_OFFLINE': '1', 'PATH': f"{BIN}:{os.environ['PATH']}"}


def finetune_cmd(warehouse, spec, out, *extra):
    return [str(BIN / 'lookbench'), 'finetune', '--warehouse', str(warehouse), '--base', spec, '--out', str(out),
            '--epochs', '3', '--batch-size', '8', '--lr', '1e-4', '--device', 'cpu', *extra]


def test_two_processes_train_register_and_resume_exactly(tmp_path):
    fixture_warehouse(tmp_path / 'w', n_train=120, n_test=20, val_pct=20).close()
    warehouse = tmp_path / 'w' / 'w.duckdb'
    spec = f'open_clip:local-dir:{make_tiny_open_clip(tmp_path / "oc")}'

    whole = subprocess.run(finetune_cmd(warehouse, spec, tmp_path / 'a', '--nproc', '2'), env=env(),
                           capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert 'in 2 process(es), effective batch 16' in whole.stdout, whole.stdout
    assert whole.stdout.count('finetune: ') == 1  # rank 0 reports, rank 1 only trains

    # the same run, killed -9 (the whole process group: torchrun and both workers) once epoch 1 is checkpointed
    job = subprocess.Popen(finetune_cmd(warehouse, spec, tmp_path / 'b', '--nproc', '2'), env=env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    last = tmp_path / 'b' / 'last.pt'
    deadline = time.time() + 300
    while not last.exists() and job.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(60)
    killed_at = load_checkpoint(last)['epoch']
    assert killed_at < 3, 'the run finished before it was killed: make it longer'
    assert load_checkpoint(last)['world_size'] == 2

    other = subprocess.run(finetune_cmd(warehouse, spec, tmp_path / 'b', '--resume'), env=env(),
                           capture_output=True, text=True, timeout=600)
    assert other.returncode == 2 and 'trained in 2 processes and this run has 1' in other.stderr, other.stderr
    resumed = subprocess.run(finetune_cmd(warehouse, spec, tmp_path / 'b', '--nproc', '2', '--resume'), env=env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = load_checkpoint(tmp_path / 'a' / 'last.pt'), load_checkpoint(last)
    assert (a['epoch'], a['step']) == (b['epoch'], b['step'])
    # Same weights, to rounding: a resumed process may sum in another order (its own threads and buffers), which costs
    # ~1e-7 here, while any step taken wrongly (skipped, repeated, other batches, lost optimizer state) moves most
    # weights by about lr (AdamW's steps are lr-sized whatever the gradient), i.e. 1e-4: 100x this tolerance.
    lr = 1e-4
    for name, p in a['model'].items():
        torch.testing.assert_close(b['model'][name], p, rtol=0, atol=lr / 100,
                                   msg=lambda m, name=name: f'{name}: {m}')


def test_make_flow_finetune_on_two_nodes_of_one_process(tmp_path):
    "Metaflow's @parallel starts two 'nodes' here (two tasks on this host), each runs torchrun with one process"
    fixture_warehouse(tmp_path / 'w', n_train=120, n_test=20, val_pct=20).close()
    spec = f'open_clip:local-dir:{make_tiny_open_clip(tmp_path / "oc")}'
    args = f"--base {spec} --out {tmp_path / 'ft'} --epochs 2 --batch_size 8 --device cpu"
    cmd = ['make', '--no-print-directory', 'flow-finetune', f"WAREHOUSE={tmp_path / 'w' / 'w.duckdb'}", 'NODES=2',
           'NPROC=1', f'FLOW_ARGS={args}']
    p = subprocess.run(cmd, env={**env(), 'METAFLOW_HOME': str(tmp_path / 'mf')}, capture_output=True, text=True,
                       timeout=900, cwd=ROOT)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    out = p.stdout + p.stderr
    assert 'node 1 of 2' in out and 'in 2 process(es), effective batch 16' in out, out[-3000:]
    assert "fine-tune run: [('finetune-" in out
    assert (tmp_path / 'ft' / 'last.pt').is_file()


def test_every_setting_runs_in_two_processes_and_a_failure_is_one_line(tmp_path):
    "The settings the CLI accepts run under --nproc 2 (only what a forward uses trains); a bad one is one line"
    fixture_warehouse(tmp_path / 'w', n_train=120, n_test=20, val_pct=20).close()
    warehouse = tmp_path / 'w' / 'w.duckdb'
    spec = f'open_clip:local-dir:{make_tiny_open_clip(tmp_path / "oc")}'
    settings = {  # the LiT towers wholly unlocked: EfficientNet's ImageNet classifier and MiniLM's pooler are unused
        'lit': ('lit', '--unlock-last', '0', '--max-train', '64'),
        'clip': (spec, '--lock', 'image', '--accum-steps', '2', '--unlock-last', '1', '--no-use-feedback')}
    for name, (base, *extra) in settings.items():
        cmd = finetune_cmd(warehouse, base, tmp_path / name, '--nproc', '2', *extra)
        cmd[cmd.index('--epochs') + 1] = '1'
        p = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=900)
        assert p.returncode == 0 and 'in 2 process(es)' in p.stdout, (name, p.stdout[-2000:], p.stderr[-3000:])
    bad = subprocess.run(finetune_cmd(warehouse, spec, tmp_path / 'bad', '--nproc', '2', '--batch-size', '500'),
                         env=env(), capture_output=True, text=True, timeout=900)
    assert bad.returncode == 2 and bad.stderr.count('\n') == 1, bad.stderr
    assert 'fewer than one batch of 500' in bad.stderr and (tmp_path / 'bad' / 'processes.log').is_file()
