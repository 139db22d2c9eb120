"""[R]'s analyses: paired differences, freezing, before/after similarity, NIL bodies, timing ratios."""
import math

import pytest
import torch
from test_inner import toy_tasks

from mamlscope.core.evaluate import per_task_scores
from mamlscope.core.inner import InnerLoop, adapt, model_params
from mamlscope.core.models import Conv4
from mamlscope.measure import reuse


def _model(seed=0):
    torch.manual_seed(seed)
    return Conv4(n_way=3, filters=6, image_size=12)


def test_paired_difference_by_hand():
    a, b = torch.tensor([1.0, 0.5, 0.5, 1.0]), torch.tensor([0.5, 0.5, 0.0, 1.0])
    d = reuse.paired_difference(a, b)           # differences 0.5, 0, 0.5, 0
    assert d.mean == pytest.approx(0.25) and d.n == 4
    assert d.ci95 == pytest.approx(1.96 * math.sqrt(1 / 12) / 2)
    with pytest.raises(ValueError, match="same tasks"):
        reuse.paired_difference(a, b[:3])


def test_forward_from_a_layer_equals_the_full_forward():
    m, x = _model(), toy_tasks().x_support[0]
    out, acts = m(x, return_activations=True)
    for prev, start in zip(m.layer_names[:-1], m.layer_names[1:]):
        assert torch.allclose(m(acts[prev], start=start), out, atol=1e-6)
    with pytest.raises(ValueError, match="not a layer"):
        m(x, start="conv9")


def test_freezing_rows_and_full_adaptation():
    m, tasks = _model(), toy_tasks(n_tasks=4)
    inner = InnerLoop(steps=2, lr=0.3)
    f = reuse.freezing(m, tasks, inner)
    assert list(f.scores) == ["from:conv1", "from:conv2", "from:conv3", "from:conv4", "head"]
    assert f.frozen == {"from:conv1": "none", "from:conv2": "conv1", "from:conv3": "conv1–conv2",
                        "from:conv4": "conv1–conv3", "head": "conv1–conv4"}
    assert torch.equal(f.scores["from:conv1"], per_task_scores(m, tasks, inner))
    v = f.claim_values()
    assert set(v["freeze_diff"]) == {"conv1", "conv1–conv2", "conv1–conv3", "conv1–conv4"}
    assert all(v["freeze_diff_lo"][k] <= v["freeze_diff"][k] <= v["freeze_diff_hi"][k] for k in v["freeze_diff"])
    assert list(f.table().index) == ["conv1 and the layers above it", "conv2 and the layers above it",
                                     "conv3 and the layers above it", "conv4 and the layers above it", "head only"]
    known = reuse.freezing(m, tasks, inner, full=per_task_scores(m, tasks, inner).double())
    assert all(torch.equal(known.scores[k], f.scores[k]) for k in f.scores)


def test_scores_of_the_first_chunks_are_the_scores_of_those_tasks():
    """Chapter 4 takes its diagnostics' rows on the first 300 tasks from R3's 600: per-task scores
    are computed in chunks of 100 tasks from the first, so a prefix of whole chunks (or all of
    them) is the same computation."""
    m, tasks, inner = _model(), toy_tasks(n_tasks=7), InnerLoop(steps=2, lr=0.3)
    every = per_task_scores(m, tasks, inner, chunk=3)
    assert torch.equal(every[:6], per_task_scores(m, tasks[:6], inner, chunk=3))
    d = reuse.head_only_diagnostics(m, tasks[:6], inner, long_steps=2)
    given = reuse.head_only_diagnostics(m, tasks[:6], inner, long_steps=2, full=every[:6],
                                        head=per_task_scores(m, tasks, InnerLoop(2, 0.3, "head"), chunk=3)[:6])
    assert all(torch.equal(given.scores[k], d.scores[k]) for k in d.scores)


def test_similarity_is_one_for_identical_and_below_for_unrelated():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, 4, 3, 3, generator=g)
    s = reuse.similarity(a, a.clone())
    assert all(v == pytest.approx(1.0, abs=1e-9) for v in s.values())
    b = torch.randn(200, 4, 3, 3, generator=g)
    s = reuse.similarity(a, b)
    assert s["cka"] < 0.5 and s["svcca"] < 0.5
    assert reuse._neurons(a).shape == (200 * 9, 4)


