"""[L]'s signals at one θ, against direct references: explicit Hessians, looped gradients."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import requires_data
from test_inner import toy_tasks
from torch.func import functional_call

from mamlscope import stats
from mamlscope.core.evaluate import per_task_scores
from mamlscope.core.inner import InnerLoop, adapt, model_params
from mamlscope.core.models import Conv4
from mamlscope.measure import landscape


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
    assert s["score"] == pytest.approx(per_task_scores(m, tasks, inner).double().mean().item())
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

    from mamlscope.core import meta

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


def test_signals_for_regression_use_the_mse_and_report_minus_mse(float64):
    """Sinusoid runs ([L] §5.3.1): the support loss is the MSE, the score −MSE on the queries."""
    from mamlscope.core.data import SinusoidTasks
    from mamlscope.core.models import MLP

    torch.manual_seed(0)
    m = MLP(hidden=(5, 5), activation="softplus").double()
    theta = {k: v.detach() for k, v in model_params(m).items()}
    tasks = SinusoidTasks(k_shot=4, q_query=3, seed=1).batch(range(3))
    tasks = tasks.to("cpu", torch.float64)
    inner = InnerLoop(steps=1, lr=0.05)
    s = landscape.signals(m, theta, tasks, inner, loss="mse", hessian_tol=1e-10)
    names = list(theta)
    curv, mse = [], []
    for i in range(len(tasks)):
        t = tasks[i]
        fast = {k: v.detach() for k, v in adapt(m, theta, t.x_support, t.y_support, inner, loss="mse").items()}
        v = torch.cat([fast[n].reshape(-1) for n in names])
        sizes, shapes = [fast[n].numel() for n in names], [fast[n].shape for n in names]

        def f(w):
            p = dict(zip(names, [c.reshape(sh) for c, sh in zip(torch.split(w, sizes), shapes)]))
            return F.mse_loss(functional_call(m, p, (t.x_support,)), t.y_support)
        curv.append(torch.linalg.eigvalsh(torch.autograd.functional.hessian(f, v)).abs().max())
        mse.append(F.mse_loss(functional_call(m, fast, (t.x_query,)), t.y_query))
    assert s["curvature"] == pytest.approx(torch.stack(curv).mean().item(), rel=1e-6)
    assert s["score"] == pytest.approx(-torch.stack(mse).mean().item(), rel=1e-10)


# --------------------------------------------------------------------------------------------
# Reading the curves
# --------------------------------------------------------------------------------------------
def _frame(steps, **cols):
    """A signals frame: each column with a constant standard error of 0.01 unless given."""
    import pandas as pd

    data = {}
    for k, v in cols.items():
        data[k] = v
        data.setdefault(f"{k}_se", [0.01] * len(v))
    return pd.DataFrame(data, index=pd.Index(steps, name="step"))


def test_peak_smooths_then_compares_with_the_last_checkpoints():
    acc = [0.5, 0.7, 0.8, 0.9, 0.8, 0.7, 0.6, 0.6, 0.6]
    p = landscape.peak(_frame(range(0, 90, 10), score=acc))
    assert p.step == 30 and p.value == pytest.approx((0.8 + 0.9 + 0.8) / 3)
    assert p.final == pytest.approx(0.6) and p.drop == pytest.approx(p.value - 0.6)
    assert p.drop_se == pytest.approx(math.hypot(0.01 * math.sqrt(3) / 3, 0.01 * math.sqrt(3) / 3))
    assert 0 < p.drop_bias < p.drop_q95 < 0.05 and p.corrected == pytest.approx(p.drop - p.drop_bias)
    assert p.excess > 0.2
    # a lone spike is smoothed away: the broad maximum wins
    spiky = [0.5, 1.0, 0.5, 0.5, 0.8, 0.8, 0.8, 0.6, 0.6]
    assert landscape.peak(_frame(range(9), score=spiky)).step == 5
    # still rising at the end: no drop
    assert landscape.peak(_frame(range(5), score=[0.1, 0.2, 0.3, 0.4, 0.5])).drop == pytest.approx(0.05)


def test_peak_drop_is_bias_corrected_on_a_flat_null_series():
    """On curves that do not drop (flat + noise), the raw drop is biased upward; the corrected
    drop is not, and the drop exceeds the null's 95% quantile about 5% of the time."""
    rng = np.random.default_rng(1)
    se = 0.02
    raw, corrected, excess = [], [], []
    for _ in range(400):
        p = landscape.peak(_frame(range(13), score=0.6 + se * rng.standard_normal(13), score_se=[se] * 13))
        raw.append(p.drop), corrected.append(p.corrected), excess.append(p.excess > 0)
    assert np.mean(raw) > 0.01                       # a max over noisy checkpoints: biased upward
    assert abs(np.mean(corrected)) < 0.003           # corrected: ≈ 0 (± Monte Carlo)
    assert 0.01 < np.mean(excess) < 0.10             # ≈ 5% false "meta-overfitting"
    # the bias is what stats.peak_drop_null computes
    bias, q95 = stats.peak_drop_null([se] * 13)
    assert bias == pytest.approx(np.mean(raw), abs=0.003) and q95 > bias


