"""Rapid learning or feature reuse? The analyses of Raghu et al. ([R]).

* :func:`paired_difference` — accuracy of one method minus another's on the *same* fixed test
  tasks, with a 95% interval over tasks (paired, so the tasks' difficulty cancels).
* :func:`freezing` (R3) — a MAML-trained θ adapted at test time on the layers ≥ k only
  (``InnerLoop.adapt = "from:<layer>"``; ``"head"`` = only the head), against adapting all.
* :func:`before_after` (R4) — each layer's representation of a task's images before and after
  the inner loop, compared by SVCCA and PWCCA (for conv layers every spatial position is an
  example and the channels are the neurons, as in Raghu et al. 2017 and Morcos et al. 2018) and by
  linear CKA on the flattened activations.
* :func:`nil_scores` (R5) — NIL accuracy (:func:`mamlscope.core.evaluate.nil_accuracy`) of several
  bodies on the same tasks.
* :func:`over_training` — beyond the paper: at every checkpoint, full vs head-only adaptation and
  the body's similarity before vs after adaptation (when, if ever, does reuse take over?).
* :func:`time_ratio` (R2) — seconds per call of two functions, interleaved in one process, and
  the ratio of their medians with a bootstrap interval.

Every claim is judged against a negative control measured by the same code
(``CLAIMS.md``, "Verdict protocol"): ANIL's own step-0 network for R1, MAML timed
against itself for R2, the freezing table of θ at step 0 for R3, unrelated (random-init)
networks for R4, NIL on a random body for R5. :func:`random_init` gives the random-init
networks.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch.func import functional_call

from mamlscope.core.data import Task
from mamlscope.core.evaluate import nil_accuracy, per_task_scores, run_task_scores
from mamlscope.core.inner import InnerLoop, adapt, adapted_text, detached, query_loss
from mamlscope.core.meta import init_model, train
from mamlscope.core.models import head_input
from mamlscope.evidence import ONE_20W_SEED, Evidence, one_run
from mamlscope.measure.representations import activations
from mamlscope.metrics.cca import pwcca, svcca
from mamlscope.metrics.cka import linear_cka
from mamlscope.stats import (
    Score,
    excess_over_floor,
    interval_values,
    mean_ci,
    mean_ci95,
    median_ratio,
    over_seeds,
    paired_difference,
)

# the non-inferiority margin of R1, R3 and R5: a 95% CI's lower end above −2 points
MARGIN = -0.02


def _pct(s: Score) -> str:
    return f"{100 * s.mean:+.1f} ± {100 * s.ci95:.1f}"


def random_init(cfg, seed: int, device="cpu") -> dict[str, torch.Tensor]:
    """θ of ``cfg``'s architecture at its random initialisation under ``seed`` (a
    network that learned nothing and shares no initialisation with the trained runs,
    which use seeds 0, 1, …)."""
    return init_model(replace(cfg, seed=seed), device).state_dict()


def seeds_passing(diffs: Mapping[str, Score], note: str = "",
                  threshold: float = MARGIN) -> dict:
    """The record's ``seeds`` from one paired difference per seed (label →
    :class:`Score`): the mean and t interval over seeds
    (:func:`mamlscope.stats.over_seeds`), and how many seeds pass on their own (their
    95% CI over tasks above ``threshold``)."""
    lo = {k: d.mean - d.ci95 for k, d in diffs.items()}
    s = over_seeds(lo, lambda v: v > threshold)
    t = over_seeds({k: d.mean for k, d in diffs.items()}, lambda v: True)
    return {"n": s.n, "passing": s.passing, "values": dict(t.values), "lo": lo,
            "mean": t.mean, "t_lo": t.lo, "t_hi": t.hi, "note": note}


# --------------------------------------------------------------------------------------------
# R1 — ANIL against MAML
# --------------------------------------------------------------------------------------------
@dataclass
class AnilVsMaml:
    """``scores[setting][label]``: per-task accuracies on the same fixed test tasks, labels
    ``"MAML"`` and ``"ANIL seed i"``."""

    scores: dict[str, dict[str, torch.Tensor]]

    def difference(self, setting: str) -> Score:
        return paired_difference(self.scores[setting]["ANIL seed 0"], self.scores[setting]["MAML"])

    def table(self) -> pd.DataFrame:
        rows = {}
        for setting, by_label in self.scores.items():
            for label, v in by_label.items():
                d = paired_difference(v, by_label["MAML"]) if label != "MAML" else None
                rows[(setting, label)] = {"accuracy (%)": str(mean_ci95(v)).rstrip("%"),
                                          "minus MAML (points, paired)": _pct(d) if d else "—"}
        return pd.DataFrame(rows).T

    def seed_differences(self) -> dict[str, Score]:
        """ANIL − MAML for every (setting, ANIL seed), paired over tasks (one MAML
        seed)."""
        return {f"{s} {label}": paired_difference(v, by_label["MAML"])
                for s, by_label in self.scores.items()
                for label, v in by_label.items() if label != "MAML"}

    def claim_values(self, not_run: Sequence[str] = ()) -> dict:
        """What R1's rule reads: ``seed_diff_lo`` (decisive: every ANIL seed of every
        setting), and seed 0's difference per setting, shown in the verdict table."""
        seeds = self.seed_differences()
        return {**interval_values("diff", {s: self.difference(s) for s in self.scores}),
                "seed_diff": {k: d.mean for k, d in seeds.items()},
                "seed_diff_lo": {k: d.mean - d.ci95 for k, d in seeds.items()},
                "maml": {s: mean_ci95(v["MAML"]).mean for s, v in self.scores.items()},
                "anil": {s: mean_ci95(v["ANIL seed 0"]).mean for s, v in self.scores.items()},
                "n_tasks": len(next(iter(self.scores.values()))["MAML"]), "not_run": list(not_run)}

    def seeds(self, note: str = "") -> dict:
        return seeds_passing(self.seed_differences(), note)


