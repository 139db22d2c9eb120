"""The inner-loop claims under both recipes: the block a record carries, and one smoke measurement."""
import json

from conftest import requires_data

from mamlscope.core import meta
from mamlscope.publish import scorecard
from mamlscope.studies import recipe_claims as RC
from mamlscope.training import profiles
from mamlscope.verdict import attached, claims


def _record(results_dir, verdicts: dict) -> None:
    models = {}
    for label, by_claim in verdicts.items():
        setting, red, net = attached.MODELS[label]
        models[label] = {"run": f"run-{label}", "setting": setting, "inner loss": red, "network": net,
                         "recipe": attached.RECIPES.get((red, net), "mixed (2×2 cell)"),
                         "accuracy": {"mean": 0.9, "ci95": 0.01, "n_tasks": 600},
                         "claims": {c: {"verdict": v, "measured": f"{c} {v}"} for c, v in by_claim.items()}}
    path = attached.recipe_record_path("cpu")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"profile": "cpu", "models": models}))


def test_the_block_marks_a_claim_whose_verdict_differs_between_recipes(results_dir):
    assert attached.recipe_block("G4", "cpu") == {}  # no record
    _record(results_dir, {"20w mean, book": {"G4": "not reproduced", "R3": "not reproduced"},
                          "20w Σℓ/K, finn": {"G4": "reproduced", "R3": "not reproduced"},
                          "5w mean, finn": {"G4": "reproduced"},  # a mixed cell: not a recipe
                          "5w mean, book": {"R5": "partly"}, "5w Σℓ/K, finn": {"R5": attached.NOT_JUDGED}})
    g4 = attached.recipe_block("G4", "cpu")
    assert g4["recipe_dependent"] and g4["differs"] == {"omniglot_20w1s": True}
    assert set(g4["models"]) == {"20w mean, book", "20w Σℓ/K, finn"}
    assert not attached.recipe_block("R3", "cpu")["recipe_dependent"]
    assert not attached.recipe_block("R5", "cpu")["recipe_dependent"]  # a claim not judged does not differ
    assert attached.recipe_block("L6", "cpu") == {}
    text = scorecard.recipe_text(g4)
    assert text.startswith("recipe-dependent") and "reproduced" in text
    assert scorecard.recipe_text(attached.recipe_block("R3", "cpu")) == ""


def test_r5_without_an_anil_run_is_not_judged():
    v = {"nil": {"MAML": 0.7}, "head": {"MAML": 0.8}, "nil_diff": {"MAML": -0.1},
         "nil_diff_lo": {"MAML": -0.12}, "nil_diff_hi": {"MAML": -0.08}, "others": {}}
    j = RC.judge("R5", {"values": v, "null_values": v}, "smoke")
    assert j["verdict"] == attached.NOT_JUDGED and "ANIL" in j["reason"]


@requires_data
def test_a_smoke_model_is_measured_for_every_claim_and_judged_by_the_registered_rules(tmp_path, monkeypatch):
    monkeypatch.setenv("MAMLSCOPE_CACHE", str(tmp_path / "cache"))
    P = profiles.load("smoke")
    run = meta.train(RC.config(P, "20w mean, book"))
    m = RC.measure(run, P)
    assert set(m) == set(attached.RECIPE_CLAIMS)
    for c in ("G4", "G5", "R3", "R4"):
        direct = claims.judge(c, m[c]["values"], "smoke", null_values=m[c]["null_values"])
        assert RC.judge(c, m[c], "smoke")["verdict"] == direct.verdict
    assert RC.judge("R5", m["R5"], "smoke")["verdict"] == attached.NOT_JUDGED


def test_describe_says_per_setting_whether_the_recipes_agree(results_dir):
    assert "not recorded" in RC.describe("G4", "cpu")
    _record(results_dir, {"20w mean, book": {"G4": "not reproduced"}, "20w Σℓ/K, finn": {"G4": "reproduced"},
                          "5w mean, book": {"G4": "not reproduced"}, "5w Σℓ/K, finn": {"G4": "not reproduced"}})
    lines = RC.describe("G4", "cpu").splitlines()
    assert lines[0].startswith("G4 at 5w") and lines[0].endswith("the same verdict.")
    assert lines[1].startswith("G4 at 20w") and lines[1].endswith("the verdict differs.")
    assert "reproduced under Finn et al.'s Σℓ/K, on a model at 90.0%" in lines[1]


def test_cells_table_reads_r3s_head_only_row_and_g4s_lower_bounds(results_dir):
    assert RC.cells_table("cpu") is None
    _record(results_dir, {"5w mean, book": {"R3": "not reproduced", "G4": "not reproduced"},
                          "5w Σℓ/K, book": {"R3": "reproduced"}, "20w mean, book": {"R3": "partly"}})
    rec = json.loads(attached.recipe_record_path("cpu").read_text())
    for label, diff in (("5w mean, book", -0.30), ("5w Σℓ/K, book", -0.01)):
        rec["models"][label]["claims"]["R3"]["values"] = {"head_only_diff": diff, "head_only_diff_lo": diff - 0.02}
    rec["models"]["5w mean, book"]["claims"]["G4"]["values"] = {
        "early_ratio_1_lo": {"conv1": 0.25, "conv2": 1.5, "conv3": 0.333}}
    attached.recipe_record_path("cpu").write_text(json.dumps(rec))
    t = RC.cells_table("cpu")
    assert list(t.index) == ["5w mean, book", "5w Σℓ/K, book"]  # the 5-way cells only
    assert t.loc["5w mean, book", "head only − all (points)"] == "-30.0 ± 2.0"
    assert t.loc["5w mean, book", "G4 inner/meta, conv1–3 (lower bounds)"] == "0.25 / 1.50 / 0.33"
    assert t.loc["5w Σℓ/K, book", "R3"] == "reproduced"


def test_describe_says_when_there_is_nothing_to_compare(results_dir):
    _record(results_dir, {"20w mean, book": {"G4": "not reproduced", "R5": attached.NOT_JUDGED},
                          "5w mean, book": {"R5": attached.NOT_JUDGED}, "5w Σℓ/K, finn": {"R5": attached.NOT_JUDGED}})
    assert RC.describe("G4", "cpu").endswith("the other recipe's model was not measured.")
    assert RC.describe("R5", "cpu").splitlines()[0].endswith("not judged under both, so not compared.")