def test_rank_correlation_is_spearmans_with_a_bootstrap_interval():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    x = rng.normal(size=20)
    y = x + rng.normal(size=20)
    y[3] = y[4]  # a tie
    c = landscape.rank_correlation(x, y)
    assert c.rho == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert c.lo < c.rho < c.hi and c.n == 20
    assert landscape.rank_correlation(x, y) == c  # seeded
    rows = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    expected = [spearmanr(a, b).statistic for a, b in zip(*rows)]
    assert stats.spearman_rows(*rows) == pytest.approx(expected, abs=1e-12)
    assert landscape.rank_correlation(np.arange(10), np.arange(10) ** 2)[:3] == (1.0, 1.0, 1.0)
    assert math.isnan(landscape.rank_correlation([1, 2, 3], [1, 2, 3]).rho)


def test_predictors_split_at_each_runs_peak():
    steps = list(range(0, 100, 10))
    acc = [0.2, 0.4, 0.6, 0.8, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65]
    f = _frame(steps, score=acc, curvature=[1, 3, 5, 4, 3, 2.5, 2, 1.5, 1.2, 1.0], support_loss=[1.0] * 10,
               trajectory_coherence=acc, gradient_coherence=acc, representation_coherence=[-a for a in acc])
    t = landscape.predictors({"run": f})
    assert t.loc[("run", "trajectory_coherence"), "all"].rho == pytest.approx(1.0)
    assert t.loc[("run", "representation_coherence"), "from the peak"].rho == pytest.approx(-1.0)
    assert t.loc[("run", "curvature"), "from the peak"].rho == pytest.approx(1.0)  # falls with accuracy
    assert t.loc[("run", "curvature"), "from the peak"].n == 6 and t.loc[("run", "curvature"), "up to the peak"].n == 5
    assert math.isnan(t.loc[("run", "support_loss"), "all"].rho)  # constant: no rank correlation
    assert t.loc[("run", "step_counter"), "from the peak"].rho == pytest.approx(-1.0)


# a run on a uniform grid that meta-overfits: accuracy peaks near step 40, then falls
STEPS = list(range(0, 130, 10))
ACC = [0.3, 0.6, 0.8, 0.85, 0.84, 0.82, 0.8, 0.78, 0.77, 0.76, 0.75, 0.74, 0.73]
RISE_FALL = [1.0, 4.0, 6.0, 5.5, 5.0, 4.5, 4.0, 3.5, 3.0, 2.5, 2.0, 1.5, 1.2]


def _overfitting_run(signal, curvature=RISE_FALL, score=ACC):
    sl = [2 - 0.1 * i for i in range(13)]  # falls all along: a trend like the step counter
    return _frame(STEPS, score=score, curvature=curvature, support_loss=sl, trajectory_coherence=signal,
                  gradient_coherence=signal, representation_coherence=signal)


