"""Train the candidate inner-loop recipes of the cpu profile at equal budget, one run per process.

    python tools/recipe_study.py 20w-mean 20w-finn          # train (resumable: runs are cached)
    python tools/recipe_study.py --report                   # their accuracy over the fixed tasks

The candidates differ only in the recipe (inner-loss reduction, network variant), never in the
scale: the same profile configuration otherwise. Each run trains through :func:`mamlscope.meta.train`
into the shared run cache, so the book later reuses whichever one the profile adopts.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from mamlscope import evaluate, meta, profiles, runs

BASE = profiles.load("cpu")
CANDIDATES = {
    # 20-way 1-shot with the paper's 5 inner steps in training ([F] App. A.1, [G] §4)
    "20w-mean": dataclasses.replace(BASE.omniglot_20w1s, inner_steps=5),
    "20w-finn": dataclasses.replace(BASE.omniglot_20w1s, inner_steps=5, inner_reduction="sum/k", network="finn"),
    # 5-way 1-shot as the cpu profile trains it, with Finn's recipe
    "5w-mean": BASE.omniglot_5w1s,
    "5w-finn": dataclasses.replace(BASE.omniglot_5w1s, inner_reduction="sum/k", network="finn"),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tools/recipe_study.py", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"candidates to train: {list(CANDIDATES)}")
    parser.add_argument("--report", action="store_true", help="print the accuracy of every trained candidate")
    parser.add_argument("--tasks", type=int, default=600)
    args = parser.parse_args(argv)
    for name in args.names:
        start = time.perf_counter()
        run = meta.train(CANDIDATES[name])
        print(f"{name}: {run.dir.name} trained in {time.perf_counter() - start:.0f} s", flush=True)
    if args.report:
        for name, cfg in CANDIDATES.items():
            if not (runs.run_dir(cfg) / "final.json").is_file():
                print(f"{name:9s} not trained yet (python tools/recipe_study.py {name})")
                continue
            run = runs.Run(cfg)
            score = evaluate.run_score(run, args.tasks)
            print(f"{name:9s} {run.dir.name}: {score} over {score.n} tasks", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
