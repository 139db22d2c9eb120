"""A second seed of the 20-way MAML run, measured by the chapters' own code.

Ten claims are measured on the one 20-way MAML run of the ``cpu`` book (:data:`~mamlscope.verdict.attached.REPLICATED`): its
accuracy (F2), and what [G] and [R] say about it. A seed of that run costs about 33 min at one
thread, more than the book's budget can spend on each rerun, so the book has one seed, and this
study adds a second:

    python -m mamlscope replicate --profile cpu --seed 1

trains the run with ``seed`` (cached like every run), executes the chapters that measure those
claims (:func:`chapters`) with the parameter ``seed_20w=seed`` in a scratch results root (nothing
of the book's is touched), and keeps what they recorded as a *record* with provenance:
``book/results/<profile>/replicas/seed<seed>/`` holds the claims' records (the same JSON as the
book's, re-judgeable the same way) and ``replication.json`` (seed, run, commit, machine, threads,
date, minutes per chapter). The executed notebooks stay in the cache (``replicas/``).

When the book records one of those claims, :func:`claims.record <mamlscope.verdict.claims.record>`
attaches what the replica says (:func:`mamlscope.verdict.attached.replication`): its verdict, its measurement and whether the two
verdicts agree. A verdict that flips with the seed is a one-seed verdict, and the scorecard says so.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from mamlscope.core import meta
from mamlscope.paths import atomic_write, cache_root, project_root, provenance
from mamlscope.publish import notebooks
from mamlscope.publish.notebooks import kernel_environ
from mamlscope.training import profiles
from mamlscope.verdict.attached import REPLICA_SETTING, REPLICATED, load_replicas, replica_root
from mamlscope.verdict.claims import claim
from mamlscope.verdict.results import results_root


def chapters(claim_ids=REPLICATED) -> list[str]:
    """The chapters that measure ``claim_ids``, in book order (F2's first: the others depend on it)."""

    return sorted({claim(c).chapter for c in claim_ids})


def run(profile: str = "cpu", seed: int = 1, threads: int = 1, device: str = "cpu",
        only: list[str] | None = None) -> Path:
    """Train the seed, execute the chapters into a scratch root, keep the claims' records."""

    if seed == 0:
        raise ValueError("seed 0 is the book's own run; replicate another seed (e.g. --seed 1).")
    P = profiles.load(profile, **{f"{REPLICA_SETTING}__seed": seed})  # fails early on a bad profile
    pages = chapters() if not only else [c for c in chapters() if c in only]
    if only and len(pages) != len(only):
        raise ValueError(f"--chapters must be among {', '.join(chapters())}; got {', '.join(only)}.")
    root = project_root()
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    trained = meta.train(P.meta(REPLICA_SETTING), device=device)
    minutes = {"training": round((time.perf_counter() - t0) / 60, 1)}
    print(f"{trained.dir.name}: trained ({minutes['training']} min here; 0 when cached)", flush=True)
    out_nb = cache_root() / "replicas" / profile / f"seed{seed}"
    out_nb.mkdir(parents=True, exist_ok=True)
    # the chapters' records go to a results root of the replica's own, kept in the cache, so a
    # chapter that fails can be rerun alone (--chapters) without the others
    scratch = out_nb / "results"
    studies = results_root() / profile / "studies"
    if studies.is_dir():  # chapters show the recorded studies
        shutil.copytree(studies, scratch / profile / "studies", dirs_exist_ok=True)
    env = {**kernel_environ(threads), "MAMLSCOPE_RESULTS": str(scratch)}
    for page in pages:
        t = time.perf_counter()
        notebooks.execute(root, page, {"profile": profile, "device": device, "seed_20w": seed},
                          out_nb / f"{page}.ipynb", env=env)
        minutes[page] = round((time.perf_counter() - t) / 60, 1)
        print(f"{page}: executed in {minutes[page]} min", flush=True)
    dest = replica_root(profile, seed)
    dest.mkdir(parents=True, exist_ok=True)
    earlier = {}
    if (dest / "replication.json").is_file():
        earlier = json.loads((dest / "replication.json").read_text()).get("minutes", {})
    minutes = {**earlier, **minutes}
    for claim_id in REPLICATED:
        src = scratch / profile / f"{claim_id}.json"
        if src.is_file():
            text = src.read_text()
            atomic_write(dest / src.name, lambda p, text=text: p.write_text(text))
    record = {"seed": seed, "setting": REPLICA_SETTING, "run": trained.dir.name, "claims": list(REPLICATED),
              "chapters": chapters(), "minutes": minutes,
              "provenance": {"command": f"python -m mamlscope replicate --profile {profile} --seed {seed}",
                             **provenance(device), "threads": threads,
                             "torch": torch.__version__}}
    text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    atomic_write(dest / "replication.json", lambda p: p.write_text(text))
    return dest


def table(profile: str, root=None):
    """Per replicated claim: the book's verdict (seed 0) beside each replica's, and whether they
    agree (from the stored records)."""

    book = results_root(root) / profile
    rows = {}
    for seed, recs in load_replicas(profile, root).items():
        for claim_id in REPLICATED:
            mine = book / f"{claim_id}.json"
            if claim_id not in recs or not mine.is_file():
                continue
            v0, v1 = json.loads(mine.read_text())["verdict"], recs[claim_id]["verdict"]
            rows[claim_id] = {"seed 0 (the book)": v0, f"seed {seed}": v1,
                              "agree": "yes" if v0 == v1 else "no"}
    return pd.DataFrame(rows).T


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mamlscope replicate", description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--chapters", nargs="*", help="only these chapters (default: all of them)")
    ap.add_argument("--show", action="store_true", help="print the stored comparison and stop")
    args = ap.parse_args(argv)
    if not args.show:
        try:
            print(f"replica kept in {run(args.profile, args.seed, args.threads, args.device, args.chapters)}")
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    print(table(args.profile).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