def test_phase_split_correlation_and_control_margins_match_hand_computation():
    from scipy.stats import spearmanr

    sig = [0.1, 0.5, 0.2, 0.9, 0.8, 0.85, 0.6, 0.65, 0.3, 0.4, 0.35, 0.2, 0.1]
    v = landscape.tracking_values({"run": _overfitting_run(sig)}, "gradient_coherence")
    # peak: the smoothed maximum is at step 40 ((0.85 + 0.84 + 0.82) / 3); it belongs to both halves
    assert v["peak_step"]["run"] == 40
    assert v["rho_up"]["run"] == pytest.approx(spearmanr(sig[:5], ACC[:5]).statistic)
    assert v["up_checkpoints"]["run"] == 5 and v["after_checkpoints"]["run"] == 9
    assert v["rho_after"]["run"] == pytest.approx(spearmanr(sig[4:], ACC[4:]).statistic)
    step_rho = spearmanr(STEPS, ACC).statistic
    sl_rho = spearmanr([-(2 - 0.1 * i) for i in range(13)], ACC).statistic
    assert v["vs_step"]["run"] == pytest.approx(spearmanr(sig, ACC).statistic - step_rho)
    assert v["vs_support"]["run"] == pytest.approx(spearmanr(sig, ACC).statistic - sl_rho)
    assert v["vs_step_lo"]["run"] < v["vs_step"]["run"] < v["vs_step_hi"]["run"]
    assert v["series"]["run"]["step"] == STEPS and v["series"]["run"]["gradient_coherence"] == sig
    # the paired difference by hand, and a signal against itself is exactly 0
    d = stats.rank_correlation_difference(sig, STEPS, ACC)
    assert d.rho == pytest.approx(spearmanr(sig, ACC).statistic - step_rho) and d.n == 13
    assert stats.rank_correlation_difference(STEPS, STEPS, ACC)[:3] == (0.0, 0.0, 0.0)


def test_uniform_steps_drop_the_log_spaced_checkpoints():
    class Run:
        config = type("C", (), {"checkpoint_every": 100})()

        @staticmethod
        def checkpoint_steps():
            return [0, 1, 2, 5, 10, 20, 50, 100, 200, 250, 300]

    assert landscape.uniform_steps(Run) == [0, 100, 200, 300]


def _judge(claim_id, fn, *args):
    from mamlscope.verdict import claims

    controls = ("error_rate",) if claim_id == "L1" else tuple(landscape.CONTROLS)
    v, nulls = landscape.with_nulls(fn, *args, controls=controls)
    return claims.judge(claim_id, v, "test", null_values=claims.null_envelope(claim_id, v, nulls))


def _tasks_zero_mse(mse_zero):
    from mamlscope.core.data import Task

    y = torch.full((1, 4, 1), math.sqrt(mse_zero))
    return Task(torch.zeros(1, 4, 1), y, torch.zeros(1, 4, 1), y)


def test_a_tracking_signal_is_reproduced_and_its_controls_rejected():
    tracks = _overfitting_run(ACC)
    ft = _frame(STEPS, trajectory_coherence=[0.001] * 13, score=ACC)
    for claim_id, fn, args in (("L2", landscape.trajectory_values, ({"MAML": tracks}, ft)),
                               ("L3", landscape.gradient_values, ({"MAML T=1": tracks},)),
                               ("L5", landscape.representation_values, (tracks,))):
        r = _judge(claim_id, fn, *args)
        assert r.verdict == "reproduced", (claim_id, r.checks, r.precondition)
        assert r.null_verdict == "not reproduced" and r.decisive and r.control
    # sinusoid: −MSE as the score; predicting 0 would give MSE 10 (generalises: best 0.15)
    sin = _overfitting_run([-(1 - a) for a in ACC], score=[-(1 - a) for a in ACC])
    assert _judge("L4", landscape.sinusoid_values, sin, _tasks_zero_mse(10.0)).verdict == "reproduced"


