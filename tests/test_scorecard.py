"""The scorecard lists every claim from the recorded results (nothing typed in), and the book runs
it after the chapters."""
import json
import re
from pathlib import Path

import pytest

from mamlscope import rerun, results, scorecard

ROOT = Path(__file__).resolve().parents[1]
CLAIMS_IDS = ["G1", "G2", "G3", "G4", "G5", "L1", "L2", "L3", "L4", "L5", "L6",
              "R1", "R2", "R3", "R4", "R5", "A1"]


def _record(claim, verdict="partly", chapter="01_maml_on_omniglot", statement="a statement"):
    return results.record(claim, chapter=chapter, profile="smoke", statement=statement,
                          measured="45.5 ± 6.9% (20 tasks)", paper="98.7 ± 0.4% (Finn et al. 2017)",
                          verdict=verdict, rule="r")


def _rows(markdown: str) -> dict[str, list[str]]:
    """id → cells of the rendered markdown table (pipes inside cells are escaped)."""
    rows = {}
    for line in markdown.splitlines()[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows[cells[0]] = cells
    return rows


def test_claim_lines_cover_claims_md():
    assert list(scorecard.CLAIM_LINES) == CLAIMS_IDS
    claims_md = ROOT.parent / "shared" / "CLAIMS.md"
    if claims_md.is_file():  # the ids in the claims list, in its order
        ids = re.findall(r"^\| ([A-Z]\d+) \|", claims_md.read_text(), flags=re.MULTILINE)
        assert ids == CLAIMS_IDS
    assert all(line and "\n" not in line for line in scorecard.CLAIM_LINES.values())


def test_recorded_claim_shows_its_verdict_and_links_its_chapter(results_dir):
    _record("G3", verdict="reproduced")
    table = scorecard.scorecard("smoke")
    row = table.set_index("id").loc["G3"]
    assert (row.verdict, row.chapter, row.claim) == ("reproduced", "01_maml_on_omniglot",
                                                     scorecard.CLAIM_LINES["G3"])
    assert row.measured == "45.5 ± 6.9% (20 tasks)" and row.paper == "98.7 ± 0.4% (Finn et al. 2017)"
    md = _rows(scorecard.markdown_table(table, book_dir=ROOT / "book"))
    assert md["G3"][4] == "**reproduced**"
    assert md["G3"][5] == "[MAML on Omniglot](01_maml_on_omniglot.ipynb)"


def test_unrecorded_claims_are_not_yet_run(results_dir):
    _record("G3")
    table = scorecard.scorecard("smoke")
    assert list(table["id"]) == CLAIMS_IDS
    assert set(table.set_index("id").drop("G3")["verdict"]) == {scorecard.NOT_RUN}
    md = _rows(scorecard.markdown_table(table))
    assert md["R1"][4] == "*not yet run*" and md["R1"][5] == "—"
    assert md["R1"][1] == scorecard.CLAIM_LINES["R1"]


def test_extra_ids_follow_in_order_with_their_own_statement(results_dir):
    for claim in ("F10", "F2", "F1"):
        _record(claim, verdict="not reproduced", statement=f"statement of {claim} | with a pipe")
    table = scorecard.scorecard("smoke")
    assert list(table["id"]) == CLAIMS_IDS + ["F1", "F2", "F10"]
    md = scorecard.markdown_table(table)
    assert _rows(md)["F2"][1] == "statement of F2 \\| with a pipe"
    assert _rows(md)["F10"][4] == "**not reproduced**"
    assert scorecard.counts(table) == {"reproduced": 0, "partly": 0, "not reproduced": 3,
                                       "not yet run": 17}
    assert scorecard.summary(table, "smoke").startswith("3 of 20 claims judged at the `smoke` profile")


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
    assert scorecard.chapter_title("01_maml_on_omniglot", ROOT / "book") == "MAML on Omniglot"
    assert scorecard.chapter_title("99_missing", tmp_path) == "99_missing"


def test_scorecard_follows_the_intro_and_runs_last():
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert toc["chapters"][0] == {"file": "book/scorecard"}
    assert "scorecard" not in rerun.chapters(ROOT)
    assert rerun.summary_pages(ROOT) == ["scorecard"]


def test_rerun_executes_summary_pages_last_with_their_parameters(monkeypatch, tmp_path):
    done = []
    monkeypatch.setattr(rerun, "execute", lambda name, params, out, root: done.append((name, params)) or out)
    monkeypatch.setattr(rerun, "chapters", lambda root: ["01_a", "02_b"])
    monkeypatch.setattr(rerun, "summary_pages", lambda root: ["scorecard"])
    monkeypatch.setattr(rerun, "_declared", lambda root, name: {"profile": {}})
    rerun.main(["--profile", "smoke", "-p", "test_tasks=5", "--output-dir", str(tmp_path)])
    assert done == [("01_a", {"profile": "smoke", "test_tasks": 5}),
                    ("02_b", {"profile": "smoke", "test_tasks": 5}),
                    ("scorecard", {"profile": "smoke"})]
    done.clear()
    rerun.main(["scorecard", "02_b", "--output-dir", str(tmp_path)])
    assert [name for name, _ in done] == ["02_b", "scorecard"]


def test_scorecard_notebook_has_a_described_profile_parameter():
    import papermill as pm

    params = pm.inspect_notebook(str(ROOT / "book" / "scorecard.ipynb"))
    assert list(params) == ["profile"]
    assert params["profile"]["default"] == '"cpu"' and params["profile"]["help"]
