"""Meta-gradients: the torch.func, loop and higher backends agree, and the second-order meta-gradient
matches central finite differences of the meta-loss (float64)."""
import pytest
import torch
from torch.func import functional_call

from mamlscope.core.data import Task
from mamlscope.core.inner import InnerLoop, adapt, query_loss
from mamlscope.core.models import MLP, Conv4


def toy_tasks(n_tasks=3, n_way=3, shots=2, queries=2, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(n_tasks, n_way, 1, size, size, generator=g)

    def draw(k):
        x = protos[:, :, None] + 0.5 * torch.randn(n_tasks, n_way, k, 1, size, size, generator=g)
        y = torch.arange(n_way)[None, :, None].expand(n_tasks, n_way, k)
        return x.reshape(n_tasks, n_way * k, 1, size, size), y.reshape(n_tasks, -1)

    xs, ys = draw(shots)
    xq, yq = draw(queries)
    return Task(xs, ys, xq, yq)


def meta_gradient(model, tasks, inner, backend):
    model.zero_grad()
    losses, _ = query_loss(model, tasks, inner, backend=backend)
    losses.mean().backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("reduction", ["mean", "sum/k"])
@pytest.mark.parametrize("adapt_spec", ["all", "head", "from:conv3"])
@pytest.mark.parametrize("first_order", [False, True])
def test_backends_agree(float64, adapt_spec, first_order, reduction):
    torch.manual_seed(0)
    model = Conv4(n_way=3, filters=6, image_size=12).double()
    tasks = toy_tasks()
    inner = InnerLoop(steps=3, lr=0.3, adapt=adapt_spec, first_order=first_order, reduction=reduction)
    g_func = meta_gradient(model, tasks, inner, "func")
    g_higher = meta_gradient(model, tasks, inner, "higher")
    g_loop = meta_gradient(model, tasks, inner, "loop")
    assert g_func.abs().max() > 1e-3  # not trivially zero
    torch.testing.assert_close(g_func, g_higher, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(g_loop, g_higher, rtol=1e-6, atol=1e-9)


def test_loop_backend_adapts_without_autograd_enabled(float64):
    """Evaluation calls the inner loop under no_grad: the loop backend still adapts."""
    torch.manual_seed(0)
    model = Conv4(n_way=3, filters=6, image_size=12).double()
    tasks, inner = toy_tasks(), InnerLoop(steps=2, lr=0.3)
    with torch.no_grad():
        a = query_loss(model, tasks, inner, backend="loop")
        b = query_loss(model, tasks, inner, backend="func")
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert not a[0].requires_grad


def _meta_loss(model, params, tasks, inner):
    total = 0.0
    for i in range(len(tasks)):
        t = tasks[i]
        fast = adapt(model, params, t.x_support, t.y_support, inner)
        total = total + torch.nn.functional.cross_entropy(functional_call(model, fast, (t.x_query,)), t.y_query)
    return total / len(tasks)


@pytest.mark.parametrize("adapt_spec", ["all", "head"])
def test_second_order_meta_gradient_matches_finite_differences(float64, adapt_spec):
    # softplus, not ReLU: with ReLU the inner-loop gradient jumps at kinks, so the meta-loss is
    # discontinuous and finite differences are meaningless (see mamlscope.core.models.Conv4)
    torch.manual_seed(1)
    model = Conv4(n_way=3, filters=3, image_size=12, activation="softplus").double()
    tasks = toy_tasks(n_tasks=2, seed=1)
    inner = InnerLoop(steps=2, lr=0.5, adapt=adapt_spec)
    analytic = meta_gradient(model, tasks, inner, "func")
    first_order = meta_gradient(model, tasks, InnerLoop(2, 0.5, adapt_spec, first_order=True), "func")
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    names, shapes = list(theta), [p.shape for p in theta.values()]
    flat = torch.cat([p.flatten() for p in theta.values()])

    def loss_at(vec):
        parts = torch.split(vec, [s.numel() for s in shapes])
        params = {n: v.reshape(s) for n, v, s in zip(names, parts, shapes)}
        with torch.enable_grad():
            return _meta_loss(model, params, tasks, inner).item()

    g = torch.Generator().manual_seed(0)
    eps = 1e-6  # central differences: truncation O(eps²), round-off O(1e-16/eps)
    for _ in range(4):
        v = torch.randn(flat.shape, generator=g, dtype=flat.dtype)
        fd = (loss_at(flat + eps * v) - loss_at(flat - eps * v)) / (2 * eps)
        assert abs(fd - analytic @ v) <= 1e-6 * max(1.0, abs(fd))
    # the check can tell first from second order: their directional derivatives differ
    assert (analytic - first_order).abs().max() > 1e-4


def test_first_order_is_query_gradient_at_adapted_params(float64):
    torch.manual_seed(2)
    model = MLP().double()
    x, y = torch.randn(2, 5, 1), torch.randn(2, 5, 1)
    xq, yq = torch.randn(2, 6, 1), torch.randn(2, 6, 1)
    tasks = Task(x, y, xq, yq)
    inner = InnerLoop(steps=2, lr=0.1, first_order=True)
    model.zero_grad()
    query_loss(model, tasks, inner, loss="mse")[0].mean().backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(2):  # by hand: two plain SGD steps, then the query gradient there
        theta = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters()}
        for _ in range(2):
            loss = torch.nn.functional.mse_loss(functional_call(model, theta, (x[i],)), y[i])
            grads = torch.autograd.grad(loss, list(theta.values()))
            theta = {n: (p - 0.1 * gr).detach().requires_grad_() for (n, p), gr in zip(theta.items(), grads)}
        q = torch.nn.functional.mse_loss(functional_call(model, theta, (xq[i],)), yq[i])
        for n, gr in zip(theta, torch.autograd.grad(q, list(theta.values()))):
            expected[n] += gr / 2
    for n in got:
        torch.testing.assert_close(got[n], expected[n])


def test_trajectory_and_zero_steps():
    torch.manual_seed(0)
    model = Conv4(n_way=3, filters=4, image_size=12)
    t = toy_tasks(n_tasks=1)[0]
    theta = dict(model.named_parameters())
    path = adapt(model, theta, t.x_support, t.y_support, InnerLoop(steps=3, lr=0.1), trajectory=True)
    assert len(path) == 4 and path[0]["head.weight"] is theta["head.weight"]
    assert not torch.allclose(path[3]["head.weight"], theta["head.weight"])
    assert path[3]["conv1.bn.weight"] is theta["conv1.bn.weight"]  # BatchNorm is not adapted
    same = adapt(model, theta, t.x_support, t.y_support, InnerLoop(steps=0))
    assert all(same[n] is theta[n] for n in theta)
    with pytest.raises(ValueError, match="unknown inner-loop backend"):
        query_loss(model, toy_tasks(1), InnerLoop(), backend="jax")


@pytest.mark.parametrize("n_way,shots", [(3, 2), (5, 1), (20, 1)])
def test_finn_reduction_is_n_times_the_mean_step(float64, n_way, shots):
    """Finn et al.'s Σᵢℓᵢ/K takes exactly N times the step of the mean loss, at the same α."""
    torch.manual_seed(0)
    model = Conv4(n_way=n_way, filters=4, image_size=12).double()
    t = toy_tasks(n_tasks=1, n_way=n_way, shots=shots)[0]
    theta = {n: p.detach() for n, p in model.named_parameters()}
    steps = {}
    for reduction in ("mean", "sum/k"):
        new = adapt(model, theta, t.x_support, t.y_support, InnerLoop(steps=1, lr=0.1, reduction=reduction))
        steps[reduction] = torch.cat([(theta[n] - new[n]).flatten() for n in theta])
    assert steps["mean"].abs().max() > 0
    torch.testing.assert_close(steps["sum/k"], n_way * steps["mean"], rtol=1e-12, atol=1e-15)


def test_reduction_is_validated():
    with pytest.raises(ValueError, match="reduction='sum'"):
        InnerLoop(reduction="sum")
    model = MLP()
    x, y = torch.randn(5, 1), torch.randn(5, 1)
    theta = dict(model.named_parameters())
    with pytest.raises(ValueError, match="use 'mean' for loss 'mse'"):
        adapt(model, theta, x, y, InnerLoop(reduction="sum/k"), loss="mse")
