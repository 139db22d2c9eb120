"""The scorecard: one row per claim, built from the claim records the chapters wrote.

Nothing here is measured or judged: :func:`scorecard` reads the records of a profile
(:func:`mamlscope.verdict.results.load_all`, files ``<results root>/<profile>/<claim>.json``) and lists
every claim of the registry (:data:`mamlscope.verdict.claims.CLAIMS`, in its order), recorded or not — a
claim that no chapter recorded yet says ``not yet run`` — then any other id a record carries.

:func:`markdown_table` renders it with a link to each claim's chapter; ``book/scorecard.ipynb``
displays it.
"""
from __future__ import annotations

import dataclasses
import math
import re

import pandas as pd

from mamlscope.publish.notebooks import chapter_title
from mamlscope.training.profiles import PROFILES, known
from mamlscope.verdict import claims, results

NOT_RUN = "not yet run"

COLUMNS = ["id", "claim", "paper", "measured", "verdict", "chapter", "note", "control", "null_verdict",
           "seeds", "precondition", "recipe", "outcome", "regime", "power", "headline", "paper_short",
           "meaning"]


def _pc(x: float) -> str:
    return f"{100 * x:.1f}%"


def _pt(x: float) -> str:
    return f"{100 * x:+.1f} pts".replace("-", "−")


def _worst(d: dict, key=min) -> str:
    k = key(d, key=d.get)
    return f"{k} {d[k]:.2f}"


#: The first screen's "measured" and "paper" columns: per claim, its headline value in a few words
#: (from the record's values) and the paper's. The full measurement is in the claim's details.
HEADLINES: dict[str, tuple] = {
    "F1": (lambda v: _pc(v["mean"]), "98.7%"),
    "F2": (lambda v: _pc(v["mean"]), "95.8%"),
    "G1": (lambda v: f"ρ(depth, d) ≥ {math.floor(100 * min(v['rho'])) / 100:.2f} at {len(v['rho'])} checkpoints",
           "rises with depth"),
    "G2": (lambda v: f"ρ RSA {v['rsa_rho']:+.2f}, CKA {v['cka_rho']:+.2f}", "RSA rises, CKA falls"),
    "G3": (lambda v: f"plateau conv1 {v['plateau_first']:.3f}, {v['last_layer']} {v['plateau_last']:.2f}",
           "≈ 0 early, ≈ 0.1 late"),
    "G4": (lambda v: "inner/meta, lowest: " + _worst(v["ratio_1"]), "> 1 in every layer"),
    "G5": (lambda v: "steps 2–10 / step 1, highest: " + _worst(v["later_share"], max), "small"),
    "L1": (lambda v: "curvature peaks at step " + ", ".join(f"{x} ({k})" for k, x in v["curvature_peak_step"].items()),
           "rises, then falls"),
    "L2": (lambda v: "ρ after the peak " + ", ".join(f"{k} {x:+.2f}" for k, x in v["rho_after"].items()),
           "tracks accuracy"),
    "L3": (lambda v: "ρ after the peak " + ", ".join(f"{x:+.2f}" for x in v["rho_after"].values()),
           "tracks accuracy"),
    "L4": (lambda v: "ρ after the peak " + ", ".join(f"{x:+.2f}" for x in v["rho_after"].values()), "tracks −MSE"),
    "L5": (lambda v: "ρ after the peak " + ", ".join(f"{x:+.2f}" for x in v["rho_after"].values()),
           "tracks accuracy"),
    "L6": (lambda v: _pt(v["diff"]), "+1.33 pts"),
    "R1": (lambda v: "ANIL − MAML " + ", ".join(_pt(x) for x in v["diff"].values()), "+2.5 pts (20w1s)"),
    "R2": (lambda v: f"{v['train']:.1f}× train, {v['adapt']:.1f}× adapt", "1.7×, 4.1×"),
    "R3": (lambda v: "head only " + _pt(v["head_only_diff"]), "−0.6 pts"),
    "R4": (lambda v: "body CKA, lowest: " + _worst(v["body_cka"]), "≈ 1 (CCA > 0.9)"),
    "R5": (lambda v: "NIL − head " + ", ".join(f"{k} {_pt(x)}" for k, x in v["nil_diff"].items()), "+0.5 pts (ANIL)"),
    "A1": (lambda v: f"5-NN {_pc(v['sup_knn'])} (raw pixels {_pc(v['raw_knn'])})", "clusters by label"),
    "A1a": (lambda v: _pc(v["mean"]), "96.71%"),
    "A1b": (lambda v: "MAML − supervised " + _pt(v["diff"]), "not measured"),
    "A1c": (lambda v: "MAML − supervised " + _pt(v["diff"]), "not measured"),
    "A1d": (lambda v: f"Hv error {v['f64_best']:.0e} (float64)", "proposed"),
}


