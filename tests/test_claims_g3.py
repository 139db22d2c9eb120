"""Chapter 3's claims (G3, G4, G5): their statistics against hand computation, the
analyses on a toy network, and rules that reject a synthetic null and fail without their
decisive checks."""
import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from mamlscope.core.data import Task
from mamlscope.core.inner import InnerLoop
from mamlscope.core.models import Conv4
from mamlscope.measure import representations as R
from mamlscope.verdict import claims

LAYERS = ["conv1", "conv2", "conv3", "conv4", "head"]


def _ic(first, later, meta, whole=None, rand=None, c_first=None, c_later=None):
    """An InnerChange from (n_ckpt, n_tasks) arrays, the same numbers in every layer."""
    def per_layer(a):
        a = np.asarray(a, float)
        return np.repeat(a[..., None], len(LAYERS), axis=-1)
    first = per_layer(first)
    d = {"0→1": first, "1→S": per_layer(later),
         "0→S": per_layer(first if whole is None else whole),
         "random 0→1": per_layer(first if rand is None else rand),
         "counter 0→1": per_layer(first if c_first is None else c_first),
         "counter 1→S": per_layer(later if c_later is None else c_later)}
    meta = np.repeat(np.asarray(meta, float)[:, None], len(LAYERS), axis=1)
    return R.InnerChange([1, 2, 3], LAYERS, 10, {"correlation": d}, {"correlation": meta})


def test_g4_ratio_uses_the_interval_starting_checkpoints_and_tasks_as_units():
    # 3 checkpoints (2 intervals), 3 tasks; the last checkpoint's inner change must not count
    first = [[0.2, 0.4, 0.6], [0.4, 0.6, 0.8], [9.0, 9.0, 9.0]]
    ic = _ic(first, np.zeros((3, 3)), meta=[0.1, 0.3])
    t = ic.ratio("correlation").loc["conv1"]
    per_task = np.array([0.3, 0.5, 0.7]) / 0.2     # mean over the first two checkpoints / mean meta
    half = sps.t.ppf(0.975, 2) * per_task.std(ddof=1) / math.sqrt(3)
    assert t["ratio"] == pytest.approx(per_task.mean())  # = ratio of means
    assert t["ratio"] == pytest.approx(np.mean(first[:2]) / 0.2)
    assert (t["lo"], t["hi"]) == pytest.approx((per_task.mean() - half, per_task.mean() + half))


def test_g5_later_share_is_d1_to_S_over_d0_to_1_per_task():
    first = [[0.2, 0.4], [0.4, 0.2], [0.3, 0.3]]
    later = [[0.02, 0.2], [0.04, 0.2], [0.03, 0.2]]
    ic = _ic(first, later, meta=[0.1, 0.1])
    t = ic.later_share("correlation").loc["head"]
    per_task = np.array([0.03 / 0.3, 0.2 / 0.3])
    assert t["share"] == pytest.approx(per_task.mean())
    assert t["d(1→S)"] == pytest.approx(np.mean(later))
    v = ic.g5_values()
    assert v["later_share_hi"]["conv1"] == pytest.approx(t["hi"]) and v["n_tasks"] == 2


def _fake_run(model, thetas):
    class Cfg:
        def build_model(self):
            return model

    class Run:
        config = Cfg()

        def load_model(self, step, device):
            m = Conv4(n_way=3, filters=6, image_size=12)
            m.load_state_dict(thetas[step])
            return m

    return Run()


