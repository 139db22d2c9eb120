"""[L] Algorithm 1, the trajectory-coherence regulariser: its correction against autograd, its
meta-gradient against finite differences, both backends, and γ = 0 as plain MAML."""
import dataclasses

import pytest
import torch
from conftest import requires_data
from test_inner import toy_tasks

from mamlscope.core import meta
from mamlscope.core.inner import InnerLoop, coherence_correction, query_loss, query_loss_func
from mamlscope.core.models import Conv4


def _batch(b=4, shapes=((3, 2), (5,)), seed=0):
    g = torch.Generator().manual_seed(seed)
    theta = {f"p{i}": torch.randn(s, generator=g, dtype=torch.float64) for i, s in enumerate(shapes)}
    fast = {k: v + torch.randn((b, *v.shape), generator=g, dtype=torch.float64) for k, v in theta.items()}
    return fast, theta


def test_correction_is_minus_gamma_times_the_gradient_of_the_penalty():
    """θ̂ᵢ = θ̃ᵢ − γ ∇_{θ̃ᵢ} Ωᵢ with Ωᵢ = −θ⃗ᵢᵀθ⃗_μ, θ⃗_μ the mean of all unit updates (θ⃗ᵢ included),
    by autograd on the literal penalty."""
    fast, theta = _batch()
    gamma = 0.5
    got = coherence_correction(fast, theta, gamma)
    leaves = {k: v.clone().requires_grad_() for k, v in fast.items()}
    flat = torch.cat([(leaves[k] - theta[k]).reshape(4, -1) for k in leaves], dim=1)
    units = flat / flat.norm(dim=1, keepdim=True)
    mu = units.mean(0)
    for i in range(4):
        omega = -(units[i] @ mu)
        grads = torch.autograd.grad(omega, list(leaves.values()), retain_graph=True)
        for (k, v), gk in zip(fast.items(), grads):
            torch.testing.assert_close(got[k][i], v[i] - gamma * gk[i], rtol=1e-12, atol=1e-12)


def test_penalty_vanishes_when_every_update_is_parallel():
    fast, theta = _batch()
    direction = {k: v[0] - theta[k] for k, v in fast.items()}
    parallel = {k: theta[k] + torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=torch.float64).reshape(-1, *[1] * theta[k].dim())
                * direction[k] for k in theta}
    out = coherence_correction(parallel, theta, 0.5)
    for k in parallel:
        torch.testing.assert_close(out[k], parallel[k], rtol=0, atol=1e-14)
    # …and does not vanish otherwise; it raises the mean cosine to the mean direction
    moved = coherence_correction(fast, theta, 0.5)

    def mean_cos(f):
        d = torch.cat([(f[k] - theta[k]).reshape(4, -1) for k in f], dim=1)
        u = d / d.norm(dim=1, keepdim=True)
        return (u @ u.mean(0)).mean()
    assert mean_cos(moved) > mean_cos(fast) + 1e-3


def _meta_loss(model, params, tasks, inner, gamma):
    return query_loss_func(model, params, tasks, inner, coherence_gamma=gamma)[0].mean()


def test_meta_gradient_matches_finite_differences(float64):
    torch.manual_seed(1)
    model = Conv4(n_way=3, filters=3, image_size=12, activation="softplus").double()
    tasks = toy_tasks(n_tasks=3, seed=1)
    inner = InnerLoop(steps=2, lr=0.5)
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    leaves = {n: p.clone().requires_grad_() for n, p in theta.items()}
    analytic = torch.autograd.grad(_meta_loss(model, leaves, tasks, inner, 0.5), list(leaves.values()))
    analytic = torch.cat([a.flatten() for a in analytic])
    plain = torch.autograd.grad(_meta_loss(model, leaves, tasks, inner, 0.0), list(leaves.values()))
    names, shapes = list(theta), [p.shape for p in theta.values()]
    flat = torch.cat([p.flatten() for p in theta.values()])

    def loss_at(vec):
        parts = torch.split(vec, [s.numel() for s in shapes])
        return _meta_loss(model, {n: v.reshape(s) for n, v, s in zip(names, parts, shapes)}, tasks, inner, 0.5).item()

    g = torch.Generator().manual_seed(0)
    eps = 1e-6
    for _ in range(4):
        v = torch.randn(flat.shape, generator=g, dtype=flat.dtype)
        fd = (loss_at(flat + eps * v) - loss_at(flat - eps * v)) / (2 * eps)
        assert abs(fd - analytic @ v) <= 1e-6 * max(1.0, abs(fd))
    assert (analytic - torch.cat([p.flatten() for p in plain])).abs().max() > 1e-4  # the penalty matters


