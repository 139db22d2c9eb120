"""What the chapters print is for readers: no NaN, no internal reprs or keys, and a run's hash only
in a line that says which runs were used (a provenance line), never as a table's value. Checked on
the committed notebooks (the book's numbers) and on the goldens (what the code prints today; the
smoke profile's curves are too short for some intervals, and its numbers are never shown to
readers, so NaN is checked on the book's notebooks only)."""
import json
import re
from pathlib import Path

import pytest

from mamlscope.publish.notebooks import chapters, summary_pages

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ([ROOT / "book" / f"{c}.ipynb" for c in chapters(ROOT) + summary_pages(ROOT)]
             + sorted((ROOT / "tests" / "goldens").glob("*.ipynb")))
NAN = re.compile(r"\bnan\b", re.I)
RUN = re.compile(r"\b[a-z0-9]+(?:-[a-z0-9]+)*-[0-9a-f]{12}\b")
INTERNAL = ("InnerLoop(", "from:conv", "_5w1s —", "_20w1s —", "n_ratio_tasks")


def outputs(path: Path):
    """(cell index, kind, text) of every output a reader sees."""
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                yield i, "stream", "".join(o["text"])
            for kind in ("text/html", "text/markdown", "text/plain"):
                if kind in o.get("data", {}):
                    yield i, kind, "".join(o["data"][kind])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_outputs_are_for_readers(path):
    problems = []
    for i, kind, text in outputs(path):
        if kind == "text/plain" and any(k in dict(outputs_kinds(path, i)) for k in ("text/html", "text/markdown")):
            continue  # the HTML or Markdown is what the page shows
        if path.parent.name == "book":
            problems += [f"cell {i} ({kind}): NaN in {text[max(0, m.start() - 40):m.end() + 20]!r}"
                         for m in NAN.finditer(text)]
        problems += [f"cell {i} ({kind}): {key!r}" for key in INTERNAL if key in text]
        if kind == "text/html" and RUN.search(text):
            problems.append(f"cell {i}: a run hash as a table value ({RUN.search(text).group(0)})")
    assert not problems, "\n".join(problems)


def outputs_kinds(path: Path, index: int):
    nb = json.loads(path.read_text())
    return [(k, True) for o in nb["cells"][index].get("outputs", []) for k in o.get("data", {})]
