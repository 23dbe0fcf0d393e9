"""Fine-tuning in two CPU processes (gloo): one step equals one process's step on the same global batch."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lookbench.finetune import FinetuneConfig, accumulate_gradients, train_modules
from lookbench.models import load_model
from lookbench.testing import free_port, make_tiny_open_clip

CAPTIONS = ['navy blue jeans', 'red shirt', 'black watch', 'white sneakers', 'brown handbag', 'grey hoodie',
            'green dress', 'yellow scarf', 'blue tshirt', 'pink skirt', 'black boots', 'white blouse']


def global_batch(model, n, seed=0):
    "n (pixels, caption) pairs: random images through the model's own preprocessing"
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), CAPTIONS[:n]


def one_step(model, micro_batches):
    "Loss and gradients of one optimizer step over `micro_batches`, through the training code"
    forward, loss_fn = train_modules(model, FinetuneConfig())
    model.train()
    loss = accumulate_gradients(forward, model, loss_fn, micro_batches)
    grads = {n: p.grad.detach().clone() for n, p in model.trainable_root().named_parameters() if p.grad is not None}
    return float(loss), grads


def shards(pixels, captions, parts, accum):
    "Micro-batches of each of `parts` processes: global micro-batch j is the concatenation of their j-th"
    per = len(captions) // accum // parts
    out = [[] for _ in range(parts)]
    for j in range(accum):
        for r in range(parts):
            s = (j * parts + r) * per
            out[r].append((pixels[s:s + per], captions[s:s + per]))
    return out


def rank_main(rank, world, port, spec, accum, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    torch.manual_seed(0)
    model = load_model(spec, 'cpu')
    pixels, captions = global_batch(model, 12)
    loss, grads = one_step(model, shards(pixels, captions, world, accum)[rank])
    t = torch.tensor([loss])
    dist.all_reduce(t)
    torch.save(dict(loss=float(t) / world, grads=grads), f'{out}/rank{rank}.pt')
    dist.destroy_process_group()


@pytest.mark.parametrize('accum', [1, 2])
def test_two_processes_take_the_one_process_step(tmp_path, accum):
    spec = f'open_clip:local-dir:{make_tiny_open_clip(tmp_path / "oc")}'
    torch.manual_seed(0)
    model = load_model(spec, 'cpu')
    pixels, captions = global_batch(model, 12)
    # one process, global micro-batch j = both processes' j-th micro-batch together
    micro = [(torch.cat([p for p, _ in parts]), sum((c for _, c in parts), []))
             for parts in zip(*shards(pixels, captions, 2, accum))]
    loss1, grads1 = one_step(model, micro)
    mp.spawn(rank_main, args=(2, free_port(), spec, accum, str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        got = torch.load(tmp_path / f'rank{rank}.pt')
        assert got['loss'] == pytest.approx(loss1, rel=1e-5)  # the last micro-batch's, over the global batch
        assert set(got['grads']) == set(grads1)
        for name, g in grads1.items():
            torch.testing.assert_close(got['grads'][name], g, rtol=1e-4, atol=1e-6, msg=name)