def _toy(n_tasks=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(n_tasks, 6, 1, 12, 12, generator=g)
    xq = torch.randn(n_tasks, 12, 1, 12, 12, generator=g)
    ys, yq = torch.arange(3).repeat(n_tasks, 2), torch.arange(3).repeat(n_tasks, 4)
    return Task(xs, ys, xq, yq)


def test_inner_change_measures_the_inner_loop_and_its_controls_with_the_same_code():
    torch.manual_seed(0)
    model = Conv4(n_way=3, filters=6, image_size=12)
    t0 = {k: v.detach().clone() for k, v in model.state_dict().items()}
    t1 = {k: v + 0.01 * torch.randn_like(v) for k, v in t0.items()}
    run = _fake_run(model, {10: t0, 20: t1})
    tasks, x = _toy(2), _toy(1, seed=5)[0].x_query
    inner = InnerLoop(lr=0.5, steps=3)
    ic = R.inner_change(run, [10, 20], tasks, x, inner, steps=3)
    assert ic.n_tasks == 2 and ic.meta["correlation"].shape == (1, 5)
    from mamlscope.core.inner import adapt, detached
    path = adapt(model, t0, tasks[1].x_support, tasks[1].y_support,
                 InnerLoop(lr=0.5, steps=3, first_order=True), trajectory=True)
    one, last = detached(path[1]), detached(path[3])
    d01 = R.layer_dissimilarity(model, t0, one, x)
    d1s = R.layer_dissimilarity(model, one, last, x)
    got = ic.d["correlation"]
    assert got["0→1"][0, 1] == pytest.approx(list(d01.values()))
    assert got["1→S"][0, 1] == pytest.approx(list(d1s.values()))
    counter = {k: p + (last[k] - p) / 3 for k, p in t0.items()}
    d_counter = R.layer_dissimilarity(model, t0, counter, x)
    assert got["counter 0→1"][0, 1] == pytest.approx(list(d_counter.values()))
    assert not np.allclose(got["random 0→1"], got["0→1"])  # a random direction
    assert ic.table().shape[0] == 5


def test_meta_change_median_plateau_robust_drift_and_control():
    grid = list(range(0, 1300, 100))                 # 12 intervals, second half: the last 6
    d = np.full((12, 2), 0.1)
    d[8] = 0.9                                       # one interval of a collapse
    null = np.full((12, 2), 0.3)
    mc = R.MetaChange(grid, ["conv1", "conv4"], {"correlation": d, "euclidean": d},
                      {"correlation": null, "euclidean": null})
    assert mc.plateau() == pytest.approx([0.1, 0.1]) and mc.drift() == pytest.approx([0.0, 0.0])
    assert mc.window == (600, 1200)
    assert mc.claim_values(null=True)["plateau_last"] == pytest.approx(0.3)
    assert np.isnan(mc.claim_values(null=True)["excess_last_lo"])  # no second draw


def test_meta_change_contrast_with_the_random_step_is_a_t_interval_of_log_ratios():
    grid = list(range(0, 1300, 100))
    rng = np.random.default_rng(0)
    d = np.exp(rng.normal(np.log(0.2), 0.1, (12, 2)))
    null = np.exp(rng.normal(np.log(0.1), 0.1, (12, 2)))
    null2 = null * np.exp(np.where(np.arange(12)[:, None] % 2, 0.1, -0.1))  # same level, ± noise
    mc = R.MetaChange(grid, ["conv1", "conv4"], {"correlation": d}, {"correlation": null},
                      null2={"correlation": null2})
    logs = np.log(d[6:, 1]) - np.log(null[6:, 1])
    half = sps.t.ppf(0.975, 5) * logs.std(ddof=1) / np.sqrt(6)
    v = mc.claim_values()
    assert v["excess_last"] == pytest.approx(logs.mean())
    assert v["excess_last_lo"] == pytest.approx(logs.mean() - half) and v["excess_last_lo"] > 0
    n = mc.claim_values(null=True)  # the control against its second draw straddles 0
    assert n["excess_last_lo"] < 0 < n["excess_last_hi"]


def test_learning_collapse_reads_the_logged_curve():
    class Run:
        def metrics(self):
            curve = [(0, 0.2), (250, 0.8), (500, 0.84), (750, 0.72), (1000, 0.85),
                     (1250, 0.86)]
            return ([{"step": s, "test_score": a} for s, a in curve]
                    + [{"step": 5, "train_loss": 1.0}])
    c = R.learning_collapse(Run(), 500, 1250)
    assert c["step"] == 750 and c["drop"] == pytest.approx(0.12)
    assert c["from"] == 0.84 and c["final"] == 0.86
    assert R.learning_collapse(Run(), 1000)["drop"] == 0.0


# ---- the rules --------------------------------------------------------------------------------
def _g3(plateau_last=0.12, drift=0.1, excess_lo=0.3):
    return {"metric": "correlation", "plateau": {}, "plateau_first": 0.001,
            "plateau_last": plateau_last, "last_layer": "conv4", "drift_last": drift,
            "delta": 250, "steps": 3000, "excess_last": excess_lo + 0.2,
            "excess_last_lo": excess_lo, "excess_last_hi": excess_lo + 0.4}


def test_g3_rule():
    assert claims.judge("G3", _g3(), "smoke", null_values=_g3(0.6)).verdict == "reproduced"
    r = claims.judge("G3", _g3(0.45), "smoke", null_values=_g3(0.6))
    assert r.verdict == "not reproduced" and r.decisive and r.null_verdict == "not reproduced"
    # a null at the same level that also beats a second null draw: the rule cannot tell them apart
    assert claims.judge("G3", _g3(), "smoke", null_values=_g3(0.11)).verdict == "inconclusive"
    # the plateau in the band, but less change than random steps of the same size make
    r = claims.judge("G3", _g3(excess_lo=-0.5), "smoke", null_values=_g3(0.11, excess_lo=-0.9))
    assert r.verdict == "not reproduced" and r.null_verdict == "not reproduced"
    # an interval that still reaches more change ([−0.1, +0.3]): [G] gives no size, so the failing
    # check says nothing until the interval excludes it
    r = claims.judge("G3", _g3(excess_lo=-0.1), "smoke", null_values=_g3(0.11, excess_lo=-0.9))
    assert r.verdict == "inconclusive" and r.reasons == ["underpowered"] and "sees a true value" in r.precondition
    # the control at the plateau's level: rejected by the contrast with its second draw
    assert claims.judge("G3", _g3(), "smoke", null_values=_g3(0.11, excess_lo=-0.4)).verdict == "reproduced"
    r = claims.judge("G3", _g3(drift=0.7), "smoke", null_values=_g3(0.6))
    assert r.verdict == "inconclusive" and "FAILS" in r.precondition


def _g4(lo_early, lo_late):
    los = dict(zip(LAYERS, [*lo_early, *lo_late]))
    return {"metric": "correlation", "ratio_1": {k: lo + 0.2 for k, lo in los.items()},
            "ratio_1_lo": los, "ratio_1_hi": {k: lo + 0.4 for k, lo in los.items()},
            "n_tasks": 20, "early_ratio_1_lo": dict(zip(LAYERS[:3], lo_early)),
            "late_ratio_1_lo": dict(zip(LAYERS[3:], lo_late))}


def test_g4_rule():
    null = _g4([0.5, 0.6, 0.7], [0.9, 0.9])
    assert claims.judge("G4", _g4([1.5] * 3, [1.2] * 2), "smoke", null_values=null).verdict == "reproduced"
    assert claims.judge("G4", _g4([1.5] * 3, [0.8] * 2), "smoke", null_values=null).verdict == "partly"
    assert claims.judge("G4", _g4([0.5] * 3, [1.2] * 2), "smoke", null_values=null).verdict == "not reproduced"
    assert claims.CLAIMS["G4"].rule.judge_control(null) == "not reproduced"
    same = claims.judge("G4", _g4([1.5] * 3, [1.2] * 2), "smoke", null_values=_g4([1.4] * 3, [1.1] * 2))
    assert same.verdict == "inconclusive"  # a random change of that size does as much


def _g5(hi, loss=0.3, half=0.1):
    return {"later_share": dict.fromkeys(LAYERS, hi - half), "later_share_lo": dict.fromkeys(LAYERS, hi - 2 * half),
            "later_share_hi": dict.fromkeys(LAYERS, hi), "n_tasks": 20, "train_inner_steps": 5,
            "support_loss_ratio_1": loss}


def test_g5_rule():
    counter = _g5(3.0)
    assert claims.judge("G5", _g5(0.2), "smoke", null_values=counter).verdict == "reproduced"
    assert claims.judge("G5", _g5(0.8), "smoke", null_values=counter).verdict == "not reproduced"
    wide = claims.judge("G5", _g5(0.8, half=0.4), "smoke", null_values=counter)  # [0.0, 0.8]: reaches < 0.5
    assert wide.verdict == "inconclusive" and wide.reasons == ["underpowered"]
    assert claims.CLAIMS["G5"].rule.judge_control(counter) == "not reproduced"
    saturated = claims.judge("G5", _g5(0.2, loss=0.0), "smoke", null_values=counter)
    assert saturated.verdict == "inconclusive" and "FAILS" in saturated.precondition
    assert claims.judge("G5", {**_g5(0.2), "train_inner_steps": 1}, "smoke",
                        null_values=counter).verdict == "inconclusive"


@pytest.mark.parametrize("claim_id", ["G3", "G4", "G5"])
def test_rules_are_protocols_with_decisive_checks(claim_id):
    rule = claims.CLAIMS[claim_id].rule
    assert isinstance(rule, claims.Protocol) and rule.decisive and rule.control


def test_ratio_tasks_leave_out_the_evaluation_task():
    class Cfg:
        def test_tasks(self, n):
            t = _toy(n)
            t.x_support[:] = torch.arange(n, dtype=t.x_support.dtype).view(n, 1, 1, 1, 1)
            return t
    units = R.ratio_tasks(Cfg(), 5, eval_task=2)
    assert len(units) == 5 and units.x_support[:, 0, 0, 0, 0].tolist() == [0, 1, 3, 4, 5]