def test_a_step_counter_signal_is_rejected():
    """A signal that only counts steps: what the old rules passed over the rise."""
    counter = _overfitting_run([float(s) for s in STEPS])
    v = landscape.tracking_values({"MAML T=1": counter}, "gradient_coherence")
    assert v["rho_up"]["MAML T=1"] >= 0.5    # it does rise with accuracy (passes the secondary check)
    r = _judge("L3", landscape.gradient_values, {"MAML T=1": counter})
    assert r.verdict == "not reproduced"
    assert not r.checks["beats the step counter: ρ(E[gᵢᵀgⱼ], accuracy) − ρ(step, accuracy), 95% CI above 0 [MAML T=1]"]
    # and the support loss [L] set aside (it falls all along)
    sl = _overfitting_run([-(2 - 0.1 * i) for i in range(13)])
    assert _judge("L5", landscape.representation_values, sl).verdict == "not reproduced"


def test_every_rule_is_not_reproduced_when_every_decisive_check_fails():
    anti = _overfitting_run([-a for a in ACC], curvature=[-a for a in ACC])  # moves against accuracy
    coherent_ft = _frame(STEPS, trajectory_coherence=[0.9] * 13, score=ACC)
    cases = {"L1": (landscape.flatness_values, ({"MAML": anti}, _overfitting_run(ACC))),
             "L2": (landscape.trajectory_values, ({"MAML": anti}, coherent_ft)),
             "L3": (landscape.gradient_values, ({"MAML T=1": anti},)),
             "L5": (landscape.representation_values, (anti,))}
    sin = _overfitting_run([-(1 - a) for a in ACC], score=[-(1 - a) for a in ACC])
    sin["gradient_coherence"] = [(1 - a) for a in ACC]
    cases["L4"] = (landscape.sinusoid_values, (sin, _tasks_zero_mse(10.0)))
    from mamlscope.verdict import claims

    for claim_id, (fn, args) in cases.items():
        r = _judge(claim_id, fn, *args)
        decisive = [k for k, ok in r.checks.items() if any(k.startswith(n) for n in r.decisive)]
        assert decisive and not any(r.checks[k] for k in decisive), (claim_id, r.checks)
        assert r.verdict == "not reproduced", (claim_id, r.verdict, r.precondition)
        assert claims.claim(claim_id).rule.decisive


def test_preconditions_make_the_rules_inconclusive():
    # no meta-overfitting: accuracy keeps rising
    rising = _overfitting_run(ACC, score=[0.3 + 0.05 * i for i in range(13)])
    assert _judge("L5", landscape.representation_values, rising).verdict == "inconclusive"
    assert _judge("L1", landscape.flatness_values, {"MAML": rising}, rising).verdict == "inconclusive"
    # the sinusoid meta-learner that never generalises (best MSE 6.1 against 7.4 for predicting 0)
    sin = _overfitting_run([-(1 - a) for a in ACC], score=[-(1 - a) - 5.35 for a in ACC])
    r = _judge("L4", landscape.sinusoid_values, sin, _tasks_zero_mse(7.4))
    assert r.verdict == "inconclusive" and "generalises" in r.precondition and "FAILS" in r.precondition


def test_null_envelope_takes_each_checks_most_favourable_control():
    from mamlscope.verdict import claims

    v = {"rho_after_lo": {"a": 0.5}, "vs_step_lo": {"a": 0.2}, "vs_support_lo": {"a": 0.1}, "rho_up": {"a": 1.0},
         "series": {}, "controls": {}}
    c1 = {"rho_after_lo": {"a": -0.9}, "vs_step_lo": {"a": 0.0}, "vs_support_lo": {"a": 0.3}, "rho_up": {"a": 1.0}}
    c2 = {"rho_after_lo": {"a": -0.5}, "vs_step_lo": {"a": 0.4}, "vs_support_lo": {"a": 0.0}, "rho_up": {"a": 0.9}}
    n = claims.null_envelope("L5", v, {"step": c1, "support": c2})
    assert n["rho_after_lo"] == {"a": -0.5} and n["vs_step_lo"] == {"a": 0.4} and n["vs_support_lo"] == {"a": 0.3}
    assert "series" not in n and "controls" not in n


