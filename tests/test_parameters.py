"""Every parameter a notebook's `parameters` cell assigns is one papermill sees, with its default
and a description: `papermill --help-notebook book/<name>.ipynb` lists it, and
`python -m mamlscope rerun <name> -p <parameter>=...` accepts it.

papermill reads annotations with a regular expression that knows no `|`: a parameter annotated
`int | None` is silently dropped (and then refused by `python -m mamlscope rerun` as unknown). Annotate it
`Optional[int]`, with `from typing import Optional` at the top of the cell.
"""
import ast
import json
from pathlib import Path

import pytest

from mamlscope.publish.notebooks import chapters, summary_pages

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", chapters(ROOT) + summary_pages(ROOT))
def test_every_parameter_is_listed_with_default_and_help(name):
    import papermill as pm

    path = ROOT / "book" / f"{name}.ipynb"
    cells = [c for c in json.loads(path.read_text())["cells"]
             if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{name}: {len(cells)} cells tagged parameters"
    assigned = []
    for node in ast.parse("".join(cells[0]["source"])).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            assigned.append(node.target.id)
        elif isinstance(node, ast.Assign):
            assigned += [t.id for t in node.targets if isinstance(t, ast.Name)]
    listed = pm.inspect_notebook(str(path))
    assert list(listed) == assigned, (
        f"{name}: papermill lists {list(listed)}, the cell assigns {assigned} "
        f"(an `int | None` annotation hides a parameter from papermill: use Optional[int])")
    for parameter, info in listed.items():
        assert info["default"] and info["help"], f"{name}: {parameter} needs a default and a # description"
