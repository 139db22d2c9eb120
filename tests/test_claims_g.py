"""The [G] rules registered in mamlscope.claims can fail: a random or weak effect does not pass,
and G5 is inconclusive when its precondition fails."""
import pytest

from conftest import LEVELLED

from mamlscope import claims, results, scorecard


def _g1(rho_lo, slope_diff_lo=None):
    n = len(rho_lo)
    slope_diff_lo = [0.2] * n if slope_diff_lo is None else slope_diff_lo
    return {"metric": "correlation", "steps": list(range(n)), "rho": [0.9] * n, "rho_lo": rho_lo,
            "rho_hi": [1.0] * n, "rho_euclidean": [0.9] * n, "rho_control": [1.0] * n,
            "slope": [0.8] * n, "slope_diff": [0.3] * n, "slope_diff_lo": slope_diff_lo,
            "slope_diff_hi": [0.4] * n, "n_tasks": 50}


# the null: an arm no different from its control (ρ = 1 from the architecture, no contrast)
_G1_NULL = _g1([1.0, 1.0], slope_diff_lo=[-0.05, -0.04])


def test_g1_needs_a_strong_ordering_beyond_its_control():
    judge = lambda v: claims.judge("G1", v, "smoke", null_values=_G1_NULL)  # noqa: E731
    assert judge(_g1([0.8, 0.9])).verdict == "reproduced"
    assert judge(_g1([0.8, 0.3])).verdict == "not reproduced"  # a decisive check fails at one checkpoint
    assert judge(_g1([0.1, 0.3])).verdict == "not reproduced"  # ρ > 0 is not enough
    # a perfect ordering that is no steeper than the matched perturbation's is not evidence
    assert judge(_g1([1.0, 1.0], [0.1, -0.02])).verdict == "not reproduced"
    assert judge(_g1([0.1, 0.2], [-0.1, -0.2])).verdict == "not reproduced"  # every decisive check fails


def test_g1_rejects_its_null_and_records_the_control():
    rule = claims.claim("G1").rule
    assert isinstance(rule, results.Protocol) and rule.judge_control(_G1_NULL) == "not reproduced"
    r = claims.judge("G1", _g1([0.8, 0.9]), "smoke", null_values=_G1_NULL, seeds={"n": 1, "note": "x"})
    assert r.null_verdict == "not reproduced" and r.control and len(r.decisive) == 2
    # a rule that passed its own null could not tell the claim from it → inconclusive
    assert claims.judge("G1", _g1([0.8, 0.9]), "smoke", null_values=_g1([0.9, 0.9])).verdict == "inconclusive"
    with pytest.raises(ValueError):
        claims.judge("G1", _g1([0.8, 0.9]), "smoke")  # the control is required


def _g2(**kw):
    layers = ["conv1", "conv2", "conv3"]
    v = {"metric": "euclidean", "kernel": "rbf [G]", "rsa_rho": 0.95, "rsa_rho_lo": 0.9,
         "rsa_rho_hi": 1.0, "cka_rho": -0.95, "cka_rho_lo": -1.0, "cka_rho_hi": -0.9,
         "rsa_rho_control": 1.0, "cka_rho_control": -1.0, "slope_diff": 0.3, "slope_diff_lo": 0.1,
         "slope_diff_hi": 0.5, "early_margin": dict.fromkeys(layers, 0.05),
         "early_margin_lo": dict.fromkeys(layers, 0.03), "n_seeds": 5}
    return {**v, **kw}


# the null: a random-init network moved as far per layer (ordering from the architecture)
_G2_NULL = _g2(slope_diff=0.0, slope_diff_lo=-0.2, slope_diff_hi=0.2)


def test_g2_needs_the_ordering_beyond_its_control_and_a_real_cka_margin():
    judge = lambda v: claims.judge("G2", v, "smoke", null_values=_G2_NULL)  # noqa: E731
    assert claims.claim("G2").rule.judge_control(_G2_NULL) == "not reproduced"
    assert judge(_g2()).verdict == "reproduced"
    # conv1 ahead by 0.001: rounding, not evidence → only partly
    tiny = _g2(early_margin_lo={"conv1": 0.0004, "conv2": 0.03, "conv3": 0.03})
    assert judge(tiny).verdict == "partly"
    assert judge(_g2(slope_diff_lo=-0.01)).verdict == "not reproduced"  # no steeper than the null
    assert judge(_g2(rsa_rho_lo=0.5)).verdict == "not reproduced"
    every = _g2(rsa_rho_lo=0.0, cka_rho_hi=0.0, slope_diff_lo=-0.3,
                early_margin_lo=dict.fromkeys(["conv1", "conv2", "conv3"], -0.1))
    assert judge(every).verdict == "not reproduced"
    seeds = {"n": 5, "passing": 4, "values": {0: 0.1}}
    r = claims.judge("G2", _g2(), "smoke", null_values=_G2_NULL, seeds=seeds)
    assert r.seeds["passing"] == 4 and r.null_verdict == "not reproduced" and len(r.decisive) == 3


# G3, G4 and G5: tests/test_claims_g3.py


def test_scorecard_notes_claims_measured_on_a_model_that_fails_its_accuracy(results_dir):
    claims.record("F2", {"mean": 0.874, "ci95": 0.004, "n_tasks": 600}, "smoke", run=LEVELLED)
    claims.record("G1", _g1([0.8, 0.9]), "smoke", null_values=_G1_NULL, run=LEVELLED)
    table = scorecard.scorecard("smoke").set_index("id")
    assert "F2 is not reproduced" in table.loc["G1", "note"] and table.loc["G2", "note"] == ""
    assert "⚠" in scorecard.markdown_table(scorecard.scorecard("smoke"))
    claims.record("F2", {"mean": 0.957, "ci95": 0.004, "n_tasks": 600}, "smoke", run=LEVELLED)
    assert scorecard.scorecard("smoke").set_index("id").loc["G1", "note"] == ""
