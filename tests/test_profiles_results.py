import dataclasses
import json

import pytest
import torch
from conftest import LEVELLED

from mamlscope.evidence import Evidence
from mamlscope.training import profiles
from mamlscope.verdict import claims, results
from mamlscope.verdict.results import AllChecks, Check, MatchesPaper


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown profile 'laptop'; valid profiles: smoke, cpu, paper"):
        profiles.load("laptop")


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown parameter 'stepz'.*test_tasks.*omniglot_5w1s__steps"):
        profiles.load("cpu", stepz=3)


def test_overrides_apply_and_none_is_ignored():
    p = profiles.load("cpu", test_tasks=50, omniglot_5w1s__steps=7, omniglot_20w1s__filters=None)
    assert p.test_tasks == 50 and p.omniglot_5w1s.steps == 7
    assert p.omniglot_20w1s == profiles.PROFILES["cpu"].omniglot_20w1s
    assert p.meta("omniglot_5w1s", "anil").inner().adapt == "head"
    with pytest.raises(ValueError, match="not a meta-learning setting"):
        p.meta("mnist_supervised")


def test_paper_profile_has_the_papers_settings():
    p = profiles.load("paper")
    g = p.omniglot_20w1s  # Goerttler & Obermayer §4, Finn et al. App. A.1
    assert (g.n_way, g.k_shot, g.filters, g.steps, g.meta_batch, g.inner_steps, g.inner_lr, g.meta_lr) == \
           (20, 1, 64, 60_000, 16, 5, 0.1, 1e-3)
    f = p.omniglot_5w1s
    assert (f.filters, f.meta_batch, f.inner_steps, f.eval_inner_steps, f.inner_lr) == (64, 32, 1, 3, 0.4)
    assert (p.mnist_supervised.batch_size, p.mnist_supervised.steps) == (100, 200)
    assert p.test_tasks == 600
    # Finn et al.'s released recipe: Σℓ/K in the inner loop and their Omniglot network
    for cfg in (f, g):
        assert (cfg.inner_reduction, cfg.network) == ("sum/k", "finn")
        assert cfg.inner().reduction == "sum/k" and cfg.build_model().feature_dim == 64


def test_device_choice():
    assert profiles.resolve_device("cpu").type == "cpu"
    assert profiles.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            profiles.resolve_device("cuda")


def test_smoke_profile_is_float64_everywhere():
    p = profiles.load("smoke")
    assert p.torch_dtype == torch.float64
    assert {p.omniglot_5w1s.dtype, p.omniglot_20w1s.dtype, p.mnist_supervised.dtype} == {"float64"}
    assert p.omniglot_5w1s.build_model().head.weight.dtype == torch.float64
    assert profiles.load("cpu").omniglot_20w1s.dtype == "float32"
    assert profiles.load("cpu", dtype="float64").mnist_supervised.dtype == "float64"


def test_results_roundtrip(results_dir):
    # 98.1 ± 0.1% against 98.7 ± 0.4%: no overlap, error rate 1.46× the paper's (≤ 1.5×) → partly
    r = claims.record(Evidence("F1", {"mean": torch.tensor(0.981, dtype=torch.float64), "ci95": 0.001,
                                      "n_tasks": 600}, run=LEVELLED), "smoke")
    saved = json.loads((results_dir / "smoke" / "F1.json").read_text())
    assert saved["values"]["mean"] == 0.981 and saved["verdict"] == "partly"
    assert results.load_all("smoke") == [r]
    with pytest.raises(ValueError, match="verdict='maybe'"):
        results.write(results.ClaimResult("F1", "01", "smoke", "s", "m", "p", "maybe", "r"))


def test_verdict_from_checks():
    assert results.verdict_from_checks(3, 3) == "reproduced"
    assert results.verdict_from_checks(1, 3) == "partly"
    assert results.verdict_from_checks(0, 3) == "not reproduced"
    with pytest.raises(ValueError):
        results.verdict_from_checks(4, 3)


def test_check_compares_numbers_lists_dicts_and_other_values():
    v = {"a": 0.3, "b": [0.1, 0.5, -0.2], "c": {"conv1": 2.0, "head": 0.5}, "d": {"conv1": 1.0, "head": 1.0}}
    assert Check("a small", "a", "<", 0.5).outcomes(v) == {"a small": True}
    assert Check("b positive", "b", ">", 0).outcomes(v) == {"b positive": False}  # all elements
    assert Check("b positive", "b", ">", 0, each=True).outcomes(v) == {
        "b positive [0]": True, "b positive [1]": True, "b positive [2]": False}
    assert Check("c above d", "c", ">", "d", each=True).outcomes(v) == {
        "c above d [conv1]": True, "c above d [head]": False}
    assert Check("c above a", "c", ">", "a").outcomes(v) == {"c above a": True}
    with pytest.raises(KeyError, match="no 'zz'"):
        Check("x", "zz", ">", 0).outcomes(v)
    with pytest.raises(ValueError, match="op='=='"):
        Check("x", "a", "==", 0)


