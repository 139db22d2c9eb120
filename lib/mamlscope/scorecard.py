"""The scorecard: one row per claim, built from the claim records the chapters wrote.

Nothing here is measured or judged: :func:`scorecard` reads the records of a profile
(:func:`mamlscope.results.load_all`, files ``<results root>/<profile>/<claim>.json``) and lists
every claim of the registry (:data:`mamlscope.claims.CLAIMS`, in its order), recorded or not — a
claim that no chapter recorded yet says ``not yet run`` — then any other id a record carries.

:func:`markdown_table` renders it with a link to each claim's chapter; ``book/scorecard.ipynb``
displays it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from . import claims, results
from .paths import project_root

NOT_RUN = "not yet run"

COLUMNS = ["id", "claim", "paper", "measured", "verdict", "chapter", "note", "control", "null_verdict",
           "seeds", "precondition", "recipe"]


def _id_key(claim_id: str):
    """F2 before F10: letters, then the number."""
    m = re.fullmatch(r"([A-Za-z]*)(\d*)(.*)", claim_id)
    return (m.group(1), int(m.group(2)) if m.group(2) else -1, m.group(3))


def scorecard(profile: str, root=None) -> pd.DataFrame:
    """One row per claim (columns :data:`COLUMNS`): the registry's ids, in its order, then any
    other recorded id. ``chapter`` is the notebook's name ('' when not yet run)."""
    from .profiles import PROFILES

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    recorded = {}
    for r in results.load_all(profile, root=root):
        if r.verdict not in results.VERDICTS:
            raise ValueError(f"{r.claim} ({profile}): verdict {r.verdict!r} is not one of "
                             f"{results.VERDICTS}; re-run chapter {r.chapter}.")
        recorded[r.claim] = r
    ids = list(claims.CLAIMS) + sorted(set(recorded) - set(claims.CLAIMS), key=_id_key)
    rows = []

    def note(claim_id: str) -> str:
        """A warning when the claim was measured on a model that fails its own accuracy claim."""
        dep = claims.CLAIMS[claim_id].depends_on if claim_id in claims.CLAIMS else ""
        d = recorded.get(dep)
        if not dep or d is None or d.verdict == "reproduced":
            return ""
        return (f"measured on a model whose accuracy claim {dep} is {d.verdict} "
                f"({d.measured} against {d.paper})")

    for claim_id in ids:
        r = recorded.get(claim_id)
        line = claims.CLAIMS[claim_id].statement if claim_id in claims.CLAIMS else (r.statement if r else "")
        if r is None:
            rows.append(dict(id=claim_id, claim=line, paper="—", measured="—", verdict=NOT_RUN,
                             chapter="", note="", control="", null_verdict="", seeds="",
                             precondition="", recipe=""))
        else:
            rows.append(dict(id=claim_id, claim=line, paper=r.paper, measured=r.measured,
                             verdict=r.verdict, chapter=r.chapter, note=note(claim_id),
                             control=r.control, null_verdict=r.null_verdict,
                             seeds=seeds_text(r.seeds, r.replication), precondition=r.precondition,
                             recipe=recipe_text(r.recipe)))
    return pd.DataFrame(rows, columns=COLUMNS)


def seeds_text(seeds: dict, replication: dict | None = None) -> str:
    """``"2/3"`` (seeds passing / seeds) from a record's ``seeds``; ``"1 (why)"`` for one seed
    with a note; "" when the record says nothing about seeds. With a ``replication``
    (:func:`mamlscope.replicate.attach`): what each replica's seed gave, and whether it agrees."""
    text = ""
    if seeds and "n" in seeds:
        n = int(seeds["n"])
        if "passing" in seeds:
            text = f"{int(seeds['passing'])}/{n}"
        else:
            text = f"{n}" + (f" ({seeds['note']})" if seeds.get("note") else "")
    if replication:
        others = ", ".join(f"{k}: {v['verdict']}" for k, v in replication.items() if k != "agrees")
        agree = ("the same verdict" if replication.get("agrees")
                 else "a different verdict: a one-seed verdict")
        text = "; ".join(filter(None, [text, f"replica {others} ({agree})"]))
    return text


def recipe_text(recipe: dict) -> str:
    """"recipe-dependent: …" with each recipe's verdict per setting when the recipe study
    (:func:`mamlscope.recipe_claims.block`) found the verdict to differ; "" otherwise."""
    if not recipe or not recipe.get("recipe_dependent"):
        return ""
    parts = [f"{label} ({100 * m['accuracy']:.0f}%): {m['verdict']}"
             for label, m in recipe["models"].items()]
    return "recipe-dependent: " + "; ".join(parts)


def control_text(row) -> str:
    """The control's verdict under the claim's rule, and what the control is."""
    if not row.control:
        return "—"
    return f"{row.null_verdict or '?'} ({row.control})"


def counts(table: pd.DataFrame) -> dict[str, int]:
    """How many claims have each verdict (including :data:`NOT_RUN`), in a fixed order."""
    return {v: int((table["verdict"] == v).sum()) for v in (*results.VERDICTS, NOT_RUN)}


def summary(table: pd.DataFrame, profile: str) -> str:
    """One sentence: how many claims were judged at ``profile`` and how."""
    c = counts(table)
    judged = len(table) - c[NOT_RUN]
    parts = ", ".join(f"{c[v]} {v}" for v in results.VERDICTS)
    return (f"{judged} of {len(table)} claims judged at the `{profile}` profile: {parts}; "
            f"{c[NOT_RUN]} {NOT_RUN}.")


def chapter_title(chapter: str, book_dir=None) -> str:
    """The first ``# heading`` of ``<book>/<chapter>.ipynb``, else the chapter's name."""
    book = Path(book_dir) if book_dir is not None else (project_root() or Path.cwd()) / "book"
    try:
        nb = json.loads((book / f"{chapter}.ipynb").read_text())
    except (OSError, ValueError):
        return chapter
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            source = "".join(cell.get("source", ""))
            m = re.search(r"^#\s+(.+?)\s*$", source, flags=re.MULTILINE)
            if m:
                return m.group(1)
    return chapter


def _cell(text) -> str:
    """Markdown-table-safe text: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown_table(table: pd.DataFrame, *, book_dir=None, link_suffix: str = ".ipynb") -> str:
    """The scorecard as a Markdown table; each judged claim links to its chapter
    (``<chapter><link_suffix>``, a page next to the scorecard's)."""
    lines = ["| id | claim | paper | measured (95% CI) | verdict | chapter | the rule on its control | "
             "seeds passing |",
             "|---|---|---|---|---|---|---|---|"]
    titles = {}
    for row in table.itertuples(index=False):
        if row.chapter:
            if row.chapter not in titles:
                titles[row.chapter] = chapter_title(row.chapter, book_dir)
            link = f"[{_cell(titles[row.chapter])}]({row.chapter}{link_suffix})"
        else:
            link = "—"
        verdict = f"**{row.verdict}**" if row.verdict != NOT_RUN else f"*{NOT_RUN}*"
        if row.verdict == "inconclusive" and row.precondition:
            verdict += f" ({row.precondition})"
        if row.recipe:
            verdict += f" — *{row.recipe}*"
        if row.note:
            verdict += f" ⚠ {row.note}"
        lines.append(f"| {_cell(row.id)} | {_cell(row.claim)} | {_cell(row.paper)} | "
                     f"{_cell(row.measured)} | {verdict} | {link} | {_cell(control_text(row))} | "
                     f"{_cell(row.seeds or '—')} |")
    return "\n".join(lines) + "\n"
