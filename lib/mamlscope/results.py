"""Claim records: what a chapter measured, what the paper reported, and the computed verdict.

Each chapter ends by calling :func:`record` once per claim. A record is a small JSON file
``<results root>/<profile>/<claim>.json`` (results root: ``$MAMLSCOPE_RESULTS``, else
``<project>/book/results``), so the scorecard page can gather every verdict of a profile
without re-running anything. A verdict is never typed in: chapters compute it with a rule that
they state in the text before computing it (e.g. :func:`verdict_from_checks`).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .paths import project_root

VERDICTS = ("reproduced", "partly", "not reproduced")


@dataclass(frozen=True)
class ClaimResult:
    claim: str          # id from CLAIMS.md, e.g. "G1"
    chapter: str        # notebook name, e.g. "01_maml_on_omniglot"
    profile: str
    statement: str      # the claim in one line
    measured: str       # what this book measured, as shown (with CI)
    paper: str          # what the paper reported
    verdict: str        # one of VERDICTS
    rule: str           # how the verdict was computed from the measurements
    values: dict = field(default_factory=dict)  # the raw numbers behind `measured`


def results_root(root=None) -> Path:
    if root is not None:
        return Path(root)
    env = os.environ.get("MAMLSCOPE_RESULTS")
    if env:
        return Path(env)
    proj = project_root()
    return proj / "book" / "results" if proj is not None else Path.cwd() / "results"


def verdict_from_checks(passed: int, total: int) -> str:
    """All checks pass → reproduced; some → partly; none → not reproduced."""
    if total < 1 or not 0 <= passed <= total:
        raise ValueError(f"passed={passed}, total={total}: need 0 <= passed <= total, total >= 1.")
    return VERDICTS[0] if passed == total else VERDICTS[1] if passed > 0 else VERDICTS[2]


def record(claim: str, *, chapter: str, profile: str, statement: str, measured: str, paper: str,
           verdict: str, rule: str, values: dict | None = None, root=None) -> ClaimResult:
    """Write one claim's result (overwriting the same claim's earlier result for this profile)."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict={verdict!r}; use one of {VERDICTS}.")
    result = ClaimResult(claim, chapter, profile, statement, measured, paper, verdict, rule,
                         _plain(values or {}))
    path = results_root(root) / profile / f"{claim}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(result), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return result


def load_all(profile: str, root=None) -> list[ClaimResult]:
    """Every recorded claim of ``profile``, sorted by claim id."""
    folder = results_root(root) / profile
    return [ClaimResult(**json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]


def _plain(values):
    """Numbers as plain floats/ints (numpy and torch scalars are not JSON)."""
    if isinstance(values, dict):
        return {str(k): _plain(v) for k, v in values.items()}
    if isinstance(values, (list, tuple)):
        return [_plain(v) for v in values]
    if hasattr(values, "item"):
        return values.item()
    return values


def verdict_table(records: list[ClaimResult]):
    """The table that ends a chapter: one row per claim (index), measured, paper, verdict."""
    import pandas as pd

    return pd.DataFrame([{"claim": r.claim, "measured": r.measured, "paper": r.paper, "verdict": r.verdict}
                         for r in records]).set_index("claim")
