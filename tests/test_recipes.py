"""The recipe study: its rule, its record, and that the cpu profile follows its own record."""
import json

import pytest

from mamlscope import profiles, recipes, runs

from conftest import ROOT


def _row(acc, run="r"):
    return {"run": run, "recipe": "x", "inner loss": "mean", "network": "book", "α": 0.1,
            "accuracy": {"mean": acc, "ci95": 0.004, "n_tasks": 600}}


def test_rule_keeps_finn_unless_more_than_two_points_below():
    assert recipes.choice({"20w-mean": _row(0.841), "20w-finn": _row(0.822)}, "20w") == "finn"   # 1.9 below
    assert recipes.choice({"20w-mean": _row(0.841), "20w-finn": _row(0.820)}, "20w") == "mean"   # 2.1 below
    assert recipes.choice({"20w-mean": _row(0.80), "20w-finn": _row(0.90)}, "20w") == "finn"
    assert recipes.choice({"20w-mean": _row(0.80)}, "20w") is None


def test_candidates_differ_from_the_profile_only_in_the_recipe():
    P = profiles.load("cpu")
    c = recipes.candidates(P)
    assert set(c) == {"5w-mean", "5w-finn", "20w-mean", "20w-finn"}
    for name, cfg in c.items():
        base = P.meta(recipes.SETTINGS[name.split("-")[0]])
        assert profiles.alternative_recipe(cfg) == c[f"{name.split('-')[0]}-{'finn' if name.endswith('mean') else 'mean'}"]
        assert recipes.recipe_name(cfg) == name.split("-")[1]
        assert cfg in (base, profiles.alternative_recipe(base))


def test_record_merges_and_reads_back(results_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MAMLSCOPE_CACHE", str(tmp_path / "cache"))
    recipes.write_record("cpu", {"20w-mean": _row(0.84), "20w-finn": _row(0.51)})
    rec = recipes.write_record("cpu", {"5w-mean": _row(0.96), "5w-finn": _row(0.95)})
    assert set(rec["rows"]) == {"20w-mean", "20w-finn", "5w-mean", "5w-finn"}
    assert rec["choice"] == {"5w": "finn", "20w": "mean"}
    assert recipes.load_record("cpu") == rec
    assert "python -m mamlscope.recipes --profile cpu" in recipes.provenance(rec)
    assert recipes.load_record("smoke") is None
    t = recipes.show_record("cpu", settings=("20w",))
    assert list(t.index) == ["20w-mean", "20w-finn"] and t.loc["20w-finn", "accuracy (%)"] == "51.0 ± 0.4 (600 tasks)"


def test_table_formats_g4_and_g5_where_measured():
    r = {**_row(0.84), "G4 ratio_1": {"conv1": [0.58, 0.25, 1.54]}, "G5 d(0→1)/d(0→10)": [0.95, 1.51],
         "support loss after 1 step": 0.11}
    t = recipes.table({"a": r, "b": _row(0.5)})
    assert t.loc["a", "G4 conv1"] == "0.58 [0.25, 1.54]" and t.loc["a", "G5 d(0→1)/d(0→10)"] == "0.95–1.51"
    assert t.loc["a", "support loss after 1 step"] == "11% of before" and t.loc["b", "G4 conv1"] == ""


def test_evaluation_task_must_not_be_adapted():
    with pytest.raises(ValueError, match="eval_task >= n_tasks"):
        recipes.evaluation_inputs(profiles.load("smoke").omniglot_20w1s, n_tasks=4, eval_task=3)


@pytest.mark.parametrize("profile", ["cpu"])
def test_profile_trains_the_recipe_its_record_chose(profile):
    """The committed record's rule outcome and runs are the profile's: a profile edited away from
    its recorded choice (or a record from other configurations) fails here."""
    rec = json.loads((ROOT / "book" / "results" / profile / "studies" / "recipe.json").read_text())
    P = profiles.load(profile)
    cands = recipes.candidates(P)
    for setting, field in recipes.SETTINGS.items():
        assert (getattr(P, field).inner_reduction, getattr(P, field).network) == recipes.RECIPES[rec["choice"][setting]]
    for name, row in rec["rows"].items():
        assert row["run"] == runs.run_dir(cands[name]).name, f"record row {name} is from another configuration"
    assert rec["choice"] == {s: recipes.choice(rec["rows"], s) for s in recipes.SETTINGS}
