"""The inner-loop claims under both inner-loop recipes, and the 2×2 study that separates them.

G4, G5, R3, R4 and R5 are claims about what MAML's inner loop does. The book trains with the
mean inner loss on its own network; Finn et al.'s released code, which [G] and [R] used, sums
the loss over the support set and divides by K (Σℓ/K: a step N times larger at N-way) on their
network (spatial mean before the head, :mod:`mamlscope.studies.recipes`). This study measures each of
those claims, with the chapters' own functions and the registered rules, on the models of both
recipes (the 5-way pair and the 20-way pair), and on the two mixed cells of a 2×2 design at
5-way: {mean, Σℓ/K} × {the book's network, Finn's network}, equal budget, so that the step size
and the network can be told apart (:data:`~mamlscope.verdict.attached.MODELS`).

Evaluation only, on cached runs (training them: ``--train``; about 12 min per 5-way run and
33 min per 20-way run at one thread on the 2-core machine). It is too long for every rerun of
the book, so it is kept as a record with provenance, like the recipe study:

    python -m mamlscope recipe_claims --profile cpu [--train] --record

writes ``book/results/<profile>/studies/recipe_claims.json``. When a chapter records one of the
claims, :func:`claims.record <mamlscope.verdict.claims.record>` attaches its ``recipe`` block
(:func:`~mamlscope.verdict.attached.recipe_block`): per recipe and setting, the verdict, the measurement and the model's accuracy;
``recipe_dependent`` when the two recipes' verdicts differ in a setting. R5's decisive check
reads an ANIL run, which exists for the book's recipe only, so for Finn's recipe only its MAML
row (the secondary check) is measured and the verdict is *not judged*.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import pandas as pd
import torch
from filelock import FileLock

from mamlscope.core import evaluate, meta, runs
from mamlscope.measure import representations as R, reuse
from mamlscope.paths import atomic_write, provenance
from mamlscope.publish.report import training_seconds
from mamlscope.studies import recipes
from mamlscope.training import profiles
from mamlscope.verdict import claims
from mamlscope.verdict.attached import (
    MODELS,
    NOT_JUDGED,
    RECIPE_CLAIMS,
    RECIPES,
    load_recipe_record,
    recipe_block,
    recipe_record_path,
)
from mamlscope.verdict.results import plain

CELL_CLAIMS = ("G4", "R3")  # what the 2×2 design's mixed cells are measured for
N_TASKS, EVAL_TASK, N_RATIO_TASKS = 4, 4, 20  # chapter 3's defaults


def config(profile: profiles.Profile, label: str) -> meta.MetaConfig:
    setting, reduction, network = MODELS[label]
    return dataclasses.replace(profile.meta(setting), inner_reduction=reduction, network=network)


def measure(run, profile: profiles.Profile, device="cpu", which=RECIPE_CLAIMS) -> dict:
    """claim → {"values", "null_values"} for the claims in ``which``, measured on ``run`` by the
    functions chapters 3 and 4 call (the same parameters and controls); R5 on MAML alone (these
    recipes have no ANIL run)."""

    cfg = run.config
    evidence = {}
    if {"G4", "G5"} & set(which):
        tasks, eval_x = recipes.evaluation_inputs(cfg, N_TASKS, EVAL_TASK, device)
        units = R.ratio_tasks(cfg, N_RATIO_TASKS, EVAL_TASK, device)
        ckpts = R.analysed_checkpoints(run)
        ic = R.inner_change(run, ckpts, units, eval_x, cfg.inner(), device)
        evidence["G4"] = ic.g4_evidence(run)
        if "G5" in which:
            theta = run.load_model(ckpts[-1], device).state_dict()
            loss = R.support_loss_path(cfg.build_model().to(device), theta, tasks,
                                       dataclasses.replace(cfg.inner(), steps=10))
            evidence["G5"] = ic.g5_evidence(run, loss)
    if "R3" in which:
        evidence["R3"] = reuse.r3_evidence(run, profile.test_tasks, device)
    if "R4" in which:
        evidence["R4"] = reuse.r4_evidence(run, profile.analysis_tasks, device)
    out = {c: {"values": e.values, "null_values": e.null_values} for c, e in evidence.items()}
    if "R5" in which:
        model, test = run.load_model(device=device), cfg.test_tasks(profile.test_tasks)
        full = evaluate.per_task_scores(model, test, cfg.inner(train=False))
        nil = reuse.nil_scores({"MAML": (model, model.state_dict()),
                                "random features": (cfg.build_model().to(device),
                                                    run.load_model(0, device).state_dict())}, test)
        r5 = reuse.NilComparison({"MAML": nil["MAML"]}, {"MAML": full})
        r5_null = reuse.NilComparison({"MAML": nil["random features"]}, {"MAML": full})
        out["R5"] = {"values": r5.claim_values(), "null_values": r5_null.claim_values()}
    return plain(out)


def judge(claim_id: str, measured: dict, profile: str, run=None) -> dict:
    """The registered rule's verdict on one measurement (not written), or *not judged* with the
    reason when the rule reads values this model cannot give (R5 without an ANIL run). ``run``:
    the model, for the claims whose regime asks whether it converged."""
    try:
        r = claims.judge(claim_id, measured["values"], profile, null_values=measured["null_values"],
                         regime=claims.regime_with_run(claim_id, profile, run) if run is not None else None)
    except KeyError as err:
        return {"verdict": NOT_JUDGED, "measured": "", "null_verdict": "",
                "reason": f"the rule reads {err}, which this model does not give "
                          "(R5's decisive check needs an ANIL run under this recipe)"}
    return {"verdict": r.verdict, "measured": r.measured, "null_verdict": r.null_verdict,
            "precondition": r.precondition}


def _measured_r5(values: dict) -> str:
    d, lo, hi = (values[k]["MAML"] for k in ("nil_diff", "nil_diff_lo", "nil_diff_hi"))
    return (f"MAML: NIL {100 * values['nil']['MAML']:.1f}%, with its head "
            f"{100 * values['head']['MAML']:.1f}%, NIL − head {100 * d:+.1f} "
            f"[{100 * lo:+.1f}, {100 * hi:+.1f}] points")


def write_record(profile: str, labels=tuple(MODELS), device="cpu", root=None) -> dict:
    """Measure every model in ``labels`` (trained) and write the record, merged into the
    earlier one model by model."""

    P = profiles.load(profile)
    measured = {}
    for label in labels:
        cfg = config(P, label)
        run = runs.Run(cfg)
        if not run.finished:
            raise RuntimeError(f"{label}: {run.dir.name} is not trained (add --train).")
        which = RECIPE_CLAIMS if (cfg.inner_reduction, cfg.network) in RECIPES else CELL_CLAIMS
        t = time.perf_counter()
        m = measure(run, P, device, which)
        entry = {"run": run.dir.name, "setting": MODELS[label][0], "inner loss": cfg.inner_reduction,
                 "network": cfg.network, "α": cfg.inner_lr,
                 "recipe": RECIPES.get((cfg.inner_reduction, cfg.network), "mixed (2×2 cell)"),
                 "accuracy": evaluate.run_score(run, P.test_tasks, device=device).values(),
                 "training minutes": round(training_seconds(run) / 60, 1),
                 "claims": {}}
        for claim_id, values in m.items():
            j = judge(claim_id, values, profile, run)
            if claim_id == "R5":
                j["measured"] = _measured_r5(values["values"])
            entry["claims"][claim_id] = {**j, **values}
        measured[label] = plain(entry)
        print(f"{label} ({run.dir.name}): " + ", ".join(
            f"{c} {v['verdict']}" for c, v in entry["claims"].items())
            + f" [{time.perf_counter() - t:.0f} s]", flush=True)
    path = recipe_record_path(profile, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):  # two processes measuring different models merge
        rec = load_recipe_record(profile, root) or {"profile": profile, "models": {}}
        rec["models"].update(measured)
        rec["models"] = {k: rec["models"][k] for k in MODELS if k in rec["models"]}
        rec["provenance"] = {
            "command": f"python -m mamlscope recipe_claims --profile {profile} --record",
            **provenance(device, commit_length=12), "torch": torch.__version__,
            "threads": torch.get_num_threads()}
        text = json.dumps(rec, indent=2, ensure_ascii=False) + "\n"
        atomic_write(path, lambda p: p.write_text(text))
    return rec


def describe(claim_id: str, profile: str, root=None) -> str:
    """One sentence per setting from the record: each recipe's verdict on ``claim_id`` with its
    model's accuracy, and whether they differ."""
    b = recipe_block(claim_id, profile, root)
    if not b:
        return f"{claim_id}: the recipe study was not recorded for profile {profile!r}."
    lines = []
    for setting in dict.fromkeys(v[0] for v in MODELS.values()):
        parts = [f"{m['verdict']} under {m['recipe']}, on a model at {100 * m['accuracy']:.1f}%"
                 for label, m in b["models"].items() if MODELS[label][0] == setting]
        judged = [m for label, m in b["models"].items()
                  if MODELS[label][0] == setting and m["verdict"] != NOT_JUDGED]
        if parts:
            if len(parts) < 2:
                flag = "the other recipe's model was not measured"
            elif len(judged) < 2:
                flag = "not judged under both, so not compared"
            else:
                flag = "the verdict differs" if b["differs"].get(setting) else "the same verdict"
            short = setting.removeprefix("omniglot_").removesuffix("1s")
            lines.append(f"{claim_id} at {short}: " + "; ".join(parts) + f": {flag}.")
    return "\n".join(lines)


