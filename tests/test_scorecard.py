"""The scorecard lists every claim from the recorded results (nothing typed in), and the book runs
it after the chapters."""
import dataclasses
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from mamlscope.publish import notebooks, rerun, scorecard
from mamlscope.verdict import attached, claims, results

ROOT = Path(__file__).resolve().parents[1]
CLAIMS_IDS = ["G1", "G2", "G3", "G4", "G5", "L1", "L2", "L3", "L4", "L5", "L6",
              "R1", "R2", "R3", "R4", "R5", "A1"]
REGISTERED = CLAIMS_IDS + ["A1a", "A1b", "A1c", "A1d", "F1", "F2"]  # CLAIMS.md's, A1's sub-claims, the base protocol's


def _record(claim, verdict="partly", chapter="01_maml_on_omniglot", statement="a statement"):
    return results.write(results.ClaimResult(
        claim, chapter, "smoke", statement, "45.5 ± 6.9% (20 tasks)", "98.7 ± 0.4% (Finn et al. 2017)",
        verdict, "r"))


def _rows(markdown: str) -> dict[str, list[str]]:
    """id → cells of the rendered markdown table (pipes inside cells are escaped)."""
    rows = {}
    for line in markdown.splitlines()[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows[cells[0]] = cells
    return rows


def test_registry_covers_claims_md():
    assert list(claims.CLAIMS) == REGISTERED
    claims_md = ROOT.parent / "shared" / "CLAIMS.md"
    if claims_md.is_file():  # the ids in the claims list, in its order
        ids = re.findall(r"^\| ([A-Z]\d+) \|", claims_md.read_text(), flags=re.MULTILINE)
        assert ids == CLAIMS_IDS
    assert all(c.statement and "\n" not in c.statement for c in claims.CLAIMS.values())
    # a claim with a chapter has a rule, and its chapter exists
    for c in claims.CLAIMS.values():
        if c.chapter:
            assert c.rule is not None and (ROOT / "book" / f"{c.chapter}.md").is_file(), c.id


def test_recorded_claim_shows_its_verdict_and_links_its_chapter(results_dir):
    _record("G3", verdict="reproduced")
    table = scorecard.scorecard("smoke")
    row = table.set_index("id").loc["G3"]
    assert (row.verdict, row.chapter, row.claim) == ("reproduced", "01_maml_on_omniglot",
                                                     claims.CLAIMS["G3"].statement)
    assert row.measured == "45.5 ± 6.9% (20 tasks)" and row.paper == "98.7 ± 0.4% (Finn et al. 2017)"
    md = _rows(scorecard.markdown_table(table, book_dir=ROOT / "book"))
    assert md["G3"][4] == "**reproduced**"
    assert md["G3"][5] == "[MAML on Omniglot](01_maml_on_omniglot.ipynb)"


def test_unrecorded_claims_are_not_yet_run(results_dir):
    _record("G3")
    table = scorecard.scorecard("smoke")
    assert list(table["id"]) == REGISTERED
    assert set(table.set_index("id").drop("G3")["verdict"]) == {scorecard.NOT_RUN}
    md = _rows(scorecard.markdown_table(table))
    assert md["R1"][4] == "*not yet run*" and md["R1"][5] == "—"
    assert md["R1"][1] == claims.CLAIMS["R1"].statement


def test_unregistered_ids_follow_in_order_with_their_own_statement(results_dir):
    for claim in ("X10", "X2", "F1"):
        _record(claim, verdict="not reproduced", statement=f"statement of {claim} | with a pipe")
    _record("G1", verdict="inconclusive")
    table = scorecard.scorecard("smoke")
    assert list(table["id"]) == REGISTERED + ["X2", "X10"]
    md = scorecard.markdown_table(table)
    assert _rows(md)["X2"][1] == "statement of X2 \\| with a pipe"
    assert _rows(md)["F1"][1] == claims.CLAIMS["F1"].statement  # the registry's, not the record's
    assert _rows(md)["X10"][4] == "**not reproduced**"
    assert scorecard.counts(table) == {"reproduced": 0, "partly": 0, "not reproduced": 3,
                                       "inconclusive": 1, "not yet run": 21}
    assert scorecard.summary(table, "smoke").startswith("4 of 25 claims judged at the `smoke` profile")


def test_other_profiles_and_bad_records(results_dir):
    _record("F1")
    assert set(scorecard.scorecard("cpu")["verdict"]) == {scorecard.NOT_RUN}
    with pytest.raises(ValueError, match="unknown profile 'laptop'"):
        scorecard.scorecard("laptop")
    path = results_dir / "smoke" / "F1.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "verdict": "maybe"}))
    with pytest.raises(ValueError, match="F1 .*'maybe'"):
        scorecard.scorecard("smoke")


def test_chapter_title_falls_back_to_the_name(tmp_path):
    assert notebooks.chapter_title("01_maml_on_omniglot", ROOT / "book") == "MAML on Omniglot"
    assert notebooks.chapter_title("99_missing", tmp_path) == "99_missing"


def test_scorecard_follows_the_intro_and_runs_last():
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert toc["parts"][0]["chapters"][0] == {"file": "book/scorecard"}
    assert "scorecard" not in notebooks.chapters(ROOT)
    assert notebooks.summary_pages(ROOT) == ["scorecard"]


def test_rerun_executes_summary_pages_last_with_their_parameters(monkeypatch, tmp_path):
    done = []
    monkeypatch.setattr(rerun, "execute_page", lambda job, name: done.append((name, job.parameters[name]))
                        or job.notebook_dir / f"{name}.ipynb")
    monkeypatch.setattr(rerun, "chapters", lambda root: ["01_a", "02_b"])
    monkeypatch.setattr(rerun, "summary_pages", lambda root: ["scorecard"])
    tasks = {"inferred_type_name": "Optional[int]", "default": "None", "help": "tasks"}
    monkeypatch.setattr(rerun.notebooks, "parameters", lambda root, name: (
        {"profile": {}} if name == "scorecard" else {"profile": {}, "test_tasks": tasks}))
    rerun.main(["--profile", "smoke", "-p", "test_tasks=5", "--output-dir", str(tmp_path)])
    assert done == [("01_a", {"profile": "smoke", "test_tasks": 5}),
                    ("02_b", {"profile": "smoke", "test_tasks": 5}),
                    ("scorecard", {"profile": "smoke"})]
    done.clear()
    rerun.main(["scorecard", "02_b", "--output-dir", str(tmp_path)])
    assert [name for name, _ in done] == ["02_b", "scorecard"]
    done.clear()  # a chapter alone: the summary pages follow it (they show its records)
    rerun.main(["02_b", "--output-dir", str(tmp_path)])
    assert [name for name, _ in done] == ["02_b", "scorecard"]
    done.clear()
    rerun.main(["scorecard", "--output-dir", str(tmp_path)])
    assert [name for name, _ in done] == ["scorecard"]


def _markdown_outputs(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return ["".join(o["data"]["text/markdown"]) for c in nb["cells"] if c["cell_type"] == "code"
            for o in c.get("outputs", []) if "text/markdown" in o.get("data", {})]


def _scorecard_from_records(profile: str = "cpu") -> list[str]:
    """What the scorecard notebook's cells display, computed from the committed records now."""
    table = scorecard.beside_profile(scorecard.scorecard(profile), "long" if profile == "cpu" else "")
    c = scorecard.counts(table)
    head = f"{len(table) - c[scorecard.NOT_RUN]} of {len(table)} claims judged at the `{profile}` profile."
    return [head + "\n\n" + scorecard.front_page(table, book_dir=ROOT / "book", other="long"),
            scorecard.details(table)]


def test_the_committed_scorecard_shows_the_committed_records():
    """A summary page is never older than the records it summarises: the committed scorecard's
    outputs are what the committed records give today (re-execute it: rerun scorecard)."""
    committed = _markdown_outputs(ROOT / "book" / "scorecard.ipynb")
    for expected in _scorecard_from_records():
        assert expected in committed, ("book/scorecard.ipynb is older than the records it shows: "
                                       "python -m mamlscope rerun scorecard")


def test_the_staleness_check_sees_a_changed_record(tmp_path, monkeypatch):
    import shutil

    src = ROOT / "book" / "results" / "cpu"
    shutil.copytree(src, tmp_path / "cpu")
    monkeypatch.setenv("MAMLSCOPE_RESULTS", str(tmp_path))
    record = json.loads((tmp_path / "cpu" / "R2.json").read_text())
    record["measured"] = "3.59× [3.29, 4.26] (an older execution)"
    (tmp_path / "cpu" / "R2.json").write_text(json.dumps(record))
    committed = _markdown_outputs(ROOT / "book" / "scorecard.ipynb")
    assert any(expected not in committed for expected in _scorecard_from_records())


def test_scorecard_notebook_has_a_described_profile_parameter():
    import papermill as pm

    params = pm.inspect_notebook(str(ROOT / "book" / "scorecard.ipynb"))
    from mamlscope.publish import notebooks
    assert notebooks.parameters(ROOT, "scorecard") == params
    assert list(params) == ["profile"]
    assert params["profile"]["default"] == '"cpu"' and params["profile"]["help"]


def test_every_committed_record_rejudges_to_its_verdict():
    """A reader re-judging book/results/cpu/ from its stored values gets the recorded verdicts and
    power: a rule changed in mamlscope.verdict.claims without re-executing its chapter fails here."""
    rows = claims.rejudge("cpu", ROOT / "book" / "results")
    book = [r for r in rows if " (seed" not in r["claim"]]
    assert len(book) == len(claims.CLAIMS)
    replicas = {r["claim"] for r in rows} - {r["claim"] for r in book}
    assert replicas == {f"{c} (seed1)" for c in attached.REPLICATED}  # the replica is re-judged too
    differ = [r for r in rows if not (r["same verdict"] and r["same rule"] and r["same power"])]
    assert not differ, f"re-judged records differ from the stored ones (re-execute their chapters): {differ}"


def test_the_scorecard_shows_the_control_the_seeds_and_a_failed_precondition(results_dir):
    results.write(results.ClaimResult(
        "G3", "03_inner_steps_vs_meta_steps", "smoke", "s", "m", "p", "inconclusive", "r",
        precondition="conv4 has levelled off: FAILS", control="a random-init Conv4",
        null_verdict="not reproduced", seeds={"n": 3, "passing": 2}))
    results.write(results.ClaimResult(
        "G4", "03_inner_steps_vs_meta_steps", "smoke", "s", "m", "p", "partly", "r",
        seeds={"n": 1, "note": "one 20-way run"}))
    md = _rows(scorecard.markdown_table(scorecard.scorecard("smoke")))
    assert md["G3"][4] == "**inconclusive** (conv4 has levelled off: FAILS)"
    assert md["G3"][6:] == ["not reproduced (a random-init Conv4)", "2/3"]
    assert md["G4"][6:] == ["—", "1 (one 20-way run)"]


def _fake_table():
    rows = [dict(id="F2", claim="acc", paper="p", measured="m", verdict="not reproduced", chapter="01_maml_on_omniglot",
                 note="", control="", null_verdict="", seeds="", precondition="", recipe=""),
            dict(id="G4", claim="inner", paper="p", measured="m", verdict="not reproduced",
                 chapter="03_inner_steps_vs_meta_steps", note="F2 is not reproduced", control="c",
                 null_verdict="not reproduced", seeds="1", precondition="",
                 recipe="recipe-dependent: 20w Σℓ/K, finn (51%): reproduced"),
            dict(id="G5", claim="first", paper="p", measured="m", verdict="inconclusive",
                 chapter="03_inner_steps_vs_meta_steps", note="F2 is not reproduced", control="c",
                 null_verdict="not reproduced", seeds="", precondition="x: FAILS", recipe="",
                 outcome="a precondition fails"),  # what scorecard() computes from its reasons
            dict(id="R1", claim="anil", paper="p", measured="m", verdict=scorecard.NOT_RUN, chapter="",
                 note="", control="", null_verdict="", seeds="", precondition="", recipe="")]
    return pd.DataFrame(rows, columns=scorecard.COLUMNS)


def test_tallies_per_paper_and_the_front_page():
    t = _fake_table()
    tal = scorecard.tallies(t)
    assert list(tal.index) == ["Finn et al. (2017), the base protocol", "Goerttler & Obermayer (2021)",
                               "Raghu et al. (2020)"]
    assert tal.loc["Goerttler & Obermayer (2021)", "not reproduced"] == 1
    assert "partly" not in tal.columns  # a verdict nobody got has no column
    page = scorecard.front_page(t)
    assert page.index("### Finn") < page.index("### Goerttler") < page.index("### Raghu")
    # the id links to the chapter's verdict section (its label claim-g4); a claim not run has no link
    assert "| {ref}`G4 <claim-g4>` | inner† | — | — | {bdg-danger}`not reproduced` (recipe-dependent) | — | [ch. 3]" in page
    assert "| R1 | anil |" in page
    assert "(a precondition fails)" in page and page.count("\n† ") == 1
    d = scorecard.details(t)
    assert d.count(":::{dropdown}") == 3 and "**recipe**: recipe-dependent" in d  # not-run claims skipped


def test_chapter_summary_lists_the_chapters_recorded_verdicts(results_dir):
    assert "No claim of this chapter" in scorecard.chapter_summary("01_maml_on_omniglot", "smoke")
    _record("F1", "reproduced")
    _record("F2", "not reproduced")
    _record("R1", "reproduced", chapter="04_rapid_learning_or_feature_reuse")
    text = scorecard.chapter_summary("01_maml_on_omniglot", "smoke")
    lines = text.splitlines()
    assert lines[0].startswith("- **F1** {bdg-success}`reproduced`")
    assert lines[1].startswith("- **F2** {bdg-danger}`not reproduced`")
    assert "R1" not in text and "2 claims at profile `smoke`: 1 reproduced, 1 not reproduced." in text


@pytest.mark.parametrize("chapter", sorted(p.stem for p in (ROOT / "book").glob("0*.md")))
def test_every_chapter_opens_with_its_summary_box_and_glues_it(chapter):
    text = (ROOT / "book" / f"{chapter}.md").read_text()
    box, first_cell = text.index("{glue:md} chapter_summary"), text.index("```{code-cell}")
    assert box < first_cell  # before the parameters cell: the reader's first screen
    assert f'_scorecard.chapter_summary("{chapter}", P.name)' in text.split("```{code-cell}")[-1]


def test_the_first_screen_shows_each_measured_value_beside_the_papers():
    """CLAIMS.md vocabulary: per claim, the measured value beside the paper's, from the records."""
    page = scorecard.front_page(scorecard.scorecard("cpu", ROOT / "book" / "results"))
    assert "| measured | paper |" in page
    rows = [l for l in page.splitlines() if l.startswith("| {ref}`")]
    assert len(rows) == len(claims.CLAIMS)
    missing = [r.split("|")[1] for r in rows if r.split("|")[3].strip() == "—"]
    assert not missing, f"no headline value for {missing}"
    assert set(scorecard.HEADLINES) == set(claims.CLAIMS)
    assert "| what decided it |" in page
    lacking = [r.split("|")[1] for r in rows if r.split("|")[6].strip() == "—"]
    assert not lacking, f"no line of what decided the verdict for {lacking}"


def test_what_decided_it_reads_the_records_reason():
    r = results.ClaimResult("F2", "01_maml_on_omniglot", "cpu", "s", "m", "p", "inconclusive", "rule", {}, {},
                            "", reasons=["not converged"],
                            regime={"converged": {"steps": 3000, "paper_steps": 60000, "last": 0.858, "rise": 0.023,
                                                  "window": [1800, 3000]}})
    assert scorecard.meaning(r) == ("its model (85.8%) was still rising at step 3,000 of 60,000 "
                                    "(+2.3 points over steps 1,800–3,000)")
    judged = dataclasses.replace(r, verdict="reproduced", reasons=[], power={
        "a": {"power": 0.97, "n": 600, "unit": "tasks", "effect_text": "e"},
        "b [x]": {"power": None, "detectable": 1.3, "excluded": False}})
    assert scorecard.meaning(judged) == "power 97% to see the paper's effect (the least over its checks)"
    assert scorecard.power_text(judged.power) == ("a: 97% (600 tasks; the effect: e); b [x]: no size in the paper; it "
                                                  "sees a true value of 1.3 or beyond 80% of the time")
    contradicted = dataclasses.replace(judged, verdict="not reproduced",
                                       power={"b [x]": {"power": None, "detectable": 1.3, "excluded": True}})
    assert scorecard.meaning(contradicted) == "the whole interval of a decisive check fails it"


def test_a_second_profiles_verdicts_sit_beside_and_a_difference_is_budget_dependent():
    t = _fake_table()
    other = t.copy()
    other["verdict"] = ["reproduced" if v != scorecard.NOT_RUN else v for v in t["verdict"]]
    other["outcome"] = ["holds, not specific" if v != scorecard.NOT_RUN else "" for v in t["verdict"]]
    both = scorecard.beside(t, other)
    g4 = both[both["id"] == "G4"].iloc[0]
    assert g4["other_verdict"] == "reproduced" and g4["budget_dependent"]
    page = scorecard.front_page(both, other="long")
    assert "| verdict | what decided it | at `long` | chapter |" in page
    assert "budget-dependent" in page
    # the second column qualifies a verdict in the first column's words: "holds" is the verdict's own
    assert "{bdg-success}`reproduced` (not specific) |" in page and "holds, not specific" not in page
    # without a judged claim at the other profile, no column
    none = scorecard.beside(t, None)
    assert not none["budget_dependent"].any()
    assert "at `long`" not in scorecard.front_page(none, other="long")