def headline(claim_id: str, values) -> tuple[str, str]:
    """(measured, paper) in a few words for the first screen; ("—", "—") without a headline."""
    if claim_id not in HEADLINES:
        return "—", "—"
    fn, paper = HEADLINES[claim_id]
    try:
        return re.sub(r"(?<![\w.])-(?=\d)", "−", fn(values)), paper
    except (KeyError, TypeError, ValueError):  # a record of an older shape: its details still say it all
        return "—", paper


def _id_key(claim_id: str):
    """F2 before F10: letters, then the number."""
    m = re.fullmatch(r"([A-Za-z]*)(\d*)(.*)", claim_id)
    return (m.group(1), int(m.group(2)) if m.group(2) else -1, m.group(3))


def scorecard(profile: str, root=None) -> pd.DataFrame:
    """One row per claim (columns :data:`COLUMNS`): the registry's ids, in its order, then any
    other recorded id. ``chapter`` is the notebook's name ('' when not yet run)."""

    if not known(profile):
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}, long@STEPS")
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
                             precondition="", recipe="", outcome="", regime="", power="", meaning="",
                             headline="—", paper_short=HEADLINES.get(claim_id, (None, "—"))[1]))
        else:
            rows.append(dict(id=claim_id, claim=line, paper=r.paper, measured=r.measured,
                             verdict=r.verdict, chapter=r.chapter, note=note(claim_id),
                             control=r.control, null_verdict=r.null_verdict,
                             seeds=claims.seeds_text(r.seeds, r.replication), precondition=r.precondition,
                             recipe=recipe_text(r.recipe), outcome=outcome(r), regime=regime_text(r.regime),
                             power=power_text(r.power), meaning=meaning(r),
                             **dict(zip(("headline", "paper_short"),
                                                                  headline(claim_id, r.values)))))
    return pd.DataFrame(rows, columns=COLUMNS)


def outcome(r) -> str:
    """The kind of outcome in words (CLAIMS.md, vocabulary): what the verdict means, from the
    verdict, its qualifiers and (for *inconclusive*) its recorded reasons."""
    more = [q for q, shown in (("exceeds the paper", "exceeds the paper" in r.qualifiers),
                               ("not specific", any(q.startswith("not specific") for q in r.qualifiers)),
                               ("setting-dependent", any(q.startswith("setting-dependent") for q in r.qualifiers)),
                               ("trivial control", "a trivial control:" in (r.rule or "")))
            if shown]
    if r.verdict == "reproduced":
        return ", ".join(["holds", *more])
    if r.verdict == "partly":
        return ", ".join(["holds in part", *more])
    if r.verdict == "not reproduced":
        return ", ".join(["contradicted", *more])
    reasons = list(r.reasons)
    if "not converged" in reasons:
        return "not reached at this budget"
    if "outside setting" in reasons:  # what the rule gives in the book's setting
        said = [q.rsplit(": ", 1)[1] for q in r.qualifiers if q.startswith("in the book's setting the rule gives")]
        inside = dataclasses.replace(r, verdict=(said or ["inconclusive"])[0],
                                     reasons=[k for k in reasons if k != "outside setting"],
                                     qualifiers=[q for q in r.qualifiers if not q.startswith("in the book's setting")])
        return f"outside the paper's setting; in the book's: {outcome(inside)}"
    if "underpowered" in reasons:
        return "underpowered"
    if "control not rejected" in reasons:
        return "cannot tell from its control"
    if "inner loop" in reasons:
        return "not the paper's inner loop"
    return "a precondition fails"


def _least_power(power: dict) -> dict | None:
    sized = [p for p in (power or {}).values() if p.get("power") is not None]
    return min(sized, key=lambda p: p["power"]) if sized else None


