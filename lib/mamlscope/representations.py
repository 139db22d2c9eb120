"""How representations change: under the inner loop, under meta-training, under supervised training.

The measurements behind Goerttler & Obermayer's [G] Figs 1–3, built on :mod:`mamlscope.metrics`.
Every function compares *the same inputs* under two parameter sets θ_a, θ_b, layer by layer:

    d_ℓ(θ_a, θ_b; X) = 1 − ρ_Spearman( triu RDM(h_ℓ(θ_a, X)), triu RDM(h_ℓ(θ_b, X)) )

or CKA as a similarity. The RDMs come in two kinds (:data:`METRICS`): ``"correlation"``
(1 − Pearson between examples: the default of [G]'s released code, which made their figures)
and ``"euclidean"`` ([G] App. B). Each analysis computes both from the same activations.  ``h_ℓ(θ, X)`` is layer ℓ of the
model with parameters θ on inputs X (:meth:`mamlscope.models.Conv4.forward` with
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

from .data import Task
from .inner import InnerLoop, _loss_fn, adapt, detached
from .metrics import cka, rdm, rdm_of_rdms, compare_rdms
from .stats import bootstrap_ratio as ratio_interval, mean_ci

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


def layer_rdms(model, params: Params, x: torch.Tensor, metric: str = "correlation") -> dict[str, torch.Tensor]:
    """``{layer: RDM (n, n)}`` of θ on inputs ``x``."""
    return {k: rdm(v, metric, CONSTANT) for k, v in activations(model, params, x).items()}


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


def finetune_dissimilarity(model, theta: Params, tasks: Task, inner: InnerLoop, *, on: str = "query",
                           metrics: Sequence[str] = METRICS) -> dict[str, np.ndarray]:
    """[G] Fig 1a: for each task, adapt θ on its support set with ``inner`` and compare every
    layer's representation of the task's ``on`` inputs (``"query"`` or ``"support"``) after
    adaptation with the one at θ.  Returns ``{metric: (n_tasks, n_layers)}``, layers in model order."""
    theta = detached(theta)
    inner = replace(inner, first_order=True)
    tasks = _tasks_like(tasks, theta)
    rows = {m: [] for m in metrics}
    for i in range(len(tasks)):
        t = tasks[i]
        adapted = detached(adapt(model, theta, t.x_support, t.y_support, inner))
        x = t.x_query if on == "query" else t.x_support
        for m, d in _dissimilarities(activations(model, theta, x), activations(model, adapted, x), metrics).items():
            rows[m].append(d)
    return {m: np.asarray(r) for m, r in rows.items()}


def depth_trend(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """How a per-layer quantity grows with depth, as a number with an interval.

    ``values (n_units, n_layers)``: for each unit (a task, a seed) the Spearman correlation
    between layer index and value, ρ_u ∈ [−1, 1]; returns ``(mean ρ, lower, upper)`` with a
    Student-t interval over units. ρ = 1: strictly increasing with depth for every unit.
    """
    depth = np.arange(values.shape[1])
    rhos = np.array([stats.spearmanr(depth, row).statistic for row in values], dtype=float)
    rhos = rhos[np.isfinite(rhos)]
    mean = float(rhos.mean())
    if len(rhos) < 2 or np.allclose(rhos, rhos[0]):
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + confidence / 2, len(rhos) - 1) * rhos.std(ddof=1) / np.sqrt(len(rhos)))
    return mean, mean - half, mean + half


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
    """[G] Fig 1a: ``d[metric][c, i, ℓ]`` = dissimilarity of layer ℓ on task i's queries, after
    the fine-tuning inner loop from checkpoint ``steps[c]``, against the same checkpoint
    unadapted; and ``drift[metric][c, ℓ]`` = dissimilarity of θ_c against θ_0 on the same
    inputs (the first tasks' queries), no inner loop."""

    steps: list[int]
    layers: list[str]
    d: dict[str, np.ndarray]      # metric → (n_checkpoints, n_tasks, n_layers)
    drift: dict[str, np.ndarray]  # metric → (n_checkpoints, n_layers)

    def trend(self, metric: str = METRICS[0]) -> pd.DataFrame:
        """Per checkpoint, the mean over tasks of ρ(layer index, d) with its 95% interval."""
        rows = [dict(zip(["rho", "lo", "hi"], depth_trend(self.d[metric][c])), step=s)
                for c, s in enumerate(self.steps)]
        return pd.DataFrame(rows).set_index("step")

    def table(self, metric: str = METRICS[0]) -> pd.DataFrame:
        """Mean d per layer and checkpoint, ρ and its interval; ρ under the other metric beside."""
        t = pd.DataFrame(self.d[metric].mean(axis=1), columns=self.layers,
                         index=pd.Index(self.steps, name="step")).round(3)
        trend = self.trend(metric)
        t["ρ (depth)"] = trend.rho.round(2).to_numpy()
        t["95% CI"] = [f"[{lo:.2f}, {hi:.2f}]" for lo, hi in zip(trend.lo, trend.hi)]
        for other in self.d:
            if other != metric:
                t[f"ρ ({other} RDMs)"] = self.trend(other).rho.round(2).to_numpy()
        return t

    def claim_values(self, metric: str = METRICS[0]) -> dict:
        trend = self.trend(metric)
        values = {"metric": metric, "steps": self.steps, "rho": trend.rho.tolist(), "rho_lo": trend.lo.tolist(),
                  "rho_hi": trend.hi.tolist(), "n_tasks": int(self.d[metric].shape[1])}
        for other in self.d:
            if other != metric:
                values[f"rho_{other}"] = self.trend(other).rho.tolist()
        return values


def finetune_over_training(run, tasks: Task, inner: InnerLoop, device="cpu", metrics=METRICS) -> FinetuneChange:
    """:func:`finetune_dissimilarity` at every checkpoint of ``run``, and θ_c against θ_0."""
    model = run.config.build_model().to(device)
    steps = run.checkpoint_steps()
    tasks = tasks.to(device)
    x = tasks.x_query[: max(1, min(len(tasks), 5))].flatten(0, 1)
    theta0 = _theta(run, steps[0], device)
    per_step, drift = [], []
    for s in steps:
        theta = _theta(run, s, device)
        per_step.append(finetune_dissimilarity(model, theta, tasks, inner, metrics=metrics))
        drift.append(_dissimilarities(activations(model, theta0, x), activations(model, theta, x), metrics))
    d = {m: np.stack([p[m] for p in per_step]) for m in metrics}
    return FinetuneChange(steps, list(model.layer_names), d, {m: np.array([r[m] for r in drift]) for m in metrics})


@dataclass
class SupervisedChange:
    """[G] Fig 2: per seed, checkpoint and layer, RSA dissimilarity (both RDM metrics) and CKA
    (RBF as in [G]'s code; linear beside) of fixed inputs' activations against those at the
    random initialisation (step 0)."""

    steps: list[int]
    layers: list[str]
    rsa: dict[str, np.ndarray]  # metric → (n_seeds, n_checkpoints, n_layers)
    cka: dict[str, np.ndarray]  # kernel → (n_seeds, n_checkpoints, n_layers)
    final_accuracy: list[float]  # last logged mini-batch accuracy of each run

    def final_table(self) -> pd.DataFrame:
        cols = {}
        for m, a in self.rsa.items():
            cols[f"RSA d ({m})"] = [f"{mu:.3f} ± {c:.3f}" for mu, c in zip(*mean_ci(a[:, -1]))]
        for k, a in self.cka.items():
            cols[f"{k} CKA"] = [f"{mu:.3f} ± {c:.3f}" for mu, c in zip(*mean_ci(a[:, -1]))]
        return pd.DataFrame(cols, index=pd.Index(self.layers, name=f"after {self.steps[-1]} steps"))

    def claim_values(self, metric: str = METRICS[0], kernel: str = "rbf", early: int = 3) -> dict:
        rsa, sim = self.rsa[metric][:, -1], self.cka[kernel][:, -1]
        r, c = depth_trend(rsa), depth_trend(sim)
        pairs = {f"seed {s} {layer}": (float(sim[s, j]), float(1 - rsa[s, j]))
                 for s in range(rsa.shape[0]) for j, layer in enumerate(self.layers[:early])}
        return {"metric": metric, "kernel": kernel,
                "rsa_rho": r[0], "rsa_rho_lo": r[1], "rsa_rho_hi": r[2],
                "cka_rho": c[0], "cka_rho_lo": c[1], "cka_rho_hi": c[2],
                "early_cka": {k: v[0] for k, v in pairs.items()},
                "early_rsa_similarity": {k: v[1] for k, v in pairs.items()},
                "seeds": int(rsa.shape[0]), "early_layers": self.layers[:early]}


def supervised_change(runs, x: torch.Tensor, device="cpu", metrics=METRICS, kernels=("rbf", "linear")) -> SupervisedChange:
    """:class:`SupervisedChange` of supervised ``runs`` (one per seed, same checkpoints) on ``x``."""
    steps = runs[0].checkpoint_steps()
    rsa, sim = {m: [] for m in metrics}, {k: [] for k in kernels}
    for r in runs:
        net = r.config.build_model().to(device)
        a0 = activations(net, _theta(r, 0, device), x)
        per = [(activations(net, _theta(r, s, device), x)) for s in steps]
        for m in metrics:
            rsa[m].append([_dissimilarities(a0, a, [m])[m] for a in per])
        for k in kernels:
            sim[k].append([[cka(a0[l], a[l], kernel=k) for l in a0] for a in per])
    layers = list(runs[0].config.build_model().layer_names)
    accuracy = [r.metrics()[-1]["train_score"] for r in runs]
    return SupervisedChange(steps, layers, {m: np.array(v) for m, v in rsa.items()},
                            {k: np.array(v) for k, v in sim.items()}, accuracy)


@dataclass
class MetaChange:
    """[G] Fig 1b: ``d[metric][k, ℓ]`` = dissimilarity of layer ℓ between θ at consecutive
    checkpoints of the regular grid, ``grid[k]`` and ``grid[k+1]`` (Δ apart), on fixed inputs."""

    grid: list[int]
    layers: list[str]
    d: dict[str, np.ndarray]  # metric → (len(grid) − 1, n_layers)

    @property
    def delta(self) -> int:
        return self.grid[1] - self.grid[0]

    @property
    def half(self) -> int:
        return len(self.grid[1:]) // 2

    def plateau(self, metric: str = METRICS[0]) -> np.ndarray:
        """Mean change per interval over the second half of training, per layer."""
        return self.d[metric][self.half:].mean(0)

    def drift(self, metric: str = METRICS[0]) -> np.ndarray:
        """Relative change of the fitted line over the second half, per layer:
        |slope| · (t_last − t_mid) / mean — small when the change has levelled off."""
        t = np.asarray(self.grid[1:], dtype=float)[self.half:]
        out = []
        for y in self.d[metric][self.half:].T:
            slope = np.polyfit(t, y, 1)[0]
            out.append(abs(slope) * (t[-1] - t[0]) / y.mean() if y.mean() > 0 else 0.0)
        return np.array(out)

    def table(self) -> pd.DataFrame:
        cols = {}
        for m in self.d:
            cols[f"plateau ({m})"] = self.plateau(m)
            cols[f"relative drift ({m})"] = self.drift(m)
        return pd.DataFrame(cols, index=self.layers).round(4)

    def claim_values(self, metric: str = METRICS[0], last: str = "conv4") -> dict:
        j = self.layers.index(last)
        plateau, drift = self.plateau(metric), self.drift(metric)
        values = {"metric": metric, "plateau": dict(zip(self.layers, plateau)),
                  "plateau_first": float(plateau[0]), "plateau_last": float(plateau[j]), "last_layer": last,
                  "drift_last": float(drift[j]), "delta": self.delta, "steps": self.grid[-1]}
        for other in self.d:
            if other != metric:
                values[f"plateau_{other}"] = dict(zip(self.layers, self.plateau(other)))
        return values


def meta_change(run, x: torch.Tensor, device="cpu", metrics=METRICS) -> MetaChange:
    """:class:`MetaChange` over the checkpoints of ``run`` on its regular grid (multiples of
    ``checkpoint_every``; the log-spaced early checkpoints are left out)."""
    model = run.config.build_model().to(device)
    grid = [s for s in run.checkpoint_steps() if s % run.config.checkpoint_every == 0]
    acts = {s: activations(model, _theta(run, s, device), x) for s in grid}
    pairs = [_dissimilarities(acts[a], acts[b], metrics) for a, b in zip(grid[:-1], grid[1:])]
    return MetaChange(grid, list(model.layer_names), {m: np.array([p[m] for p in pairs]) for m in metrics})


def analysed_checkpoints(run, n: int = 5) -> list[int]:
    """``n`` checkpoints spread evenly over the last two thirds of training (as [G] Fig 3's 20k …
    60k of 60k), those that exist."""
    last = run.config.steps
    wanted = [round(last * k / (n + 1)) for k in range(2, n + 2)]
    return [s for s in wanted if s in run.checkpoint_steps()]


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
        """Per layer: meta, inner_s and ratio_s, the one-step ratio's bootstrap interval, and the
        share of the 10-step change made by the first step."""
        steps = tuple(s for s in self.inner_steps if s)
        rows = {}
        for l in self.layers:
            row = inner_and_meta_change(self.labels, self.rdm2[metric][l], steps)
            meta, inner = change_arrays(self.labels, self.rdm2[metric][l], steps)
            _, row["ratio_1 lo"], row["ratio_1 hi"] = ratio_interval(meta, inner[1])
            row["d(0→1)/d(0→10)"] = row["inner_1"] / row[f"inner_{max(steps)}"]
            rows[l] = row
        return pd.DataFrame(rows).T

    def claim_values(self, metric: str = METRICS[0], early: int = 3) -> dict:
        t = self.change(metric)
        values = {"metric": metric, "ratio_1": t["ratio_1"].to_dict(), "ratio_1_lo": t["ratio_1 lo"].to_dict(),
                  "ratio_1_hi": t["ratio_1 hi"].to_dict(),
                  "early_ratio_1_lo": t["ratio_1 lo"][: early].to_dict(),
                  "meta": t["meta"].to_dict(), "inner_1": t["inner_1"].to_dict(),
                  "first_step_share": t["d(0→1)/d(0→10)"].to_dict(), "checkpoints": self.checkpoints,
                  "n_tasks": self.n_tasks}
        for other in self.rdm2:
            if other != metric:
                o = self.change(other)
                values[f"ratio_1_{other}"] = o["ratio_1"].to_dict()
                values[f"first_step_share_{other}"] = o["d(0→1)/d(0→10)"].to_dict()
        return values


def inner_vs_meta(run, checkpoints: Sequence[int], tasks: Task, eval_x: torch.Tensor, inner: InnerLoop,
                  device="cpu", inner_steps: Sequence[int] = (0, 1, 5, 10), metrics=METRICS) -> InnerVsMeta:
    model = run.config.build_model().to(device)
    labels, rdm2 = inner_vs_meta_rdms(model, [_theta(run, s, device) for s in checkpoints], tasks, eval_x,
                                      inner, inner_steps, metrics)
    return InnerVsMeta(list(checkpoints), len(tasks), list(model.layer_names), labels, rdm2, tuple(inner_steps))


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