def test_head_only_inner_loop_leaves_the_body_identical():
    """An analysis that reports body similarity must give exactly 1 when the body cannot move, and
    less than 1 in the head (which does)."""
    m, tasks = _model(), toy_tasks(n_tasks=3)
    theta = model_params(m)
    ba = reuse.before_after(m, theta, tasks, InnerLoop(steps=3, lr=0.5, adapt="head"))
    s = ba.summary()
    assert (s.loc[["conv1", "conv2", "conv3", "conv4"], "cka"] > 1 - 1e-9).all()
    assert s.loc["head", "cka"] < 1 - 1e-4
    full = reuse.before_after(m, theta, tasks, InnerLoop(steps=3, lr=0.5)).summary()
    assert full.loc["conv1", "cka"] < 1 - 1e-6
    v = ba.claim_values()
    # conv1 is shown, not checked: its similarity is ≈ 1 for any network
    assert set(v["body_cka_lo"]) == {"conv2", "conv3", "conv4"} and v["n_tasks"] == 3
    # no floor without unrelated networks
    assert v["conv1_cka"] > 1 - 1e-9 and "head_excess_hi" not in v


def test_prefix_computed_once_gives_the_same_adapted_weights(float64):
    m, t = _model().double(), toy_tasks(n_tasks=1)[0]
    theta = model_params(m)
    x, y = t.x_support.double(), t.y_support
    for spec in ("head", "from:conv3"):
        fast = adapt(m, theta, x, y, InnerLoop(steps=3, lr=0.5, adapt=spec))
        # reference: plain autograd, full forward every step
        names = [n for n in fast if not torch.equal(fast[n], theta[n])]
        p = {n: v.detach().clone().requires_grad_(n in names) for n, v in theta.items()}
        for _ in range(3):
            loss = torch.nn.functional.cross_entropy(torch.func.functional_call(m, p, (x,)), y)
            g = torch.autograd.grad(loss, [p[n] for n in names])
            p = {**p, **{n: (p[n] - 0.5 * gn).detach().requires_grad_() for n, gn in zip(names, g)}}
        for n in names:
            assert torch.allclose(fast[n], p[n], atol=1e-12)


def test_nil_scores_use_only_the_body():
    m, tasks = _model(), toy_tasks(n_tasks=3)
    theta = {k: v.detach().clone() for k, v in model_params(m).items()}
    other = {**theta, "head.weight": torch.randn_like(theta["head.weight"])}
    s = reuse.nil_scores({"a": (m, theta), "b": (m, other)}, tasks)
    assert torch.equal(s["a"], s["b"]) and s["a"].shape == (3,)