def test_representation_coherence_jackknife_leaves_out_whole_tasks():
    rng = np.random.default_rng(0)
    h = torch.tensor(rng.normal(size=(5, 3, 4)) + 1.0)
    mean, se = stats.grouped_pairwise_mean(h)
    flat = h.reshape(15, 4)
    g = flat @ flat.T
    off = ~torch.eye(15, dtype=torch.bool)
    assert mean == pytest.approx(g[off].mean().item(), rel=1e-12)
    loo = []
    for k in range(5):
        keep = torch.cat([h[j] for j in range(5) if j != k])
        gk = keep @ keep.T
        loo.append(gk[~torch.eye(12, dtype=torch.bool)].mean().item())
    loo = np.array(loo)
    assert se == pytest.approx(math.sqrt(4 / 5 * ((loo - loo.mean()) ** 2).sum()), rel=1e-10)
    # one image per task: the ordinary leave-one-vector-out jackknife
    from mamlscope.metrics.coherence import representation_coherence

    one = stats.grouped_pairwise_mean(flat[:, None])
    ref = representation_coherence(flat)
    assert one[0] == pytest.approx(ref.mean) and one[1] == pytest.approx(ref.se)


@requires_data
def test_run_signals_caches_each_checkpoint_and_measures_the_finetune_baseline(tmp_path, monkeypatch):
    from mamlscope.core import meta
    from mamlscope.training import profiles

    P = profiles.load("smoke")
    run = meta.train(P.landscape_5w1s, root=tmp_path)
    ft = meta.train(P.landscape_finetune, root=tmp_path)
    tasks, inner = P.landscape_5w1s.test_tasks(3), P.landscape_5w1s.inner(train=False)
    assert P.landscape_5w1s.train_tasks().rotate is False
    first = landscape.run_signals(run, tasks, inner, steps=[0, 6], curvature_tasks=2)
    assert list(first.index) == [0, 6] and first.loc[6, "tasks"] == 3
    calls = []
    real = landscape.signals
    monkeypatch.setattr(landscape, "signals", lambda *a, **k: calls.append(k) or real(*a, **k))
    again = landscape.run_signals(run, tasks, inner, steps=[0, 6], curvature_tasks=2)
    assert calls == [] and again.equals(first)
    landscape.run_signals(run, P.landscape_5w1s.test_tasks(4), inner, steps=[6], curvature_tasks=2)
    assert len(calls) == 1  # other tasks: measured anew
    f = landscape.run_signals(ft, tasks, inner, steps=[6], curvature_tasks=2)
    model, theta = meta.finetune_start(ft, n_way=5, step=6)
    assert f.loc[6, "score"] == pytest.approx(real(model, theta, tasks, inner, curvature_tasks=2)["score"])


def test_landscape_profiles_keep_the_papers_inner_loop_and_disjoint_sinusoid_ranges():
    from mamlscope.training import profiles

    for name in profiles.PROFILES:
        P = profiles.load(name)
        c = P.landscape_5w1s
        assert (c.k_shot, c.inner_steps, c.eval_inner_steps, c.inner_lr, c.meta_lr) == (1, 5, 5, 0.1, 1e-3), name
        assert P.landscape_finetune.characters == c.train_characters and P.landscape_finetune.dataset == "omniglot"
        s = P.landscape_sinusoid
        assert s.amplitude[1] <= s.test_amplitude[0] and s.phase[1] <= s.test_phase[0], name
        assert P.curvature_tasks <= P.landscape_tasks
    assert profiles.load("cpu").curvature_tasks == 60 and profiles.load("paper").landscape_tasks == 500


def test_zero_curvature_tasks_skips_the_hessian_only(float64):
    m, theta, tasks = _setup()
    inner = InnerLoop(steps=1, lr=0.3)
    full, cheap = (landscape.signals(m, theta, tasks, inner, curvature_tasks=n) for n in (2, 0))
    assert math.isnan(cheap["curvature"]) and cheap["curvature_tasks"] == 0
    for k in ("score", "support_loss", "trajectory_coherence", "gradient_coherence", "representation_coherence"):
        assert cheap[k] == full[k]