@pytest.mark.parametrize("adapt_spec", ["all", "head"])
def test_backends_give_the_same_regularised_meta_gradient(float64, adapt_spec):
    torch.manual_seed(0)
    model = Conv4(n_way=3, filters=6, image_size=12).double()
    tasks = toy_tasks(n_tasks=4)
    inner = InnerLoop(steps=3, lr=0.3, adapt=adapt_spec)
    grads = {}
    for backend in ("func", "loop", "higher"):
        model.zero_grad()
        losses, _ = query_loss(model, tasks, inner, backend=backend, coherence_gamma=0.5)
        losses.mean().backward()
        grads[backend] = torch.cat([p.grad.flatten() for p in model.parameters()])
    torch.testing.assert_close(grads["func"], grads["higher"], rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(grads["loop"], grads["higher"], rtol=1e-6, atol=1e-9)


def test_gamma_zero_is_plain_maml_bit_for_bit():
    torch.manual_seed(0)
    model = Conv4(n_way=3, filters=4, image_size=12)
    tasks = toy_tasks(n_tasks=3)
    inner = InnerLoop(steps=2, lr=0.3)
    for backend in ("func", "higher"):
        a = query_loss(model, tasks, inner, backend=backend)
        b = query_loss(model, tasks, inner, backend=backend, coherence_gamma=0.0)
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    cfg = meta.MetaConfig(n_way=3, filters=4, meta_batch=2, q_query=1, steps=1)
    assert dataclasses.replace(cfg, coherence_penalty=0.0) == cfg
    assert meta.MetaConfig(coherence_penalty=0.5).name == "maml-reg-omniglot-5w1s"
    with pytest.raises(ValueError, match="coherence_penalty=-1"):
        meta.MetaConfig(coherence_penalty=-1)
    with pytest.raises(ValueError, match="meta_batch >= 2"):
        meta.MetaConfig(coherence_penalty=0.5, meta_batch=1)


@requires_data
def test_a_regularised_run_trains_and_differs_from_plain(tmp_path):
    cfg = meta.MetaConfig(n_way=3, filters=4, meta_batch=2, q_query=1, steps=2, checkpoint_every=2, log_every=1,
                          curve_tasks=2, inner_steps=2, inner_lr=0.1, dtype="float64")
    plain = meta.train(cfg, root=tmp_path).load_model()
    reg_run = meta.train(dataclasses.replace(cfg, coherence_penalty=0.5), root=tmp_path)
    assert reg_run.dir.name.startswith("maml-reg-")
    reg = reg_run.load_model()
    assert not torch.equal(plain.head.weight, reg.head.weight)
    assert torch.isfinite(reg.head.weight).all()


# --------------------------------------------------------------------------------------------
# The experiment's statistics and L6's rule
# --------------------------------------------------------------------------------------------
def test_seed_interval_is_a_t_interval():
    from scipy import stats

    from mamlscope.measure.regulariser import seed_interval

    m, lo, hi = seed_interval([0.01, 0.02, 0.03])
    half = stats.t.ppf(0.975, 2) * 0.01 / 3 ** 0.5
    assert (m, lo, hi) == pytest.approx((0.02, 0.02 - half, 0.02 + half))
    assert seed_interval([0.5])[1] != seed_interval([0.5])[1]  # NaN for one seed


def _comparison(plain_acc, reg_acc, n=60, seed=0):
    """Per-task accuracies with the given means per seed (tasks of equal difficulty spread)."""
    from mamlscope.measure.regulariser import Comparison

    g = torch.Generator().manual_seed(seed)
    noise = {s: 0.05 * torch.randn(n, generator=g, dtype=torch.float64) for s in range(len(plain_acc))}
    return Comparison({s: a + noise[s] - noise[s].mean() for s, a in enumerate(plain_acc)},
                      {s: a + noise[s] - noise[s].mean() for s, a in enumerate(reg_acc)})


def _curves(final, rise, seeds=3, steps=500, noise=0.0, seed=0):
    """Held-out learning curves on the cpu profile's checkpoint grid, rising linearly by ``rise``
    over the last 40% of training up to ``final`` (plus Gaussian ``noise``)."""
    from mamlscope.core.meta import checkpoint_steps

    g = torch.Generator().manual_seed(seed)
    out = {}
    for s in range(seeds):
        out[s] = {}
        for step in checkpoint_steps(steps, 100, True):
            frac = min(1.0, (steps - step) / (0.4 * steps))
            out[s][step] = final - rise * frac + noise * float(torch.randn((), generator=g))
    return out


def _values(comp, plain_rise=0.0, reg_rise=0.0, noise=0.002):
    v = comp.claim_values("toy", 0.5)
    reg = sum(v["regularised"].values()) / len(v["regularised"])
    p = sum(v["plain"].values()) / len(v["plain"])
    curves = {"plain": _curves(p, plain_rise, len(comp.seeds), noise=noise),
              "regularised": _curves(reg, reg_rise, len(comp.seeds), noise=noise, seed=1)}
    return comp.claim_values("toy", 0.5, curves, 500)


def _judge(comp, **kw):
    from mamlscope.verdict import claims

    return claims.judge("L6", _values(comp, **kw), "t", null_values=comp.shuffled().claim_values("toy", 0.5),
                        seeds=comp.seed_record())


def test_levelled_off_precondition_on_rising_and_flat_curves():
    """The precondition of L6: a curve still rising 6 points over steps 300–500 (as the cpu
    plain arm did, ≈ 83 → 89% over 200–500) fails it; a flat curve with checkpoint noise passes."""
    from mamlscope import stats

    rising = stats.window_rise(_curves(0.89, 0.06, noise=0.005), 500)
    assert rising.rise == pytest.approx(0.06, abs=0.01) and rising.lo > 0.0133 and rising.n == 9
    flat = stats.window_rise(_curves(0.89, 0.0, noise=0.002), 500)
    assert flat.lo < 0 < flat.hi <= 0.0133
    good = _comparison([0.90, 0.91, 0.89], [0.92, 0.93, 0.915])
    still_rising = _judge(good, plain_rise=0.06)
    assert still_rising.verdict == "inconclusive" and "FAILS" in still_rising.precondition
    assert "plain" in still_rising.precondition
    assert _judge(good, reg_rise=0.06).verdict == "inconclusive"  # either arm
    done = _judge(good)
    assert done.verdict == "reproduced", done.precondition
    assert "rise over the last 40% of training" in done.measured
    assert set(done.values["curves"]["plain"]["0"]) == {"0", "1", "2", "5", "10", "20", "50", "100", "200",
                                                        "300", "400", "500"}  # kept for re-judging


def test_l6_rule_on_consistent_small_and_absent_improvements():
    from mamlscope.verdict import claims

    good = _comparison([0.90, 0.91, 0.89], [0.92, 0.93, 0.915])
    v = good.claim_values("toy", 0.5)
    assert v["diff"] == pytest.approx((0.02 + 0.02 + 0.025) / 3)
    err_plain, err_reg = 1 - 0.90, 1 - (0.92 + 0.93 + 0.915) / 3
    assert v["error_reduction"] == pytest.approx((err_plain - err_reg) / err_plain)
    r = _judge(good)
    assert r.verdict == "reproduced" and r.decisive == claims.claim("L6").rule.decisive_names
    assert r.seeds["n"] == 3 and r.seeds["passing"] == 3
    small = _comparison([0.90, 0.91, 0.89], [0.902, 0.912, 0.892])
    r = _judge(small)
    assert r.verdict == "partly" and r.values["diff_lo"] > 0 and r.values["error_reduction"] < 0.115
    none = _comparison([0.90, 0.91, 0.89], [0.91, 0.90, 0.89])
    r = _judge(none)
    # seeds +1, −1, 0 points: an interval over 3 seeds this wide could not have told [L]'s +1.33
    # points from nothing
    assert r.verdict == "inconclusive" and r.reasons == ["underpowered"]
    assert r.seeds["passing"] == 1  # seed 0 (+1), not 1 (−1) or 2 (0)
    flat = _comparison([0.90, 0.91, 0.89], [0.9005, 0.9095, 0.8905])  # ±0.05 points: it would have
    r = _judge(flat)
    assert r.verdict == "not reproduced" and next(iter(r.power.values()))["power"] > 0.99
    two = _comparison([0.90, 0.91], [0.92, 0.93])
    assert _judge(two).verdict == "inconclusive"
    assert "seed 2" in good.table().index[2] and "t interval over seeds" in good.table().iloc[-1, -1]


def test_l6_not_reproduced_when_its_decisive_check_fails_and_error_text_says_increased():
    """A worse regularised arm in every seed (as measured at cpu: −0.55, −1.13, −0.83 points):
    the decisive check fails → not reproduced, and the measured text says the error rate
    *increased* (not "reduced by −8%")."""
    worse = _comparison([0.891, 0.889, 0.892], [0.886, 0.878, 0.883])
    r = _judge(worse)
    assert r.verdict == "not reproduced" and not any(r.checks[n] for n in r.decisive)
    assert r.values["error_reduction"] < 0 and "error rate increased by" in r.measured
    assert "-" not in r.measured.split("error rate")[1].split(";")[0]
    assert r.seeds["passing"] == 0


def test_l6_control_shuffles_arms_per_task_and_the_rule_rejects_it():
    """The control keeps every task's pair of scores (only which arm holds which is random) and
    is judged by the same rule; a strong, consistent improvement is rejected once shuffled."""
    from mamlscope.verdict import claims

    good = _comparison([0.90, 0.91, 0.89], [0.95, 0.96, 0.94], n=200)
    null = good.shuffled(seed=0)
    assert null.seeds == good.seeds
    for s in good.seeds:
        pairs = torch.stack([good.plain[s], good.regularised[s]]).sort(0).values
        torch.testing.assert_close(torch.stack([null.plain[s], null.regularised[s]]).sort(0).values, pairs)
        assert not torch.equal(null.plain[s], good.plain[s])  # some tasks were swapped
    nv = null.claim_values("toy", 0.5)
    assert abs(nv["diff"]) < 0.01 and nv["diff_lo"] <= 0
    r = _judge(good)
    assert r.verdict == "reproduced" and r.null_verdict == "not reproduced"
    assert r.control == claims.claim("L6").rule.control and r.null_values["diff_lo"] == nv["diff_lo"]
    # a "control" that is the measurement itself is not rejected → the claim becomes inconclusive
    same = claims.judge("L6", _values(good), "t", null_values=good.claim_values("toy", 0.5))
    assert same.verdict == "inconclusive" and "does not reject its control" in same.precondition
    with pytest.raises(ValueError, match="null_values"):
        claims.judge("L6", _values(good), "t")


def test_tables_show_the_precondition_and_the_control_beside_the_measurement():
    from mamlscope.measure import regulariser

    good = _comparison([0.90, 0.91, 0.89], [0.92, 0.93, 0.915])
    t = regulariser.rise_table(_values(good, plain_rise=0.06))
    assert list(t.index) == ["plain", "regularised"] and not t.iloc[0, 1] and t.iloc[1, 1]
    assert "steps 300–500" in t.columns[0]
    c = regulariser.result_table(_judge(good))
    assert c.index[0] == "measured" and c.index[1].startswith("control (") and c.iloc[1, -1] == "not reproduced"


def test_compare_and_sweep_refuse_mismatched_inputs():
    from mamlscope.measure import regulariser

    with pytest.raises(ValueError, match="same seeds"):
        regulariser.compare({0: None, 1: None}, {0: None}, 10)
    with pytest.raises(ValueError, match="γ = 0"):
        regulariser.sweep({}, 10)


def test_nudge_ratio_by_hand_and_its_scale_with_the_inner_step():
    from dataclasses import replace as _replace

    from test_inner import toy_tasks

    from mamlscope.core.inner import InnerLoop, adapt
    from mamlscope.core.models import Conv4
    from mamlscope.measure import regulariser as reg

    torch.manual_seed(0)
    model = Conv4(n_way=3, filters=4, image_size=12)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    tasks = toy_tasks(n_tasks=4, n_way=3)
    inner = InnerLoop(steps=1, lr=0.1)
    got = reg.nudge(model, theta, tasks, inner, gamma=0.5, batch=4)
    deltas = []
    for i in range(4):
        fast = adapt(model, theta, tasks.x_support[i], tasks.y_support[i], inner)
        deltas.append(torch.cat([(fast[n] - theta[n]).flatten() for n in theta]))
    d = torch.stack(deltas)
    u = d / d.norm(dim=1, keepdim=True)
    mu = u.mean(0)
    ratio = 0.5 * (mu - (u @ mu)[:, None] * u).norm(dim=1) / d.norm(dim=1) ** 2
    assert got["adaptation_norm"] == pytest.approx(d.norm(dim=1).median().item(), rel=1e-5)
    assert got["nudge_ratio"] == pytest.approx(ratio.median().item(), rel=1e-4)
    # one step of Σℓ/K is N = 3 times the mean loss's: the same γ pulls N² = 9 times less
    other = reg.nudge(model, theta, tasks, _replace(inner, reduction="sum/k"), gamma=0.5, batch=4)
    assert got["nudge_ratio"] / other["nudge_ratio"] == pytest.approx(9.0, rel=1e-3)


@requires_data
def test_nudge_table_on_a_float64_smoke_run(tmp_path, monkeypatch):
    from mamlscope.measure import regulariser as reg
    from mamlscope.training import profiles

    monkeypatch.setenv("MAMLSCOPE_CACHE", str(tmp_path / "cache"))
    P = profiles.load("smoke")
    run = meta.train(P.regulariser_setting)
    t = reg.nudge_table({"plain": run}, P.regulariser_gamma, 4)
    assert list(t.index.get_level_values("arm")) == ["plain"] * len(t)
    assert (t["γ equivalent under the other loss"] > 0).all()
