"""Shared figure helpers (matplotlib + seaborn), one function per kind of figure."""
from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns

from .runs import Run


def style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")


def learning_curves(runs: dict[str, Run], *, title: str = "", ax=None, log_x: bool = True):
    """Held-out accuracy at each checkpoint (solid, ±95% CI band) and the training query
    accuracy (dotted) of each run, against meta-steps. ``runs``: label → run."""
    style()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for (label, run), color in zip(runs.items(), sns.color_palette()):
        recs = run.metrics()
        test = [r for r in recs if "test_score" in r and r["step"] > 0]
        train = [r for r in recs if "train_score" in r]
        steps = [r["step"] for r in test]
        mean = [100 * r["test_score"] for r in test]
        ci = [100 * r["test_ci95"] for r in test]
        ax.plot(steps, mean, color=color, label=f"{label} (held-out tasks)")
        ax.fill_between(steps, [m - c for m, c in zip(mean, ci)], [m + c for m, c in zip(mean, ci)],
                        color=color, alpha=0.2)
        ax.plot([r["step"] for r in train], [100 * r["train_score"] for r in train], ":", color=color,
                alpha=0.8, label=f"{label} (training query sets)")
    if log_x:
        ax.set_xscale("log")
    ax.set(xlabel="meta-training step", ylabel="query accuracy after adaptation (%)", title=title)
    ax.legend(fontsize=8, loc="lower right")
    return ax
