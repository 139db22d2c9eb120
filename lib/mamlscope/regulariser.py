"""[L] §7: does penalising incoherent adaptation directions during meta-training (Algorithm 1,
:func:`mamlscope.inner.coherence_correction`, weight γ) raise meta-test accuracy, and at what cost?

Plain and regularised MAML differ only in γ: the same seed gives the same initial weights and the
same meta-batches, and every run is scored on the same fixed test tasks, so each seed yields a
*paired* difference (regularised − plain, per task, then averaged). Seeds are the unit of
replication: the interval of the improvement is a t interval over the seeds' differences (a run's
interval over tasks says nothing about how another seed would fare), and each seed's own
interval over tasks is shown beside it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Mapping

import pandas as pd
import torch

from .evaluate import run_task_scores
from .reuse import TimeRatio, meta_step, time_ratio
from .stats import mean_ci95, paired_difference
from .stats import t_interval as seed_interval  # the interval over seeds (chapter 6)


@dataclass(frozen=True)
class Comparison:
    """Per-task accuracies of plain and regularised runs, by seed (the same fixed test tasks)."""

    plain: Mapping[int, torch.Tensor]
    regularised: Mapping[int, torch.Tensor]

    @property
    def seeds(self) -> list[int]:
        return sorted(self.plain)

    def differences(self) -> dict[int, float]:
        """Seed → mean paired difference (regularised − plain) over tasks."""
        return {s: paired_difference(self.regularised[s], self.plain[s]).mean for s in self.seeds}

    def table(self) -> pd.DataFrame:
        """One row per seed: both accuracies ± 95% CI over tasks and their paired difference."""
        rows = {}
        for s in self.seeds:
            p, r = mean_ci95(self.plain[s]), mean_ci95(self.regularised[s])
            d = paired_difference(self.regularised[s], self.plain[s])
            rows[f"seed {s}"] = {"plain (%)": f"{100 * p.mean:.2f} ± {100 * p.ci95:.2f}",
                                 "regularised (%)": f"{100 * r.mean:.2f} ± {100 * r.ci95:.2f}",
                                 "regularised − plain (points)": f"{100 * d.mean:+.2f} [{100 * (d.mean - d.ci95):+.2f}, "
                                                                 f"{100 * (d.mean + d.ci95):+.2f}]"}
        m, lo, hi = seed_interval(list(self.differences().values()))
        plain = math.fsum(mean_ci95(self.plain[s]).mean for s in self.seeds) / len(self.seeds)
        reg = math.fsum(mean_ci95(self.regularised[s]).mean for s in self.seeds) / len(self.seeds)
        rows[f"mean of {len(self.seeds)} seeds"] = {"plain (%)": f"{100 * plain:.2f}", "regularised (%)": f"{100 * reg:.2f}",
                                                    "regularised − plain (points)": f"{100 * m:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}] (t interval over seeds)"}
        return pd.DataFrame(rows).T

    def claim_values(self, setting: str, gamma: float) -> dict:
        """What L6's rule reads: the mean difference over seeds and its t interval, the relative
        reduction of the error rate, and per-seed accuracies (the cost, which depends on the
        machine, is reported beside the verdict, not in it)."""
        diffs = self.differences()
        m, lo, hi = seed_interval(list(diffs.values()))
        plain = {s: mean_ci95(self.plain[s]).mean for s in self.seeds}
        reg = {s: mean_ci95(self.regularised[s]).mean for s in self.seeds}
        err_plain = 1 - math.fsum(plain.values()) / len(plain)
        err_reg = 1 - math.fsum(reg.values()) / len(reg)
        v = {"setting": setting, "gamma": gamma, "seeds": len(self.seeds), "n_tasks": len(self.plain[self.seeds[0]]),
             "plain": {str(s): a for s, a in plain.items()}, "regularised": {str(s): a for s, a in reg.items()},
             "diff_by_seed": {str(s): d for s, d in diffs.items()}, "diff": m, "diff_lo": lo, "diff_hi": hi,
             "error_reduction": (err_plain - err_reg) / err_plain if err_plain > 0 else math.nan}
        return v


def compare(plain_runs: Mapping[int, object], regularised_runs: Mapping[int, object], n_tasks: int,
            device="cpu") -> Comparison:
    """Score every run (seed → run) on the first ``n_tasks`` fixed test tasks (cached per run)."""
    if set(plain_runs) != set(regularised_runs):
        raise ValueError(f"plain and regularised runs need the same seeds; got {sorted(plain_runs)} and "
                         f"{sorted(regularised_runs)}.")
    return Comparison({s: run_task_scores(r, n_tasks, device=device) for s, r in plain_runs.items()},
                      {s: run_task_scores(r, n_tasks, device=device) for s, r in regularised_runs.items()})


def sweep(runs: Mapping[float, object], n_tasks: int, device="cpu") -> pd.DataFrame:
    """γ → accuracy ± 95% CI on the fixed test tasks, and the paired difference from γ = 0 (one seed)."""
    scores = {g: run_task_scores(r, n_tasks, device=device) for g, r in sorted(runs.items())}
    if 0.0 not in scores:
        raise ValueError("the sweep needs the plain run (γ = 0) to compare with.")
    rows = {}
    for g, s in scores.items():
        a, d = mean_ci95(s), paired_difference(s, scores[0.0])
        rows[g] = {"accuracy (%)": f"{100 * a.mean:.2f} ± {100 * a.ci95:.2f}",
                   "− plain (points)": "—" if g == 0 else f"{100 * d.mean:+.2f} [{100 * (d.mean - d.ci95):+.2f}, "
                                                          f"{100 * (d.mean + d.ci95):+.2f}]"}
    out = pd.DataFrame(rows).T
    out.index.name = "γ"
    return out


def step_cost(cfg, gamma: float, repeats: int = 20, device="cpu") -> TimeRatio:
    """Seconds per meta-training step with the regulariser (γ) over without, on the same meta-batch,
    timed alternately in this process (:func:`mamlscope.reuse.time_ratio`)."""
    batch = cfg.train_tasks().batch(range(cfg.meta_batch))
    plain = replace(cfg, coherence_penalty=0.0)
    return time_ratio(meta_step(replace(cfg, coherence_penalty=gamma), batch, device=device),
                      meta_step(plain, batch, device=device), repeats=repeats)
