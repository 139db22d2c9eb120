import numpy as np
import pytest
import torch

from mamlscope import stats
from mamlscope.core.data import Task
from mamlscope.core.inner import InnerLoop
from mamlscope.core.models import Conv4
from mamlscope.measure import representations as R
from mamlscope.metrics import compare_rdms, rdm


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
    assert stats.bootstrap_ratio(meta, inner) == pytest.approx((3.0, 3.0, 3.0))   # no spread: no width
    rng = np.random.default_rng(1)
    noisy_meta, noisy_inner = 0.1 + 0.05 * rng.random(4), 0.1 + 0.1 * rng.random((5, 4))
    est, lo, hi = stats.bootstrap_ratio(noisy_meta, noisy_inner)
    assert lo < est < hi and (est, lo, hi) == stats.bootstrap_ratio(noisy_meta, noisy_inner)  # seeded
    # a weak effect: inner ≈ meta, the interval includes 1 (so G4's rule fails)
    _, lo, hi = stats.bootstrap_ratio(noisy_meta, noisy_meta.mean() + 0.05 * rng.standard_normal((5, 4)))
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


# --------------------------------------------------------------------------------------------
# G1 / G2 controls: matched random perturbations, measured by the same code
# --------------------------------------------------------------------------------------------
def test_finetune_dissimilarity_control_draws(model):
    theta = dict(model.named_parameters())
    tasks = _toy()
    d = R.finetune_dissimilarity(model, theta, tasks, InnerLoop(steps=3, lr=0.5), null_draws=2, seed=3)
    assert d["null"].shape == (2, 3, 5) and (d["null"] > 0).all()
    assert not np.allclose(d["null"][0], d["null"][1])  # two independent directions
    again = R.finetune_dissimilarity(model, theta, tasks, InnerLoop(steps=3, lr=0.5), null_draws=2, seed=3)
    np.testing.assert_array_equal(d["null"], again["null"])  # seeded
    # no inner-loop change → the matched control does not move either
    d0 = R.finetune_dissimilarity(model, theta, tasks, InnerLoop(steps=0), null_draws=1)
    assert np.allclose(d0["null"], 0.0)


def _fc(arm_scale=(1.0, 2.0, 4.0, 8.0, 16.0), n_ckpt=2, n_tasks=6, seed=0):
    rng = np.random.default_rng(seed)
    base = np.array(arm_scale)
    noise = lambda: np.exp(0.1 * rng.standard_normal((n_ckpt, n_tasks, 5)))  # noqa: E731
    d = {"correlation": 0.01 * base * noise(), "euclidean": 0.01 * base * noise()}
    null = np.stack([0.01 * np.array([1.0, 2, 4, 8, 16]) * noise() for _ in range(2)])
    layers = ["conv1", "conv2", "conv3", "conv4", "head"]
    drift = {m: np.zeros((n_ckpt, 5)) for m in d}
    return R.FinetuneChange(list(range(n_ckpt)), layers, d, drift, null, "correlation")


def test_g1_values_contrast_the_inner_loop_with_its_control():
    steep = _fc((1.0, 4.0, 16.0, 64.0, 256.0))  # slope log 4 per layer vs the control's log 2
    v = steep.claim_values()
    assert v["slope_diff"] == pytest.approx([np.log(2)] * 2, abs=0.1)
    assert min(v["slope_diff_lo"]) > 0 and min(v["rho_lo"]) == pytest.approx(1.0)
    assert v["rho_control"] == pytest.approx([1.0, 1.0])
    nv = steep.null_values()  # draw 1 against draw 0: no contrast
    assert set(nv) >= {"rho_lo", "slope_diff_lo"} and max(abs(x) for x in nv["slope_diff"]) < 0.1
    same = _fc()  # the inner loop's profile is the control's
    assert max(abs(x) for x in same.claim_values()["slope_diff"]) < 0.1
    t = steep.beside_control()
    assert t.loc[(0, "inner loop"), "log-depth slope"] > t.loc[(0, "control"), "log-depth slope"]


