"""The verdict protocol (mamlscope.results.Protocol, mamlscope.claims.judge): decisive checks,
secondary checks, and a negative control the rule must reject."""
import pytest

from mamlscope import claims, results
from mamlscope.results import Check, Protocol

RULE = Protocol(decisive=(Check("gain over raw pixels: CI lower bound > 0", "gain_lo", ">", 0.0),),
                secondary=(Check("also in the 2-D plane", "plane_gain_lo", ">", 0.0),),
                control="the same network at its random initialisation, same code and pool")


@pytest.fixture
def claim(monkeypatch):
    c = claims.Claim("T1", "a test claim", paper="—", source="—", rule=RULE,
                     measured=lambda v: f"gain {v['gain_lo']:+.2f}")
    monkeypatch.setitem(claims.CLAIMS, "T1", c)
    return c


def test_a_failing_decisive_check_means_not_reproduced_whatever_the_rest():
    assert RULE.judge({"gain_lo": 0.1, "plane_gain_lo": 0.1})[0] == "reproduced"
    assert RULE.judge({"gain_lo": 0.1, "plane_gain_lo": -0.1})[0] == "partly"
    assert RULE.judge({"gain_lo": -0.1, "plane_gain_lo": 0.5})[0] == "not reproduced"  # no floor


def test_a_rule_without_a_decisive_check_or_a_control_is_not_ready():
    with pytest.raises(ValueError, match="decisive"):
        Protocol(decisive=(), control="x")
    with pytest.raises(ValueError, match="negative control"):
        Protocol(decisive=RULE.decisive, control=" ")


def test_the_record_carries_the_control_and_its_verdict(claim):
    r = claims.judge("T1", {"gain_lo": 0.05, "plane_gain_lo": 0.02}, "smoke",
                     null_values={"gain_lo": -0.03, "plane_gain_lo": -0.2},
                     seeds={"n": 3, "passing": 3, "values": {"0": 0.05}})
    assert r.verdict == "reproduced" and r.null_verdict == "not reproduced"
    assert r.decisive == ["gain over raw pixels: CI lower bound > 0"] and r.control == RULE.control
    assert r.null_values == {"gain_lo": -0.03, "plane_gain_lo": -0.2} and r.seeds["passing"] == 3
    again, _ = RULE.judge(r.values)                       # a reader can re-judge the record
    assert again == r.verdict and RULE.judge_control(r.null_values) == r.null_verdict


def test_a_rule_that_passes_its_own_control_gives_inconclusive(claim):
    r = claims.judge("T1", {"gain_lo": 0.05, "plane_gain_lo": 0.02}, "smoke",
                     null_values={"gain_lo": 0.04, "plane_gain_lo": 0.01})
    assert r.null_verdict == "reproduced" and r.verdict == "inconclusive"
    assert "does not reject its control" in r.precondition


def test_the_control_is_required(claim):
    with pytest.raises(ValueError, match="null_values"):
        claims.judge("T1", {"gain_lo": 0.05, "plane_gain_lo": 0.02}, "smoke")


def test_old_records_still_load(tmp_path):
    r = results.ClaimResult("X", "c", "smoke", "s", "m", "p", "partly", "rule")
    results.write(r, tmp_path)
    assert results.load_all("smoke", tmp_path)[0].null_verdict == ""
