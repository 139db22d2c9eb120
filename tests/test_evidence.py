"""One Evidence value per claim: what claims.record reads from it (the first control as the negative
control, the envelope of several, per-seed counts) and what it refuses."""
import copy
import json
from pathlib import Path

import pytest
from conftest import LEVELLED

from mamlscope.evidence import ONE_20W_SEED, Evidence
from mamlscope.verdict import claims

STORED = json.loads((Path(__file__).resolve().parents[1] / "book/results/cpu/A1.json").read_text())
A1_GOOD = {**copy.deepcopy(STORED["values"]), "gain_raw": 0.2, "gain_raw_lo": 0.1, "gain_raw_hi": 0.3,
           "gain_random_lo": 0.1, "gain_raw_tsne_lo": 0.1, "seed_gain_raw": {"0": 0.2, "1": 0.2, "2": -0.1},
           "seed_gain_raw_lo": {"0": 0.1, "1": 0.1, "2": -0.2}}  # seed 2 fails its own check
A1_NULL = {**A1_GOOD, "gain_raw_lo": -0.3, "gain_random_lo": -0.3, "gain_raw_tsne_lo": -0.3}


def test_record_judges_the_first_control_and_keeps_the_seeds(results_dir):
    ev = Evidence("A1", A1_GOOD, {"before training": A1_NULL, "raw pixels": A1_GOOD}, per_seed="seed_gain_raw")
    r = claims.record(ev, "smoke")
    saved = json.loads((results_dir / "smoke" / "A1.json").read_text())
    assert saved["null_values"]["gain_raw_lo"] == -0.3 and r.null_verdict == "not reproduced"
    assert saved["seeds"]["n"] == 3 and saved["seeds"]["passing"] == 2  # seed 2's lower end is below 0


def test_given_seeds_keep_the_per_seed_count_beside_them(results_dir):
    ev = Evidence("A1", A1_GOOD, {"before training": A1_NULL},
                  {"n": 1, "note": "one network, compared with each seed"}, per_seed="seed_gain_raw")
    seeds = claims.record(ev, "smoke").seeds
    assert seeds["n"] == 1 and seeds["per_seed"]["passing"] == 2
    assert seeds["note"] == "one network, compared with each seed: 2/3 pass"


def test_several_controls_are_judged_by_their_most_favourable_value(results_dir):
    v = {"early_ratio_1_lo": {"conv1": 1.5}, "late_ratio_1_lo": {"conv4": 1.5}}
    weak, strong = ({"early_ratio_1_lo": {"conv1": x}, "late_ratio_1_lo": {"conv4": x}} for x in (0.1, 1.2))
    envelope = claims.null_envelope("G4", v, {"weak": weak, "strong": strong})
    assert envelope["early_ratio_1_lo"] == {"conv1": 1.2}  # the strong control, check by check
    first_only = Evidence("G4", v, {"weak": weak, "strong": strong}, ONE_20W_SEED)
    assert first_only.null_values == weak and first_only.rows() == {"measured": v, "weak": weak, "strong": strong}


def test_record_takes_an_evidence_value_only(results_dir):
    with pytest.raises(TypeError, match="Evidence"):
        claims.record("F2", "smoke")
    r = claims.record(Evidence("F2", {"mean": 0.9, "ci95": 0.01, "n_tasks": 600}, run=LEVELLED), "smoke")
    assert r.regime["converged"]["holds"]


def test_control_table_shows_every_row_of_the_evidence():
    ev = Evidence("A1", A1_GOOD, {"before training": A1_NULL}, label="trained",
                  columns={"gain_raw": "gain (points)"})
    t = claims.control_table(ev)
    assert list(t.index) == ["trained", "before training"]
    assert t.loc["trained", "gain (points)"] == "+20.0 [+10.0, +30.0]"
    assert list(t["the rule's verdict"]) == ["partly", "not reproduced"]  # seed 2: a secondary check
