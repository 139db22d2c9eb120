"""What the studies recorded about a claim, read from their stored records for the claim's own.

Two studies run outside the book's budget and keep records under ``book/results/<profile>/``:
a second seed of the 20-way run (:mod:`mamlscope.studies.replicate`, ``replicas/seed<s>/``) and the
inner-loop claims under both recipes (:mod:`mamlscope.studies.recipe_claims`,
``studies/recipe_claims.json``). The studies write those records; this module only reads them,
so that :func:`mamlscope.verdict.claims.record` can attach them to a claim's record without importing
the studies (which sit above the verdicts).
"""
from __future__ import annotations

import json
from pathlib import Path

from mamlscope.verdict.results import results_root

#: The claims measured on the 20-way MAML run, which a replica re-measures.
REPLICATED = ("F2", "G1", "G3", "G4", "G5", "R1", "R3", "R4", "R5", "A1c")
REPLICA_SETTING = "omniglot_20w1s"

#: The claims about what the inner loop does, measured under both inner-loop recipes.
RECIPE_CLAIMS = ("G4", "G5", "R3", "R4", "R5")
#: label → (setting, inner loss, network); the first two of each setting are the two recipes
MODELS = {
    "5w mean, book": ("omniglot_5w1s", "mean", "book"),
    "5w Σℓ/K, finn": ("omniglot_5w1s", "sum/k", "finn"),
    "5w mean, finn": ("omniglot_5w1s", "mean", "finn"),
    "5w Σℓ/K, book": ("omniglot_5w1s", "sum/k", "book"),
    "20w mean, book": ("omniglot_20w1s", "mean", "book"),
    "20w Σℓ/K, finn": ("omniglot_20w1s", "sum/k", "finn"),
}
RECIPES = {("mean", "book"): "mean loss (the book's)", ("sum/k", "finn"): "Finn et al.'s Σℓ/K"}
NOT_JUDGED = "not judged"


# -- the replicas ------------------------------------------------------------------------------
def replica_root(profile: str, seed: int, root=None) -> Path:
    return results_root(root) / profile / "replicas" / f"seed{seed}"


def load_replicas(profile: str, root=None) -> dict[int, dict]:
    """seed → {claim id → the replica's record} for every recorded replica of ``profile``."""
    out = {}
    for d in sorted((results_root(root) / profile / "replicas").glob("seed*")):
        try:
            seed = int(d.name[4:])
        except ValueError:
            continue
        out[seed] = {p.stem: json.loads(p.read_text()) for p in sorted(d.glob("*.json"))
                     if p.stem in REPLICATED}
    return out


def replica_values(claim_id: str, profile: str, root=None) -> list[dict]:
    """The measured values of ``claim_id``'s recorded replicas (other seeds of its model), by seed."""
    if claim_id not in REPLICATED:
        return []
    return [recs[claim_id]["values"] for _, recs in sorted(load_replicas(profile, root).items()) if claim_id in recs]


def replication(claim_id: str, verdict: str, profile: str, root=None) -> dict:
    """What the recorded replicas of ``profile`` say about ``claim_id`` beside the book's
    ``verdict``: ``{"seed <s>": {"verdict", "measured"}, …, "agrees": bool}``; ``{}`` when the
    claim is not replicated or no replica was recorded."""
    if claim_id not in REPLICATED:
        return {}
    found = {s: recs[claim_id] for s, recs in load_replicas(profile, root).items() if claim_id in recs}
    if not found:
        return {}
    out = {f"seed {s}": {"verdict": r["verdict"], "measured": r["measured"]}
           for s, r in sorted(found.items())}
    out["agrees"] = all(r["verdict"] == verdict for r in found.values())
    return out


# -- the recipe study --------------------------------------------------------------------------
def recipe_record_path(profile: str, root=None) -> Path:
    return results_root(root) / profile / "studies" / "recipe_claims.json"


def load_recipe_record(profile: str, root=None) -> dict | None:
    path = recipe_record_path(profile, root)
    return json.loads(path.read_text()) if path.is_file() else None


def recipe_block(claim_id: str, profile: str, root=None) -> dict:
    """The ``recipe`` block of ``claim_id``'s record: per model of either recipe its verdict,
    measurement and accuracy; per setting whether the recipes' verdicts differ; and
    ``recipe_dependent`` (any setting). ``{}`` without a record or for another claim."""
    rec = load_recipe_record(profile, root)
    if claim_id not in RECIPE_CLAIMS or rec is None:
        return {}
    out, by_setting = {}, {}
    for label, m in rec["models"].items():
        c = m["claims"].get(claim_id)
        if c is None or m["recipe"] not in RECIPES.values():
            continue
        out[label] = {"recipe": m["recipe"], "run": m["run"], "verdict": c["verdict"],
                      "measured": c["measured"], "accuracy": m["accuracy"]["mean"]}
        if c["verdict"] != NOT_JUDGED:
            by_setting.setdefault(m["setting"], set()).add(c["verdict"])
    if not out:
        return {}
    differs = {s: len(v) > 1 for s, v in by_setting.items()}
    return {"models": out, "differs": differs, "recipe_dependent": any(differs.values()),
            "source": str(recipe_record_path(profile, root).relative_to(results_root(root)))}
