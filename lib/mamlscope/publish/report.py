"""Tables for the chapters: settings beside the paper's, scores beside the paper's."""
from __future__ import annotations

import re
from typing import Mapping

import pandas as pd

from mamlscope.training.profiles import Profile
from mamlscope.verdict.claims import claim

SETTING_FIELDS = {
    "n_way": "ways", "k_shot": "shots", "q_query": "queries per class", "filters": "conv filters",
    "meta_batch": "meta-batch (tasks)", "inner_steps": "inner steps (training)",
    "eval_inner_steps": "inner steps (testing)", "inner_lr": "inner step size α",
    "inner_reduction": "inner loss (mean, or Σℓ/K = N·mean)", "network": "network (book or Finn's)",
    "meta_lr": "meta step size (Adam)", "steps": "meta-training steps",
}


def setting_name(setting: str) -> str:
    """A profile's setting for readers: ``"omniglot_20w1s"`` → ``"Omniglot 20-way 1-shot"``."""

    m = re.fullmatch(r"(omniglot|mnist)_(\d+)w(\d+)s", setting)
    if m:
        return f"{m.group(1).capitalize().replace('Mnist', 'MNIST')} {m.group(2)}-way {m.group(3)}-shot"
    return setting.replace("_", " ")


def settings_table(profile: Profile, paper: Profile, settings: list[str]) -> pd.DataFrame:
    """One row per hyper-parameter, one column per (setting, profile), differences marked *."""
    columns = {}
    for s in settings:
        mine, theirs = getattr(profile, s), getattr(paper, s)
        name = setting_name(s)
        columns[f"{name}: this book ({profile.name})"] = [
            f"{getattr(mine, f)}{'' if getattr(mine, f) == getattr(theirs, f) else ' *'}" for f in SETTING_FIELDS]
        columns[f"{name}: paper"] = [str(getattr(theirs, f)) for f in SETTING_FIELDS]
    return pd.DataFrame(columns, index=list(SETTING_FIELDS.values()))


def seconds_per_step(run) -> float:
    """Median wall-clock seconds per meta-step over the run's training log."""
    values = sorted(r["seconds_per_step"] for r in run.metrics() if "seconds_per_step" in r)
    return values[len(values) // 2] if values else float("nan")


def training_seconds(run) -> float:
    """Total wall-clock training time logged by the run (each log line covers the steps since
    the previous one)."""
    total, previous = 0.0, 0
    for r in run.metrics():
        if "seconds_per_step" in r:
            total += r["seconds_per_step"] * (r["step"] - previous)
            previous = r["step"]
    return total


def training_cost(runs: dict) -> pd.DataFrame:
    """Seconds per meta-step and training minutes of each run (``label → run``), from its log.
    Machine-dependent: tag the cell ``nbval-ignore-output``."""
    def per_step(r):
        v = seconds_per_step(r)
        return "— (not logged)" if v != v else f"{v:.3f}"

    def minutes(r):
        v = training_seconds(r)
        return "— (not logged)" if v == 0 else f"{v / 60:.1f}"

    return pd.DataFrame({
        "seconds per step": {k: per_step(r) for k, r in runs.items()},
        "training minutes": {k: minutes(r) for k, r in runs.items()},
    })


def scores_table(scores: dict) -> pd.DataFrame:
    """``label → Score`` as a table: accuracy ± 95% CI (%) and the number of tasks."""
    return pd.DataFrame({
        "accuracy (%)": {k: f"{100 * s.mean:.1f} ± {100 * s.ci95:.1f}" for k, s in scores.items()},
        "tasks": {k: s.n for k, s in scores.items()},
    })


def points_below_paper(score, claim_id: str) -> float:
    """How many percentage points ``score`` lies below the paper's mean of an accuracy claim
    (its registered :class:`~mamlscope.verdict.results.MatchesPaper` rule)."""

    return 100 * (claim(claim_id).rule.paper_mean - score.mean)


def knee_step(run, fraction: float = 0.9) -> int:
    """The first checkpoint at which the held-out accuracy has made ``fraction`` of its total
    gain (final minus initial): past it, the learning curve has bent over."""
    curve = [(r["step"], r["test_score"]) for r in run.metrics() if "test_score" in r]
    first, last = curve[0][1], curve[-1][1]
    return next(step for step, score in curve if score - first >= fraction * (last - first))


def knees_text(runs: Mapping[str, object]) -> str:
    """One line per run (label → run): the step by which it made 90% of its held-out gain."""
    return "\n".join(f"{label}: 90% of the held-out accuracy gain is reached by step {knee_step(run)} of "
                     f"{run.config.steps}" for label, run in runs.items())


def below_paper_text(scores: Mapping[str, object], claims_of: Mapping[str, str]) -> str:
    """One line per run label: how many points its score lies below the paper's (``claims_of``:
    label → claim id)."""
    return "\n".join(f"{label}: {points_below_paper(scores[label], c):.1f} points below Finn et al."
                     for label, c in claims_of.items())


def runs_text(runs: Mapping[str, object]) -> str:
    """One line per run (label → run): its folder name and meta-steps."""
    return "\n".join(f"{label:13s} {run.dir.name}  ({run.config.steps} meta-steps)" for label, run in runs.items())