def meaning(r) -> str:
    """What decided the verdict, in one short line read from the record: the first reason an
    *inconclusive* is one, or for a judged claim the rule's power to see the paper's effect."""
    reasons, regime = list(r.reasons), r.regime or {}
    conv = regime.get("converged") or {}
    if "outside setting" in reasons and r.claim in claims.CLAIMS:
        return "the paper's setting differs: " + claims.setting_departures(claims.CLAIMS[r.claim], regime)
    if "not converged" in reasons and conv:
        acc = f" ({100 * conv['last']:.1f}%)" if conv.get("last") is not None else ""
        return (f"its model{acc} was still rising at step {conv['steps']:,}"
                + (f" of {conv['paper_steps']:,}" if conv.get("paper_steps") else "")
                + f" ({100 * conv['rise']:+.1f} points over steps {conv['window'][0]:,}–{conv['window'][1]:,})")
    if "inner loop" in reasons:
        return claims.inner_loop_reason(regime).split(": ", 1)[-1].split(" (")[0] + ", not the paper's inner loop"
    if "underpowered" in reasons:
        p = _least_power(r.power)
        if p is not None:
            return f"the paper's effect would pass only {100 * p['power']:.0f}% of the time at this sample"
        return "the failing check's interval still reaches values it would accept"
    if "control not rejected" in reasons:
        return "the rule passes its negative control too"
    if reasons:
        failing = [part.split(": FAILS")[0] for part in (r.precondition or "").split("; ") if part.endswith("FAILS")]
        return (failing[0] + " fails") if failing else "a precondition of the rule fails"
    p = _least_power(r.power)
    if r.verdict == "not reproduced":
        if any(v.get("excluded") for v in (r.power or {}).values()):
            return "the whole interval of a decisive check fails it"
        return f"power {100 * p['power']:.0f}% to see the paper's effect, and a decisive check failed" if p else ""
    return f"power {100 * p['power']:.0f}% to see the paper's effect (the least over its checks)" if p else \
        "every decisive check passes; the paper gives no size to test power against"


def regime_text(regime: dict) -> str:
    """The departures from the paper's setting, and whether the model had converged."""
    if not regime:
        return ""
    parts = list(regime.get("departures", [])) or ["the paper's setting"]
    conv = regime.get("converged")
    if conv:
        parts.append(f"learning curve {'levelled off' if conv['levelled'] else 'still rising'}: "
                     f"{100 * conv['rise']:+.1f} [{100 * conv['rise_lo']:+.1f}, {100 * conv['rise_hi']:+.1f}] "
                     f"points over steps {conv['window'][0]:,}–{conv['window'][1]:,}")
    return "; ".join(parts)


def power_text(power: dict) -> str:
    """Each decisive check's power to see the paper's effect (the least over its elements), or
    where the paper gives no size, the smallest true value it sees 80% of the time."""
    groups: dict[str, list] = {}
    for name, p in (power or {}).items():
        check = name.rsplit(" [", 1)[0] if name.endswith("]") and " [" in name else name
        groups.setdefault(check, []).append((name, p))
    groups = {(check if len(named) > 1 else named[0][0]): [p for _, p in named] for check, named in groups.items()}

    def one(check, ps):
        each = f", least of {len(ps)}" if len(ps) > 1 else ""
        p = _least_power({i: q for i, q in enumerate(ps)})
        if p is None:
            seen = sorted(q["detectable"] for q in ps)
            span = f"{seen[0]:.3g}" if len(seen) == 1 or f"{seen[0]:.3g}" == f"{seen[-1]:.3g}" \
                else f"{seen[0]:.3g} to {seen[-1]:.3g}"
            return f"{check}: no size in the paper; it sees a true value of {span} or beyond 80% of the time"
        if "needed_text" in p:
            sample = p["needed_text"] + " would reach 80%" if p["power"] < 0.8 else "simulated"
        else:
            sample = " and ".join(filter(None, [f"{p['n']:,} {p['unit']}" if p.get("unit") else "",
                                                f"{p['runs']} runs" if p.get("runs") else ""]))
        return f"{check}: {100 * p['power']:.0f}%{each} ({sample + '; ' if sample else ''}the effect: {p['effect_text']})"

    return "; ".join(one(check, ps) for check, ps in groups.items())


def recipe_text(recipe: dict) -> str:
    """"recipe-dependent: …" with each recipe's verdict per setting when the recipe study
    (:func:`mamlscope.verdict.attached.recipe_block`) found the verdict to differ; "" otherwise."""
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


