"""The verdicts the budget may decide, judged at every shipped checkpoint of the long run.

Six claims (:data:`CLAIMS`: F2, G4, R3, R4, R5, A1c) are those whose verdict the training budget
may decide. The long run's checkpoints (every
:data:`~mamlscope.training.profiles.LONG_EVERY` steps) let each be judged as the model trains:

    python -m mamlscope budget --steps 5000 10000     # default: every step the three runs reached

forks the long run (MAML, ANIL seeds 0 and 1) at each step (``regime fork``: copies, no
training), executes the chapters that measure those claims at the profile ``long@STEP`` in a
scratch results root (nothing of the book's is touched) and keeps their records, judged by the
same rules, in ``book/results/long/budget/step<STEP>/`` with ``budget.json`` (steps, commit,
machine, threads, minutes per chapter). :func:`table` reads them back: where, if anywhere, each
verdict settles. A model that is still rising is *inconclusive* by the protocol's convergence
precondition, so early steps say so rather than giving a verdict.
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

from mamlscope.core import runs
from mamlscope.paths import atomic_write, cache_root, project_root, provenance
from mamlscope.publish import notebooks
from mamlscope.publish import scorecard
from mamlscope.publish.notebooks import kernel_environ
from mamlscope.studies import regime
from mamlscope.training import plan, profiles
from mamlscope.verdict import claims
from mamlscope.verdict.claims import claim
from mamlscope.verdict.results import ClaimResult, results_root

CLAIMS = ("F2", "G4", "R3", "R4", "R5", "A1c")


def chapters(claim_ids=CLAIMS) -> list[str]:
    """The chapters that measure ``claim_ids``, in book order."""
    return sorted({claim(c).chapter for c in claim_ids})


def budget_root(root=None) -> Path:
    return results_root(root) / "long" / "budget"


def reached(shape: str = profiles.LONG_SHAPE, root=None) -> list[int]:
    """The multiples of ``LONG_EVERY`` (and the chosen length) at which every long-run variant
    (MAML, ANIL seeds 0 and 1) has every checkpoint a fork there needs."""
    every, ok = profiles.LONG_EVERY, None
    for algorithm, seed in regime.VARIANTS:
        run = runs.Run(regime.config(shape, algorithm, seed), root)
        have = set(run.checkpoint_steps())
        mine = {s for s in have if s and (s % every == 0 or s == (profiles.LONG_RUN or {}).get("steps"))
                and set(regime.kept_steps(s, run.config.log_checkpoints)) <= have}
        ok = mine if ok is None else ok & mine
    return sorted(ok)


def run(steps=None, shape: str = profiles.LONG_SHAPE, threads: int = 1, only=None) -> Path:
    """Fork the long run at each of ``steps`` (default :func:`reached`), execute the chapters
    (``only``: some of them) at ``long@STEP``, keep the claims' records."""
    steps = list(steps or reached(shape))
    pages = chapters() if not only else [c for c in chapters() if c in only]
    if only and len(pages) != len(only):
        raise ValueError(f"--chapters must be among {', '.join(chapters())}; got {', '.join(only)}.")
    bad = [s for s in steps if s not in reached(shape)]
    if bad:
        raise ValueError(f"steps {bad}: not every long-run variant has the checkpoints a fork there needs "
                         f"(reached: {reached(shape)}); train them on (python -m mamlscope regime train …).")
    torch.set_num_threads(threads)
    root, dest = project_root(), budget_root()
    record_path = dest / "budget.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {"claims": list(CLAIMS), "steps": {}}
    for step in steps:
        for algorithm, seed in regime.VARIANTS:
            regime.fork(shape, step, algorithm=algorithm, seed=seed)
        profile = f"long@{step}"
        untrained = sorted({runs.Run(c).dir.name for page in pages
                            for c in plan.chapter_runs(profiles.load(profile), page) if not runs.Run(c).finished})
        if untrained:  # the study reads checkpoints; it never trains (a missing run would take hours)
            raise ValueError(f"step {step:,}: the chapters would train {', '.join(untrained)}; train the cpu "
                             "profile's runs first (python -m mamlscope runs train --profile cpu).")
        out_nb = cache_root() / "budget" / profile
        scratch = out_nb / "results"
        out_nb.mkdir(parents=True, exist_ok=True)
        env = {**kernel_environ(threads), "MAMLSCOPE_RESULTS": str(scratch)}
        minutes = {}
        for page in pages:
            t = time.perf_counter()
            notebooks.execute(root, page, {"profile": profile, "device": "cpu"}, out_nb / f"{page}.ipynb", env=env)
            minutes[page] = round((time.perf_counter() - t) / 60, 1)
            print(f"step {step:,}: {page} executed in {minutes[page]} min", flush=True)
        kept = dest / f"step{step:06d}"
        kept.mkdir(parents=True, exist_ok=True)
        for claim_id in CLAIMS:
            src = scratch / profile / f"{claim_id}.json"
            if src.is_file():
                shutil.copyfile(src, kept / src.name)
        earlier = record["steps"].get(str(step), {}).get("minutes", {})
        record["steps"][str(step)] = {"minutes": {**earlier, **minutes}, **provenance("cpu"), "threads": threads,
                                      "torch": torch.__version__,
                                      "command": f"python -m mamlscope budget --steps {step}"}
        text = json.dumps(record, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        atomic_write(record_path, lambda p, text=text: p.write_text(text))
    return dest


def table(root=None, rule_alone: bool = False) -> pd.DataFrame:
    """Claim × step: the verdict each stored record gives, with what it means (the scorecard's
    outcome: "holds", "not reached at this budget", …); with ``rule_alone``, what the claim's rule
    gives on the record's values without the regime preconditions (a model still rising, another
    inner loop, setting), as the recipe study reports it: how the measurement itself moves."""
    cells = {}
    for d in sorted(budget_root(root).glob("step*")):
        step = int(d.name[4:])
        for claim_id in CLAIMS:
            path = d / f"{claim_id}.json"
            if path.is_file():
                r = ClaimResult(**json.loads(path.read_text()))
                if rule_alone:
                    alone = claims.judge(r.claim, r.values, r.profile, r.null_values or None, r.seeds or None)
                    cells.setdefault(claim_id, {})[step] = alone.verdict
                else:
                    cells.setdefault(claim_id, {})[step] = f"{r.verdict} ({scorecard.outcome(r)})"
    frame = pd.DataFrame(cells).T.reindex([c for c in CLAIMS if c in cells])
    frame.columns.name = "meta-training step"
    return frame


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mamlscope budget", description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, nargs="*", help="default: every step the long run's variants reached")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--chapters", nargs="*", help="only these chapters (default: " + ", ".join(chapters()) + ")")
    ap.add_argument("--show", action="store_true", help="print the stored verdicts and stop")
    args = ap.parse_args(argv)
    if not args.show:
        try:
            print(f"records kept in {run(args.steps, threads=args.threads, only=args.chapters)}")
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    print(table().to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