def test_all_checks_verdicts_can_fail():
    rule = AllChecks((Check("positive at each", "x", ">", 0, each=True),))
    assert rule.judge({"x": [1, 2]})[0] == "reproduced"
    assert rule.judge({"x": [1, -2]})[0] == "partly"
    assert rule.judge({"x": [-1, -2]})[0] == "not reproduced"  # a null effect fails


def test_matches_paper():
    rule = MatchesPaper(0.987, 0.004, partly_below=0.03)
    assert rule.judge({"mean": 0.985, "ci95": 0.004})[0] == "reproduced"
    assert rule.judge({"mean": 0.96, "ci95": 0.004})[0] == "partly"
    assert rule.judge({"mean": 0.90, "ci95": 0.004})[0] == "not reproduced"


def test_failed_precondition_is_inconclusive(monkeypatch, results_dir):
    c = claims.CLAIMS["G5"]
    # (the smoke profile's inner loop is not the paper's: that precondition is tested in test_verdicts.py)
    gated = dataclasses.replace(c, precondition=(Check("support loss not saturated", "loss_1", ">", 0.1),),
                                about_inner_loop=False)
    monkeypatch.setitem(claims.CLAIMS, "G5", gated)
    share = {"conv1": 0.1, "head": 0.1}
    g5 = {"later_share": share, "later_share_lo": share, "later_share_hi": share, "n_tasks": 20,
          "support_loss_ratio_1": 1}
    null = {"later_share_hi": {"conv1": 3.0, "head": 3.0}}  # G5's step counter
    r = claims.record(Evidence("G5", {**g5, "loss_1": 0.001}, {"control": null}, run=LEVELLED), "smoke")
    assert r.verdict == "inconclusive" and "FAILS" in r.precondition and r.rule.startswith("precondition")
    assert claims.record(Evidence("G5", {**g5, "loss_1": 0.5}, {"control": null}, run=LEVELLED), "smoke").verdict == "reproduced"


def test_claims_table_shows_the_registered_rules():
    t = claims.table("03_inner_steps_vs_meta_steps")
    assert list(t.index) == ["G3", "G4", "G5"]
    rule = claims.CLAIMS["G4"].rule
    assert t.loc["G4", "decisive checks"] == "; ".join(c.name for c in rule.decisive)
    assert t.loc["G4", "control"] == f"{rule.control} (a trivial control: {rule.trivial})"
    assert t.loc["G3", "preconditions (else inconclusive)"].startswith("conv4 has levelled off")
    assert not any(k in " ".join(t.stack()) for k in ("early_ratio_1_lo", "plateau_last", ">="))
    with pytest.raises(KeyError, match="unknown claim 'Z9'"):
        claims.claim("Z9")


def test_verdict_table(results_dir):
    a = claims.record(Evidence("F1", {"mean": 0.96, "ci95": 0.004, "n_tasks": 600}, run=LEVELLED), "smoke")
    b = claims.record(Evidence("F2", {"mean": 0.958, "ci95": 0.004, "n_tasks": 600}, run=LEVELLED), "smoke")
    table = claims.verdict_table([a, b])
    assert list(table.index) == ["F1", "F2"] and list(table.columns) == ["measured", "paper", "verdict"]
    assert table.loc["F2", "verdict"] == "reproduced" and table.loc["F1", "measured"] == ("96.0 ± 0.4% (600 tasks); error rate 4.0%, 3.1× the paper's")


def test_alternative_recipe_swaps_loss_and_network_only():
    c = profiles.load("cpu").omniglot_20w1s
    alt = profiles.alternative_recipe(c)
    assert {(c.inner_reduction, c.network), (alt.inner_reduction, alt.network)} == {("mean", "book"), ("sum/k", "finn")}
    assert dataclasses.replace(alt, inner_reduction=c.inner_reduction, network=c.network) == c
    assert profiles.alternative_recipe(alt) == c


def test_knee_step():
    from mamlscope.publish import report

    class FakeRun:
        def metrics(self):
            return [{"step": s, "test_score": v} for s, v in [(0, 0.2), (10, 0.5), (100, 0.75), (1000, 0.79), (3000, 0.8)]]

    assert report.knee_step(FakeRun()) == 100    # 0.75 − 0.2 ≥ 0.9 × (0.8 − 0.2)
    assert report.knee_step(FakeRun(), fraction=0.95) == 1000
    assert report.knee_step(FakeRun(), fraction=0.4) == 10