# --------------------------------------------------------------------------------------------
# The front page: tallies per paper, one compact table per paper, details below
# --------------------------------------------------------------------------------------------
PAPERS = {  # id prefix → (paper, bibliography key); the base protocol (F) first
    "F": ("Finn et al. (2017), the base protocol", "finn2017maml"),
    "G": ("Goerttler & Obermayer (2021)", "goerttler2021similarity"),
    "R": ("Raghu et al. (2020)", "raghu2020anil"),
    "L": ("Guiroy et al. (2019)", "guiroy2019landscapes"),
    "A": ("Agarwal (2019)", "agarwal2019investigating"),
}
BADGES = {"reproduced": "bdg-success", "partly": "bdg-warning", "not reproduced": "bdg-danger",
          "inconclusive": "bdg-info", NOT_RUN: "bdg-light"}


def paper_of(claim_id: str) -> str:
    return next((k for k in PAPERS if claim_id.startswith(k)), "")


def badge(verdict: str) -> str:
    return f"{{{BADGES.get(verdict, 'bdg-light')}}}`{verdict}`"


def tallies(table: pd.DataFrame) -> pd.DataFrame:
    """Per paper (rows, :data:`PAPERS` order): how many claims and how many of each verdict."""
    rows = {}
    for key, (name, _) in PAPERS.items():
        sub = table[table["id"].map(paper_of) == key]
        if len(sub):
            rows[name] = {"claims": len(sub), **counts(sub)}
    out = pd.DataFrame(rows).T
    return out.loc[:, (out != 0).any(axis=0)]


def tallies_markdown(table: pd.DataFrame) -> str:
    """Markdown: per paper, how many claims and a badge per verdict with its count (three
    columns, so it reads on a phone)."""
    t = tallies(table)
    lines = ["| paper | claims | verdicts |", "|---|---|---|"]
    for name, row in t.iterrows():
        cells = " ".join(f"{{{BADGES[v]}}}`{int(row[v])} {v}`" for v in t.columns[1:] if row[v])
        lines.append(f"| {name} | {int(row['claims'])} | {cells} |")
    return "\n".join(lines) + "\n"


def beside(table: pd.DataFrame, other: pd.DataFrame | None) -> pd.DataFrame:
    """``table`` with the verdicts of another profile's scorecard ``other`` (e.g. ``long`` beside
    ``cpu``): columns ``other_verdict`` and ``other_outcome``, and ``budget_dependent`` where both
    judged the claim and their verdicts differ."""
    t = table.copy()
    got = {} if other is None else {r.id: r for r in other.itertuples(index=False) if r.verdict != NOT_RUN}
    t["other_verdict"] = [got[i].verdict if i in got else "" for i in t["id"]]
    t["other_outcome"] = [got[i].outcome if i in got else "" for i in t["id"]]
    t["budget_dependent"] = [bool(ov) and v != NOT_RUN and ov != v for v, ov in zip(t["verdict"], t["other_verdict"])]
    return t


def beside_profile(table: pd.DataFrame, other: str, root=None) -> pd.DataFrame:
    """:func:`beside` with the records of profile ``other`` (none recorded yet: empty columns)."""
    recorded = other in PROFILES and bool(results.load_all(other, root=root))
    return beside(table, scorecard(other, root) if recorded else None)


def _qualifiers(verdict: str, outcome) -> list[str]:
    """What qualifies a verdict, in the scorecard's words: the outcome's terms but those the
    verdict already says ("holds" beside *reproduced*); the whole outcome for *inconclusive*."""
    outcome = outcome if isinstance(outcome, str) else ""
    if verdict in ("reproduced", "partly", "not reproduced"):
        return [t for t in outcome.split(", ") if t and t not in ("holds", "holds in part", "contradicted")]
    return [outcome] if verdict == "inconclusive" and outcome else []


def _short_status(row) -> str:
    """The verdict badge and, in a few words, what qualifies it."""
    extra = _qualifiers(row.verdict, row.outcome)
    if row.recipe and "setting-dependent" not in extra:
        extra.append("recipe-dependent")
    if "a different verdict" in (row.seeds or ""):
        extra.append("another seed disagrees")
    if getattr(row, "budget_dependent", False):
        extra.append("budget-dependent")
    return badge(row.verdict) + (f" ({'; '.join(extra)})" if extra else "")


