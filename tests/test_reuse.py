"""[R]'s analyses: paired differences, freezing, before/after similarity, NIL bodies, timing ratios."""
import math

import pytest
import torch

from mamlscope import reuse
from mamlscope.evaluate import per_task_scores
from mamlscope.inner import InnerLoop, adapt, model_params
from mamlscope.models import Conv4

from test_inner import toy_tasks


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
    assert list(f.table().index) == list(f.scores)


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
    assert set(v["body_cka_lo"]) == {"conv1", "conv2", "conv3", "conv4"} and v["n_tasks"] == 3


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