def test_time_ratio_with_a_fake_clock(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(reuse.time, "perf_counter", lambda: now[0])

    def slow():
        now[0] += 0.003

    def fast():
        now[0] += 0.001

    r = reuse.time_ratio(slow, fast, repeats=10)
    assert r.ratio == pytest.approx(3.0) and r.lo == pytest.approx(3.0) and r.hi == pytest.approx(3.0)
    assert r.seconds_a == pytest.approx(0.003) and "3.00×" in str(r)


def test_anil_vs_maml_and_nil_comparison_values():
    maml = torch.tensor([1.0, 0.5, 0.5, 0.0])
    anil0, anil1 = torch.tensor([1.0, 1.0, 0.5, 0.0]), torch.tensor([0.5, 0.5, 0.5, 0.5])
    r = reuse.AnilVsMaml({"20w1s": {"MAML": maml, "ANIL seed 0": anil0, "ANIL seed 1": anil1}})
    v = r.claim_values(["20w5s"])
    assert v["diff"]["20w1s"] == pytest.approx(0.125) and v["maml"]["20w1s"] == pytest.approx(0.5)
    assert v["diff_lo"]["20w1s"] < 0.125 < v["diff_hi"]["20w1s"] and v["not_run"] == ["20w5s"] and v["n_tasks"] == 4
    assert r.table().loc[("20w1s", "ANIL seed 1"), "minus MAML (points, paired)"] == "+0.0 ± 40.0"  # d = (−.5, 0, 0, .5): 1.96·√(1/6)/2
    n = reuse.NilComparison({"MAML": anil0, "random features": anil1}, {"MAML": maml})
    nv = n.claim_values()
    assert set(nv["nil_diff"]) == {"MAML"} and nv["others"] == {"random features": 0.5}
    assert n.table().loc["random features", "NIL minus head (points, paired)"] == "—"


def test_describe_over_training_names_when_head_only_catches_up():
    import pandas as pd

    frame = pd.DataFrame({"full": [0.2, 0.5, 0.8, 0.9], "head only": [0.2, 0.3, 0.79, 0.89],
                          "head only − full": [0.0, -0.2, -0.01, -0.01], "ci95": [0.01] * 4,
                          "body CKA": [0.99, 0.9, 0.95, 0.97], "body SVCCA": [0.9] * 4, "head SVCCA": [0.4] * 4},
                         index=[0, 10, 100, 1000])
    text = reuse.describe_over_training(frame)
    assert "from step 100 on" in text and text.startswith("step 10: full 50.0%, head only 30.0% (-20.0 points)")
    frame["head only − full"] = -0.1
    assert "never stays within 2 points" in reuse.describe_over_training(frame)



# --------------------------------------------------------------------------------------------
# The verdict protocol for R1–R5: controls, nulls, decisive checks
# --------------------------------------------------------------------------------------------
def test_seeds_passing_by_hand():
    from mamlscope.stats import Score

    d = {"seed 0": Score(0.05, 0.01, 600), "seed 1": Score(0.00, 0.03, 600),
         "seed 2": Score(-0.01, 0.005, 600)}
    s = reuse.seeds_passing(d, note="n")
    # lower ends +0.04, −0.03, −0.015: two above −0.02
    assert s["n"] == 3 and s["passing"] == 2
    assert s["lo"]["seed 1"] == pytest.approx(-0.03)
    m = 0.04 / 3
    sd = math.sqrt(((0.05 - m) ** 2 + m ** 2 + (0.01 + m) ** 2) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t_{0.975, 2} · s / √3
    assert s["mean"] == pytest.approx(0.04 / 3)
    assert s["t_hi"] - s["mean"] == pytest.approx(half)
    assert s["note"] == "n"


def test_anil_seed_differences_are_what_r1_reads():
    maml = torch.tensor([1.0, 0.5, 0.5, 0.0])
    r = reuse.AnilVsMaml({"20w1s": {"MAML": maml, "ANIL seed 0": maml + 0.25,
                                    "ANIL seed 1": maml - 0.25}})
    v = r.claim_values()
    assert v["seed_diff"] == pytest.approx({"20w1s ANIL seed 0": 0.25,
                                            "20w1s ANIL seed 1": -0.25})
    # a constant difference has a CI of width 0
    assert v["seed_diff_lo"]["20w1s ANIL seed 0"] == pytest.approx(0.25)
    assert r.seeds()["passing"] == 1 and r.seeds()["n"] == 2


def test_freezing_values_single_out_the_head_only_row():
    m, tasks = _model(), toy_tasks(n_tasks=4)
    v = reuse.freezing(m, tasks, InnerLoop(steps=2, lr=0.3)).claim_values()
    assert v["head_only_diff_lo"] == pytest.approx(v["freeze_diff_lo"]["conv1–conv4"])
    assert set(v["partial_diff_lo"]) == {"conv1", "conv1–conv2", "conv1–conv3"}


def test_task_activations_normalise_support_and_query_apart():
    m, t = _model(), toy_tasks(n_tasks=1)[0]
    theta = model_params(m)
    a = reuse.task_activations(m, theta, t)
    s = reuse.activations(m, theta, t.x_support)
    assert torch.equal(a["conv2"][: len(t.x_support)], s["conv2"])
    joint = reuse.activations(m, theta, torch.cat([t.x_support, t.x_query]))
    # one BatchNorm batch for both sets would differ
    assert not torch.allclose(a["conv2"], joint["conv2"])


def test_before_after_with_unrelated_networks_gives_floor_and_null():
    m, tasks = _model(), toy_tasks(n_tasks=3)
    theta = {k: v.detach() for k, v in m.state_dict().items()}
    unrelated = []
    for seed in (1000, 1001):
        torch.manual_seed(seed)
        unrelated.append(Conv4(n_way=3, filters=6, image_size=12).state_dict())
    ba = reuse.before_after(m, theta, tasks, InnerLoop(steps=2, lr=0.3),
                            unrelated=unrelated)
    assert set(ba.frame.pair) == {"inner loop", "unrelated", "null"}
    v, null = ba.claim_values(), ba.claim_values("null")
    head = ba.frame[ba.frame.layer == "head"].pivot(index="task", columns="pair",
                                                    values="svcca")
    floor = head["unrelated"]
    by_hand = ((head["inner loop"] - floor) / (1 - floor)).mean()
    assert v["head_excess"] == pytest.approx(by_hand)
    assert v["head_floor"] == pytest.approx(head["unrelated"].mean())
    # an unrelated network's body is less similar to the adapted one than θ's is
    assert all(null["body_cka"][l] < v["body_cka"][l] for l in null["body_cka"])
    pairs = set(ba.with_control().columns.get_level_values(0))
    assert pairs == {"inner loop", "unrelated", "null"}


def test_anil_with_higher_adapts_only_the_head_and_agrees_with_func(float64):
    """The higher backend's head-only path (the body once per set, higher on the head alone, as
    the usual ANIL implementations do) gives the func backend's losses and meta-gradients."""
    from mamlscope.core.inner import query_loss, query_loss_higher

    m, tasks = _model().double(), toy_tasks(n_tasks=2)
    tasks = tasks.to("cpu", torch.float64)
    for first_order in (False, True):
        inner = InnerLoop(steps=2, lr=0.5, adapt="head", first_order=first_order)
        m.zero_grad()
        a = query_loss(m, tasks, inner)[0]
        a.sum().backward()
        g = {n: p.grad.clone() for n, p in m.named_parameters()}
        m.zero_grad()
        b = query_loss_higher(m, tasks, inner)[0]
        b.sum().backward()
        assert torch.allclose(a, b, atol=1e-10)
        assert all(torch.allclose(g[n], p.grad, atol=1e-10) for n, p in m.named_parameters())


def test_cost_values_read_the_measurement_or_the_control_row():
    r = reuse.TimeRatio(0.3, 0.1, 3.0, 2.9, 3.1, 5)
    one = reuse.TimeRatio(0.1, 0.1, 1.0, 0.97, 1.03, 5)
    c = {"func": {"training": r, "adaptation": r},
         reuse.CONTROL: {"training": one, "adaptation": one}}
    assert reuse.cost_values(c, "cpu")["train_lo"] == 2.9
    assert reuse.cost_values(c, "cpu", reuse.CONTROL)["adapt_lo"] == 0.97


def _r_values(good: bool) -> dict:
    """Synthetic values of R1–R5 under their rules' keys: the claim holding (``good``),
    or the null (nothing learned, no saving, everything changes)."""
    d = 0.05 if good else -0.30
    lo = {"20w1s": d - 0.004}
    r1 = {"diff": {"20w1s": d}, "diff_lo": lo, "diff_hi": {"20w1s": d + 0.004},
          "seed_diff": {"20w1s ANIL seed 0": d, "20w1s ANIL seed 1": d},
          "seed_diff_lo": {"20w1s ANIL seed 0": d - 0.004, "20w1s ANIL seed 1": d - 0.004},
          "maml": {"20w1s": 0.84}, "anil": {"20w1s": 0.84 + d}, "n_tasks": 600, "not_run": []}
    ratio = 3.0 if good else 1.0
    r2 = {"train": ratio, "train_lo": ratio - 0.03, "train_hi": ratio + 0.03, "adapt": ratio,
          "adapt_lo": ratio - 0.03, "adapt_hi": ratio + 0.03, "device": "cpu"}
    f = 0.0 if good else -0.3
    rows = {"conv1": 0.001, "conv1–conv2": 0.001, "conv1–conv3": 0.001, "conv1–conv4": f}
    r3 = {"freeze_diff": rows, "freeze_diff_lo": {k: v - 0.005 for k, v in rows.items()},
          "freeze_diff_hi": {k: v + 0.005 for k, v in rows.items()}, "head_only_diff": f,
          "head_only_diff_lo": f - 0.005, "partial_diff_lo": {k: rows[k] - 0.005 for k in list(rows)[:3]},
          "full": {"mean": 0.84, "ci95": 0.004, "n_tasks": 600}}
    body = {"conv2": 0.99 if good else 0.3, "conv3": 0.98 if good else 0.2, "conv4": 0.95 if good else 0.1}
    r4 = {"body_cka": body, "body_cka_lo": {k: v - 0.01 for k, v in body.items()}, "body_cca": body,
          "body_cca_lo": {k: v - 0.01 for k, v in body.items()}, "conv1_cka": 1.0, "conv1_cca": 0.99,
          "head_cca": 0.45, "head_cca_hi": 0.46, "head_cka": 0.3, "head_floor": 0.4, "head_floor_hi": 0.41,
          "head_excess": 0.1, "head_excess_lo": 0.05, "head_excess_hi": 0.15, "n_tasks": 50}
    n = 0.04 if good else -0.6
    r5 = {"nil": {"MAML": 0.84 + n, "ANIL": 0.89 + n}, "head": {"MAML": 0.84, "ANIL": 0.89},
          "nil_diff": {"MAML": n, "ANIL": n}, "nil_diff_lo": {"MAML": n - 0.005, "ANIL": n - 0.005},
          "nil_diff_hi": {"MAML": n + 0.005, "ANIL": n + 0.005}, "others": {}}
    return {"R1": r1, "R2": r2, "R3": r3, "R4": r4, "R5": r5}


@pytest.mark.parametrize("claim_id", ["R1", "R2", "R3", "R4", "R5"])
def test_r_rules_reject_their_null_and_fail_when_the_decisive_checks_fail(claim_id):
    from mamlscope.verdict import claims
    from mamlscope.verdict.results import Protocol

    rule = claims.claim(claim_id).rule
    assert isinstance(rule, Protocol)
    good, null = _r_values(True)[claim_id], _r_values(False)[claim_id]
    ok = claims.judge(claim_id, good, "smoke", null_values=null, seeds={"n": 1})
    assert ok.verdict == "reproduced" and ok.null_verdict == "not reproduced"
    assert ok.decisive == rule.decisive_names and ok.control == rule.control
    # every decisive check failing → not reproduced (the null's values are such a case)
    failed = claims.judge(claim_id, null, "smoke", null_values=null)
    assert failed.verdict == "not reproduced"
    # a rule that passed its own control would make the claim inconclusive
    passes_null = claims.judge(claim_id, good, "smoke", null_values=good)
    assert passes_null.verdict == "inconclusive"


def test_r3_is_not_partly_when_only_freezing_conv1_is_free():
    """The defect this rule fixes: freezing conv1 costs nothing for any network; the
    head-only row carries the claim, so its failure is *not reproduced* whatever the
    other rows say."""
    from mamlscope.verdict import claims

    v = _r_values(True)["R3"]
    v = {**v, "head_only_diff": -0.655, "head_only_diff_lo": -0.66}
    assert claims.judge("R3", v, "smoke", null_values=_r_values(False)["R3"]).verdict == "not reproduced"
    # the same lower end from an interval 66 points wide could not have seen [R]'s −0.6 points
    wide = {**v, "head_only_diff": 0.0}
    r = claims.judge("R3", wide, "smoke", null_values=_r_values(False)["R3"])
    assert r.verdict == "inconclusive" and "underpowered" in r.precondition
    v = {**_r_values(True)["R3"], "partial_diff_lo": {"conv1": 0.0, "conv1–conv2": -0.05, "conv1–conv3": 0.0}}
    assert claims.judge("R3", v, "smoke", null_values=_r_values(False)["R3"]).verdict == "partly"


def test_r4_head_check_is_against_the_floor_not_a_raw_threshold():
    """A head SVCCA of 0.45 with unrelated heads at 0.40 is not evidence that the head
    changed less than a threshold of 0.5 says; the rule reads the excess over the floor.
    """
    from mamlscope.verdict import claims

    v = {**_r_values(True)["R4"], "head_cca": 0.45, "head_cca_hi": 0.46, "head_excess": 0.6, "head_excess_lo": 0.5,
         "head_excess_hi": 0.7}
    assert claims.judge("R4", v, "smoke", null_values=_r_values(False)["R4"]).verdict == "not reproduced"
    # an excess whose interval still reaches below 0.5: [R] gives no size for the head, so it says nothing
    wide = {**v, "head_excess": 0.4, "head_excess_lo": 0.1}
    assert claims.judge("R4", wide, "smoke", null_values=_r_values(False)["R4"]).reasons == ["underpowered"]


def test_r5_decisive_is_nil_after_anil_training():
    from mamlscope.verdict import claims

    v = _r_values(True)["R5"]
    null = _r_values(False)["R5"]
    maml_fails = {**v, "nil_diff_lo": {"MAML": -0.14, "ANIL": 0.04}}
    assert claims.judge("R5", maml_fails, "smoke", null_values=null).verdict == "partly"
    anil_fails = {**v, "nil_diff": {"MAML": 0.05, "ANIL": -0.13}, "nil_diff_lo": {"MAML": 0.04, "ANIL": -0.14}}
    assert claims.judge("R5", anil_fails, "smoke", null_values=null).verdict == "not reproduced"
    # the same lower end of a 14-point-wide interval could not have seen [R]'s +0.5 points
    wide = {**anil_fails, "nil_diff": {"MAML": 0.05, "ANIL": 0.0}}
    assert claims.judge("R5", wide, "smoke", null_values=null).verdict == "inconclusive"


def test_logistic_head_on_frozen_features_matches_sklearn_by_hand():
    from sklearn.linear_model import LogisticRegression

    m, tasks = _model(), toy_tasks(n_tasks=3, shots=3, queries=4)
    theta = dict(m.named_parameters())
    got = reuse.logistic_head_scores(m, tasks)
    for i in range(len(tasks)):
        t = tasks[i]
        fs = reuse.head_features(m, theta, t.x_support).double().numpy()
        fq = reuse.head_features(m, theta, t.x_query).double().numpy()
        _, acts = m(t.x_support, return_activations=True)
        assert torch.allclose(torch.from_numpy(fs).float(), acts["conv4"].flatten(1), atol=1e-6)
        clf = LogisticRegression(max_iter=2000).fit(fs, t.y_support.numpy())
        assert got[i].item() == pytest.approx((clf.predict(fq) == t.y_query.numpy()).mean())


def test_head_only_diagnostics_rows_and_the_share_of_the_gap():
    m, tasks = _model(), toy_tasks(n_tasks=4)
    inner = InnerLoop(steps=2, lr=0.3)
    d = reuse.head_only_diagnostics(m, tasks, inner, long_steps=7)
    assert torch.equal(d.scores["head only (R3's row)"], reuse.freezing(m, tasks, inner).scores["head"])
    assert torch.equal(d.scores["all layers adapted"], per_task_scores(m, tasks, inner))
    assert set(d.scores) == {"head only (R3's row)", "head only from a zero head", "head only, 7 steps",
                             "zero head, 7 steps", "logistic regression on frozen features",
                             "all layers adapted"}
    fake = reuse.HeadOnly({"head only (R3's row)": torch.tensor([0.2, 0.2]),
                           "x": torch.tensor([0.5, 0.5]), "all layers adapted": torch.tensor([0.8, 0.8])})
    assert fake.recovered("x") == pytest.approx(0.5)
    assert fake.table().loc["x", "share of the head-only gap closed"] == "0.50"
    assert fake.values()["recovered"] == {"x": pytest.approx(0.5)}


def test_describe_head_only_reads_the_numbers():
    fake = reuse.HeadOnly({"head only (R3's row)": torch.tensor([0.2, 0.2]), "x": torch.tensor([0.5, 0.5]),
                           "all layers adapted": torch.tensor([0.8, 0.8])})
    assert reuse.describe_head_only(fake, "M") == ("M: head only 20.0%, all layers adapted 80.0%; "
                                                   "x 50.0% (0.50 of the gap).")


def test_no_share_of_a_gap_inside_the_noise_and_no_nan_in_the_side_by_side_table():
    noisy = reuse.HeadOnly({"head only (R3's row)": torch.tensor([0.2, 0.6, 0.4]),
                            "x": torch.tensor([0.5, 0.5, 0.5]), "all layers adapted": torch.tensor([0.6, 0.2, 0.5])})
    assert not noisy.gap_resolved() and math.isnan(noisy.recovered("x"))
    assert noisy.table().loc["x", "share of the head-only gap closed"] == "— (gap within noise)"
    assert "of the gap)" not in reuse.describe_head_only(noisy, "m") and "inside the noise" in reuse.describe_head_only(noisy, "m")
    other = reuse.HeadOnly({"head only (R3's row)": torch.tensor([0.2, 0.2]), "y": torch.tensor([0.5, 0.5]),
                            "all layers adapted": torch.tensor([0.8, 0.8])})
    side = reuse.diagnostics_table({"a": noisy, "b": other})
    assert "nan" not in side.to_string().lower() and side.loc["y", ("a", "accuracy (%)")] == "—"


def test_an_inner_loop_reads_in_words():
    assert str(InnerLoop(5, 0.1)) == "5 steps of α = 0.1 on the mean support loss, all layers"
    assert str(InnerLoop(1, 0.4, adapt="head", reduction="sum/k", first_order=True)) == \
        "1 step of α = 0.4 on the Σℓ/K support loss, the head only, first order"