def chapter_summary(chapter: str, profile: str, root=None) -> str:
    """Markdown for a chapter's summary box: its claims' recorded verdicts as badges (with what
    qualifies them, as on the front page), one line each, and a tally. Read from the records, so
    a chapter that calls it after judging shows what it has just recorded."""
    table = scorecard(profile, root)
    sub = table[table["chapter"] == chapter]
    if not len(sub):
        return f"No claim of this chapter is recorded at profile `{profile}` yet."
    lines = [f"- **{row.id}** {_short_status(row)} {_cell(row.claim)}" for row in sub.itertuples(index=False)]
    tally = ", ".join(f"{n} {v}" for v, n in counts(sub).items() if n)
    return "\n".join(lines) + f"\n\n{len(sub)} claim{'s' if len(sub) != 1 else ''} at profile `{profile}`: {tally}.\n"


def claim_anchor(claim_id: str) -> str:
    """The label of a claim's verdict section in its chapter (``(claim-r1)=`` in the chapter's source)."""
    return f"claim-{claim_id.lower()}"


def claim_link(row) -> str:
    """A claim's id, linked to its chapter's verdict section when it has been judged."""
    return f"{{ref}}`{row.id} <{claim_anchor(row.id)}>`" if row.chapter else row.id


def front_page(table: pd.DataFrame, *, book_dir=None, link_suffix: str = ".ipynb",
               other: str = "") -> str:
    """Markdown: the tallies, then one short table per paper (id, claim, verdict, chapter), with
    a † footnote for claims measured on a model that fails its own accuracy claim. ``other``:
    the name of the profile whose verdicts :func:`beside` added, shown in a column of their own
    when it judged any claim."""
    notes = {}
    second = bool(other) and "other_verdict" in table and bool((table["other_verdict"] != "").any())
    parts = [tallies_markdown(table)]
    for key, (name, cite) in PAPERS.items():
        sub = table[table["id"].map(paper_of) == key]
        if not len(sub):
            continue
        parts.append(f"### {name} {{cite:p}}`{cite}`\n")
        extra_head = f" at `{other}` |" if second else ""
        lines = [f"| id | claim | measured | paper | verdict | what decided it |{extra_head} chapter |",
                 "|---|---|---|---|---|---|---|" + ("---|" if second else "")]
        for row in sub.itertuples(index=False):
            mark = ""
            if row.note:
                mark = notes.setdefault(row.note, "†" * (len(notes) + 1))
            if row.chapter:
                number = row.chapter.split("_")[0]
                label = f"ch. {int(number)}" if number.isdigit() else _cell(row.chapter)
                link = f"[{label}]({row.chapter}{link_suffix})"
            else:
                link = "—"
            shown = [v if isinstance(v, str) and v else "—" for v in (row.headline, row.paper_short)]
            why = row.meaning if isinstance(row.meaning, str) and row.meaning else "—"
            also = ""
            if second:
                said = _qualifiers(row.other_verdict, row.other_outcome)
                also = (f" {badge(row.other_verdict)}" + (f" ({_cell('; '.join(said))})" if said else "")
                        if row.other_verdict else " —") + " |"
            lines.append(f"| {claim_link(row)} | {_cell(row.claim)}{mark} | {_cell(shown[0])} | {_cell(shown[1])} "
                         f"| {_short_status(row)} | {_cell(why)} |{also} {link} |")
        parts.append("\n".join(lines) + "\n")
    for note, mark in notes.items():
        parts.append(f"{mark} {_cell(note[:1].upper() + note[1:])}.\n")
    return "\n".join(parts)


def details(table: pd.DataFrame) -> str:
    """Markdown: one closed dropdown per judged claim with everything its record says."""
    out = []
    for row in table.itertuples(index=False):
        if row.verdict == NOT_RUN:
            continue
        items = [("measured", row.measured), ("paper", row.paper),
                 ("the rule on its control", control_text(row)), ("seeds", row.seeds or "—")]
        if row.precondition:
            items.append(("precondition", row.precondition))
        if row.recipe:
            items.append(("recipe", row.recipe))
        if row.regime:
            items.append(("regime (this book against the paper)", row.regime))
        if row.power:
            items.append(("power", row.power))
        body = "\n".join(f"- **{k}**: {_cell(v)}" for k, v in items)
        out.append(f":::{{dropdown}} {row.id}: {row.verdict}{f' ({row.outcome})' if row.outcome else ''}\n{body}\n:::\n")
    return "\n".join(out)
