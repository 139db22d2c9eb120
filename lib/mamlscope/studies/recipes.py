"""The inner-loop recipe study: which inner loss a profile trains with, and what it changes.

Finn et al.'s released recipe (inner loss Σᵢℓᵢ/K on their Omniglot network, :mod:`mamlscope.core.inner`
and :class:`mamlscope.core.models.Conv4`) is compared with the mean loss on the book's network, at the
profile's scale and nothing else changed. The rule, fixed before measuring: **keep Finn et al.'s
recipe unless its accuracy over the fixed test tasks is more than** :data:`TOLERANCE` **below the
mean loss's** (:func:`choice`). The choice is made on the same fixed test tasks that F1 and F2
are judged on: the book's runs meta-train on all 1,200 training characters, so there is no
held-out validation split of them as in Finn et al.'s code (which trains on 1,100), and choosing
on one would mean retraining every candidate. :func:`selection_gaps` shows how far apart the
candidates were, against the noise of their difference.

Each candidate is an ordinary cached run (:func:`mamlscope.core.meta.train`). The measurements of a
candidate (:func:`measure`) are its accuracy and, at 20-way (5 inner steps), what claims G4 and G5
read: the one-step inner-vs-meta ratios of the early layers and the first step's share of the
inner loop's change, plus how much of the support loss one step leaves.

Training the other recipe doubles the cost of the 20-way model (≈ 23 min at 2 threads at the
``cpu`` scale), more than the book's budget can spend on a design check. So the study is run once
by ``python -m mamlscope recipes --profile cpu --train --record`` and kept as a *record*,
``book/results/<profile>/studies/recipe.json`` (numbers, run hashes, commit, date). Chapters show
the record with its provenance; a profile with ``compare_recipes`` (``smoke``) trains and
measures the other recipe in the chapter itself, so the code path is regression-tested.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import pandas as pd
import torch

from mamlscope import paths
from mamlscope.core import evaluate, meta, runs
from mamlscope.measure import representations as R
from mamlscope.publish.report import training_seconds
from mamlscope.training import profiles
from mamlscope.verdict.results import plain, results_root

TOLERANCE = 0.02          # accuracy (fraction) by which Finn et al.'s recipe may trail the mean loss
RECIPES = {"mean": ("mean", "book"), "finn": ("sum/k", "finn")}  # name → (inner_reduction, network)
SETTINGS = {"5w": "omniglot_5w1s", "20w": "omniglot_20w1s"}
N_TASKS, EVAL_TASK = 4, 4  # [G] Fig 3: 4 adapted tasks, one held-out evaluation task (chapter 3's defaults)


def candidates(profile: profiles.Profile) -> dict[str, meta.MetaConfig]:
    """``"<setting>-<recipe>"`` → the profile's configuration of that setting with that recipe."""
    return {f"{s}-{r}": dataclasses.replace(profile.meta(setting), inner_reduction=red, network=net)
            for s, setting in SETTINGS.items() for r, (red, net) in RECIPES.items()}


def recipe_name(cfg: meta.MetaConfig) -> str:
    return next(r for r, rn in RECIPES.items() if rn == (cfg.inner_reduction, cfg.network))


def evaluation_inputs(cfg: meta.MetaConfig, n_tasks: int = N_TASKS, eval_task: int = EVAL_TASK, device="cpu"):
    """The first ``n_tasks`` fixed test tasks (to adapt on) and the images of held-out task
    ``eval_task`` (support and query: the inputs every representation is computed on)."""
    if not 0 < n_tasks <= eval_task:
        raise ValueError(f"n_tasks={n_tasks}, eval_task={eval_task}: the evaluation task must not be one of "
                         f"the {n_tasks} adapted tasks; use eval_task >= n_tasks >= 1.")
    test = cfg.test_tasks(eval_task + 1).to(device)
    ev = test[eval_task]
    return test[:n_tasks], torch.cat([ev.x_support, ev.x_query])


def row(run, n_test_tasks: int, ivm=None, loss=None, device="cpu", early: int = 3) -> dict:
    """The measurements of one candidate as plain numbers: accuracy over ``n_test_tasks`` fixed
    tasks, and — given the run's :class:`~mamlscope.measure.representations.InnerVsMeta` ``ivm`` and the
    support-loss path ``loss`` — G4's one-step ratios (with intervals) of the ``early`` layers,
    G5's range over layers and the share of the support loss one step leaves."""
    cfg = run.config
    score = evaluate.run_score(run, n_test_tasks, device=device)
    out = {"run": run.dir.name, "recipe": recipe_name(cfg), "inner loss": cfg.inner_reduction,
           "network": cfg.network, "α": cfg.inner_lr, "accuracy": score.values()}
    if ivm is not None:
        change = ivm.change()
        out["G4 ratio_1"] = {l: [change.loc[l, "ratio_1"], change.loc[l, "ratio_1 lo"], change.loc[l, "ratio_1 hi"]]
                             for l in ivm.layers[:early]}
        out["G5 d(0→1)/d(0→10)"] = [change["d(0→1)/d(0→10)"].min(), change["d(0→1)/d(0→10)"].max()]
        out["support loss after 1 step"] = loss[1] / loss[0]
    return plain(out)