def _sc(trained=(1.0, 3.0, 9.0, 27.0, 81.0), n_seeds=4, seed=0):
    rng = np.random.default_rng(seed)
    noise = lambda shape: np.exp(0.05 * rng.standard_normal(shape))  # noqa: E731
    rsa = {"euclidean": 0.005 * np.array(trained) * noise((n_seeds, 3, 5))}
    cka = {"rbf [G]": 1 - 0.8 * rsa["euclidean"]}
    ctrl = 0.005 * np.array([1.0, 2, 4, 8, 16])
    null_rsa = {"euclidean": ctrl * noise((2, n_seeds, 5))}
    null_cka = {"rbf [G]": 1 - 0.8 * null_rsa["euclidean"]}
    layers = ["conv1", "conv2", "conv3", "conv4", "head"]
    return R.SupervisedChange([0, 5, 10], layers, rsa, cka, [0.9] * n_seeds, null_rsa, null_cka,
                              list(range(n_seeds)))


def test_g2_values_by_hand():
    sc = _sc()
    v = sc.claim_values()
    rsa, ctrl = sc.rsa["euclidean"][:, -1], sc.null_rsa["euclidean"][0]
    depth = np.arange(5) - 2.0
    by_hand = [((np.log(a) - np.log(a).mean()) @ depth - (np.log(c) - np.log(c).mean()) @ depth) / 10
               for a, c in zip(rsa, ctrl)]
    assert v["slope_diff_by_seed"] == pytest.approx(by_hand)
    assert v["slope_diff"] == pytest.approx(np.mean(by_hand)) and v["slope_diff_lo"] > 0
    margin = sc.cka["rbf [G]"][:, -1, 0] - (1 - rsa[:, 0])
    assert v["early_margin"]["conv1"] == pytest.approx(margin.mean())
    s = sc.seed_values()
    assert s["n"] == 4 and s["passing"] == 4 and list(s["values"]) == [0, 1, 2, 3]


def test_g2_rbf_cka_uses_goerttlers_bandwidth():
    """[G]'s cka.py: σ² = median of the non-zero squared distances, per representation."""
    from mamlscope.metrics import cka

    g = np.random.default_rng(0)
    x, y = g.standard_normal((30, 7)), g.standard_normal((30, 4))
    x[1] = x[0]  # a coincident pair: its zero distance is left out of the median

    def gram(a):
        d2 = ((a[:, None] - a[None]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * np.median(d2[d2 != 0])))

    def centred(k):
        h = np.eye(len(k)) - 1 / len(k)
        return h @ k @ h

    kx, ky = centred(gram(x)), centred(gram(y))
    by_hand = (kx * ky).sum() / np.sqrt((kx * kx).sum() * (ky * ky).sum())
    got = cka(torch.tensor(x), torch.tensor(y), **R.G2_KERNELS["rbf [G]"])
    assert got == pytest.approx(by_hand, rel=1e-10)
    assert got != pytest.approx(cka(torch.tensor(x), torch.tensor(y), **R.G2_KERNELS["rbf [Kornblith]"]))


def test_analysed_checkpoints_are_the_nearest_kept_ones():
    """[G] Fig 3's checkpoints over the last two thirds: exact where the run has them (the cpu
    grid), else the nearest the run kept (a long fork keeps every 2,500 steps)."""
    from types import SimpleNamespace

    from mamlscope.measure.representations import analysed_checkpoints

    def run(steps, every, have):
        return SimpleNamespace(config=SimpleNamespace(steps=steps, checkpoint_every=every),
                               checkpoint_steps=lambda: sorted(have))

    assert analysed_checkpoints(run(3000, 250, range(0, 3001, 250))) == [1000, 1500, 2000, 2500, 3000]
    kept = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 2500, 5000, 7500, 10000]
    assert analysed_checkpoints(run(10000, 500, kept)) == [2500, 5000, 7500, 10000]
