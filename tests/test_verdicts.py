"""What a verdict says (CLAIMS.md, verdict protocol 3, 5 and 7): one-sided where the paper states
a level reached, inconclusive when the model had not converged, and inconclusive (underpowered)
when a failing check could not have seen the paper's effect at this sample."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import LEVELLED, RISING, CurveRun

from mamlscope import stats
from mamlscope.publish import scorecard
from mamlscope.verdict import claims

ROOT = Path(__file__).resolve().parents[1]


def test_exceeding_the_paper_is_no_failure():
    above = claims.judge("F2", {"mean": 0.975, "ci95": 0.004, "n_tasks": 600}, "cpu",
                         regime=claims.regime_with_run("F2", "cpu", LEVELLED))
    assert above.verdict == "reproduced" and above.qualifiers == ["exceeds the paper"]
    reaching = claims.judge("F2", {"mean": 0.953, "ci95": 0.004, "n_tasks": 600}, "cpu",
                            regime=claims.regime_with_run("F2", "cpu", LEVELLED))
    assert reaching.verdict == "reproduced" and reaching.qualifiers == []
    below = claims.judge("F2", {"mean": 0.864, "ci95": 0.004, "n_tasks": 600}, "cpu",
                         regime=claims.regime_with_run("F2", "cpu", LEVELLED))
    assert below.verdict == "not reproduced"
    a1a = {"mean": 0.972, "ci95": 0.001, "pi_lo": 0.9698, "pi_hi": 0.9743, "pi_half": 0.0022, "seeds": 3,
           "by_seed": {"0": 0.972}}
    null = {**a1a, "pi_lo": 0.09, "pi_hi": 0.11, "mean": 0.1}
    r = claims.judge("A1a", a1a, "cpu", null_values=null)
    assert r.verdict == "reproduced" and r.qualifiers == ["exceeds the paper"]
    assert claims.judge("A1a", {**a1a, "pi_lo": 0.95, "pi_hi": 0.96}, "cpu", null_values=null).verdict == "not reproduced"


def test_a_model_still_rising_cannot_judge_what_is_read_off_it():
    r = claims.judge("F2", {"mean": 0.864, "ci95": 0.004, "n_tasks": 600}, "cpu",
                     regime=claims.regime_with_run("F2", "cpu", RISING))
    assert r.verdict == "inconclusive"
    assert "not converged: 3,000 of the paper's 60,000 steps" in r.precondition and "has not levelled off: its fitted rise over steps 1,800–3,000 is +2.4" in r.precondition
    assert any("3,000 of the paper's 60,000 steps" in d for d in r.regime["departures"])
    # at the paper's own budget a rising curve is the paper's regime
    at_budget = CurveRun(RISING.curve, steps=60_000)
    conv = claims.regime_with_run("F2", "cpu", at_budget)["converged"]
    assert conv["at_paper_budget"] and conv["holds"]
    with pytest.raises(ValueError, match="pass its run"):
        claims.judge("F2", {"mean": 0.9, "ci95": 0.004, "n_tasks": 600}, "cpu", regime=claims.regime("F2", "cpu"))


def test_the_regime_block_names_every_departure_from_the_paper():
    r = claims.regime("F2", "cpu")
    assert r["setting"] == "omniglot_20w1s" and r["here"]["steps"] == 3000 and r["paper"]["steps"] == 60_000
    text = "; ".join(r["departures"])
    for piece in ("3,000 of the paper's 60,000 steps", "filters 32 (paper 64)", "meta-batch 4 (paper 16)",
                  "inner loss mean (paper sum/k"):
        assert piece in text, text
    assert claims.regime("G2", "paper")["departures"] == []


def test_power_by_formula_matches_simulation_and_a1c_is_underpowered_at_400_images():
    # the formula against a Monte Carlo of the same check: estimate ~ N(θ, se), pass if est − half > t
    rng = np.random.default_rng(0)
    for theta, t, half in ((0.0, -0.02, 0.0254), (0.01, -0.02, 0.0254), (-0.03, -0.02, 0.01)):
        est = rng.normal(theta, half / 1.96, 200_000)
        simulated = float(np.mean(est - half > t))
        assert stats.interval_power(theta, t, half, ">", 400).power == pytest.approx(simulated, abs=0.005)
        # the lenient form reads the interval's other end (upper end above t: "reaches the level")
        lenient = float(np.mean(est + half > t))
        assert stats.interval_power(theta, t, half, ">", 400, lenient=True).power == pytest.approx(lenient, abs=0.005)
        # the smallest true value the strict check sees 80% of the time
        seen = stats.detectable(t, half, ">")
        assert float(np.mean(rng.normal(seen, half / 1.96, 200_000) - half > t)) == pytest.approx(0.8, abs=0.005)
    # A1c as recorded (400 images, MAML − supervised −2.2 [−4.8, +0.3]): MAML exactly as good as
    # supervised passes only a third of the time, so the failing check says nothing
    v = {"diff": -0.0225, "diff_lo": -0.0479, "diff_hi": 0.0029, "gain_raw": 0.34, "gain_raw_lo": 0.29,
         "gain_raw_hi": 0.39, "gain_random": 0.57, "gain_random_lo": 0.52, "gain_random_hi": 0.62,
         "maml": 0.94, "supervised": 0.9625, "raw": 0.6, "random": 0.37, "pool": 400}
    null = {**v, "diff_lo": -0.6, "gain_raw_lo": -0.3, "gain_random_lo": 0.0}
    r = claims.judge("A1c", v, "cpu", null_values=null, regime=claims.regime_with_run("A1c", "cpu", LEVELLED))
    p = next(p for p in r.power.values() if p["power"] is not None)  # the gains' checks have no paper size
    assert p["power"] == pytest.approx(0.34, abs=0.01) and 1200 < p["needed"] < 1400
    assert r.verdict == "inconclusive" and r.precondition.startswith("underpowered") and "about 1,3" in r.precondition
    # the same shortfall measured on 5,000 images has power: then it is a failure
    se = 0.0254 * math.sqrt(400 / 5000)
    big = {**v, "pool": 5000, "diff_lo": -0.0225 - se, "diff_hi": -0.0225 + se}
    r = claims.judge("A1c", big, "cpu", null_values=null, regime=claims.regime_with_run("A1c", "cpu", LEVELLED))
    assert next(p for p in r.power.values() if p["power"] is not None)["power"] >= 0.8
    assert r.verdict == "not reproduced"
    # and the paper's effect, measured with that power, passes: the rule can see it
    ok = {**big, "diff": 0.0, "diff_lo": -se, "diff_hi": se}
    assert claims.judge("A1c", ok, "cpu", null_values=null,
                        regime=claims.regime_with_run("A1c", "cpu", LEVELLED)).verdict == "reproduced"


def test_tracking_power_sees_a_clear_overfit_and_not_one_lost_in_the_noise():
    from mamlscope.measure import landscape

    steps = list(range(0, 1201, 100))
    truth = [0.40, 0.55, 0.62, 0.66, 0.68, 0.66, 0.63, 0.60, 0.57, 0.54, 0.51, 0.48, 0.45]
    loss = [0.6 * 0.8 ** i for i in range(len(steps))]
    clear = {"step": steps, "score": truth, "score_se": [0.004] * len(steps), "support_loss": loss}
    assert landscape.tracking_power(clear, 20) >= 0.9
    drowned = {**clear, "score": [0.60, 0.62, 0.63, 0.635, 0.64, 0.638, 0.636, 0.634, 0.632, 0.63, 0.628, 0.626, 0.624],
               "score_se": [0.009] * len(steps)}
    assert landscape.tracking_power(drowned, 20) < 0.8
    assert landscape.tracking_power(drowned, 20, task_factor=64) > landscape.tracking_power(drowned, 20)


def test_the_scorecard_shows_power_in_closed_form_and_simulated():
    from mamlscope.publish import scorecard

    text = scorecard.power_text({
        "a": {"power": 0.34, "needed": 1318.0, "n": 400, "unit": "images", "effect": 0.0, "effect_text": "equal"},
        "b [run]": {"power": 0.44, "needed_text": "about 4× the test tasks per checkpoint", "effect_text": "perfect"}})
    assert text == ("a: 34% (400 images; the effect: equal); b [run]: 44% (about 4× the test tasks per checkpoint "
                    "would reach 80%; the effect: perfect)")


# ---- setting-dependent verdicts (CLAIMS.md protocol 8) ----------------------------------------

def test_a_rule_judged_per_run_says_which_runs_pass():
    from mamlscope.verdict.claims import element_split

    d = ["follows", "beats"]
    mixed = {"follows [FOMAML]": True, "follows [MAML]": False, "beats [FOMAML]": True, "beats [MAML]": True}
    assert element_split(mixed, d) == "setting-dependent: every decisive check passes for FOMAML, not for MAML"
    assert element_split({"follows [A]": True, "follows [B]": True}, d) == ""
    assert element_split({"follows [A]": False, "follows [B]": False}, d) == ""
    # a shared decisive check that fails fails every element
    assert element_split({"follows [A]": True, "follows [B]": False, "beats": False}, d) == ""
    # secondary checks split nothing
    assert element_split({"follows [A]": True, "follows [B]": True, "rises [B]": False}, d) == ""


def test_the_recipe_study_disagreeing_makes_the_verdict_setting_dependent():
    from mamlscope.verdict.claims import recipe_split

    def block(**verdicts):
        return {"models": {k: {"verdict": v} for k, v in verdicts.items()}}

    text = recipe_split(block(**{"5w mean, book": "reproduced", "20w mean, book": "not reproduced",
                                 "20w Σℓ/K, finn": "not judged"}))
    assert text.startswith("setting-dependent") and "holds at 5-way, the book's recipe" in text
    assert "not at 20-way, the book's recipe" in text and "Finn" not in text
    assert recipe_split(block(**{"5w mean, book": "reproduced", "20w mean, book": "partly"})) == ""
    assert recipe_split({}) == ""


def test_trivial_controls_are_said_to_be_trivial():
    from types import SimpleNamespace

    from mamlscope.publish import scorecard

    for cid in ("G4", "L1", "R1", "A1a"):
        rule = claims.claim(cid).rule
        assert rule.trivial and "a trivial control:" in rule.text()
        assert "a trivial control" in claims.rule_parts(claims.claim(cid))["control"]
    assert not claims.claim("R4").rule.trivial  # an unrelated network of the same size: a near control
    r = SimpleNamespace(verdict="reproduced", qualifiers=[], precondition="", rule=claims.claim("A1a").rule_text())
    assert scorecard.outcome(r) == "holds, trivial control"


def test_claims_about_the_inner_loop_need_the_papers_inner_loop():
    """CLAIMS.md protocol 5: G4, G5, R3, R4 are inconclusive under another inner step, with why."""
    about = {c.id for c in claims.CLAIMS.values() if c.about_inner_loop}
    assert about == {"G4", "G5", "R3", "R4"}
    paper = {"inner loss": "sum/k", "inner step size α": 0.1, "inner steps (training)": 5,
             "inner steps (testing)": 5, "ways": 20}
    assert claims.inner_loop_reason({"here": dict(paper), "paper": paper}) == ""
    why = claims.inner_loop_reason({"here": {**paper, "inner loss": "mean"}, "paper": paper})
    assert why.startswith("the inner loop is not the paper's") and "a step 20× this one" in why
    # judged on values that pass the rule, with a converged model: the inner loop alone decides
    v = {"ratio_1": {"conv1": 2.0}, "ratio_1_lo": {"conv1": 1.5}, "ratio_1_hi": {"conv1": 2.5},
         "early_ratio_1_lo": {"conv1": 1.5, "conv2": 1.5, "conv3": 1.5},
         "late_ratio_1_lo": {"conv4": 1.5, "head": 1.5}, "metric": "correlation", "n_tasks": 20}
    null = {**v, "early_ratio_1_lo": dict.fromkeys(("conv1", "conv2", "conv3"), 0.01),
            "late_ratio_1_lo": {"conv4": 0.01, "head": 0.01}}
    converged = {"holds": True, "levelled": True}
    same = claims.judge("G4", v, "cpu", null_values=null,
                        regime={"here": paper, "paper": paper, "converged": converged})
    other = claims.judge("G4", v, "cpu", null_values=null,
                         regime={"here": {**paper, "inner loss": "mean"}, "paper": paper, "converged": converged})
    assert same.verdict == "reproduced"
    assert other.verdict == "inconclusive" and "the inner loop is not the paper's" in other.precondition
    assert other.reasons == ["inner loop"] and same.reasons == []
    assert scorecard.outcome(other) == "not the paper's inner loop"


def test_claims_that_depend_on_the_papers_setting_are_inconclusive_outside_it():
    """CLAIMS.md protocol 5: [L]'s tracking claims are about the meta-overfitting of long training on
    the full set, L6 about 20-way accuracy. Outside that setting the verdict is inconclusive, and the
    rule's verdict in the book's setting is kept as a qualifier and in the scorecard's outcome."""
    assert {c.id for c in claims.CLAIMS.values() if c.setting} == {"L1", "L2", "L3", "L5", "L6"}
    paper = {"training characters": 0, "ways": 5, "steps": 50_000}
    here = {**paper, "training characters": 10, "steps": 1_200}
    assert claims.setting_reason(claims.claim("L5"), {"here": dict(paper, steps=1), "paper": paper}) == ""
    why = claims.setting_reason(claims.claim("L5"), {"here": here, "paper": paper})
    assert why.startswith("not the paper's setting: meta-trained on 10 characters (paper: all 1,200)")
    # records written before the label was renamed still say which setting they were measured in
    old = {"training characters (0: all 1,200)": 10}
    assert claims.setting_reason(claims.claim("L5"), {"here": old, "paper": {"training characters": 0}})
    # the recorded values of chapter 5 (any verdict of the rule but inconclusive will do)
    stored = json.loads((ROOT / "book/results/cpu/L5.json").read_text())
    v, null = stored["values"], stored["null_values"]
    rule_alone = claims.judge("L5", v, "cpu", null_values=null, regime={"here": paper, "paper": paper},
                              in_setting=False)
    outside = claims.judge("L5", v, "cpu", null_values=null, regime={"here": here, "paper": paper})
    inside = claims.judge("L5", v, "cpu", null_values=null, regime={"here": dict(paper), "paper": paper})
    assert inside.verdict == rule_alone.verdict != "inconclusive"
    assert outside.verdict == "inconclusive" and "not the paper's setting" in outside.precondition
    assert outside.reasons[-1] == "outside setting" and "outside setting" not in inside.reasons
    assert f"in the book's setting the rule gives: {inside.verdict}" in outside.qualifiers
    assert outside.checks == inside.checks  # what the rule saw is still recorded
    tag = scorecard.outcome(outside)
    assert tag.startswith("outside the paper's setting; in the book's: ") and tag != scorecard.outcome(inside)
    assert "the paper's training characters" in claims.claim("L5").rule_text()