def anil_vs_maml(maml_runs: Mapping[str, object], anil_runs: Mapping[str, Sequence], n_tasks: int,
                 device="cpu", anil_step: int | None = None) -> AnilVsMaml:
    """Per-task accuracies of each setting's MAML run and ANIL runs (cached in the
    runs), the ANIL runs at checkpoint ``anil_step`` (default: the last; ``0``: R1's
    control, ANIL before meta-training, adapted by the same test-time inner loop)."""
    return AnilVsMaml({s: {"MAML": run_task_scores(maml_runs[s], n_tasks, device=device),
                           **{f"ANIL seed {i}": run_task_scores(
                                  r, n_tasks, step=anil_step, device=device)
                              for i, r in enumerate(anil_runs[s])}}
                       for s in maml_runs})


# --------------------------------------------------------------------------------------------
# R3 — freezing the lower layers at test time
# --------------------------------------------------------------------------------------------
@dataclass
class Freezing:
    """Per-task accuracies ``scores[adapt]`` for ``adapt`` in ``"from:conv1"`` (= all) …
    ``"head"``; ``frozen[adapt]`` names the layers that do not move."""

    scores: dict[str, torch.Tensor]
    frozen: dict[str, str]
    full: str

    def differences(self) -> dict[str, Score]:
        return {k: paired_difference(v, self.scores[self.full]) for k, v in self.scores.items() if k != self.full}

    def table(self) -> pd.DataFrame:
        diff = self.differences()
        frame = pd.DataFrame({
            "frozen at test time": self.frozen,
            "accuracy (%)": {k: str(mean_ci95(v)).rstrip("%") for k, v in self.scores.items()},
            "minus adapting all (points)": {k: _pct(diff[k]) if k in diff else "—" for k in self.scores},
        })
        frame.index = ["head only" if k == "head" else adapted_text(k) for k in frame.index]
        frame.index.name = "adapted at test time"
        return frame

    def claim_values(self) -> dict:
        """What R3's rule reads: ``head_only_diff_lo`` (decisive: conv1–conv4 frozen,
        only the head adapts, as in [R] Table 1) and ``partial_diff_lo`` (secondary: the
        rows that freeze less)."""
        diffs = {self.frozen[k]: d for k, d in self.differences().items()}
        head = self.frozen["head"] if "head" in self.frozen else next(reversed(diffs))
        return {**interval_values("freeze_diff", diffs),
                "head_only_diff": diffs[head].mean,
                "head_only_diff_lo": diffs[head].mean - diffs[head].ci95,
                "partial_diff_lo": {k: d.mean - d.ci95 for k, d in diffs.items()
                                    if k != head},
                "full": mean_ci95(self.scores[self.full]).values()}


def freezing(model, tasks: Task, inner: InnerLoop, params=None, full: torch.Tensor | None = None) -> Freezing:
    """[R] Table: adapt only the layers from k on, for every k, at test time (``inner`` otherwise).

    ``full``: the per-task scores of adapting every layer with ``inner`` on ``tasks``, when they
    are already known (:func:`~mamlscope.core.evaluate.run_task_scores` of the run: the same
    computation, cached), so that row is not computed again."""
    layers = list(model.layer_names)
    specs = [f"from:{l}" for l in layers[:-1]] + ["head"]
    scores = {s: full.float() if full is not None and i == 0
              else per_task_scores(model, tasks, replace(inner, adapt=s), params=params)
              for i, s in enumerate(specs)}
    frozen = {s: "none" if i == 0 else ("–".join([layers[0], layers[i - 1]]) if i > 1 else layers[0])
              for i, s in enumerate(specs)}
    return Freezing(scores, frozen, specs[0])


def head_only_step_sizes(model, tasks: Task, inner: InnerLoop, factors: Sequence[float], full: torch.Tensor,
                         params=None, head: torch.Tensor | None = None) -> pd.DataFrame:
    """Is a head-only adaptation that fails the features' fault, or the step's? Head-only
    accuracy with the step size ``inner.lr × f`` for each factor f, against adapting every layer
    with ``inner`` (per-task accuracies ``full``, same tasks). A diagnostic beside R3, not part of
    its rule (which keeps the run's own inner loop). ``head``: the head-only scores at α itself
    (R3's row), when known, for the factor 1."""
    rows = {}
    for f in factors:
        v = head if f == 1 and head is not None else \
            per_task_scores(model, tasks, replace(inner, adapt="head", lr=inner.lr * f), params=params)
        rows[f"α × {f:g} = {inner.lr * f:g}"] = {"head-only accuracy (%)": str(mean_ci95(v)).rstrip("%"),
                                                 "minus adapting all at α (points, paired)": _pct(paired_difference(v, full))}
    frame = pd.DataFrame(rows).T
    frame.index.name = "head-only step size"
    return frame