def measure(run, n_test_tasks: int, device="cpu") -> dict:
    """:func:`row` with G4/G5 measured as chapter 3 measures them (20-way runs), or accuracy only."""

    cfg = run.config
    if cfg.inner_steps < 5:
        return row(run, n_test_tasks, device=device)
    tasks, eval_x = evaluation_inputs(cfg, device=device)
    ivm = R.inner_vs_meta(run, R.analysed_checkpoints(run), tasks, eval_x, cfg.inner(), device)
    model = cfg.build_model().to(device)
    theta = run.load_model(ivm.checkpoints[-1], device).state_dict()
    loss = R.support_loss_path(model, theta, tasks, dataclasses.replace(cfg.inner(), steps=10))
    return row(run, n_test_tasks, ivm, loss, device)


def choice(rows: dict, setting: str) -> str | None:
    """The rule: ``"finn"`` unless its accuracy is more than :data:`TOLERANCE` below ``"mean"``'s
    at ``setting`` (``"5w"``/``"20w"``); None if either was not measured."""
    acc = {r: rows.get(f"{setting}-{r}", {}).get("accuracy", {}).get("mean") for r in RECIPES}
    if None in acc.values():
        return None
    return "mean" if acc["finn"] < acc["mean"] - TOLERANCE else "finn"


def table(rows: dict) -> pd.DataFrame:
    """Rows (``label → row``) as a table, G4/G5 columns where measured."""
    def fmt(r):
        a = r["accuracy"]
        out = {"inner loss": r["inner loss"], "network": r["network"], "α": r["α"],
               "accuracy (%)": f"{100 * a['mean']:.1f} ± {100 * a['ci95']:.1f} ({a['n_tasks']} tasks)"}
        for layer, (v, lo, hi) in r.get("G4 ratio_1", {}).items():
            out[f"G4 {layer}"] = f"{v:.2f} [{lo:.2f}, {hi:.2f}]"
        if "G5 d(0→1)/d(0→10)" in r:
            lo, hi = r["G5 d(0→1)/d(0→10)"]
            out["G5 d(0→1)/d(0→10)"] = f"{lo:.2f}–{hi:.2f}"
            out["support loss after 1 step"] = f"{100 * r['support loss after 1 step']:.0f}% of before"
        return out

    return pd.DataFrame({k: fmt(r) for k, r in rows.items()}).T.fillna("")


# --------------------------------------------------------------------------------------------
# The record
# --------------------------------------------------------------------------------------------
def record_path(profile: str, root=None):
    return results_root(root) / profile / "studies" / "recipe.json"


