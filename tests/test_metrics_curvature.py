"""Hessian spectral norm against the exact Hessian of a tiny conv net with batch-statistics BN."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from mamlscope.metrics.curvature import (
    hessian_spectral_norm,
    hessian_spectral_norm_batched,
    hessian_top_eigen,
    hessian_vector_product,
)

METHODS = ["power", "lanczos"]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    # these networks are tiny: thread start-up dominates, and is very slow on busy 2-core machines
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _net(dtype=torch.float64):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=2, padding=1),
        nn.BatchNorm2d(3, track_running_stats=False),  # batch statistics, also at "test" time
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 3),
    ).to(dtype)


def _task(seed, dtype=torch.float64, n=6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64).to(dtype)
    y = torch.arange(n) % 3
    return x, y


def _loss(net):
    return lambda p, x, y: F.cross_entropy(functional_call(net, p, (x,)), y)


def _adapt(loss, params, x, y, steps=2, lr=0.5):
    """Plain SGD on the support loss, written out with torch.autograd.grad."""
    p = {k: v.detach().clone() for k, v in params.items()}
    for _ in range(steps):
        leaves = {k: v.requires_grad_() for k, v in p.items()}
        grads = torch.autograd.grad(loss(leaves, x, y), list(leaves.values()))
        p = {k: (v - lr * g).detach() for (k, v), g in zip(leaves.items(), grads)}
    return p


def _exact_hessian(loss_of_dict, params):
    keys = list(params)
    flat = torch.cat([params[k].reshape(-1) for k in keys]).detach()

    def f(vec):
        d, i = {}, 0
        for k in keys:
            n = params[k].numel()
            d[k] = vec[i:i + n].reshape(params[k].shape)
            i += n
        return loss_of_dict(d)

    return torch.autograd.functional.hessian(f, flat)


@pytest.fixture(scope="module")
def adapted():
    net = _net()
    loss = _loss(net)
    x, y = _task(1)
    theta = {k: v.detach() for k, v in net.named_parameters()}
    p = _adapt(loss, theta, x, y, steps=2)
    h = _exact_hessian(lambda d: loss(d, x, y), p)
    ev = torch.linalg.eigvalsh(h)
    return net, loss, x, y, p, h, ev


@pytest.mark.parametrize("method", METHODS)
def test_matches_exact_hessian_at_adapted_parameters(adapted, method):
    net, loss, x, y, p, h, ev = adapted
    exact = ev.abs().max().item()
    res = hessian_top_eigen(lambda d: loss(d, x, y), p, method=method)
    assert res.converged
    assert res.spectral_norm == pytest.approx(exact, rel=1e-2)
    assert res.spectral_norm == pytest.approx(exact, rel=1e-3)  # in practice far better than 1%
    assert res.eigenvalue == pytest.approx(ev[ev.abs().argmax()].item(), rel=1e-2)
    assert hessian_spectral_norm(lambda d: loss(d, x, y), p, method=method) == res.spectral_norm


def test_hvp_modes_agree_with_exact_product(adapted):
    net, loss, x, y, p, h, ev = adapted
    g = torch.Generator().manual_seed(3)
    v = {k: torch.randn(t.shape, generator=g, dtype=t.dtype) for k, t in p.items()}
    ref = h @ torch.cat([v[k].reshape(-1) for k in p])
    for mode in ("forward-over-reverse", "reverse-over-reverse"):
        hv = hessian_vector_product(lambda d: loss(d, x, y), p, v, mode=mode)
        torch.testing.assert_close(torch.cat([hv[k].reshape(-1) for k in p]), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_parameter_subset_gives_the_hessian_block(adapted, method):
    net, loss, x, y, p, h, ev = adapted
    head = {k: v for k, v in p.items() if k.startswith("4.")}
    body = {k: v for k, v in p.items() if not k.startswith("4.")}
    n_body = sum(v.numel() for v in body.values())
    block = h[n_body:, n_body:]  # p's order is body first, then head
    exact = torch.linalg.eigvalsh(block).abs().max().item()
    got = hessian_spectral_norm(lambda d: loss({**body, **d}, x, y), head, method=method)
    assert got == pytest.approx(exact, rel=1e-3)
    assert abs(got - ev.abs().max().item()) > 1e-2 * exact  # really a different number


@pytest.mark.parametrize("method", METHODS)
def test_returns_largest_magnitude_eigenvalue_when_it_is_negative(method):
    g = torch.Generator().manual_seed(4)
    q = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))[0]
    a = q @ torch.diag(torch.tensor([-3.0, 2.0, 1.0, 0.5, -0.2, 0.1], dtype=torch.float64)) @ q.T
    params = {"w": torch.randn(6, generator=g, dtype=torch.float64)}
    res = hessian_top_eigen(lambda d: 0.5 * d["w"] @ a @ d["w"], params, method=method, tol=1e-8, max_iter=500)
    assert res.spectral_norm == pytest.approx(3.0, rel=1e-6)
    assert res.eigenvalue == pytest.approx(-3.0, rel=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_batched_equals_per_task(method):
    net = _net()
    loss = _loss(net)
    theta = {k: v.detach() for k, v in net.named_parameters()}
    tasks = [_task(s) for s in (11, 12, 13)]
    adapted = [_adapt(loss, theta, x, y, steps=s) for (x, y), s in zip(tasks, (1, 2, 3))]
    per_task = [hessian_spectral_norm(lambda d, x=x, y=y: loss(d, x, y), p, method=method)
                for (x, y), p in zip(tasks, adapted)]
    pb = {k: torch.stack([p[k] for p in adapted]) for k in theta}
    xb = torch.stack([x for x, _ in tasks])
    yb = torch.stack([y for _, y in tasks])
    got = hessian_spectral_norm_batched(loss, pb, xb, yb, method=method)
    assert got.shape == (3,) and got.dtype == torch.float64
    torch.testing.assert_close(got, torch.tensor(per_task, dtype=torch.float64), rtol=1e-6, atol=0)
    assert len({round(v, 3) for v in per_task}) == 3  # the tasks really differ


def test_float32_parameters_are_accepted(adapted):
    net, loss, x, y, p, h, ev = adapted
    net32 = _net(torch.float32)
    p32 = {k: v.float() for k, v in p.items()}
    x32 = x.float()
    for method in METHODS:
        got = hessian_spectral_norm(lambda d: F.cross_entropy(functional_call(net32, d, (x32,)), y), p32,
                                    method=method)
        assert got == pytest.approx(ev.abs().max().item(), rel=1e-2)


def test_does_not_modify_parameters_and_is_deterministic(adapted):
    net, loss, x, y, p, h, ev = adapted
    before = {k: v.clone() for k, v in p.items()}
    a = hessian_top_eigen(lambda d: loss(d, x, y), p, seed=5)
    b = hessian_top_eigen(lambda d: loss(d, x, y), p, seed=5)
    assert a == b
    assert all(torch.equal(before[k], p[k]) for k in p)


def test_bad_inputs_raise(adapted):
    net, loss, x, y, p, h, ev = adapted
    with pytest.raises(ValueError, match="scalar"):
        hessian_spectral_norm(lambda d: functional_call(net, d, (x,)), p)
    with pytest.raises(ValueError, match="unknown method"):
        hessian_spectral_norm(lambda d: loss(d, x, y), p, method="arnoldi")
    with pytest.raises(ValueError, match="non-empty"):
        hessian_spectral_norm(lambda d: loss(d, x, y), {})
    with pytest.raises(ValueError, match="leading task dimension"):
        pb = {k: v[None] for k, v in p.items()}
        hessian_spectral_norm_batched(loss, pb, x[None], y[None].expand(2, -1))


@cuda
def test_cuda_matches_cpu(adapted):
    net, loss, x, y, p, h, ev = adapted
    net_cuda = _net().cuda()
    pc = {k: v.cuda() for k, v in p.items()}
    xc, yc = x.cuda(), y.cuda()
    for method in METHODS:
        got = hessian_spectral_norm(lambda d: F.cross_entropy(functional_call(net_cuda, d, (xc,)), yc), pc,
                                    method=method)
        assert got == pytest.approx(ev.abs().max().item(), rel=1e-3)
    got = hessian_spectral_norm_batched(lambda d, a, b: F.cross_entropy(functional_call(net_cuda, d, (a,)), b),
                                        {k: v[None] for k, v in pc.items()}, xc[None], yc[None])
    assert got.device.type == "cuda" and got.item() == pytest.approx(ev.abs().max().item(), rel=1e-3)
