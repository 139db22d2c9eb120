"""Chapters are Jupytext pairs: ``book/<chapter>.md`` (MyST, the source people edit) and
``book/<chapter>.ipynb`` (the executed outputs the HTML shows). The pair must hold the same cells;
the cell papermill injects is kept in the ``.ipynb`` but hidden from the HTML."""
import json
from pathlib import Path

import pytest

from mamlscope.publish import notebooks
from mamlscope.publish.notebooks import chapters, summary_pages

ROOT = Path(__file__).resolve().parents[1]
PAGES = chapters(ROOT) + summary_pages(ROOT)


def test_every_page_is_a_pair():
    assert PAGES, "no chapters in _toc.yml"
    for name in PAGES:
        assert notebooks.source_path(ROOT, name).is_file() and notebooks.notebook_path(ROOT, name).is_file()
    assert not list((ROOT / "tools").glob("make_ch*.py")), "chapter generator scripts are gone: edit book/<chapter>.md"


@pytest.mark.parametrize("name", PAGES)
def test_pair_is_in_sync(name):
    problem = notebooks.pair_problem(ROOT, name)
    assert problem is None, problem


@pytest.mark.parametrize("name", PAGES)
def test_html_hides_the_injected_cell_and_collapses_parameters(name):
    nb = json.loads(notebooks.notebook_path(ROOT, name).read_text())
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags:
            assert "remove-cell" in tags, f"{name}: the injected-parameters cell would show in the HTML"
        if "parameters" in tags:  # collapsed, or (a summary page's) removed
            assert {"hide-input", "remove-cell"} & set(tags), \
                f"{name}: the parameters cell is not collapsed in the HTML"


def test_pair_check_catches_an_edit(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    name = PAGES[0]
    for suffix in (".md", ".ipynb"):
        (book / f"{name}{suffix}").write_text((ROOT / "book" / f"{name}{suffix}").read_text())
    assert notebooks.pair_problem(tmp_path, name) is None
    md = book / f"{name}.md"
    md.write_text(md.read_text().replace("import ", "import  ", 1))
    assert "out of sync" in notebooks.pair_problem(tmp_path, name)
    notebooks.sync(tmp_path, name)  # what `make sync` does
    assert notebooks.pair_problem(tmp_path, name) is None
    # sync keeps the outputs of the code cells that did not change
    before = [c.get("outputs") for c in json.loads((ROOT / "book" / f"{name}.ipynb").read_text())["cells"]
              if c["cell_type"] == "code" and "injected-parameters" not in c["metadata"].get("tags", [])]
    after = [c.get("outputs") for c in json.loads((book / f"{name}.ipynb").read_text())["cells"]
             if c["cell_type"] == "code"]
    kept = sum(bool(b) and a == b for a, b in zip(before, after))
    assert kept >= sum(bool(b) for b in before) - 1


def test_carry_moves_prose_and_tags_and_keeps_every_output(tmp_path):
    import shutil

    import nbformat

    from mamlscope.publish import notebooks

    chapter = "01_maml_on_omniglot"
    (tmp_path / "book").mkdir()
    for ext in (".md", ".ipynb"):
        shutil.copy(ROOT / "book" / f"{chapter}{ext}", tmp_path / "book" / f"{chapter}{ext}")
    md = tmp_path / "book" / f"{chapter}.md"
    md.write_text(md.read_text().replace("## Verdicts", "(a-new-label)=\n## Verdicts", 1))
    before = nbformat.read(tmp_path / "book" / f"{chapter}.ipynb", as_version=4)
    notebooks.carry(tmp_path, chapter)
    after = nbformat.read(tmp_path / "book" / f"{chapter}.ipynb", as_version=4)
    assert notebooks.pair_problem(tmp_path, chapter) is None
    assert [c.get("outputs") for c in after.cells] == [c.get("outputs") for c in before.cells]
    assert after.metadata == before.metadata and any(notebooks.INJECTED in notebooks._tags(c) for c in after.cells)
    md.write_text(md.read_text().replace("claims.table(", "claims.table( ", 1))  # a code change
    with pytest.raises(ValueError, match="re-execute"):
        notebooks.carry(tmp_path, chapter)
