import numpy as np
import pytest
import torch

from mamlscope import representations as R
from mamlscope.data import Task
from mamlscope.inner import InnerLoop
from mamlscope.metrics import compare_rdms, rdm
from mamlscope.models import Conv4


def _toy(n_tasks=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs, xq = torch.randn(n_tasks, 6, 1, 12, 12, generator=g), torch.randn(n_tasks, 12, 1, 12, 12, generator=g)
    ys, yq = torch.arange(3).repeat(n_tasks, 2), torch.arange(3).repeat(n_tasks, 4)
    return Task(xs, ys, xq, yq)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return Conv4(n_way=3, filters=6, image_size=12)


def test_same_parameters_have_zero_dissimilarity(model):
    theta = dict(model.named_parameters())
    x = _toy()[0].x_query
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in R.layer_dissimilarity(model, theta, theta, x).values())
    assert all(v == pytest.approx(1.0) for v in R.layer_cka(model, theta, theta, x).values())


def test_layer_dissimilarity_is_rsa_of_the_layer(model):
    theta = dict(model.named_parameters())
    other = {k: v + 0.3 * torch.randn_like(v) for k, v in theta.items()}
    x = _toy()[0].x_query
    _, a = model(x, return_activations=True)
    _, b = torch.func.functional_call(model, other, (x,), {"return_activations": True})
    for metric in R.METRICS:
        got = R.layer_dissimilarity(model, theta, other, x, metric)
        for layer in model.layer_names:
            assert got[layer] == pytest.approx(compare_rdms(rdm(a[layer].detach(), metric), rdm(b[layer].detach(), metric)))
        assert got["head"] > 0
    # the default is the correlation distance of [G]'s released code
    assert R.layer_dissimilarity(model, theta, other, x) == R.layer_dissimilarity(model, theta, other, x, "correlation")
    assert R.layer_dissimilarity(model, theta, other, x, "euclidean") != R.layer_dissimilarity(model, theta, other, x)


def test_finetune_dissimilarity_shapes_and_zero_steps(model):
    theta = dict(model.named_parameters())
    tasks = _toy()
    d = R.finetune_dissimilarity(model, theta, tasks, InnerLoop(steps=3, lr=0.5))
    assert set(d) == set(R.METRICS)
    for m in R.METRICS:
        assert d[m].shape == (3, 5) and (d[m] >= 0).all() and d[m][:, -1].min() > 0
    d0 = R.finetune_dissimilarity(model, theta, tasks, InnerLoop(steps=0))
    assert all(np.allclose(v, 0.0) for v in d0.values())


def test_depth_trend():
    rising = np.array([[0.0, 0.1, 0.2, 0.3], [0.0, 0.2, 0.3, 0.5]])
    assert R.depth_trend(rising) == (1.0, 1.0, 1.0)
    mixed = np.array([[0.0, 0.1, 0.2, 0.3], [0.3, 0.2, 0.1, 0.0], [0.0, 0.2, 0.1, 0.3]])
    mean, lo, hi = R.depth_trend(mixed)
    assert mean == pytest.approx((1 - 1 + 0.8) / 3) and lo < 0 < hi


def test_inner_vs_meta(model):
    theta0 = dict(model.named_parameters())
    theta1 = {k: v + 0.01 * torch.randn_like(v) for k, v in theta0.items()}
    tasks = _toy(2)
    eval_x = _toy(1, seed=5)[0].x_query
    labels, by_metric = R.inner_vs_meta_rdms(model, [theta0, theta1], tasks, eval_x, InnerLoop(lr=0.5))
    assert set(by_metric) == set(R.METRICS)
    dissim = by_metric["correlation"]
    assert len(labels) == 2 * (1 + 2 * 3) and set(dissim) == set(model.layer_names)
    summary = R.inner_and_meta_change(labels, dissim["head"])
    index = {lab: k for k, lab in enumerate(labels)}
    assert summary["meta"] == pytest.approx(dissim["head"][index[(0, None, 0)], index[(1, None, 0)]].item())
    assert summary["ratio_1"] == pytest.approx(summary["inner_1"] / summary["meta"])


def test_ratio_interval_resamples_checkpoints_and_tasks():
    meta = np.array([0.1, 0.1, 0.1])
    inner = np.full((4, 5), 0.3)
    assert R.ratio_interval(meta, inner) == pytest.approx((3.0, 3.0, 3.0))   # no spread: no width
    rng = np.random.default_rng(1)
    noisy_meta, noisy_inner = 0.1 + 0.05 * rng.random(4), 0.1 + 0.1 * rng.random((5, 4))
    est, lo, hi = R.ratio_interval(noisy_meta, noisy_inner)
    assert lo < est < hi and (est, lo, hi) == R.ratio_interval(noisy_meta, noisy_inner)  # seeded
    # a weak effect: inner ≈ meta, the interval includes 1 (so G4's rule fails)
    _, lo, hi = R.ratio_interval(noisy_meta, noisy_meta.mean() + 0.05 * rng.standard_normal((5, 4)))
    assert lo < 1 < hi


def test_meta_change_plateau_and_drift():
    grid = list(range(0, 1100, 100))
    flat = np.full((10, 2), 0.1)
    falling = np.stack([np.linspace(0.4, 0.1, 10), np.linspace(0.2, 0.05, 10)], 1)
    mc = R.MetaChange(grid, ["conv1", "conv4"], {"correlation": flat, "euclidean": falling})
    assert mc.delta == 100 and mc.plateau("correlation") == pytest.approx([0.1, 0.1])
    assert mc.drift("correlation") == pytest.approx([0.0, 0.0], abs=1e-9)
    assert (mc.drift("euclidean") > 0.25).all()  # still falling: fails G3's levelling-off check
    v = mc.claim_values()
    assert v["plateau_last"] == pytest.approx(0.1) and v["plateau_euclidean"]["conv4"] == pytest.approx(falling[5:, 1].mean())