def test_power_reads_dotted_keys_and_the_centre_of_the_interval():
    """R3 and R5 carry the paper's effect ([R] Tables 1 and 4): their checks' power comes from the
    recorded interval (centre and end, nested keys included) by the closed form."""
    v = {"head_only_diff": -0.006, "head_only_diff_lo": -0.0115, "full": {"n_tasks": 600}}
    p = claims.power_of(claims.claim("R3"), v)
    (check,) = p
    expected = stats.interval_power(-0.006, -0.02, 0.0055, ">", 600)
    assert p[check]["power"] == pytest.approx(expected.power) and p[check]["n"] == 600
    v5 = {"nil_diff": {"ANIL": 0.01, "MAML": -0.1}, "nil_diff_lo": {"ANIL": -0.03, "MAML": -0.14}}
    (p5,) = claims.power_of(claims.claim("R5"), v5).values()
    assert p5["power"] == pytest.approx(stats.interval_power(0.005, -0.02, 0.04, ">").power)
    assert p5["power"] < 0.8  # a 4-point half-width cannot see a +0.5-point effect against a −2 margin


def test_the_spread_between_runs_joins_the_powers_noise():
    """For a claim about a trained model the run is the unit: another seed's estimate, 3 points
    away, widens the noise the paper's effect is measured through, and the power falls."""
    v = {"head_only_diff": -0.005, "head_only_diff_lo": -0.010, "head_only_diff_hi": 0.0,
         "full": {"n_tasks": 600}}
    c = claims.CLAIMS["R3"]
    (alone,) = claims.power_of(c, v).values()
    (spread,) = claims.power_of(c, v, [{**v, "head_only_diff": -0.035}]).values()
    assert alone["power"] > 0.99 and "between_runs" not in alone
    assert spread["between_runs"] == pytest.approx(0.03 / math.sqrt(2)) and spread["runs"] == 2
    se = math.hypot(0.005 / 1.96, spread["between_runs"])
    assert spread["power"] == pytest.approx(stats.interval_power(-0.006, -0.02, 1.96 * se, ">", 600).power)
    assert spread["power"] < 0.8