def head_features(model, theta: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """What the head reads of ``x`` under ``theta``: conv4's activation, flattened (the book's
    network) or averaged over space (Finn et al.'s), as :meth:`Conv4.forward` does. One batch,
    so BatchNorm normalises it as adaptation does."""

    with torch.no_grad():
        a = functional_call(model, dict(theta), (x,), {"return_activations": True})[1]
        return head_input(model, a[model.layer_names[-2]])


def logistic_head_scores(model, tasks: Task, params=None, C: float = 1.0) -> torch.Tensor:
    """Per-task query accuracy of a multinomial logistic regression (scikit-learn, L2 with
    ``C``) fitted on the frozen body's support features (:func:`head_features`): the best a
    linear head on those features does with the support set alone, whatever its start or step."""
    from sklearn.linear_model import LogisticRegression

    p = next(model.parameters())
    theta = detached(params or dict(model.named_parameters()))
    out = []
    for i in range(len(tasks)):
        t = tasks[i].to(p.device, p.dtype)
        fs = head_features(model, theta, t.x_support).double().cpu().numpy()
        fq = head_features(model, theta, t.x_query).double().cpu().numpy()
        clf = LogisticRegression(C=C, max_iter=2000).fit(fs, t.y_support.cpu().numpy())
        out.append(float(np.mean(clf.predict(fq) == t.y_query.cpu().numpy())))
    return torch.tensor(out)


@dataclass
class HeadOnly:
    """What the head-only collapse is: per-task accuracies ``scores[row]`` of head-only
    variants beside R3's head-only row and full adaptation, all on the same tasks and body."""

    scores: dict[str, torch.Tensor]
    head_only: str = "head only (R3's row)"
    full: str = "all layers adapted"

    def gap_resolved(self) -> bool:
        """Whether full adaptation beats R3's head-only row beyond the noise: the paired 95%
        interval over tasks of (full − head only) excludes 0. A share of a gap inside the noise
        means nothing."""
        gap = mean_ci95(self.scores[self.full] - self.scores[self.head_only])
        return abs(gap.mean) > gap.ci95

    def recovered(self, row: str) -> float:
        """The fraction of the gap between R3's head-only row and full adaptation that ``row``
        closes (0: none, 1: all of it; above 1: it beats full adaptation); NaN when the gap is
        inside the noise (:meth:`gap_resolved`)."""
        lo, hi = (float(self.scores[k].mean()) for k in (self.head_only, self.full))
        return (float(self.scores[row].mean()) - lo) / (hi - lo) if self.gap_resolved() else float("nan")

    def table(self) -> pd.DataFrame:
        def share(k):
            if k in (self.head_only, self.full):
                return "—"
            r = self.recovered(k)
            return "— (gap within noise)" if math.isnan(r) else f"{r:.2f}"

        return pd.DataFrame({
            "accuracy (%)": {k: str(mean_ci95(v)).rstrip("%") for k, v in self.scores.items()},
            "share of the head-only gap closed": {k: share(k) for k in self.scores}})

    def values(self) -> dict:
        return {"accuracy": {k: float(v.mean()) for k, v in self.scores.items()},
                "recovered": {k: self.recovered(k) for k in self.scores
                              if k not in (self.head_only, self.full)}}


def describe_head_only(d: HeadOnly, name: str) -> str:
    """One sentence: how much of the gap between R3's head-only row and full adaptation each
    diagnostic closes, from the numbers of ``d``."""
    acc = {k: 100 * float(v.mean()) for k, v in d.scores.items()}
    of_gap = (lambda k: f" ({d.recovered(k):.2f} of the gap)") if d.gap_resolved() else (lambda k: "")
    parts = ", ".join(f"{k} {acc[k]:.1f}%{of_gap(k)}" for k in d.scores if k not in (d.head_only, d.full))
    if not d.gap_resolved():
        parts += " (the gap is inside the noise: no share of it is given)"
    return (f"{name}: head only {acc[d.head_only]:.1f}%, all layers adapted {acc[d.full]:.1f}%; "
            f"{parts}.")


def diagnostics_table(diagnostics: dict[str, HeadOnly]) -> pd.DataFrame:
    """The models' :meth:`HeadOnly.table` side by side; "—" where a model has no such row."""
    return pd.concat({name: d.table() for name, d in diagnostics.items()}, axis=1).fillna("—")


def head_only_diagnostics(model, tasks: Task, inner: InnerLoop, *, long_steps: int = 100,
                          params=None, head: torch.Tensor | None = None,
                          full: torch.Tensor | None = None) -> HeadOnly:
    """Evaluation only, on one body: R3's head-only row (the run's step and steps from the
    meta-learned head) against the same from a zero head, ``long_steps`` head steps from
    either, a logistic regression on the frozen support features, and full adaptation.
    ``head`` and ``full``: those two rows' per-task scores on ``tasks``, when already known
    (:class:`Freezing`'s ``"head"`` and first rows), not computed again."""
    theta = detached(params or dict(model.named_parameters()))
    zero = {**theta, "head.weight": torch.zeros_like(theta["head.weight"]),
            "head.bias": torch.zeros_like(theta["head.bias"])}
    one, many = replace(inner, adapt="head"), replace(inner, adapt="head", steps=long_steps)
    scores = {
        "head only (R3's row)": head.float() if head is not None
        else per_task_scores(model, tasks, one, params=theta),
        "head only from a zero head": per_task_scores(model, tasks, one, params=zero),
        f"head only, {long_steps} steps": per_task_scores(model, tasks, many, params=theta),
        f"zero head, {long_steps} steps": per_task_scores(model, tasks, many, params=zero),
        "logistic regression on frozen features": logistic_head_scores(model, tasks, params=theta),
        "all layers adapted": full.float() if full is not None
        else per_task_scores(model, tasks, inner, params=theta),
    }
    return HeadOnly(scores)


# --------------------------------------------------------------------------------------------
# R4 — representations before vs after the inner loop
# --------------------------------------------------------------------------------------------
def _neurons(a: torch.Tensor) -> torch.Tensor:
    """``(n, C, H, W)`` → ``(n·H·W, C)``: spatial positions as examples, channels as neurons."""
    return a.permute(0, 2, 3, 1).reshape(-1, a.shape[1]) if a.dim() == 4 else a.flatten(1)


def similarity(before: torch.Tensor, after: torch.Tensor, keep_variance: float = 0.99) -> dict[str, float]:
    """SVCCA, PWCCA (on :func:`_neurons`) and linear CKA (flattened) of one layer's two representations."""
    x, y = _neurons(before).double(), _neurons(after).double()
    return {"svcca": svcca(x, y, keep_variance), "pwcca": pwcca(x, y),
            "cka": linear_cka(before.flatten(1).double(), after.flatten(1).double())}


INNER, FLOOR, NULL = "inner loop", "unrelated", "null"  # the pairs of BeforeAfter.frame


@dataclass
class BeforeAfter:
    """``frame``: one row per (task, layer, pair) with ``svcca``, ``pwcca``, ``cka``.
    The pair ``"inner loop"`` compares θ with θ adapted to the task; with unrelated
    networks (see :func:`before_after`), ``"unrelated"`` compares the adapted network
    with a random-init network (the floor of the similarities at this number of examples
    and width) and ``"null"`` with a second one (R4's control: the same measurement when
    the "before" network is unrelated)."""

    frame: pd.DataFrame
    layers: list[str]

    def summary(self, pair: str = INNER) -> pd.DataFrame:
        """Per layer and measure: mean and the lower/upper end of its 95% CI over tasks."""
        rows = {}
        for layer in self.layers:
            sub = self.frame[(self.frame.layer == layer) & (self.frame.pair == pair)]
            row = {}
            for m in ("svcca", "pwcca", "cka"):
                mean, half = mean_ci(sub[m].to_numpy()[:, None])
                row[m], row[f"{m} lo"], row[f"{m} hi"] = float(mean[0]), float(mean[0] - half[0]), float(mean[0] + half[0])
            rows[layer] = row
        return pd.DataFrame(rows).T

    def table(self, pair: str = INNER) -> pd.DataFrame:
        s = self.summary(pair)
        return pd.DataFrame({m: {l: f"{s.loc[l, m]:.3f} [{s.loc[l, f'{m} lo']:.3f}, {s.loc[l, f'{m} hi']:.3f}]"
                                 for l in self.layers} for m in ("svcca", "pwcca", "cka")})

    def with_control(self) -> pd.DataFrame:
        """SVCCA and CKA per layer: the inner loop (θ vs adapted) beside the same
        measurement of the adapted network against unrelated networks (floor and
        control)."""
        pairs = [p for p in (INNER, FLOOR, NULL) if (self.frame.pair == p).any()]
        out = {}
        for p in pairs:
            t = self.table(p)
            for m in ("svcca", "cka"):
                out[(p, m)] = t[m]
        return pd.DataFrame(out)

    def _head_excess(self, pair: str) -> Score:
        """Per task, ``(s − s₀)/(1 − s₀)`` of the head's SVCCA ``s`` (``pair`` vs
        adapted) over the floor ``s₀`` (unrelated vs adapted): 0 = as different as an
        unrelated head, 1 = unchanged."""
        head = self.frame[self.frame.layer == self.layers[-1]]
        s = head[head.pair == pair].sort_values("task").svcca.to_numpy()
        floor = head[head.pair == FLOOR].sort_values("task").svcca.to_numpy()
        return mean_ci95(torch.as_tensor(excess_over_floor(s, floor)))

    def claim_values(self, pair: str = INNER) -> dict:
        """What R4's rule reads, for ``pair`` (``"inner loop"``: the measurement;
        ``"null"``: its control): body CKA and SVCCA lower ends for conv2 … the last
        body layer (decisive; conv1's similarity is ≈ 1 for any network, so it is shown,
        not checked), and the head's SVCCA excess over unrelated heads, upper end
        (decisive; needs the unrelated networks)."""
        s, body = self.summary(pair), self.layers[1:-1]
        head = self.layers[-1]
        out = {"body_cka": {l: s.loc[l, "cka"] for l in body},
               "body_cka_lo": {l: s.loc[l, "cka lo"] for l in body},
               "body_cca": {l: s.loc[l, "svcca"] for l in body},
               "body_cca_lo": {l: s.loc[l, "svcca lo"] for l in body},
               "conv1_cka": s.loc[self.layers[0], "cka"],
               "conv1_cca": s.loc[self.layers[0], "svcca"],
               "head_cca": s.loc[head, "svcca"], "head_cca_hi": s.loc[head, "svcca hi"],
               "head_cka": s.loc[head, "cka"],
               "n_tasks": int(self.frame.task.nunique())}
        if (self.frame.pair == FLOOR).any():
            e = self._head_excess(pair)
            floor = self.summary(FLOOR).loc[head]
            out.update(head_floor=floor["svcca"], head_floor_hi=floor["svcca hi"],
                       head_excess=e.mean, head_excess_lo=e.mean - e.ci95,
                       head_excess_hi=e.mean + e.ci95)
        return out


def task_activations(model, theta: Mapping[str, torch.Tensor],
                     t: Task) -> dict[str, torch.Tensor]:
    """Every layer's activations of a task's support then query images, each set
    normalised on its own (one forward per set), as adaptation and scoring normalise
    them."""
    s, q = activations(model, theta, t.x_support), activations(model, theta, t.x_query)
    return {l: torch.cat([s[l], q[l]]) for l in s}


def before_after(model, theta: Mapping[str, torch.Tensor], tasks: Task,
                 inner: InnerLoop, unrelated: Sequence[Mapping[str, torch.Tensor]] = ()) -> BeforeAfter:
    """[R] Fig 2: for each task, every layer's representation of the task's images
    (support and query, :func:`task_activations`) under θ and under θ adapted on the
    support set, compared by :func:`similarity`. With ``unrelated = (θ_a, θ_b)``, two
    random-init networks of the same architecture (:func:`random_init`), the adapted
    network is also compared with θ_a (pair ``"unrelated"``: the floor) and θ_b (pair
    ``"null"``: the control), by the same code."""
    theta = detached(theta)
    p = next(iter(theta.values()))
    rows = []
    for i in range(len(tasks)):
        t = tasks[i].to(p.device, p.dtype)
        fast = detached(adapt(model, theta, t.x_support, t.y_support, replace(inner, first_order=True)))
        a1 = task_activations(model, fast, t)
        others = {INNER: task_activations(model, theta, t)}
        if unrelated:
            others[FLOOR], others[NULL] = (task_activations(model, detached(u), t)
                                           for u in unrelated)
        rows += [{"task": i, "layer": l, "pair": pair, **similarity(a0[l], a1[l])}
                 for pair, a0 in others.items() for l in a0]
    return BeforeAfter(pd.DataFrame(rows), list(model.layer_names))


# --------------------------------------------------------------------------------------------
# R5 — NIL
# --------------------------------------------------------------------------------------------
def nil_scores(bodies: Mapping[str, tuple], tasks: Task) -> dict[str, torch.Tensor]:
    """``label → (model, θ)`` → per-task NIL accuracy on ``tasks`` (the head is never used, so
    bodies trained with any head — 20-way, 1,200-way — compare on the same tasks)."""
    return {label: nil_accuracy(model, tasks, params=theta) for label, (model, theta) in bodies.items()}


@dataclass
class NilComparison:
    """NIL accuracies per body (``nil[label]``) beside the accuracy of the bodies that have a
    trained head (``head[label]``, same tasks)."""

    nil: dict[str, torch.Tensor]
    head: dict[str, torch.Tensor]

    def table(self) -> pd.DataFrame:
        rows = {}
        for label, v in self.nil.items():
            d = paired_difference(v, self.head[label]) if label in self.head else None
            rows[label] = {"NIL accuracy (%)": str(mean_ci95(v)).rstrip("%"),
                           "with its head and inner loop (%)": str(mean_ci95(self.head[label])).rstrip("%")
                           if label in self.head else "—",
                           "NIL minus head (points, paired)": _pct(d) if d else "—"}
        return pd.DataFrame(rows).T

    def claim_values(self) -> dict:
        return {"nil": {k: mean_ci95(self.nil[k]).mean for k in self.head},
                "head": {k: mean_ci95(self.head[k]).mean for k in self.head},
                **interval_values("nil_diff", {k: paired_difference(self.nil[k], self.head[k]) for k in self.head}),
                "others": {k: mean_ci95(v).mean for k, v in self.nil.items() if k not in self.head}}


def nil_over_seeds(bodies: Mapping[str, tuple], heads: Mapping[str, torch.Tensor],
                   tasks: Task, note: str = "") -> dict:
    """R5 per seed: NIL on each body (``label → (model, θ)``) minus the same run with
    its head (``heads[label]``, per-task accuracies on ``tasks``), as the record's
    ``seeds``."""
    nil = nil_scores(bodies, tasks)
    return seeds_passing({k: paired_difference(nil[k], heads[k]) for k in bodies}, note)


# --------------------------------------------------------------------------------------------
# Beyond the paper — over meta-training
# --------------------------------------------------------------------------------------------
def over_training(run, steps: Sequence[int], n_tasks: int, inner: InnerLoop, similarity_tasks: int = 10,
                  device="cpu") -> pd.DataFrame:
    """At every checkpoint in ``steps``: accuracy with full and with head-only adaptation on
    the first ``n_tasks`` fixed test tasks, their paired difference, and the body's mean CKA /
    SVCCA before vs after full adaptation on the first ``similarity_tasks`` tasks. The full
    adaptation's scores come from the run's score cache (:func:`run_task_scores`): training
    writes them for its learning curve (``curve_tasks`` tasks, its test-time inner loop)."""
    model = run.config.build_model().to(device)
    tasks = run.config.test_tasks(n_tasks)
    rows = {}
    for step in steps:
        theta = run.load_model(step, device).state_dict()
        full = run_task_scores(run, n_tasks, step=step, inner=inner, device=device).float()
        head = per_task_scores(model, tasks, replace(inner, adapt="head"), params=theta)
        d = paired_difference(head, full)
        ba = before_after(model, theta, tasks[:similarity_tasks], inner).summary()
        body = list(model.layer_names[:-1])
        rows[step] = {"full": mean_ci95(full).mean, "head only": mean_ci95(head).mean,
                      "head only − full": d.mean, "ci95": d.ci95,
                      "body CKA": float(ba.loc[body, "cka"].mean()), "body SVCCA": float(ba.loc[body, "svcca"].mean()),
                      "head SVCCA": float(ba.loc[model.layer_names[-1], "svcca"])}
    frame = pd.DataFrame(rows).T
    frame.index.name = "meta-step"
    return frame


def describe_over_training(frame: pd.DataFrame) -> str:
    """What :func:`over_training` measured, in numbers: the gap between head-only and full
    adaptation and the body's CKA at the first trained checkpoint, at the best one and at the end,
    and the first checkpoint from which head-only adaptation stays within 2 points of full."""
    f = frame[frame.index > 0]
    first, last = f.index[0], f.index[-1]
    gap = f["head only − full"]
    within = gap >= -0.02
    settled = next((s for s in f.index if within.loc[s:].all()), None)

    def at(s):
        return (f"step {s}: full {100 * f.loc[s, 'full']:.1f}%, head only {100 * f.loc[s, 'head only']:.1f}% "
                f"({100 * gap.loc[s]:+.1f} points), body CKA {f.loc[s, 'body CKA']:.3f}, head SVCCA "
                f"{f.loc[s, 'head SVCCA']:.3f}")
    return "\n".join([at(first), at(last),
                      f"head-only adaptation is within 2 points of full adaptation from step {settled} on"
                      if settled is not None else "head-only adaptation never stays within 2 points of full adaptation"])


# --------------------------------------------------------------------------------------------
# R2 — cost
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimeRatio:
    seconds_a: float          # median seconds per call of a
    seconds_b: float
    ratio: float              # seconds_a / seconds_b
    lo: float                 # 95% bootstrap interval of the ratio of medians
    hi: float
    repeats: int

    def __str__(self) -> str:
        return (f"{1000 * self.seconds_a:.1f} ms / {1000 * self.seconds_b:.1f} ms = {self.ratio:.2f}× "
                f"[{self.lo:.2f}, {self.hi:.2f}] ({self.repeats} interleaved repeats)")


def time_ratio(a: Callable[[], object], b: Callable[[], object], repeats: int = 20, warmup: int = 3,
               seed: int = 0) -> TimeRatio:
    """Wall-clock seconds of ``a()`` over ``b()``: warm both, then alternate them ``repeats``
    times (so a drift in the machine's speed hits both), ratio of medians, and a 95% percentile
    bootstrap interval over the repeats."""
    for _ in range(warmup):
        a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        for f, out in ((a, ta), (b, tb)):
            start = time.perf_counter()
            f()
            out.append(time.perf_counter() - start)
    ratio, lo, hi = median_ratio(ta, tb, seed=seed)
    return TimeRatio(statistics.median(ta), statistics.median(tb), ratio, lo, hi, repeats)


def meta_step(cfg, batch: Task, backend: str = "func", device="cpu") -> Callable[[], None]:
    """A closure doing one meta-training step of ``cfg`` (inner loop, query loss, backward to θ,
    Adam) on the fixed meta-batch ``batch``."""
    model = init_model(cfg, device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.meta_lr)
    inner, batch = cfg.inner(train=True), batch.to(device, next(model.parameters()).dtype)

    def step():
        losses, _ = query_loss(model, batch, inner, loss=cfg.loss, backend=backend,
                               coherence_gamma=cfg.coherence_penalty)
        opt.zero_grad(set_to_none=True)
        losses.mean().backward()
        opt.step()
    return step


def adaptation(cfg, tasks: Task, backend: str = "func", device="cpu") -> Callable[[], None]:
    """A closure adapting ``cfg``'s test-time inner loop to every task of ``tasks`` and scoring
    the queries (no meta-gradient: first order, as at test time)."""
    model = init_model(cfg, device)
    inner, tasks = replace(cfg.inner(train=False), first_order=True), tasks.to(device, next(model.parameters()).dtype)

    def run():
        query_loss(model, tasks, inner, loss=cfg.loss, backend=backend)
    return run


CONTROL = "control: MAML / MAML"  # R2's control row of cost()


def cost(maml_cfg, anil_cfg, batch: Task, test_tasks: Task, backends=("func", "higher"), repeats: int = 20,
         device="cpu", control: bool = True) -> dict[str, dict[str, TimeRatio]]:
    """R2: MAML's over ANIL's seconds per meta-step (on ``batch``) and per test-time adaptation
    (of ``test_tasks``), for each inner-loop backend: ``{backend: {"training": r, "adaptation": r}}``.
    ``"func"`` computes ANIL's frozen body once per task (:func:`mamlscope.core.inner.frozen_prefix`);
    ``"higher"`` runs MAML through ``higher`` and ANIL as usual implementations do
    (:func:`mamlscope.core.inner.query_loss_higher`: the body once per set, ``higher`` on the head
    alone). With
    ``control``, the row :data:`CONTROL`: MAML timed against a second MAML closure by the same
    code (``"func"``), whose ratio is 1 by construction: R2's negative control."""
    arms = {b: (maml_cfg, anil_cfg, b) for b in backends}
    if control:
        arms[CONTROL] = (maml_cfg, maml_cfg, "func")
    out = {}
    for name, (a, b, backend) in arms.items():
        out[name] = {
            "training": time_ratio(meta_step(a, batch, backend, device),
                                   meta_step(b, batch, backend, device), repeats),
            "adaptation": time_ratio(adaptation(a, test_tasks, backend, device),
                                     adaptation(b, test_tasks, backend, device),
                                     repeats),
        }
    return out


def cost_table(c: dict) -> pd.DataFrame:
    return pd.DataFrame({f"{what}: MAML / ANIL": {b: str(r[what]) for b, r in c.items()}
                         for what in ("training", "adaptation")})


def cost_values(c: dict, device, row: str = "func") -> dict:
    """What R2's rule reads, from ``c[row]`` (``"func"``: the measurement;
    :data:`CONTROL`: its control)."""
    r = c[row]
    return {"train": r["training"].ratio, "train_lo": r["training"].lo, "train_hi": r["training"].hi,
            "adapt": r["adaptation"].ratio, "adapt_lo": r["adaptation"].lo, "adapt_hi": r["adaptation"].hi,
            "device": str(device)}


# --------------------------------------------------------------------------------------------
# Chapter 4's measurements: one Evidence per claim
# --------------------------------------------------------------------------------------------
SETTINGS = {"omniglot_20w1s": "20w1s", "omniglot_20w5s": "20w5s"}  # R1's settings, as the chapter names them


@dataclass
class ReuseRuns:
    """The runs chapter 4 reads: MAML (seed 0) and ANIL (``P.anil_seeds`` seeds) per R1 setting
    the profile trains (``maml["20w1s"]``, ``anil["20w1s"][seed]``), and the multiclass Conv4."""

    maml: dict
    anil: dict
    multiclass: object
    not_run: list[str]

    def __str__(self) -> str:
        lines = [f"{s}: MAML {self.maml[s].dir.name}; ANIL " + ", ".join(r.dir.name for r in self.anil[s])
                 for s in self.maml]
        return "\n".join([*lines, f"multiclass: {self.multiclass.dir.name}"])

    def labelled(self) -> dict:
        """Label → run, for the cost table."""
        return {**{f"MAML {s}": r for s, r in self.maml.items()},
                **{f"ANIL {s} seed {i}": r for s, rs in self.anil.items() for i, r in enumerate(rs)}}


def reuse_runs(P, device="cpu") -> ReuseRuns:
    """Train (or load from the cache) the runs of :class:`ReuseRuns` at profile ``P``."""
    maml = {SETTINGS[s]: train(P.meta(s, "maml"), device=device) for s in P.r1_settings}
    anil = {SETTINGS[s]: [train(replace(P.meta(s, "anil"), seed=k), device=device) for k in range(P.anil_seeds)]
            for s in P.r1_settings}
    return ReuseRuns(maml, anil, train(P.omniglot_supervised, device=device),
                     [SETTINGS[s] for s in SETTINGS if s not in P.r1_settings])


def not_run_note(P, runs: ReuseRuns, device="cpu") -> str:
    """Why R1's settings that the profile does not train are missing: one meta-step's time there."""
    if "20w5s" not in runs.not_run:
        return ""
    cfg = P.meta("omniglot_20w5s")
    seconds = time_ratio(meta_step(cfg, cfg.train_tasks().batch(range(cfg.meta_batch)), device=device),
                         lambda: None, repeats=3, warmup=1).seconds_a
    return (f"not run at profile {P.name}: {', '.join(runs.not_run)} — one MAML meta-step there takes "
            f"{seconds:.2f} s on this machine, {cfg.steps} steps ≈ {seconds * cfg.steps / 60:.0f} min (plus "
            "ANIL), more than this chapter's share of the budget")


def r1_evidence(runs: ReuseRuns, n_tasks: int, device="cpu") -> Evidence:
    """R1: ANIL − MAML per setting and ANIL seed, against ANIL's own step-0 network."""
    trained = anil_vs_maml(runs.maml, runs.anil, n_tasks, device=device)
    null = anil_vs_maml(runs.maml, runs.anil, n_tasks, device=device, anil_step=0)
    return Evidence("R1", trained.claim_values(runs.not_run), {"ANIL at step 0": null.claim_values(runs.not_run)},
                    trained.seeds("ANIL seeds, each paired against the one MAML seed"), runs.maml["20w1s"],
                    table=pd.concat({"trained": trained.table(), "control: ANIL at step 0": null.table()}, axis=1),
                    analysis=trained)


def r2_evidence(P, repeats: int, device="cpu") -> Evidence:
    """R2: MAML's over ANIL's time per meta-step and per adaptation (20-way 1-shot), against MAML
    timed against itself."""
    cfg = P.meta("omniglot_20w1s")
    c = cost(cfg, P.meta("omniglot_20w1s", "anil"), cfg.train_tasks().batch(range(cfg.meta_batch)),
             cfg.test_tasks(20), repeats=repeats, device=device)
    return Evidence("R2", cost_values(c, device), {CONTROL: cost_values(c, device, CONTROL)},
                    one_run("one timing session in this process; the interval is over interleaved repeats"),
                    table=cost_table(c))


def r3_evidence(run, n_tasks: int, device="cpu") -> Evidence:
    """R3: the freezing table of ``run`` on its first ``n_tasks`` fixed test tasks, against the
    same table of its random initialisation (θ at step 0)."""
    model, test, inner = run.load_model(device=device), run.config.test_tasks(n_tasks), run.config.inner(train=False)
    full = run_task_scores(run, n_tasks, device=device)  # adapting every layer: cached with the run
    trained = freezing(model, test, inner, full=full)
    null = freezing(model, test, inner, params=run.load_model(0, device).state_dict())
    return Evidence("R3", trained.claim_values(), {"θ at step 0": null.claim_values()}, ONE_20W_SEED, run,
                    table=pd.concat({"MAML (trained)": trained.table(), "control: θ at step 0": null.table()}, axis=1),
                    analysis=trained)


def step_size_table(run, r3: Evidence, n_tasks: int, factors=(1, 5, 20, 50), device="cpu") -> pd.DataFrame:
    """:func:`head_only_step_sizes` for R3's model and tasks, reusing R3's scores."""
    scores = r3.analysis.scores
    return head_only_step_sizes(run.load_model(device=device), run.config.test_tasks(n_tasks),
                                run.config.inner(train=False), list(factors), scores[r3.analysis.full],
                                head=scores["head"])


def head_only_report(runs: ReuseRuns, five, r3: Evidence, n_tasks: int, device="cpu") -> dict[str, HeadOnly]:
    """:func:`head_only_diagnostics` on the first ``min(300, n_tasks)`` test tasks of the 20-way
    MAML model (reusing R3's scores), the 5-way MAML model ``five`` and ANIL (seed 0)."""
    n = min(300, n_tasks)
    maml, anil0 = runs.maml["20w1s"], runs.anil["20w1s"][0]
    test = maml.config.test_tasks(n_tasks)[:n]
    models = {"MAML 20-way": (maml, test), "MAML 5-way": (five, five.config.test_tasks(n)),
              "ANIL 20-way (seed 0)": (anil0, test)}
    scores = r3.analysis.scores
    known = {"MAML 20-way": {"head": scores["head"][:n], "full": scores[r3.analysis.full][:n]}}
    return {name: head_only_diagnostics(r.load_model(device=device), t, r.config.inner(train=False),
                                        **known.get(name, {}))
            for name, (r, t) in models.items()}


def r4_evidence(run, n_tasks: int, device="cpu") -> Evidence:
    """R4: each layer's similarity before vs after the test-time inner loop on ``n_tasks``
    held-out tasks, against two unrelated random-init networks (the null floor)."""
    model = run.load_model(device=device)
    unrelated = [random_init(run.config, seed, device) for seed in (1000, 1001)]
    r4 = before_after(model, model.state_dict(), run.config.test_tasks(n_tasks), run.config.inner(train=False),
                      unrelated=unrelated)
    return Evidence("R4", r4.claim_values(), {"unrelated random-init networks": r4.claim_values(NULL)},
                    ONE_20W_SEED, run, table=r4.with_control(), analysis=r4)


def r5_evidence(runs: ReuseRuns, r1: Evidence, n_tasks: int, device="cpu") -> Evidence:
    """R5: NIL on the MAML, ANIL (seed 0) and multiclass bodies and on random features, against
    MAML's and ANIL's accuracy with their heads (R1's scores); per ANIL seed beside."""
    maml, anils = runs.maml["20w1s"], runs.anil["20w1s"]
    test = maml.config.test_tasks(n_tasks)

    def body(r, step=None):
        return r.config.build_model().to(device), r.load_model(step, device).state_dict()

    nil = nil_scores({"MAML": body(maml), "ANIL": body(anils[0]), "multiclass": body(runs.multiclass),
                      "random features": body(maml, 0)}, test)
    scores = r1.analysis.scores["20w1s"]
    heads = {"MAML": scores["MAML"], "ANIL": scores["ANIL seed 0"]}
    trained = NilComparison(nil, heads)
    null = NilComparison({k: nil["random features"] for k in heads}, heads)
    seeds = nil_over_seeds({f"ANIL seed {i}": body(r) for i, r in enumerate(anils)},
                           {f"ANIL seed {i}": scores[f"ANIL seed {i}"] for i in range(len(anils))}, test,
                           note="ANIL seeds (NIL − that seed with its head); one MAML seed")
    table = pd.concat({"trained": trained.table(), "control: NIL on random features": null.table()},
                      axis=1).fillna("—")
    return Evidence("R5", trained.claim_values(), {"NIL on random features": null.claim_values()}, seeds, maml,
                    table=table, analysis=trained)
