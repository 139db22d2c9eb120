"""The [G] rules registered in mamlscope.claims can fail: a random or weak effect does not pass,
and G5 is inconclusive when its precondition fails."""
import pytest

from mamlscope import claims, results, scorecard


def _g1(rho_lo):
    n = len(rho_lo)
    return {"metric": "correlation", "steps": list(range(n)), "rho": [0.9] * n, "rho_lo": rho_lo,
            "rho_hi": [1.0] * n, "rho_euclidean": [0.9] * n, "n_tasks": 50}


def test_g1_needs_a_strong_ordering():
    assert claims.judge("G1", _g1([0.8, 0.9]), "smoke").verdict == "reproduced"
    assert claims.judge("G1", _g1([0.8, 0.3]), "smoke").verdict == "partly"
    assert claims.judge("G1", _g1([0.1, 0.3]), "smoke").verdict == "not reproduced"  # ρ > 0 is not enough


def test_g3_checks_conv4_size_and_levelling_off():
    base = {"metric": "correlation", "plateau": {}, "plateau_first": 0.01, "plateau_last": 0.12,
            "last_layer": "conv4", "drift_last": 0.1, "delta": 250, "steps": 3000}
    assert claims.judge("G3", base, "smoke").verdict == "reproduced"
    r = claims.judge("G3", {**base, "plateau_last": 0.45}, "smoke")  # 4.5× the paper's
    assert r.verdict == "partly" and not r.checks["conv4 plateau ≤ 0.2 (0.1 within 2×)"]
    assert not claims.judge("G3", {**base, "drift_last": 0.6}, "smoke").checks[
        "conv4 has levelled off (fitted change over the second half ≤ 25%)"]


def test_g4_judges_the_early_layers_with_intervals():
    layers = ["conv1", "conv2", "conv3"]
    v = {"metric": "correlation", "ratio_1": dict.fromkeys(layers, 2.0), "ratio_1_hi": dict.fromkeys(layers, 3.0),
         "ratio_1_lo": dict.fromkeys(layers, 1.5), "early_ratio_1_lo": dict.fromkeys(layers, 1.5)}
    assert claims.judge("G4", v, "smoke").verdict == "reproduced"
    weak = {**v, "early_ratio_1_lo": {"conv1": 0.8, "conv2": 0.9, "conv3": 0.95}}  # intervals include 1
    assert claims.judge("G4", weak, "smoke").verdict == "not reproduced"


def test_g5_is_inconclusive_when_the_first_step_saturates():
    share = {"conv1": 0.99, "conv2": 0.98}
    ok = {"first_step_share": share, "train_inner_steps": 5, "support_loss_ratio_1": 0.4}
    assert claims.judge("G5", ok, "smoke").verdict == "reproduced"
    saturated = claims.judge("G5", {**ok, "support_loss_ratio_1": 0.0003}, "smoke")
    assert saturated.verdict == "inconclusive" and "FAILS" in saturated.precondition
    one_step = claims.judge("G5", {**ok, "train_inner_steps": 1}, "smoke")
    assert one_step.verdict == "inconclusive"
    assert claims.judge("G5", {**ok, "first_step_share": {"conv1": 0.3, "conv2": 0.4}}, "smoke").verdict == "not reproduced"


def test_scorecard_notes_claims_measured_on_a_model_that_fails_its_accuracy(results_dir):
    claims.record("F2", {"mean": 0.874, "ci95": 0.004, "n_tasks": 600}, "smoke")
    claims.record("G1", _g1([0.8, 0.9]), "smoke")
    table = scorecard.scorecard("smoke").set_index("id")
    assert "F2 is not reproduced" in table.loc["G1", "note"] and table.loc["G2", "note"] == ""
    assert "⚠" in scorecard.markdown_table(scorecard.scorecard("smoke"))
    claims.record("F2", {"mean": 0.957, "ci95": 0.004, "n_tasks": 600}, "smoke")
    assert scorecard.scorecard("smoke").set_index("id").loc["G1", "note"] == ""
