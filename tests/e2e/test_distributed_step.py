"""Fine-tuning in two CPU processes (gloo): one step equals one process's step on the same global batch.

Two processes sum the same float32 numbers in another order than one process does, so their gradients differ by
rounding: about 1e-6 of the tensor's largest value (seen: 4.6e-6 on a tensor whose largest gradient is 5.6). An
element-wise tolerance fails on rounding alone wherever a gradient is near zero, so each tensor is compared at a
tolerance relative to its own scale: 1e-5 of its largest value, ten times what reordering costs and far below what
a real mistake costs (a loss not averaged over micro-batches doubles every gradient; a rank's micro-batch left out
changes them by about their own size). `test_a_real_mistake_is_not_within_tolerance` proves the second half.
"""
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
SCALE_TOL = 1e-5  # of each tensor's largest absolute gradient


def global_batch(model, n, seed=0):
    "n (pixels, caption) pairs: random images through the model's own preprocessing"
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), CAPTIONS[:n]


def one_step(model, micro_batches):
    "Loss and gradients of one optimizer step over `micro_batches`, through the training code"
    model.trainable_root().zero_grad(set_to_none=True)
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


def joined(parts):
    "One process's micro-batches that hold what `parts` (each process's micro-batches) hold together"
    return [(torch.cat([p for p, _ in group]), sum((c for _, c in group), [])) for group in zip(*parts)]


def assert_same_gradients(got:dict, want:dict):
    "Every tensor of `got` equals `want`'s to within SCALE_TOL of that tensor's largest value"
    assert set(got) == set(want)
    for name, g in want.items():
        scale = float(g.abs().max())
        torch.testing.assert_close(got[name], g, rtol=0, atol=SCALE_TOL * scale + 1e-12,
                                   msg=lambda m, name=name, scale=scale: f'{name} (largest gradient {scale:.3g}): {m}')


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


@pytest.fixture(scope='module')
def spec(tmp_path_factory):
    return f'open_clip:local-dir:{make_tiny_open_clip(tmp_path_factory.mktemp("oc"))}'


@pytest.mark.parametrize('accum', [1, 2])
def test_two_processes_take_the_one_process_step(tmp_path, spec, accum):
    torch.manual_seed(0)
    model = load_model(spec, 'cpu')
    pixels, captions = global_batch(model, 12)
    # one process, global micro-batch j = both processes' j-th micro-batch together
    loss1, grads1 = one_step(model, joined(shards(pixels, captions, 2, accum)))
    mp.spawn(rank_main, args=(2, free_port(), spec, accum, str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        got = torch.load(tmp_path / f'rank{rank}.pt')
        assert got['loss'] == pytest.approx(loss1, rel=1e-5)  # the last micro-batch's, over the global batch
        assert_same_gradients(got['grads'], grads1)


def test_a_real_mistake_is_not_within_tolerance(spec):
    "The tolerance above is not loose: the mistakes a distributed step can make all fail it"
    torch.manual_seed(0)
    model = load_model(spec, 'cpu')
    pixels, captions = global_batch(model, 12)
    parts = shards(pixels, captions, 2, 2)
    _, right = one_step(model, joined(parts))
    _, one_rank_only = one_step(model, parts[0])               # rank 1's micro-batches left out of the step
    _, last_micro_only = one_step(model, joined(parts)[1:])    # an accumulated micro-batch dropped
    not_averaged = {n: 2 * g for n, g in right.items()}        # loss summed, not divided by accum_steps
    for wrong in (one_rank_only, last_micro_only, not_averaged):
        with pytest.raises(AssertionError, match='largest gradient'):
            assert_same_gradients(wrong, right)
    reordered = {n: g + SCALE_TOL / 10 * g.abs().max() * torch.randn_like(g).clamp(-1, 1) for n, g in right.items()}
    assert_same_gradients(reordered, right)  # rounding-sized noise passes