def _recorded(profile: str, root=None) -> dict | None:
    """The record, or None after saying how to make it."""
    rec = load_recipe_record(profile, root)
    if rec is None:
        print(f"The recipe-claims study was not recorded for profile {profile!r} "
              f"(python -m mamlscope recipe_claims --profile {profile} --train --record).")
    return rec


def _model_columns(m: dict) -> dict:
    a = m["accuracy"]
    return {"inner loss": m["inner loss"], "network": m["network"],
            "accuracy (%)": f"{100 * a['mean']:.1f} ± {100 * a['ci95']:.1f}"}


def table(profile: str, root=None, which=RECIPE_CLAIMS):
    """Per model of the record (rows): accuracy and each claim's verdict (columns)."""

    rec = _recorded(profile, root)
    if rec is None:
        return None
    rows = {}
    for label, m in rec["models"].items():
        row = _model_columns(m)
        for c in which:
            row[c] = m["claims"][c]["verdict"] if c in m["claims"] else "—"
        rows[label] = row
    return pd.DataFrame(rows).T


def cells_table(profile: str, setting: str = "omniglot_5w1s", root=None):
    """The 2×2 design at ``setting``: per {inner loss} × {network} cell its accuracy, R3's
    head-only row (head only − all adapted, points, 95% CI) and G4's one-step ratios of
    conv1–3 (lower bounds), with both claims' verdicts."""

    rec = _recorded(profile, root)
    if rec is None:
        return None
    rows = {}
    for label, m in rec["models"].items():
        if m["setting"] != setting:
            continue
        c = m["claims"]
        row = _model_columns(m)
        if "R3" in c:
            v = c["R3"]["values"]
            half = v["head_only_diff"] - v["head_only_diff_lo"]
            row["head only − all (points)"] = (f"{100 * v['head_only_diff']:+.1f} "
                                               f"± {100 * half:.1f}")
            row["R3"] = c["R3"]["verdict"]
        if "G4" in c:
            lo = c["G4"]["values"]["early_ratio_1_lo"]
            row["G4 inner/meta, conv1–3 (lower bounds)"] = " / ".join(f"{x:.2f}" for x in lo.values())
            row["G4"] = c["G4"]["verdict"]
        rows[label] = row
    return pd.DataFrame(rows).T


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mamlscope recipe_claims",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("labels", nargs="*", help=f"models (default: all): {'; '.join(MODELS)}")
    ap.add_argument("--train", action="store_true", help="train the models first (cached, resumable)")
    ap.add_argument("--record", action="store_true", help="measure them and write the record")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.labels) - set(MODELS))
    if unknown:
        ap.error(f"unknown models {unknown}; use {list(MODELS)}")
    labels = args.labels or list(MODELS)
    P = profiles.load(args.profile)
    for label in labels if args.train else []:
        run = meta.train(config(P, label), device=args.device)
        print(f"{label}: {run.dir.name} trained", flush=True)
    if args.record:
        write_record(args.profile, labels, args.device)
        print(table(args.profile).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
