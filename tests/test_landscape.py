"""[L]'s signals at one θ, against direct references: explicit Hessians, looped gradients."""
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from mamlscope import landscape
from mamlscope.evaluate import per_task_scores
from mamlscope.inner import InnerLoop, adapt, model_params
from mamlscope.models import Conv4

from conftest import requires_data
from test_inner import toy_tasks


def _setup():
    torch.manual_seed(0)
    m = Conv4(n_way=3, filters=3, image_size=12, activation="softplus").double()
    tasks = toy_tasks(n_tasks=4, n_way=3, shots=2, queries=2)
    tasks = type(tasks)(tasks.x_support.double(), tasks.y_support, tasks.x_query.double(), tasks.y_query)
    return m, {k: v.detach() for k, v in model_params(m).items()}, tasks


def _flat_loss(m, theta, names, xs, ys):
    shapes = [theta[n].shape for n in names]
    sizes = [theta[n].numel() for n in names]

    def f(v):
        parts = dict(zip(names, [c.reshape(s) for c, s in zip(torch.split(v, sizes), shapes)]))
        return F.cross_entropy(functional_call(m, {**theta, **parts}, (xs,)), ys)
    return f


def test_signals_match_direct_computation(float64):
    m, theta, tasks = _setup()
    inner = InnerLoop(steps=2, lr=0.3)
    s = landscape.signals(m, theta, tasks, inner, hessian_tol=1e-8, hessian_max_iter=500)
    names = [n for n in theta if ".bn." not in n]
    curv, grads, dirs = [], [], []
    for i in range(len(tasks)):
        t = tasks[i]
        fast = {k: v.detach() for k, v in adapt(m, theta, t.x_support, t.y_support, inner).items()}
        v = torch.cat([fast[n].reshape(-1) for n in names])
        H = torch.autograd.functional.hessian(_flat_loss(m, fast, names, t.x_support, t.y_support), v)
        curv.append(torch.linalg.eigvalsh(H).abs().max())
        v0 = torch.cat([theta[n].reshape(-1) for n in names]).requires_grad_()
        grads.append(torch.autograd.grad(_flat_loss(m, theta, names, t.x_support, t.y_support)(v0), v0)[0])
        d = v - v0.detach()
        dirs.append(d / d.norm())
    assert s["curvature"] == pytest.approx(torch.stack(curv).mean().item(), rel=1e-4)
    G, D = torch.stack(grads), torch.stack(dirs)
    off = ~torch.eye(len(tasks), dtype=torch.bool)
    assert s["gradient_coherence"] == pytest.approx((G @ G.T)[off].mean().item(), rel=1e-8)
    assert s["trajectory_coherence"] == pytest.approx((D @ D.T)[off].mean().item(), rel=1e-8)
    assert s["accuracy"] == pytest.approx(per_task_scores(m, tasks, inner).double().mean().item())
    assert s["tasks"] == 4 and s["curvature_se"] > 0 and s["gradient_coherence_se"] > 0


def test_representation_coherence_uses_each_tasks_batch(float64):
    m, theta, tasks = _setup()
    s = landscape.signals(m, theta, tasks, InnerLoop(steps=1, lr=0.3), curvature_tasks=2)
    h = torch.cat([functional_call(m, theta, (tasks.x_query[i],), {"return_activations": True})[1]["conv4"].flatten(1)
                   for i in range(len(tasks))])
    off = ~torch.eye(len(h), dtype=torch.bool)
    assert s["representation_coherence"] == pytest.approx((h @ h.T)[off].mean().item(), rel=1e-8)
    assert s["curvature_tasks"] == 2


@requires_data
def test_finetune_start_keeps_the_body_and_draws_a_new_head(tmp_path):
    import dataclasses

    from mamlscope import meta

    cfg = meta.SupervisedConfig(dataset="mnist", filters=4, batch_size=8, steps=2, checkpoint_every=2,
                                log_checkpoints=False, log_every=1)
    run = meta.train(cfg, root=tmp_path)
    model, theta = meta.finetune_start(run, n_way=5, seed=3)
    sup = run.load_model()
    assert theta["head.weight"].shape == (5, sup.head.in_features) and torch.equal(theta["head.bias"], torch.zeros(5))
    for k, v in sup.state_dict().items():
        if not k.startswith("head."):
            assert torch.equal(theta[k], v)
    _, again = meta.finetune_start(run, n_way=5, seed=3)
    assert torch.equal(again["head.weight"], theta["head.weight"])
    assert not torch.equal(meta.finetune_start(run, n_way=5, seed=4)[1]["head.weight"], theta["head.weight"])
    with pytest.raises(TypeError, match="needs a supervised run"):
        meta.finetune_start(meta.train(dataclasses.replace(meta.MetaConfig(n_way=3, filters=4, meta_batch=2, q_query=1,
                            steps=1, checkpoint_every=1, log_every=1, curve_tasks=2)), root=tmp_path), n_way=5)
