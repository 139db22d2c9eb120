"""The execution report (mamlscope.publish.execution_report, book/execution.md): tables from the pages'
execution records and the run cache, missing values as "—", the page a plain Markdown page (no
kernel), and the committed page what the CLI renders from the committed records."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mamlscope.publish import execution_report as er, notebooks

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "execution.md"

MYST_HEADER = "---\njupytext:\n  text_representation:\n    format_name: myst\nkernelspec:\n  name: python3\n---\n"


def _fake_book(root: Path, pages=("01_first", "02_second", "scorecard")) -> Path:
    """A book with notebook pages ``pages`` (each with a title in its .ipynb) and a plain page."""
    book = root / "book"
    book.mkdir(parents=True)
    toc = {"format": "jb-book", "root": "book/intro",
           "parts": [{"caption": "Summary", "chapters": [{"file": "book/scorecard"}, {"file": "book/plain"}]},
                     {"caption": "Chapters", "numbered": True,
                      "chapters": [{"file": f"book/{p}"} for p in pages if p != "scorecard"]}]}
    (root / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    (book / "plain.md").write_text("# A plain page\n")
    for p in pages:
        (book / f"{p}.md").write_text(MYST_HEADER + f"# Title of {p}\n")
        nb = {"cells": [{"cell_type": "markdown", "source": [f"# Title of {p}"], "metadata": {}}],
              "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        (book / f"{p}.ipynb").write_text(json.dumps(nb))
    return root


def _record(results: Path, page: str, **entry) -> None:
    folder = results / "cpu" / "execution"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{page}.json").write_text(json.dumps({"page": page, "profile": "cpu", **entry}))


FULL = dict(commit="abc1234", date="2026-01-02T10:00:00+00:00", machine="Some CPU, 2 cores",
            seconds=530.0, threads=1, workers=2)


def _no_nan(frame) -> None:
    assert not frame.isna().any().any()
    assert not any("nan" == str(v).lower() for v in frame.to_numpy().ravel())


def test_pages_table_from_fake_records(results_dir, tmp_path):
    root = _fake_book(tmp_path / "project")
    _record(results_dir, "01_first", **FULL)
    _record(results_dir, "scorecard", commit="abc1234", date="2026-01-02T10:00:04+00:00",
            seconds=4.5)                                   # no machine, threads, workers
    _record(results_dir, "99_not_in_toc", **{**FULL, "seconds": 3725})
    frame = er.pages_table("cpu", root=root)
    assert list(frame.columns) == ["page", "executed (UTC)", "commit", "machine", "torch threads", "workers",
                                   "wall time"]
    assert list(frame.index) == ["01_first", "02_second", "scorecard", "99_not_in_toc"]  # toc order, then others
    first = frame.loc["01_first"]
    assert first["page"] == "Title of 01_first"
    assert (first["executed (UTC)"], first["commit"], first["machine"]) == ("2026-01-02 10:00", "abc1234",
                                                                             "Some CPU, 2 cores")
    assert (first["torch threads"], first["workers"], first["wall time"]) == ("1", "2", "8 min 50 s")
    assert frame.loc["02_second", "executed (UTC)"] == "not executed"
    assert set(frame.loc["02_second"].drop(["page", "executed (UTC)"])) == {er.MISSING}
    score = frame.loc["scorecard"]
    assert (score["machine"], score["torch threads"], score["workers"], score["wall time"]) == (
        er.MISSING, er.MISSING, er.MISSING, "4.5 s")
    assert frame.loc["99_not_in_toc", "wall time"] == "1 h 02 min"
    _no_nan(frame)


def test_durations_and_dates():
    assert [er.duration(s) for s in (None, float("nan"), 0.04, 59.94, 60, 529.6, 3599.4, 3600, 7384)] == [
        "—", "—", "0.0 s", "59.9 s", "1 min 00 s", "8 min 50 s", "59 min 59 s", "1 h 00 min", "2 h 03 min"]
    assert er._date("2026-01-02T12:30:00+02:00") == "2026-01-02 10:30"   # shown in UTC
    assert er._date("yesterday") == "yesterday" and er._date(None) == "—"


def test_totals_span_only_for_one_execution(results_dir):
    _record(results_dir, "a", **{**FULL, "date": "2026-01-02T10:10:00+00:00", "seconds": 600})
    _record(results_dir, "b", **{**FULL, "date": "2026-01-02T10:05:00+00:00", "seconds": 300})
    t = er.totals("cpu")
    assert (t["pages"], t["seconds"], t["span"], t["commit"], t["workers"]) == (2, 900.0, 600.0, "abc1234", 2)
    _record(results_dir, "c", **{**FULL, "commit": "def5678"})          # another commit: no span
    assert er.totals("cpu")["span"] is None and er.totals("cpu")["commit"] is None
    _record(results_dir, "c", **{**FULL, "date": "2026-03-01T00:00:00+00:00", "seconds": 1})  # idle gap
    assert er.totals("cpu")["span"] is None


def test_runs_table_from_a_fake_cache(tmp_path, monkeypatch):
    from mamlscope.training.plan import planned
    from mamlscope.training.profiles import load

    cache = tmp_path / "cache"
    monkeypatch.setenv("MAMLSCOPE_CACHE", str(cache))
    items = planned(load("cpu"))
    meta = next(it for it in items if type(it.config).__name__ == "MetaConfig")
    sup = next(it for it in items if type(it.config).__name__ == "SupervisedConfig")
    for it in (meta, sup):
        it.dir.mkdir(parents=True)
        (it.dir / "final.json").write_text(json.dumps({"threads": 1, "torch": "9.9.9", "device": "cpu",
                                                       "steps": it.config.steps}))
    steps = meta.config.steps
    log = [{"step": 0, "test_score": 0.2}, {"step": steps // 2, "seconds_per_step": 0.2},
           {"step": steps, "seconds_per_step": 0.4}]
    (meta.dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log) + '{"step": 9')
    (sup.dir / "metrics.jsonl").write_text(json.dumps({"step": 1, "train_loss": 1.0}) + "\n")

    frame = er.runs_table("cpu")
    assert list(frame.columns) == ["run", "chapters", "steps", "status", "seconds per step", "training minutes",
                                   "torch threads", "torch", "device"]
    assert list(frame["run"]) == [it.dir.name for it in items]
    row = frame.set_index("run").loc[meta.dir.name]
    minutes = (0.2 * (steps // 2) + 0.4 * (steps - steps // 2)) / 60
    assert row["status"] == "trained" and row["seconds per step"] == "0.400"   # median of the two windows
    assert row["training minutes"] == f"{minutes:.1f}"
    assert (row["torch threads"], row["torch"], row["device"]) == ("1", "9.9.9", "cpu")
    assert row["chapters"] == ", ".join(c[:2].lstrip("0") for c in meta.chapters)
    srow = frame.set_index("run").loc[sup.dir.name]
    assert srow["status"] == "trained" and srow["seconds per step"] == srow["training minutes"] == er.MISSING
    others = frame[~frame["run"].isin([meta.dir.name, sup.dir.name])]
    assert len(others) == len(items) - 2 and set(others["status"]) == {er.NOT_IN_CACHE}
    assert set(others[["seconds per step", "training minutes", "torch threads", "torch"]].to_numpy().ravel()) == {
        er.MISSING}
    _no_nan(frame)
    assert not er.cache_complete("cpu")
    assert not (items[-1].dir).exists()           # reading the cache created no run directory

    runs = er.render_runs("cpu")
    assert er.RUNS_HEADING in runs and f"| {meta.dir.name} |" in runs
    assert f"2 of {len(items)} runs trained in this cache; {er.NOT_IN_CACHE}: {len(items) - 2}" in runs


def test_page_without_a_run_cache_is_plain_markdown(results_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MAMLSCOPE_CACHE", str(tmp_path / "empty-cache"))
    root = _fake_book(tmp_path / "project")
    _record(results_dir, "01_first", **FULL)
    page = er.render_page("cpu", root=root)
    assert not page.startswith("---")                    # no front matter: never taken for a notebook
    assert "\n# Execution report\n" in page
    assert "| [Title of 01_first](01_first.ipynb) | 2026-01-02 10:00 | abc1234 |" in page
    assert "| Title of 02_second | not executed |" not in page  # it has a notebook, so it is linked
    assert "| [Title of 02_second](02_second.ipynb) | not executed | — |" in page
    assert "The run cache is absent here" in page and "| run |" not in page
    assert "nan" not in page.lower()
    out = tmp_path / "execution.md"
    assert er.main(["--profile", "cpu", "--write", str(out)]) == 0
    assert not notebooks._is_notebook(out)


def test_cli_check_says_when_the_page_is_stale(results_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAMLSCOPE_CACHE", str(tmp_path / "empty-cache"))
    _record(results_dir, "01_maml_on_omniglot", **FULL)
    out = tmp_path / "execution.md"
    assert er.main(["--write", str(out)]) == 0
    assert er.main(["--check", str(out)]) == 0
    _record(results_dir, "01_maml_on_omniglot", **{**FULL, "seconds": 12.0})
    assert er.main(["--check", str(out)]) == 1
    assert "stale" in capsys.readouterr().err


def test_committed_page_is_not_a_notebook_and_is_in_the_toc_after_methods():
    assert PAGE.is_file(), "book/execution.md is missing: python -m mamlscope execution_report --write book/execution.md"
    assert not notebooks._is_notebook(PAGE)
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    assert files[files.index("book/methods") + 1] == "book/execution"
    numbered = [part for part in toc["parts"] if part.get("numbered")]
    assert [c["file"] for c in numbered[0]["chapters"]] == [f"book/{c}" for c in notebooks.chapters(ROOT)]
    assert "execution" not in notebooks.chapters(ROOT) + notebooks.summary_pages(ROOT)


def _committed_page() -> str:
    return PAGE.read_text()


def test_committed_page_shows_the_committed_execution_records():
    """The pages part depends on committed files only: checked everywhere, CI included."""
    rendered = er.render_pages("cpu", results=ROOT / "book" / "results", root=ROOT)
    committed = _committed_page().split("\n" + er.RUNS_HEADING, 1)[0]
    assert committed == rendered, (
        "book/execution.md is stale (its pages table differs from book/results/cpu/execution/): run "
        ".venv/bin/python -m mamlscope execution_report --profile cpu --write book/execution.md")


def test_committed_page_shows_the_runs_of_a_complete_cache():
    """The runs part is read from the run cache, which is not committed: checked only where every
    planned run is finished in it (then every such cache renders the same table)."""
    if not er.cache_complete("cpu"):
        pytest.skip("the run cache here does not hold every cpu run finished (CI, a fresh checkout): "
                    "the runs table of book/execution.md is not checked")
    rendered = er.render_page("cpu", results=ROOT / "book" / "results", root=ROOT)
    assert _committed_page() == rendered, (
        "book/execution.md is stale (its runs table differs from the run cache): run "
        ".venv/bin/python -m mamlscope execution_report --profile cpu --write book/execution.md")


def test_write_keeps_the_runs_table_when_the_cache_here_is_incomplete(tmp_path, capsys):
    from mamlscope.publish import execution_report as E

    page = tmp_path / "execution.md"
    snapshot = E.RUNS_HEADING + "\n\n| run | … |\n|---|---|\n| maml-omniglot-5w1s-62f1ab2563bb | 10.3 |\n"
    page.write_text("# old pages section\n\n" + snapshot)
    (tmp_path / "cache" / "runs").mkdir(parents=True)  # a cache, without the book's runs
    assert E.main(["--profile", "cpu", "--cache", str(tmp_path / "cache"), "--write", str(page)]) == 0
    text = page.read_text()
    assert text.endswith(snapshot) and text.startswith(E.GENERATED_BY.format(profile="cpu"))
    assert "kept as it was" in capsys.readouterr().out


@pytest.mark.parametrize("chapter", notebooks.chapters(ROOT))
def test_each_chapter_opens_with_its_rerun_panel_from_its_execution_record(chapter):
    """The command, the profile and the measured time of the chapter's last execution, in its source
    and in its executed notebook (graph.record_execution rewrites both when a chapter executes)."""
    from mamlscope.publish import execution_report as E

    panel = E.panel(chapter)
    assert panel in (ROOT / "book" / f"{chapter}.md").read_text()
    executed = json.loads((ROOT / "book" / f"{chapter}.ipynb").read_text())
    assert any(panel in "".join(c["source"]) for c in executed["cells"] if c["cell_type"] == "markdown")
    record = json.loads((ROOT / "book" / "results" / "cpu" / "execution" / f"{chapter}.json").read_text())
    assert f"mamlscope rerun {chapter}`" in panel and E.duration(record["seconds"]) in panel


def test_a_new_execution_record_rewrites_the_panel(tmp_path):
    import shutil

    from mamlscope.publish import execution_report as E

    chapter = "01_maml_on_omniglot"
    (tmp_path / "book").mkdir()
    for ext in (".md", ".ipynb"):
        shutil.copy(ROOT / "book" / f"{chapter}{ext}", tmp_path / "book" / f"{chapter}{ext}")
    results = tmp_path / "results"
    (results / "cpu" / "execution").mkdir(parents=True)
    (results / "cpu" / "execution" / f"{chapter}.json").write_text(json.dumps(
        {"page": chapter, "profile": "cpu", "seconds": 754.0, "threads": 1, "workers": 1,
         "machine": "a test machine", "commit": "abc", "date": "2026-12-06T10:00:00+00:00"}))
    assert E.update_panel(tmp_path, chapter, "cpu", results)
    shown = [(tmp_path / "book" / f"{chapter}.md").read_text(),
             "".join("".join(c["source"]) for c in json.loads((tmp_path / "book" / f"{chapter}.ipynb").read_text())["cells"])]
    old = E.panel(chapter)  # the committed record's panel
    for text in shown:
        assert "12 min 34 s" in text and "a test machine" in text and old not in text
