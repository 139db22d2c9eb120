"""The scorecard: one row per claim, built from the claim records the chapters wrote.

Nothing here is measured or judged: :func:`scorecard` reads the records of a profile
(:func:`mamlscope.results.load_all`, files ``<results root>/<profile>/<claim>.json``) and lists

* every claim of ``CLAIMS.md`` (:data:`CLAIM_LINES`, in that order), recorded or not — a claim
  that no chapter recorded yet says ``not yet run``;
* then every other claim id a chapter recorded (e.g. chapter 1's F1, F2), with the chapter's own
  one-line statement.

:func:`markdown_table` renders it with a link to each claim's chapter; ``book/scorecard.ipynb``
displays it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from . import results
from .paths import project_root

NOT_RUN = "not yet run"

# One line per claim of CLAIMS.md, paraphrased (the chapters state each claim in full).
CLAIM_LINES: dict[str, str] = {
    # Goerttler & Obermayer — similarity of representations
    "G1": "After fine-tuning on new tasks, early layers stay closer to the meta-initialisation's "
          "representations than later layers, at every stage of meta-training",
    "G2": "The same depth ordering appears in plain supervised training on MNIST (RSA and CKA), "
          "so it is not specific to MAML",
    "G3": "The representation change caused by meta-training levels off at a small plateau: "
          "near zero in the first layers, larger (≈ 0.1) in the last",
    "G4": "The inner loop, even a single step, changes representations more than meta-training "
          "does between checkpoints, in every layer",
    "G5": "Most of the inner loop's change happens in its first step; further steps add little",
    # Guiroy, Verma & Pal — objective landscapes
    "L1": "Curvature at adapted meta-test solutions rises, then falls, and keeps falling after "
          "meta-overfitting: flatness does not track generalisation",
    "L2": "The mean cosine between meta-test adaptation directions tracks target accuracy; for a "
          "fine-tuned baseline the directions are near-orthogonal",
    "L3": "With one inner step, the mean inner product of meta-test gradients at θ tracks "
          "generalisation",
    "L4": "That gradient coherence also tracks generalisation in few-shot sinusoid regression",
    "L5": "The mean inner product of penultimate features on meta-test data tracks generalisation, "
          "meta-overfitting included",
    "L6": "Penalising the angle between each task's update and the mean update raises Omniglot "
          "20-way 1-shot accuracy",
    # Raghu et al. — rapid learning or feature reuse
    "R1": "ANIL, which adapts only the head, matches MAML's few-shot accuracy",
    "R2": "ANIL is cheaper than MAML to train and to adapt",
    "R3": "Adapting only the top layers at test time barely changes a MAML-trained network's "
          "accuracy (feature reuse)",
    "R4": "The inner loop leaves the body's representations almost unchanged (CCA, CKA ≈ 1); "
          "only the head changes",
    "R5": "NIL — no head, queries classified by cosine similarity to the support features — is "
          "about as accurate as MAML and ANIL",
    # Agarwal — what the features look like
    "A1": "Filters, feature embeddings and units' preferred inputs show what a MAML-trained "
          "network learned, beside a supervised one",
}

COLUMNS = ["id", "claim", "paper", "measured", "verdict", "chapter"]


def _id_key(claim_id: str):
    """F2 before F10: letters, then the number."""
    m = re.fullmatch(r"([A-Za-z]*)(\d*)(.*)", claim_id)
    return (m.group(1), int(m.group(2)) if m.group(2) else -1, m.group(3))


def scorecard(profile: str, root=None) -> pd.DataFrame:
    """One row per claim (columns :data:`COLUMNS`): CLAIMS.md ids first, in their order, then
    the other recorded ids. ``chapter`` is the notebook's name ('' when not yet run)."""
    from .profiles import PROFILES

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    recorded = {}
    for r in results.load_all(profile, root=root):
        if r.verdict not in results.VERDICTS:
            raise ValueError(f"{r.claim} ({profile}): verdict {r.verdict!r} is not one of "
                             f"{results.VERDICTS}; re-run chapter {r.chapter}.")
        recorded[r.claim] = r
    ids = list(CLAIM_LINES) + sorted(set(recorded) - set(CLAIM_LINES), key=_id_key)
    rows = []
    for claim_id in ids:
        r = recorded.get(claim_id)
        line = CLAIM_LINES.get(claim_id) or (r.statement if r else "")
        if r is None:
            rows.append(dict(id=claim_id, claim=line, paper="—", measured="—", verdict=NOT_RUN,
                             chapter=""))
        else:
            rows.append(dict(id=claim_id, claim=line, paper=r.paper, measured=r.measured,
                             verdict=r.verdict, chapter=r.chapter))
    return pd.DataFrame(rows, columns=COLUMNS)


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
    lines = ["| id | claim | paper | measured (95% CI) | verdict | chapter |",
             "|---|---|---|---|---|---|"]
    titles = {}
    for row in table.itertuples(index=False):
        if row.chapter:
            if row.chapter not in titles:
                titles[row.chapter] = chapter_title(row.chapter, book_dir)
            link = f"[{_cell(titles[row.chapter])}]({row.chapter}{link_suffix})"
        else:
            link = "—"
        verdict = f"**{row.verdict}**" if row.verdict != NOT_RUN else f"*{NOT_RUN}*"
        lines.append(f"| {_cell(row.id)} | {_cell(row.claim)} | {_cell(row.paper)} | "
                     f"{_cell(row.measured)} | {verdict} | {link} |")
    return "\n".join(lines) + "\n"