def write_record(profile: str, rows: dict, root=None) -> dict:
    """Write the study's rows (merged into the profile's earlier record, candidate by candidate)
    with where and when they were measured."""

    rows = {**((load_record(profile, root) or {}).get("rows", {})), **rows}
    trained = {k: round(training_seconds(runs.Run(cfg)) / 60, 1) for k, cfg in candidates(profiles.load(profile)).items()
               if k in rows and (runs.run_dir(cfg) / "final.json").is_file()}
    rec = {"profile": profile, "rows": rows, "rule": f"keep Finn et al.'s recipe unless it is more than "
                                                   f"{100 * TOLERANCE:.0f} points below the mean loss",
           "choice": {s: choice(rows, s) for s in SETTINGS},
           "provenance": {"command": f"python -m mamlscope recipes --profile {profile} --train --record",
                          **paths.provenance(commit_length=12),
                          "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "training minutes (from the runs' logs)": trained}}
    path = record_path(profile, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return rec


def load_record(profile: str, root=None) -> dict | None:
    path = record_path(profile, root)
    return json.loads(path.read_text()) if path.is_file() else None


def provenance(rec: dict) -> str:
    p = rec["provenance"]
    minutes = ", ".join(f"{k} {v} min" for k, v in p["training minutes (from the runs' logs)"].items())
    return (f"Recorded by `{p['command']}` on {p['date']} (commit {p['commit']}, torch {p['torch']}, "
            f"measured with {p['threads']} threads); training time: {minutes}.")


def show_record(profile: str, settings=tuple(SETTINGS)) -> pd.DataFrame | None:
    """Print the record's provenance and rule outcome, return its table (None, with a message,
    if the study was not recorded for ``profile``)."""
    rec = load_record(profile)
    if rec is None:
        print(f"The recipe study was not recorded for profile {profile!r} "
              f"(python -m mamlscope recipes --profile {profile} --train --record).")
        return None
    print(provenance(rec))
    for s in settings:
        print(f"{s}: the rule ({rec['rule']}) chooses {rec['choice'][s]!r}")
    return table({k: v for k, v in rec["rows"].items() if k.split("-")[0] in settings})


def selection_gaps(profile: str) -> pd.DataFrame | None:
    """Per setting of the recorded study: the chosen recipe's accuracy minus the other's on the
    fixed test tasks, and that gap in units of its 95% half-width. The study chose on the same
    tasks F1 and F2 are judged on; picking the better of two favours it by about the noise of
    their difference at most, so a gap of many half-widths leaves the choice unbiased in effect.
    The half-width √(c₁² + c₂²) treats the two scores as independent; on the same tasks they are
    positively correlated, so it is an upper bound. None (with a message) without a record."""
    rec = load_record(profile)
    if rec is None:
        print(f"The recipe study was not recorded for profile {profile!r}: nothing was chosen on test tasks.")
        return None
    out = {}
    for s in SETTINGS:
        chosen, acc = rec["choice"][s], {r: rec["rows"].get(f"{s}-{r}", {}).get("accuracy") for r in RECIPES}
        if chosen is None or None in acc.values():
            continue
        other = next(r for r in RECIPES if r != chosen)
        gap = acc[chosen]["mean"] - acc[other]["mean"]
        half = (acc[chosen]["ci95"] ** 2 + acc[other]["ci95"] ** 2) ** 0.5
        out[s] = {"chosen": chosen, "chosen − other (points)": f"{100 * gap:+.1f} ± {100 * half:.1f}",
                  "gap / 95% half-width": f"{gap / half:.0f}", "test tasks": acc[chosen]["n_tasks"]}
    return pd.DataFrame(out).T


def _setting_of(cfg: meta.MetaConfig) -> str:
    return next(setting for setting in SETTINGS.values() if cfg.n_way == (5 if "5w" in setting else 20))


def comparison(run, ivm, loss, profile: profiles.Profile, device="cpu") -> pd.DataFrame:
    """Chapter 3's table: the profile's own recipe measured now, beside the other recipe —
    trained and measured now if ``profile.compare_recipes``, else read from the record."""
    rows = {f"{recipe_name(run.config)} (this profile's, measured here)": row(run, profile.test_tasks, ivm, loss, device)}
    other = profiles.alternative_recipe(run.config)
    if profile.compare_recipes:
        rows[f"{recipe_name(other)} (measured here)"] = measure(meta.train(other, device=device), profile.test_tasks, device)
    else:
        rec = load_record(profile.name)
        key = next(name for name, cfg in candidates(profile).items() if cfg == other)
        if rec is None or key not in rec["rows"]:
            print(f"The other recipe was not measured at profile {profile.name!r} "
                  f"(python -m mamlscope recipes --profile {profile.name} --train --record).")
        elif other.seed != profiles.load(profile.name).meta(_setting_of(other)).seed:
            print(f"The recipe study's record is for the profile's own seed; this run has seed "
                  f"{other.seed} (a replica), so its other recipe was not measured.")
        else:
            print(provenance(rec))
            if rec["rows"][key]["run"] != runs.run_dir(other).name:
                raise RuntimeError(f"the recorded {key!r} run {rec['rows'][key]['run']} is not this profile's "
                                   f"{runs.run_dir(other).name}: re-record the study.")
            rows[f"{recipe_name(other)} (recorded)"] = rec["rows"][key]
    return table(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mamlscope recipes", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("names", nargs="*", help="candidates (default: all): 5w-mean 5w-finn 20w-mean 20w-finn")
    parser.add_argument("--train", action="store_true", help="train the candidates (resumable: runs are cached)")
    parser.add_argument("--record", action="store_true", help="measure the trained candidates and write the record")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    P = profiles.load(args.profile)
    cands = candidates(P)
    names = args.names or list(cands)
    unknown = sorted(set(names) - set(cands))
    if unknown:
        parser.error(f"unknown candidates {unknown}; use {list(cands)}")
    dev = profiles.resolve_device(args.device)
    for name in names if args.train else []:
        start = time.perf_counter()
        run = meta.train(cands[name], device=dev)
        print(f"{name}: {run.dir.name} trained in {time.perf_counter() - start:.0f} s", flush=True)
    if args.record:
        missing = [n for n in names if not (runs.run_dir(cands[n]) / "final.json").is_file()]
        if missing:
            parser.error(f"not trained yet: {missing} (add --train)")
        rows = {n: measure(runs.Run(cands[n]), P.test_tasks, dev) for n in names}
        rec = write_record(P.name, rows)
        print(table(rows).to_string())
        print("choice:", rec["choice"], "→", record_path(P.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
