"""How representations change: under the inner loop, under meta-training, under supervised training.

The measurements behind Goerttler & Obermayer's [G] Figs 1–3, built on :mod:`mamlscope.metrics`.
Every function compares *the same inputs* under two parameter sets θ_a, θ_b, layer by layer:

    d_ℓ(θ_a, θ_b; X) = 1 − ρ_Spearman( triu RDM(h_ℓ(θ_a, X)), triu RDM(h_ℓ(θ_b, X)) )

or CKA as a similarity. The RDMs come in two kinds (:data:`METRICS`): ``"correlation"``
(1 − Pearson between examples: the default of [G]'s released code, which made their figures)
and ``"euclidean"`` ([G] App. B). Each analysis computes both from the same activations.  ``h_ℓ(θ, X)`` is layer ℓ of the
model with parameters θ on inputs X (:meth:`mamlscope.core.models.Conv4.forward` with
``return_activations=True``). BatchNorm uses the statistics of X itself (transductive).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch.func import functional_call

from mamlscope.core.data import Task
from mamlscope.core.inner import InnerLoop, _loss_fn, adapt, detached
from mamlscope.evidence import ONE_20W_SEED, Evidence
from mamlscope.measure.controls import matched_perturbation
from mamlscope.metrics import cka, cka_grams, compare_rdms, gram, rdm, rdm_of_rdms
from mamlscope.metrics.rsa import flatten_examples
from mamlscope.stats import (
    log_depth_slope,
    mean_ci,
    over_seeds,
    ratio_over_units,
    relative_drift,
    t_interval,
)

Params = Mapping[str, torch.Tensor]
METRICS = ("correlation", "euclidean")  # the first is what [G]'s figures (and the verdicts) use
CONSTANT = "uncorrelated"  # an example whose activation vector is constant (ReLU can do that) has
                           # correlation 0 with every other example: its correlation distance is 1


def _dtype(params: Params) -> torch.dtype:
    return next(iter(params.values())).dtype


def _tasks_like(tasks: Task, params: Params) -> Task:
    """``tasks`` on the device and in the dtype of θ."""
    p = next(iter(params.values()))
    return tasks.to(p.device, p.dtype)


def activations(model, params: Params, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
    """Every layer's activation of ``model`` with parameters θ=``params`` on inputs ``x``
    (cast to θ's dtype): ``{layer: (n, ...)}``, detached."""
    x = x.to(_dtype(params))
    with torch.no_grad():
        _, acts = functional_call(model, dict(params), (x,), {"return_activations": True})
    return OrderedDict((k, v.detach()) for k, v in acts.items())


def _dissimilarities(acts_a, acts_b, metrics: Sequence[str]) -> dict[str, list[float]]:
    """``{metric: [d_ℓ for each layer]}`` from two sets of activations of the same inputs."""
    return {m: [compare_rdms(rdm(acts_a[k], m, CONSTANT), rdm(acts_b[k], m, CONSTANT)) for k in acts_a] for m in metrics}


def layer_dissimilarity(model, params_a: Params, params_b: Params, x: torch.Tensor,
                        metric: str = "correlation") -> dict[str, float]:
    """``{layer: d_ℓ(θ_a, θ_b; x)}``: RSA dissimilarity of each layer under two parameter sets."""
    aa, ab = activations(model, params_a, x), activations(model, params_b, x)
    return dict(zip(aa, _dissimilarities(aa, ab, [metric])[metric]))


def layer_cka(model, params_a: Params, params_b: Params, x: torch.Tensor, kernel: str = "linear") -> dict[str, float]:
    """``{layer: CKA(h_ℓ(θ_a, x), h_ℓ(θ_b, x))}`` (a similarity: 1 = same up to rotation and
    scale); ``kernel="rbf"`` is the RBF CKA of Kornblith et al.'s released code, which [G] used."""
    aa, ab = activations(model, params_a, x), activations(model, params_b, x)
    return {k: cka(aa[k], ab[k], kernel=kernel) for k in aa}


def _flat(acts) -> "OrderedDict[str, torch.Tensor]":
    """Each layer's activations as the float64 ``(n, d)`` matrix every metric starts from,
    converted once (the same values :func:`rdm` and :func:`cka` would convert to)."""
    return OrderedDict((k, flatten_examples(v)) for k, v in acts.items())


def _layer_rdms(acts, metric: str) -> list[torch.Tensor]:
    return [rdm(a, metric, CONSTANT) for a in acts.values()]


def _against(rdms_a: Sequence[torch.Tensor], acts_b, metric: str) -> list[float]:
    """d_ℓ between precomputed RDMs of one parameter set and the activations of
    another."""
    return [compare_rdms(r, rdm(b, metric, CONSTANT))
            for r, b in zip(rdms_a, acts_b.values())]


def _matched(model, theta: Params, moved: Params, seed) -> dict[str, torch.Tensor]:
    """θ's parameters moved at random by the per-tensor distances of ``moved`` from θ
    (:func:`mamlscope.measure.controls.matched_perturbation`); buffers as in ``moved``."""
    names = [n for n, _ in model.named_parameters()]
    before, after = {n: theta[n] for n in names}, {n: moved[n] for n in names}
    null = matched_perturbation(before, after, seed)
    return {**dict(moved), **null}


def finetune_dissimilarity(model, theta: Params, tasks: Task, inner: InnerLoop, *,
                           on: str = "query", metrics: Sequence[str] = METRICS,
                           null_draws: int = 0, null_metric: str = METRICS[0],
                           seed: int | torch.Generator = 0) -> dict[str, np.ndarray]:
    """[G] Fig 1a: for each task, adapt θ on its support set with ``inner`` and compare
    every layer's representation of the task's ``on`` inputs (``"query"`` or
    ``"support"``) after adaptation with the one at θ.  Returns ``{metric: (n_tasks,
    n_layers)}``, layers in model order.

    The negative control: with ``null_draws = k``, also ``{"null": (k, n_tasks,
    n_layers)}``, the same comparison (under ``null_metric``) for θ moved at random by
    the inner loop's own per-tensor change norms on that task
    (:func:`mamlscope.measure.controls.matched_perturbation`, draws from one generator seeded
    with ``seed``, task by task)."""
    theta = detached(theta)
    inner = replace(inner, first_order=True)
    tasks = _tasks_like(tasks, theta)
    gen = torch.Generator().manual_seed(seed) if isinstance(seed, int) else seed
    rows = {m: [] for m in metrics}
    null = []
    for i in range(len(tasks)):
        t = tasks[i]
        adapted = detached(adapt(model, theta, t.x_support, t.y_support, inner))
        x = t.x_query if on == "query" else t.x_support
        base, after = activations(model, theta, x), activations(model, adapted, x)
        extra = null_draws and null_metric not in metrics
        wanted = [*metrics] + ([null_metric] if extra else [])
        base_rdms = {m: _layer_rdms(base, m) for m in wanted}
        for m in metrics:
            rows[m].append(_against(base_rdms[m], after, m))
        if null_draws:
            moved = [_matched(model, theta, adapted, gen) for _ in range(null_draws)]
            ref = base_rdms[null_metric]
            null.append([_against(ref, activations(model, p, x), null_metric) for p in moved])
    out = {m: np.asarray(r) for m, r in rows.items()}
    if null_draws:
        out["null"] = np.asarray(null).transpose(1, 0, 2)
    return out


def depth_trend(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """How a per-layer quantity grows with depth, as a number with an interval.

    ``values (n_units, n_layers)``: for each unit (a task, a seed) the Spearman correlation
    between layer index and value, ρ_u ∈ [−1, 1]; returns ``(mean ρ, lower, upper)`` with a
    Student-t interval over units. ρ = 1: strictly increasing with depth for every unit.
    """
    depth = np.arange(values.shape[1])
    rhos = np.array([stats.spearmanr(depth, row).statistic for row in values], dtype=float)
    rhos = rhos[np.isfinite(rhos)]
    if len(rhos) < 2 or np.allclose(rhos, rhos[0]):
        mean = float(rhos.mean())
        return mean, mean, mean
    return t_interval(rhos, confidence)


def inner_vs_meta_rdms(model, thetas: Sequence[Params], tasks: Task, eval_x: torch.Tensor,
                       inner: InnerLoop, inner_steps: Sequence[int] = (0, 1, 5, 10),
                       metrics: Sequence[str] = METRICS):
    """[G] Fig 3. For every checkpoint θ_c, every task i and every number of inner steps s, the
    representation of the fixed evaluation inputs ``eval_x`` after adapting θ_c on task i's
    support set for s steps.  Returns ``(labels, {metric: {layer: RDM-of-RDMs (m, m)}})`` with
    one label ``(c, i, s)`` per representation (s = 0 once per checkpoint: it does not depend on i)."""
    max_steps = max(inner_steps)
    long_inner = replace(inner, steps=max_steps, first_order=True)
    labels, rdms = [], {m: {} for m in metrics}

    def add(params):
        for layer, a in activations(model, params, eval_x).items():
            for m in metrics:
                rdms[m].setdefault(layer, []).append(rdm(a, m, CONSTANT))

    for c, theta in enumerate(thetas):
        theta = detached(theta)
        tasks = tasks.to(eval_x.device, _dtype(theta))
        add(theta)
        labels.append((c, None, 0))
        for i in range(len(tasks)):
            t = tasks[i]
            path = adapt(model, theta, t.x_support, t.y_support, long_inner, trajectory=True)
            for s in inner_steps:
                if s == 0:
                    continue
                add(detached(path[s]))
                labels.append((c, i, s))
    return labels, {m: {layer: rdm_of_rdms(torch.stack(rs)) for layer, rs in by_layer.items()}
                    for m, by_layer in rdms.items()}


def inner_and_meta_change(labels, dissim: torch.Tensor, inner_steps=(1, 5, 10)) -> dict[str, float]:
    """From one layer's RDM-of-RDMs (see :func:`inner_vs_meta_rdms`):

    * ``meta``: mean d(θ_c, θ_{c+1}) over consecutive checkpoints (no inner step);
    * ``inner_s``: mean over checkpoints c and tasks i of d(θ_c, θ_c adapted s steps on task i);
    * ``ratio_s``: inner_s / meta.
    """
    meta, inner = change_arrays(labels, dissim, inner_steps)
    out = {"meta": float(meta.mean())}
    for s in inner_steps:
        out[f"inner_{s}"] = float(inner[s].mean())
        out[f"ratio_{s}"] = float(inner[s].mean() / meta.mean()) if meta.mean() > 0 else float("inf")
    return out


def change_arrays(labels, dissim: torch.Tensor, inner_steps=(1, 5, 10)):
    """``meta (n_ckpt − 1,)``: d(θ_c, θ_{c+1}); ``inner[s] (n_ckpt, n_tasks)``: d(θ_c, θ_c adapted
    s steps on task i), from one layer's RDM of RDMs."""
    index = {lab: k for k, lab in enumerate(labels)}
    n_ckpt = 1 + max(c for c, _, _ in labels)
    n_tasks = 1 + max(i for _, i, _ in labels if i is not None)
    meta = np.array([dissim[index[(c, None, 0)], index[(c + 1, None, 0)]].item() for c in range(n_ckpt - 1)])
    inner = {s: np.array([[dissim[index[(c, None, 0)], index[(c, i, s)]].item() for i in range(n_tasks)]
                          for c in range(n_ckpt)]) for s in inner_steps}
    return meta, inner


# --------------------------------------------------------------------------------------------
# The chapters' analyses, one object per figure of [G]: measured once, then tabulated, plotted
# and handed to a claim's rule (``claim_values``).
# --------------------------------------------------------------------------------------------
def _theta(run, step: int, device) -> dict[str, torch.Tensor]:
    return run.load_model(step, device).state_dict()


@dataclass
class FinetuneChange:
    """[G] Fig 1a: ``d[metric][c, i, ℓ]`` = dissimilarity of layer ℓ on task i's
    queries, after the fine-tuning inner loop from checkpoint ``steps[c]``, against the
    same checkpoint unadapted; and ``drift[metric][c, ℓ]`` = dissimilarity of θ_c
    against θ_0 on the same inputs (the first tasks' queries), no inner loop.

    The negative control, ``null[k, c, i, ℓ]`` (``null_metric`` RDMs): the same
    comparison for θ_c moved at random by the inner loop's per-tensor change norms on
    task i (draw k of 2). It keeps the per-layer size of the update, and whatever the
    architecture makes of it, and drops its direction."""

    steps: list[int]
    layers: list[str]
    d: dict[str, np.ndarray]      # metric → (n_checkpoints, n_tasks, n_layers)
    drift: dict[str, np.ndarray]  # metric → (n_checkpoints, n_layers)
    null: np.ndarray | None = None  # (2, n_checkpoints, n_tasks, n_layers)
    null_metric: str = METRICS[0]

    def trend(self, metric: str = METRICS[0]) -> pd.DataFrame:
        """Per checkpoint, the mean over tasks of ρ(layer index, d) with its 95%
        interval."""
        return _trend(self.d[metric], self.steps)

    @staticmethod
    def judged(arm: np.ndarray, control: np.ndarray, steps: Sequence[int]) -> dict:
        """What G1's rule reads, for an ``arm (n_ckpt, n_tasks, n_layers)`` against its
        ``control`` (same shape): per checkpoint, ρ(depth, d) of the arm with its
        interval over tasks, and the paired difference over tasks of the log-depth
        slopes (:func:`mamlscope.stats.log_depth_slope`), arm − control, with its t
        interval."""
        trend = _trend(arm, steps)
        diff = [t_interval(log_depth_slope(a) - log_depth_slope(c))
                for a, c in zip(arm, control)]
        return {"steps": list(steps), "rho": trend.rho.tolist(),
                "rho_lo": trend.lo.tolist(), "rho_hi": trend.hi.tolist(),
                "slope": [float(log_depth_slope(a).mean()) for a in arm],
                "slope_diff": [d[0] for d in diff],
                "slope_diff_lo": [d[1] for d in diff],
                "slope_diff_hi": [d[2] for d in diff], "n_tasks": int(arm.shape[1])}

    def table(self, metric: str = METRICS[0]) -> pd.DataFrame:
        """Mean d per layer and checkpoint, ρ and its interval; ρ under the other metric
        beside; and, under the control's metric, the control's ρ and the slope contrast
        with the control."""
        t = pd.DataFrame(self.d[metric].mean(axis=1), columns=self.layers,
                         index=pd.Index(self.steps, name="step")).round(3)
        trend = self.trend(metric)
        t["ρ (depth)"] = trend.rho.round(2).to_numpy()
        t["95% CI"] = [f"[{lo:.2f}, {hi:.2f}]" for lo, hi in zip(trend.lo, trend.hi)]
        for other in self.d:
            if other != metric:
                t[f"ρ ({other} RDMs)"] = self.trend(other).rho.round(2).to_numpy()
        if self.null is not None:
            v = self.claim_values()
            rho_control = _trend(self.null[0], self.steps).rho.to_numpy()
            t["ρ control"] = np.round(rho_control, 2)
            diffs = zip(v["slope_diff"], v["slope_diff_lo"], v["slope_diff_hi"])
            t["slope − control's [95% CI]"] = [f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]"
                                               for m, lo, hi in diffs]
        return t

    def beside_control(self) -> pd.DataFrame:
        """Per checkpoint, mean d per layer of the inner loop beside its
        matched-perturbation control (``null_metric`` RDMs), and the log-depth slope of
        each."""
        m = self.null_metric
        rows = {}
        for c, s in enumerate(self.steps):
            for arm, a in (("inner loop", self.d[m][c]), ("control", self.null[0][c])):
                slope = round(float(log_depth_slope(a).mean()), 2)
                rows[(s, arm)] = {**dict(zip(self.layers, a.mean(0).round(4))),
                                  "log-depth slope": slope}
        return pd.DataFrame(rows).T.rename_axis(["step", "arm"])

    def claim_values(self) -> dict:
        """G1's values: the inner loop against control draw 0 (``null_metric`` RDMs),
        with ρ under every metric beside."""
        m = self.null_metric
        values = {"metric": m, **self.judged(self.d[m], self.null[0], self.steps),
                  "rho_control": _trend(self.null[0], self.steps).rho.tolist()}
        for other in self.d:
            if other != m:
                values[f"rho_{other}"] = self.trend(other).rho.tolist()
        return values

    def null_values(self) -> dict:
        """The same values, by the same code, with control draw 1 in the inner loop's
        place: a null whose arm is no different from its control, which G1's rule must
        reject."""
        return {"metric": self.null_metric,
                **self.judged(self.null[1], self.null[0], self.steps)}

    def evidence(self, run) -> Evidence:
        """G1's evidence, read off ``run`` (the book's 20-way MAML model)."""
        return Evidence("G1", self.claim_values(), {"control draw 1 against draw 0": self.null_values()},
                        ONE_20W_SEED, run)


def _trend(values: np.ndarray, steps: Sequence[int]) -> pd.DataFrame:
    rows = [dict(zip(["rho", "lo", "hi"], depth_trend(v)), step=s)
            for v, s in zip(values, steps)]
    return pd.DataFrame(rows).set_index("step")


def finetune_over_training(run, tasks: Task, inner: InnerLoop, device="cpu",
                           metrics=METRICS, null_metric: str = METRICS[0],
                           control_seed: int = 0) -> FinetuneChange:
    """:func:`finetune_dissimilarity` at every checkpoint of ``run`` with two
    matched-perturbation draws per task (seeded by ``control_seed`` and the checkpoint),
    and θ_c against θ_0."""
    model = run.config.build_model().to(device)
    steps = run.checkpoint_steps()
    tasks = tasks.to(device)
    x = tasks.x_query[: max(1, min(len(tasks), 5))].flatten(0, 1)
    theta0 = _theta(run, steps[0], device)
    per_step, drift = [], []
    for s in steps:
        theta = _theta(run, s, device)
        per_step.append(finetune_dissimilarity(
            model, theta, tasks, inner, metrics=metrics, null_draws=2,
            null_metric=null_metric, seed=control_seed * 1_000_003 + s))
        drift.append(_dissimilarities(activations(model, theta0, x),
                                      activations(model, theta, x), metrics))
    d = {m: np.stack([p[m] for p in per_step]) for m in metrics}
    null = np.stack([p["null"] for p in per_step], axis=1)
    drift = {m: np.array([r[m] for r in drift]) for m in metrics}
    return FinetuneChange(steps, list(model.layer_names), d, drift, null, null_metric)


# CKA kernels of G2: [G]'s released cka.py (σ² = median of the non-zero squared
# distances; the verdict's), Kornblith et al.'s released notebook as this book's default
# (σ = ½ · median distance), and linear CKA.
G2_KERNELS = {"rbf [G]": dict(kernel="rbf", sigma_frac=1.0, median="nonzero"),
              "rbf [Kornblith]": dict(kernel="rbf", sigma_frac=0.5, median="all"),
              "linear": dict(kernel="linear")}


@dataclass
class SupervisedChange:
    """[G] Fig 2: per seed, checkpoint and layer, RSA dissimilarity (both RDM metrics)
    and CKA (:data:`G2_KERNELS`) of fixed inputs' activations against those at the
    random initialisation (step 0).

    The negative control, ``null_rsa[metric][k, seed, ℓ]`` and ``null_cka[kernel][k,
    seed, ℓ]``: the same comparison for the random initialisation θ_0 moved at random by
    the per-tensor distances that training moved it (θ_T − θ_0), draw k of 2: a
    random-init network that has travelled as far, layer by layer, as the trained one,
    without learning anything."""

    steps: list[int]
    layers: list[str]
    rsa: dict[str, np.ndarray]  # metric → (n_seeds, n_checkpoints, n_layers)
    cka: dict[str, np.ndarray]  # kernel → (n_seeds, n_checkpoints, n_layers)
    final_accuracy: list[float]  # last logged mini-batch accuracy of each run
    null_rsa: dict[str, np.ndarray] | None = None  # metric → (2, n_seeds, n_layers)
    null_cka: dict[str, np.ndarray] | None = None  # kernel → (2, n_seeds, n_layers)
    seeds: list[int] | None = None

    def final_table(self) -> pd.DataFrame:
        """After training, per layer: mean ± t half-width over seeds of every measure,
        and the matched-perturbation control's (draw 0) beside each."""
        cols = {}
        def cells(a):
            return [f"{mu:.3f} ± {c:.3f}" for mu, c in zip(*mean_ci(a))]

        arms = (("RSA d", self.rsa, self.null_rsa), ("CKA", self.cka, self.null_cka))
        for name, measured, control in arms:
            for key, a in measured.items():
                label = f"{name} ({key})" if name == "RSA d" else f"{key} {name}"
                cols[label] = cells(a[:, -1])
                if control is not None:
                    cols[f"{label}, control"] = cells(control[key][0])
        index = pd.Index(self.layers, name=f"after {self.steps[-1]} steps")
        return pd.DataFrame(cols, index=index)

    @staticmethod
    def judged(rsa: np.ndarray, sim: np.ndarray, control_rsa: np.ndarray,
               layers: Sequence[str], early: int = 3) -> dict:
        """What G2's rule reads, for an arm's RSA dissimilarities and CKA similarities
        ``(n_seeds, n_layers)`` after training, against its control's RSA ``(n_seeds,
        n_layers)``: ρ(depth, ·) over seeds for both; per seed the log-depth slope of
        the RSA profile minus the control's (:func:`mamlscope.stats.log_depth_slope`),
        with its t interval over seeds; and per early layer the margin CKA − (1 − d)
        with its t interval over seeds."""
        r, c = depth_trend(rsa), depth_trend(sim)
        diff = log_depth_slope(rsa) - log_depth_slope(control_rsa)
        d_mean, d_lo, d_hi = t_interval(diff)
        margin = {layer: t_interval(sim[:, j] - (1 - rsa[:, j]))
                  for j, layer in enumerate(layers[:early])}
        similarity = (1 - rsa[:, :early]).mean(0).tolist()
        return {"rsa_rho": r[0], "rsa_rho_lo": r[1], "rsa_rho_hi": r[2],
                "cka_rho": c[0], "cka_rho_lo": c[1], "cka_rho_hi": c[2],
                "slope_diff": d_mean, "slope_diff_lo": d_lo, "slope_diff_hi": d_hi,
                "slope_diff_by_seed": diff.tolist(),
                "early_margin": {k: v[0] for k, v in margin.items()},
                "early_margin_lo": {k: v[1] for k, v in margin.items()},
                "early_cka": dict(zip(layers[:early], sim[:, :early].mean(0).tolist())),
                "early_rsa_similarity": dict(zip(layers[:early], similarity)),
                "n_seeds": int(rsa.shape[0]), "early_layers": list(layers[:early])}

    def claim_values(self, metric: str = "euclidean", kernel: str = "rbf [G]",
                     early: int = 3) -> dict:
        """G2's values: trained runs against control draw 0; Euclidean RDMs as [G]'s Fig
        2 and [G]'s RBF bandwidth; ρ under the other RDM metric and kernels beside."""
        values = {"metric": metric, "kernel": kernel,
                  **self.judged(self.rsa[metric][:, -1], self.cka[kernel][:, -1],
                                self.null_rsa[metric][0], self.layers, early),
                  "rsa_rho_control": depth_trend(self.null_rsa[metric][0])[0],
                  "cka_rho_control": depth_trend(self.null_cka[kernel][0])[0]}
        for m in self.rsa:
            if m != metric:
                values[f"rsa_rho_{m}"] = depth_trend(self.rsa[m][:, -1])[0]
        for k in self.cka:
            if k != kernel:
                values[f"cka_rho_{k}"] = depth_trend(self.cka[k][:, -1])[0]
        return values

    def null_values(self, metric: str = "euclidean", kernel: str = "rbf [G]",
                    early: int = 3) -> dict:
        """The same values, by the same code, with control draw 1 in the trained runs'
        place."""
        return {"metric": metric, "kernel": kernel,
                **self.judged(self.null_rsa[metric][1], self.null_cka[kernel][1],
                              self.null_rsa[metric][0], self.layers, early)}

    def seed_values(self, metric: str = "euclidean", kernel: str = "rbf [G]") -> dict:
        """Per seed, the decisive contrast (RSA log-depth slope − the control's) and how
        many seeds pass it (> 0) together with their own depth ordering (ρ ≥ 0.7 for
        RSA, ≤ −0.7 for CKA): the ``seeds`` of G2's record."""
        rsa, sim = self.rsa[metric][:, -1], self.cka[kernel][:, -1]
        diff = log_depth_slope(rsa) - log_depth_slope(self.null_rsa[metric][0])
        rho_r = [depth_trend(r[None])[0] for r in rsa]
        rho_c = [depth_trend(c[None])[0] for c in sim]
        seeds = self.seeds or list(range(len(diff)))
        ok = {s: bool(d > 0 and a >= 0.7 and b <= -0.7)
              for s, d, a, b in zip(seeds, diff, rho_r, rho_c)}
        o = over_seeds(dict(zip(seeds, diff.tolist())), lambda v: v > 0)
        return {"n": o.n, "passing": sum(ok.values()), "values": o.values,
                "mean": o.mean, "lo": o.lo, "hi": o.hi, "passes": ok,
                "note": "per seed: RSA log-depth slope − the control's; a seed "
                        "passes when it is > 0 and the seed's own RSA ρ ≥ 0.7 and "
                        "CKA ρ ≤ −0.7"}

    def evidence(self) -> Evidence:
        """G2's evidence: the supervised seeds, their control and the per-seed contrast."""
        return Evidence("G2", self.claim_values(), {"control draw 1": self.null_values()},
                        self.seed_values())


def supervised_change(runs, x: torch.Tensor, device="cpu", metrics=METRICS,
                      kernels=None, control_seed: int = 0) -> SupervisedChange:
    """:class:`SupervisedChange` of supervised ``runs`` (one per seed, same checkpoints)
    on ``x``, with two matched-perturbation control draws per run (seeded by
    ``control_seed`` and the run's seed)."""
    kernels = dict(kernels or G2_KERNELS)
    steps = runs[0].checkpoint_steps()
    rsa, sim = {m: [] for m in metrics}, {k: [] for k in kernels}
    null_rsa, null_sim = {m: [[], []] for m in metrics}, {k: [[], []] for k in kernels}
    for r in runs:
        net = r.config.build_model().to(device)
        theta0, theta_t = _theta(r, 0, device), _theta(r, steps[-1], device)
        a0 = _flat(activations(net, theta0, x))
        per = [_flat(activations(net, _theta(r, s, device), x)) for s in steps]
        gen = torch.Generator().manual_seed(control_seed * 1_000_003 + r.config.seed)
        nulls = [_flat(activations(net, _matched(net, theta0, theta_t, gen), x))
                 for _ in range(2)]
        for m in metrics:
            base = _layer_rdms(a0, m)
            rsa[m].append([_against(base, a, m) for a in per])
            for k, a in enumerate(nulls):
                null_rsa[m][k].append(_against(base, a, m))
        for k, kw in kernels.items():
            base = {l: gram(a0[l], **kw) for l in a0}  # step 0's Gram matrices, once
            sim[k].append([[cka_grams(base[l], gram(a[l], **kw)) for l in a0] for a in per])
            for j, a in enumerate(nulls):
                null_sim[k][j].append([cka_grams(base[l], gram(a[l], **kw)) for l in a0])
    layers = list(runs[0].config.build_model().layer_names)
    accuracy = [r.metrics()[-1]["train_score"] for r in runs]
    return SupervisedChange(steps, layers, {m: np.array(v) for m, v in rsa.items()},
                            {k: np.array(v) for k, v in sim.items()}, accuracy,
                            {m: np.array(v) for m, v in null_rsa.items()},
                            {k: np.array(v) for k, v in null_sim.items()},
                            [r.config.seed for r in runs])


def learning_collapse(run, start: int, end: int | None = None) -> dict:
    """The largest fall of the run's learning curve (``test_score`` of its logged
    checkpoints) below its running maximum at steps ``start … end``: ``drop`` (fraction),
    the ``step`` of the low point, the running maximum before it (``from``) and the score
    there (``to``), and the last score (``final``). ``drop`` 0 when the curve never falls."""
    curve = sorted((r["step"], r["test_score"]) for r in run.metrics()
                   if "test_score" in r)
    best, worst = -np.inf, {"drop": 0.0, "step": None, "from": None, "to": None}
    for step, score in curve:
        in_window = start <= step and (end is None or step <= end)
        if in_window and best - score > worst["drop"]:
            worst = {"drop": float(best - score), "step": int(step),
                     "from": float(best), "to": float(score)}
        best = max(best, score)
    return {**worst, "final": float(curve[-1][1]) if curve else None}


@dataclass
class MetaChange:
    """[G] Fig 1b: ``d[metric][k, ℓ]`` = dissimilarity of layer ℓ between θ at
    consecutive checkpoints of the regular grid, ``grid[k]`` and ``grid[k+1]`` (Δ apart),
    on fixed inputs; ``null[metric][k, ℓ]`` = the same from θ at ``grid[k]`` to θ moved by
    a random change with the per-tensor norms of that meta-training interval
    (:func:`mamlscope.measure.controls.matched_perturbation`): G3's control.

    The *plateau* is the median change per interval over the second half of training,
    its *drift* :func:`~mamlscope.stats.relative_drift` of the same intervals (medians:
    robust to one or two intervals of a collapse and its recovery,
    :func:`learning_collapse`)."""

    grid: list[int]
    layers: list[str]
    d: dict[str, np.ndarray]  # metric → (len(grid) − 1, n_layers)
    null: dict[str, np.ndarray] | None = None  # same shape: matched random steps
    collapse: dict | None = None  # learning_collapse over the plateau window
    null2: dict[str, np.ndarray] | None = None  # a second, independent draw of the control

    @property
    def delta(self) -> int:
        return self.grid[1] - self.grid[0]

    @property
    def half(self) -> int:
        return len(self.grid[1:]) // 2

    @property
    def window(self) -> tuple[int, int]:
        """First and last step of the plateau window (the second half's intervals)."""
        return self.grid[self.half], self.grid[-1]

    def _d(self, metric: str, null: bool) -> np.ndarray:
        return (self.null if null else self.d)[metric]

    def plateau(self, metric: str = METRICS[0], null: bool = False) -> np.ndarray:
        """Median change per interval over the second half of training, per layer."""
        return np.median(self._d(metric, null)[self.half:], axis=0)

    def drift(self, metric: str = METRICS[0], null: bool = False) -> np.ndarray:
        """Per layer, how far the change still moves over the second half
        (:func:`~mamlscope.stats.relative_drift`): small when it has levelled off."""
        late = self._d(metric, null)[self.half:]
        return np.array([relative_drift(y) for y in late.T])

    def excess(self, metric: str = METRICS[0], null: bool = False) -> np.ndarray:
        """Per layer, log(change / control's change) per interval of the second half, with
        its t interval over those intervals: rows (mean, lo, hi). Above 0: meta-training's
        steps move the representation more than random steps of the same per-tensor sizes
        from the same θ. ``null=True``: the control against its second draw (``null2``),
        which should straddle 0."""
        if self.null is None:
            raise ValueError("no control measured (null is None).")
        a, b = (self.null, self.null2) if null else (self.d, self.null)
        if b is None:
            return np.full((3, len(self.layers)), np.nan)
        floor = 1e-12
        logs = np.log(np.maximum(a[metric][self.half:], floor)) \
            - np.log(np.maximum(b[metric][self.half:], floor))
        return np.array([t_interval(col) for col in logs.T]).T

    def table(self) -> pd.DataFrame:
        cols = {}
        for m in self.d:
            cols[f"plateau ({m})"] = self.plateau(m)
            if self.null is not None:
                cols[f"control: plateau ({m})"] = self.plateau(m, null=True)
                cols[f"log(change / control) ({m})"] = self.excess(m)[0]
            cols[f"relative drift ({m})"] = self.drift(m)
        return pd.DataFrame(cols, index=self.layers).round(4)

    def claim_values(self, metric: str = METRICS[0], last: str = "conv4",
                     null: bool = False) -> dict:
        """What G3's rule reads; ``null=True``: the same keys measured on the control."""
        j = self.layers.index(last)
        plateau, drift = self.plateau(metric, null), self.drift(metric, null)
        values = {"metric": metric, "plateau": dict(zip(self.layers, plateau)),
                  "plateau_first": float(plateau[0]), "plateau_last": float(plateau[j]),
                  "last_layer": last, "drift_last": float(drift[j]), "delta": self.delta,
                  "steps": self.grid[-1], "window": list(self.window),
                  "series_last": self._d(metric, null)[:, j].tolist(), "grid": self.grid}
        if self.null is not None:
            mean, lo, hi = self.excess(metric, null)[:, j]
            values.update(excess_last=float(mean), excess_last_lo=float(lo),
                          excess_last_hi=float(hi))
        if self.collapse is not None:
            values["collapse"] = self.collapse
        for other in self.d:
            if other != metric:
                values[f"plateau_{other}"] = dict(zip(self.layers,
                                                      self.plateau(other, null)))
        return values

    def collapse_text(self) -> str:
        """Whether the learning curve falls by 2 points or more inside the plateau window."""
        c, (w0, w1) = self.collapse, self.window
        if c["drop"] >= 0.02:
            return (f"plateau window {w0}–{w1}: the learning curve falls from {100 * c['from']:.1f}% to "
                    f"{100 * c['to']:.1f}% at step {c['step']} ({100 * c['drop']:.1f} points below its best so far) "
                    f"and ends at {100 * c['final']:.1f}%")
        return f"plateau window {w0}–{w1}: the learning curve never falls more than 2 points below its best"

    def evidence(self, run) -> Evidence:
        """G3's evidence, read off ``run``."""
        return Evidence("G3", self.claim_values(), {"control": self.claim_values(null=True)},
                        ONE_20W_SEED, run)


def meta_change(run, x: torch.Tensor, device="cpu", metrics=METRICS,
                seed: int = 0) -> MetaChange:
    """:class:`MetaChange` over the checkpoints of ``run`` on its regular grid (multiples
    of ``checkpoint_every``; the log-spaced early checkpoints are left out), with its
    control (random steps of the intervals' per-tensor norms, seeded) and the learning
    curve's largest collapse in the plateau window."""
    model = run.config.build_model().to(device)
    grid = [s for s in run.checkpoint_steps() if s % run.config.checkpoint_every == 0]
    thetas = {s: _theta(run, s, device) for s in grid}
    acts = {s: activations(model, thetas[s], x) for s in grid}
    gen = torch.Generator().manual_seed(seed)
    pairs, null, null2 = [], [], []
    for a, b in zip(grid[:-1], grid[1:]):
        pairs.append(_dissimilarities(acts[a], acts[b], metrics))
        moved = matched_perturbation(thetas[a], thetas[b], gen)
        null.append(_dissimilarities(acts[a], activations(model, moved, x), metrics))
    for a, b in zip(grid[:-1], grid[1:]):  # after the first draws: those stay as they were
        moved = matched_perturbation(thetas[a], thetas[b], gen)
        null2.append(_dissimilarities(acts[a], activations(model, moved, x), metrics))
    stack = lambda rows: {m: np.array([p[m] for p in rows]) for m in metrics}  # noqa: E731
    mc = MetaChange(grid, list(model.layer_names), stack(pairs), stack(null),
                    null2=stack(null2))
    mc.collapse = learning_collapse(run, *mc.window)
    return mc


def analysed_checkpoints(run, n: int = 5) -> list[int]:
    """``n`` checkpoints spread evenly over the last two thirds of training (as [G] Fig 3's 20k …
    60k of 60k): for each wanted step, the run's checkpoint on its regular grid nearest to it
    (the step itself where it exists; fewer than ``n`` when a run kept fewer checkpoints there)."""
    last, every = run.config.steps, run.config.checkpoint_every
    have = [s for s in run.checkpoint_steps() if s % every == 0 or s == last]
    wanted = [round(last * k / (n + 1)) for k in range(2, n + 2)]
    return sorted({min(have, key=lambda s: (abs(s - w), s)) for w in wanted}) if have else []


@dataclass
class InnerVsMeta:
    """[G] Fig 3: per metric and layer, the RDM of RDMs of a fixed evaluation input set
    represented under checkpoints × tasks × inner steps (see :func:`inner_vs_meta_rdms`)."""

    checkpoints: list[int]
    n_tasks: int
    layers: list[str]
    labels: list
    rdm2: dict[str, dict[str, torch.Tensor]]  # metric → layer → RDM of RDMs
    inner_steps: tuple[int, ...] = (0, 1, 5, 10)

    def change(self, metric: str = METRICS[0]) -> pd.DataFrame:
        """Per layer: meta, inner_s and ratio_s (the inner change from the checkpoints that start
        an interval), the one-step ratio's t interval over tasks (few units: see
        :class:`InnerChange` for G4's), and d(0→1)/d(0→10)."""
        steps = tuple(s for s in self.inner_steps if s)
        rows = {}
        for l in self.layers:
            row = inner_and_meta_change(self.labels, self.rdm2[metric][l], steps)
            meta, inner = change_arrays(self.labels, self.rdm2[metric][l], steps)
            row["ratio_1"], row["ratio_1 lo"], row["ratio_1 hi"] = ratio_over_units(
                inner[1][:-1].mean(0), meta.mean())
            row["d(0→1)/d(0→10)"] = row["inner_1"] / row[f"inner_{max(steps)}"]
            rows[l] = row
        return pd.DataFrame(rows).T


def inner_vs_meta(run, checkpoints: Sequence[int], tasks: Task, eval_x: torch.Tensor, inner: InnerLoop,
                  device="cpu", inner_steps: Sequence[int] = (0, 1, 5, 10), metrics=METRICS) -> InnerVsMeta:
    model = run.config.build_model().to(device)
    labels, rdm2 = inner_vs_meta_rdms(model, [_theta(run, s, device) for s in checkpoints], tasks, eval_x,
                                      inner, inner_steps, metrics)
    return InnerVsMeta(list(checkpoints), len(tasks), list(model.layer_names), labels, rdm2, tuple(inner_steps))


def ratio_tasks(cfg, n: int, eval_task: int, device="cpu") -> Task:
    """The first ``n`` fixed test tasks other than ``eval_task`` (whose images are the
    ones represented): the units of G4's and G5's intervals. The first of them are the
    tasks of Fig 3."""
    test = cfg.test_tasks(n + 1).to(device)
    return Task.stack([test[j] for j in range(n + 1) if j != eval_task][:n])


# What InnerChange measures per checkpoint c and task i (θ⁽ˢ⁾: θ_c after s inner steps):
INNER_CHANGES = {
    "0→1": "d(θ, θ⁽¹⁾): the first inner step",
    "1→S": "d(θ⁽¹⁾, θ⁽ˢ⁾): the steps after the first",
    "0→S": "d(θ, θ⁽ˢ⁾): the whole inner loop",
    "random 0→1": "d(θ, θ + u), u random, θ⁽¹⁾ − θ's per-tensor norms (G4's control)",
    "counter 0→1": "d(θ, θ + (θ⁽ˢ⁾ − θ)/S): one S-th per step (G5's control)",
    "counter 1→S": "d(θ + (θ⁽ˢ⁾ − θ)/S, θ⁽ˢ⁾) (G5's control)",
}


@dataclass
class InnerChange:
    """G4 and G5, per checkpoint c, task i and layer ℓ: ``d[metric][name][c, i, ℓ]`` for
    each change of :data:`INNER_CHANGES` on the evaluation inputs, and
    ``meta[metric][c, ℓ]`` = d(θ_c, θ_{c+1}). Tasks are the units of every interval (the
    checkpoints are fixed)."""

    checkpoints: list[int]
    layers: list[str]
    steps: int  # S
    d: dict[str, dict[str, np.ndarray]]  # metric → change → (n_ckpt, n_tasks, n_layers)
    meta: dict[str, np.ndarray]  # metric → (n_ckpt − 1, n_layers)

    @property
    def n_tasks(self) -> int:
        return next(iter(next(iter(self.d.values())).values())).shape[1]

    def ratio(self, metric: str = METRICS[0], null: bool = False) -> pd.DataFrame:
        """G4 per layer: the one-step change from θ_c (c = each checkpoint that starts an
        interval) over the mean meta-training change of those intervals: the mean of
        per-task ratios (= the ratio of means) and its t interval over tasks. ``null``:
        the one-step change replaced by a random one of the same per-tensor norms."""
        change = self.d[metric]["random 0→1" if null else "0→1"]
        inner = change[:-1].mean(0)  # (n_tasks, n_layers)
        meta = self.meta[metric].mean(0)
        rows = {}
        for j, layer in enumerate(self.layers):
            est = ratio_over_units(inner[:, j], meta[j])
            rows[layer] = {**dict(zip(("ratio", "lo", "hi"), est)), "meta": meta[j],
                           "inner": inner[:, j].mean()}
        return pd.DataFrame(rows).T

    def later_share(self, metric: str = METRICS[0], null: bool = False) -> pd.DataFrame:
        """G5 per layer: d(1→S) / d(0→1) per task (both averaged over checkpoints), the
        mean and its t interval over tasks; ``null``: the step-counter control."""
        d = self.d[metric]
        first = d["counter 0→1" if null else "0→1"].mean(0)
        later = d["counter 1→S" if null else "1→S"].mean(0)
        whole = d["0→S"].mean(0)
        rows = {}
        for j, layer in enumerate(self.layers):
            est = ratio_over_units(later[:, j], first[:, j])
            rows[layer] = {**dict(zip(("share", "lo", "hi"), est)),
                           "d(0→1)": first[:, j].mean(), "d(1→S)": later[:, j].mean(),
                           "d(0→S)/d(0→1)": whole[:, j].mean() / first[:, j].mean()}
        return pd.DataFrame(rows).T

    def table(self, metric: str = METRICS[0]) -> pd.DataFrame:
        """What the chapter prints: each measurement with its control beside."""
        g4, g4n = self.ratio(metric), self.ratio(metric, null=True)
        g5, g5n = self.later_share(metric), self.later_share(metric, null=True)

        def ci(t, k):
            return [f"{t.loc[l, k]:.2f} [{t.loc[l, 'lo']:.2f}, {t.loc[l, 'hi']:.2f}]"
                    for l in self.layers]

        S = self.steps
        return pd.DataFrame({
            "meta d(θ_c, θ_c+1)": g4["meta"].round(4),
            "inner d(0→1)": g4["inner"].round(4),
            "G4 inner/meta": ci(g4, "ratio"),
            "G4 control: random/meta": ci(g4n, "ratio"),
            f"d(1→{S})": g5["d(1→S)"].round(4),
            f"G5 d(1→{S})/d(0→1)": ci(g5, "share"),
            "G5 control: step counter": ci(g5n, "share"),
            f"d(0→{S})/d(0→1)": g5["d(0→S)/d(0→1)"].round(2)}, index=self.layers)

    def g4_values(self, metric: str = METRICS[0], early: int = 3,
                  null: bool = False) -> dict:
        t = self.ratio(metric, null)
        values = {"metric": metric, "ratio_1": t["ratio"].to_dict(),
                  "ratio_1_lo": t["lo"].to_dict(), "ratio_1_hi": t["hi"].to_dict(),
                  "early_ratio_1_lo": t["lo"][:early].to_dict(),
                  "late_ratio_1_lo": t["lo"][early:].to_dict(),
                  "meta": t["meta"].to_dict(), "inner_1": t["inner"].to_dict(),
                  "checkpoints": self.checkpoints, "n_tasks": self.n_tasks,
                  "units": "tasks (checkpoints fixed)"}
        for other in self.d:
            if other != metric:
                values[f"ratio_1_{other}"] = self.ratio(other, null)["ratio"].to_dict()
        return values

    def g5_values(self, metric: str = METRICS[0], null: bool = False) -> dict:
        t = self.later_share(metric, null)
        values = {"metric": metric, "steps": self.steps,
                  "later_share": t["share"].to_dict(), "later_share_lo": t["lo"].to_dict(),
                  "later_share_hi": t["hi"].to_dict(), "d_first": t["d(0→1)"].to_dict(),
                  "d_later": t["d(1→S)"].to_dict(),
                  "whole_over_first": t["d(0→S)/d(0→1)"].to_dict(),
                  "checkpoints": self.checkpoints, "n_tasks": self.n_tasks,
                  "units": "tasks (averaged over checkpoints)"}
        for other in self.d:
            if other != metric:
                share = self.later_share(other, null)["share"]
                values[f"later_share_{other}"] = share.to_dict()
        return values

    def g4_evidence(self, run) -> Evidence:
        """G4's evidence, read off ``run``."""
        return Evidence("G4", self.g4_values(), {"control": self.g4_values(null=True)}, ONE_20W_SEED, run)

    def g5_evidence(self, run, support_loss: Sequence[float]) -> Evidence:
        """G5's evidence, read off ``run``, with its precondition's values: the training inner
        steps and the support loss after one inner step over before (``support_loss[k]``: after
        k steps)."""
        pre = {"train_inner_steps": run.config.inner_steps,
               "support_loss_ratio_1": support_loss[1] / support_loss[0]}
        return Evidence("G5", {**self.g5_values(), **pre}, {"control": self.g5_values(null=True)},
                        ONE_20W_SEED, run)


def inner_change(run, checkpoints: Sequence[int], tasks: Task, eval_x: torch.Tensor,
                 inner: InnerLoop, device="cpu", steps: int = 10, metrics=METRICS,
                 seed: int = 0) -> InnerChange:
    """:class:`InnerChange`: from each checkpoint, each task's inner loop (``inner``,
    first order, ``steps`` steps) and its two controls, on the inputs ``eval_x``."""
    model = run.config.build_model().to(device)
    long_inner = replace(inner, steps=steps, first_order=True)
    gen = torch.Generator().manual_seed(seed)
    d = {m: {k: [] for k in INNER_CHANGES} for m in metrics}
    acts_by_ckpt = []
    for s in checkpoints:
        theta = detached(_theta(run, s, device))
        tasks_ = _tasks_like(tasks, theta)
        a0 = activations(model, theta, eval_x)
        acts_by_ckpt.append(a0)
        rows = {m: {k: [] for k in INNER_CHANGES} for m in metrics}
        for i in range(len(tasks_)):
            t = tasks_[i]
            path = adapt(model, theta, t.x_support, t.y_support, long_inner,
                         trajectory=True)
            one, last = detached(path[1]), detached(path[steps])
            counter = {k: p + (last[k] - p) / steps for k, p in theta.items()}
            a1, aS = activations(model, one, eval_x), activations(model, last, eval_x)
            ac = activations(model, counter, eval_x)
            ar = activations(model, matched_perturbation(theta, one, gen), eval_x)
            pairs = {"0→1": (a0, a1), "1→S": (a1, aS), "0→S": (a0, aS),
                     "random 0→1": (a0, ar), "counter 0→1": (a0, ac),
                     "counter 1→S": (ac, aS)}
            for k, (x, y) in pairs.items():
                for m, v in _dissimilarities(x, y, metrics).items():
                    rows[m][k].append(v)
        for m in metrics:
            for k in INNER_CHANGES:
                d[m][k].append(rows[m][k])
    meta = [_dissimilarities(a, b, metrics)
            for a, b in zip(acts_by_ckpt[:-1], acts_by_ckpt[1:])]
    return InnerChange(list(checkpoints), list(model.layer_names), steps,
                       {m: {k: np.array(v) for k, v in by.items()} for m, by in d.items()},
                       {m: np.array([p[m] for p in meta]) for m in metrics})


def support_loss_path(model, theta: Params, tasks: Task, inner: InnerLoop, loss: str = "cross_entropy") -> np.ndarray:
    """Mean support loss (the mean cross-entropy, whatever the inner loop's reduction) over
    ``tasks`` after 0, 1, …, ``inner.steps`` inner steps of ``inner`` from θ."""
    theta = detached(theta)
    tasks = _tasks_like(tasks, theta)
    loss_fn = _loss_fn(loss)
    out = np.zeros(inner.steps + 1)
    for i in range(len(tasks)):
        t = tasks[i]
        path = adapt(model, theta, t.x_support, t.y_support, replace(inner, first_order=True), trajectory=True, loss=loss)
        out += [loss_fn(functional_call(model, p, (t.x_support,)), t.y_support)[0].item() for p in path]
    return out / len(tasks)
