"""How representations change: under the inner loop, under meta-training, under supervised training.

The measurements behind Goerttler & Obermayer's [G] Figs 1–3, built on :mod:`mamlscope.metrics`.
Every function compares *the same inputs* under two parameter sets θ_a, θ_b, layer by layer:

    d_ℓ(θ_a, θ_b; X) = 1 − ρ_Spearman( triu RDM(h_ℓ(θ_a, X)), triu RDM(h_ℓ(θ_b, X)) )

with Euclidean RDMs ([G] App. B), or linear CKA as a similarity.  ``h_ℓ(θ, X)`` is layer ℓ of the
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
from .metrics import linear_cka, rdm, rdm_of_rdms, compare_rdms

Params = Mapping[str, torch.Tensor]


def _dtype(params: Params) -> torch.dtype:
    return next(iter(params.values())).dtype


def activations(model, params: Params, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
    """Every layer's activation of ``model`` with parameters θ=``params`` on inputs ``x``
    (cast to θ's dtype): ``{layer: (n, ...)}``, detached."""
    x = x.to(_dtype(params))
    with torch.no_grad():
        _, acts = functional_call(model, dict(params), (x,), {"return_activations": True})
    return OrderedDict((k, v.detach()) for k, v in acts.items())


def layer_rdms(model, params: Params, x: torch.Tensor, metric: str = "euclidean") -> dict[str, torch.Tensor]:
    """``{layer: RDM (n, n)}`` of θ on inputs ``x``."""
    return {k: rdm(v, metric) for k, v in activations(model, params, x).items()}


def layer_dissimilarity(model, params_a: Params, params_b: Params, x: torch.Tensor) -> dict[str, float]:
    """``{layer: d_ℓ(θ_a, θ_b; x)}``: RSA dissimilarity of each layer under two parameter sets."""
    ra, rb = layer_rdms(model, params_a, x), layer_rdms(model, params_b, x)
    return {k: compare_rdms(ra[k], rb[k]) for k in ra}


def layer_cka(model, params_a: Params, params_b: Params, x: torch.Tensor) -> dict[str, float]:
    """``{layer: linear CKA(h_ℓ(θ_a, x), h_ℓ(θ_b, x))}`` (a similarity: 1 = same up to rotation
    and scale)."""
    aa, ab = activations(model, params_a, x), activations(model, params_b, x)
    return {k: linear_cka(aa[k], ab[k]) for k in aa}


def finetune_dissimilarity(model, theta: Params, tasks: Task, inner: InnerLoop, *, on: str = "query") -> np.ndarray:
    """[G] Fig 1a: for each task, adapt θ on its support set with ``inner`` and compare every
    layer's representation of the task's ``on`` inputs (``"query"`` or ``"support"``) after
    adaptation with the one at θ.  Returns ``(n_tasks, n_layers)``, layers in model order."""
    theta = detached(theta)
    inner = replace(inner, first_order=True)
    tasks = tasks.to(next(iter(theta.values())).device, _dtype(theta))
    rows = []
    for i in range(len(tasks)):
        t = tasks[i]
        adapted = detached(adapt(model, theta, t.x_support, t.y_support, inner))
        x = t.x_query if on == "query" else t.x_support
        rows.append(list(layer_dissimilarity(model, theta, adapted, x).values()))
    return np.asarray(rows)


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


def mean_ci(values: np.ndarray, axis: int = 0, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Mean and Student-t half-width along ``axis``."""
    values = np.asarray(values, dtype=float)
    n = values.shape[axis]
    sem = values.std(axis=axis, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(values.shape[1 - axis])
    return values.mean(axis=axis), stats.t.ppf(0.5 + confidence / 2, max(n - 1, 1)) * sem


def inner_vs_meta_rdms(model, thetas: Sequence[Params], tasks: Task, eval_x: torch.Tensor,
                       inner: InnerLoop, inner_steps: Sequence[int] = (0, 1, 5, 10)):
    """[G] Fig 3. For every checkpoint θ_c, every task i and every number of inner steps s, the
    representation of the fixed evaluation inputs ``eval_x`` after adapting θ_c on task i's
    support set for s steps.  Returns ``(labels, {layer: RDM-of-RDMs (m, m)})`` with one label
    ``(c, i, s)`` per representation (s = 0 once per checkpoint, since it does not depend on i)."""
    max_steps = max(inner_steps)
    long_inner = replace(inner, steps=max_steps, first_order=True)
    labels, rdms = [], {}
    for c, theta in enumerate(thetas):
        theta = detached(theta)
        tasks = tasks.to(eval_x.device, _dtype(theta))
        for layer, r in layer_rdms(model, theta, eval_x).items():
            rdms.setdefault(layer, []).append(r)
        labels.append((c, None, 0))
        for i in range(len(tasks)):
            t = tasks[i]
            path = adapt(model, theta, t.x_support, t.y_support, long_inner, trajectory=True)
            for s in inner_steps:
                if s == 0:
                    continue
                for layer, r in layer_rdms(model, detached(path[s]), eval_x).items():
                    rdms[layer].append(r)
                labels.append((c, i, s))
    return labels, {layer: rdm_of_rdms(torch.stack(rs)) for layer, rs in rdms.items()}


def inner_and_meta_change(labels, dissim: torch.Tensor, inner_steps=(1, 5, 10)) -> dict[str, float]:
    """From one layer's RDM-of-RDMs (see :func:`inner_vs_meta_rdms`):

    * ``meta``: mean d(θ_c, θ_{c+1}) over consecutive checkpoints (no inner step);
    * ``inner_s``: mean over checkpoints c and tasks i of d(θ_c, θ_c adapted s steps on task i);
    * ``ratio_s``: inner_s / meta.
    """
    index = {lab: k for k, lab in enumerate(labels)}
    n_ckpt = 1 + max(c for c, _, _ in labels)
    meta = np.mean([dissim[index[(c, None, 0)], index[(c + 1, None, 0)]].item() for c in range(n_ckpt - 1)])
    out = {"meta": float(meta)}
    for s in inner_steps:
        inner_d = [dissim[index[(c, None, 0)], index[(c, i, s)]].item()
                   for (c, i, s2) in labels if s2 == s]
        out[f"inner_{s}"] = float(np.mean(inner_d))
        out[f"ratio_{s}"] = float(np.mean(inner_d) / meta) if meta > 0 else float("inf")
    return out


# --------------------------------------------------------------------------------------------
# The chapters' analyses, one object per figure of [G]: measured once, then tabulated, plotted
# and handed to a claim's rule (``claim_values``).
# --------------------------------------------------------------------------------------------
def _theta(run, step: int, device) -> dict[str, torch.Tensor]:
    return run.load_model(step, device).state_dict()


@dataclass
class FinetuneChange:
    """[G] Fig 1a: ``d[c, i, ℓ]`` = dissimilarity of layer ℓ on task i's queries, after the
    fine-tuning inner loop from checkpoint ``steps[c]``, against the same checkpoint unadapted."""

    steps: list[int]
    layers: list[str]
    d: np.ndarray  # (n_checkpoints, n_tasks, n_layers)

    def trend(self) -> pd.DataFrame:
        """Per checkpoint, the mean over tasks of ρ(layer index, d) with its 95% interval."""
        rows = [dict(zip(["rho", "lo", "hi"], depth_trend(self.d[c])), step=s) for c, s in enumerate(self.steps)]
        return pd.DataFrame(rows).set_index("step")

    def table(self) -> pd.DataFrame:
        t = pd.DataFrame(self.d.mean(axis=1), columns=self.layers, index=pd.Index(self.steps, name="step")).round(3)
        trend = self.trend()
        t["ρ (depth)"] = trend.rho.round(2).to_numpy()
        t["95% CI"] = [f"[{lo:.2f}, {hi:.2f}]" for lo, hi in zip(trend.lo, trend.hi)]
        return t

    def claim_values(self) -> dict:
        trend = self.trend()
        return {"steps": self.steps, "rho": trend.rho.tolist(), "rho_lo": trend.lo.tolist(),
                "rho_hi": trend.hi.tolist(), "n_tasks": int(self.d.shape[1])}


def finetune_over_training(run, tasks: Task, inner: InnerLoop, device="cpu") -> FinetuneChange:
    """:func:`finetune_dissimilarity` at every checkpoint of ``run``."""
    model = run.config.build_model().to(device)
    steps = run.checkpoint_steps()
    d = np.stack([finetune_dissimilarity(model, _theta(run, s, device), tasks.to(device), inner) for s in steps])
    return FinetuneChange(steps, list(model.layer_names), d)


@dataclass
class SupervisedChange:
    """[G] Fig 2: per seed, checkpoint and layer, RSA dissimilarity and linear CKA of the
    activations of fixed inputs against those at the random initialisation (step 0)."""

    steps: list[int]
    layers: list[str]
    rsa: np.ndarray  # (n_seeds, n_checkpoints, n_layers)
    cka: np.ndarray
    final_accuracy: list[float]  # last logged mini-batch accuracy of each run

    def final_table(self) -> pd.DataFrame:
        rsa, cka = self.rsa[:, -1], self.cka[:, -1]
        return pd.DataFrame({
            "RSA dissimilarity": [f"{m:.3f} ± {c:.3f}" for m, c in zip(*mean_ci(rsa))],
            "RSA similarity (1 − d)": [f"{1 - m:.3f}" for m in rsa.mean(0)],
            "linear CKA": [f"{m:.3f} ± {c:.3f}" for m, c in zip(*mean_ci(cka))],
        }, index=pd.Index(self.layers, name=f"after {self.steps[-1]} steps"))

    def claim_values(self) -> dict:
        rsa, cka = self.rsa[:, -1], self.cka[:, -1]
        r, c = depth_trend(rsa), depth_trend(cka)
        return {"rsa_rho": r[0], "rsa_rho_lo": r[1], "rsa_rho_hi": r[2],
                "cka_rho": c[0], "cka_rho_lo": c[1], "cka_rho_hi": c[2],
                "conv1_cka": float(cka[:, 0].mean()), "conv1_rsa_similarity": float(1 - rsa[:, 0].mean()),
                "seeds": int(rsa.shape[0])}


def supervised_change(runs, x: torch.Tensor, device="cpu") -> SupervisedChange:
    """:class:`SupervisedChange` of supervised ``runs`` (one per seed, same checkpoints) on ``x``."""
    steps = runs[0].checkpoint_steps()
    rsa, cka = [], []
    for r in runs:
        net = r.config.build_model().to(device)
        theta0 = _theta(r, 0, device)
        thetas = [_theta(r, s, device) for s in steps]
        rsa.append([list(layer_dissimilarity(net, theta0, t, x).values()) for t in thetas])
        cka.append([list(layer_cka(net, theta0, t, x).values()) for t in thetas])
    layers = list(runs[0].config.build_model().layer_names)
    accuracy = [r.metrics()[-1]["train_score"] for r in runs]
    return SupervisedChange(steps, layers, np.array(rsa), np.array(cka), accuracy)


@dataclass
class MetaChange:
    """[G] Fig 1b: ``d[k, ℓ]`` = dissimilarity of layer ℓ between θ at consecutive checkpoints of
    the regular grid, ``grid[k]`` and ``grid[k+1]`` (Δ apart), on fixed inputs."""

    grid: list[int]
    layers: list[str]
    d: np.ndarray  # (len(grid) − 1, n_layers)

    @property
    def delta(self) -> int:
        return self.grid[1] - self.grid[0]

    @property
    def half(self) -> int:
        return len(self.d) // 2

    @property
    def plateau(self) -> np.ndarray:
        """Mean change per interval over the second half of training, per layer."""
        return self.d[self.half:].mean(0)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"first half": self.d[: self.half].mean(0), "plateau (second half)": self.plateau},
                            index=self.layers).round(4)

    def claim_values(self) -> dict:
        return {"plateau": dict(zip(self.layers, self.plateau)),
                "first_half": dict(zip(self.layers, self.d[: self.half].mean(0))),
                "second_half": dict(zip(self.layers, self.plateau)),
                "plateau_first": float(self.plateau[0]), "plateau_last": float(self.plateau[-1]),
                "delta": self.delta}


def meta_change(run, x: torch.Tensor, device="cpu") -> MetaChange:
    """:class:`MetaChange` over the checkpoints of ``run`` on its regular grid (multiples of
    ``checkpoint_every``; the log-spaced early checkpoints are left out)."""
    model = run.config.build_model().to(device)
    grid = [s for s in run.checkpoint_steps() if s % run.config.checkpoint_every == 0]
    thetas = {s: _theta(run, s, device) for s in grid}
    d = np.array([list(layer_dissimilarity(model, thetas[a], thetas[b], x).values())
                  for a, b in zip(grid[:-1], grid[1:])])
    return MetaChange(grid, list(model.layer_names), d)


def analysed_checkpoints(run, n: int = 5) -> list[int]:
    """``n`` checkpoints spread evenly over the last two thirds of training (as [G] Fig 3's 20k …
    60k of 60k), those that exist."""
    last = run.config.steps
    wanted = [round(last * k / (n + 1)) for k in range(2, n + 2)]
    return [s for s in wanted if s in run.checkpoint_steps()]


@dataclass
class InnerVsMeta:
    """[G] Fig 3: per layer, the RDM of RDMs of a fixed evaluation input set represented under
    checkpoints × tasks × inner steps (see :func:`inner_vs_meta_rdms`)."""

    checkpoints: list[int]
    n_tasks: int
    layers: list[str]
    labels: list
    rdm2: dict[str, torch.Tensor]
    inner_steps: tuple[int, ...] = (0, 1, 5, 10)

    def change(self) -> pd.DataFrame:
        """Per layer: meta, inner_s and ratio_s (:func:`inner_and_meta_change`), and the share of
        the 10-step change made by the first step."""
        steps = tuple(s for s in self.inner_steps if s)
        t = pd.DataFrame({l: inner_and_meta_change(self.labels, self.rdm2[l], steps) for l in self.layers}).T
        t["d(0→1)/d(0→10)"] = t["inner_1"] / t[f"inner_{max(steps)}"]
        return t

    def claim_values(self) -> dict:
        t = self.change()
        return {"ratio_1": t["ratio_1"].to_dict(), "meta": t["meta"].to_dict(), "inner_1": t["inner_1"].to_dict(),
                "first_step_share": t["d(0→1)/d(0→10)"].to_dict(), "checkpoints": self.checkpoints,
                "n_tasks": self.n_tasks}


def inner_vs_meta(run, checkpoints: Sequence[int], tasks: Task, eval_x: torch.Tensor, inner: InnerLoop,
                  device="cpu", inner_steps: Sequence[int] = (0, 1, 5, 10)) -> InnerVsMeta:
    model = run.config.build_model().to(device)
    labels, rdm2 = inner_vs_meta_rdms(model, [_theta(run, s, device) for s in checkpoints], tasks, eval_x,
                                      inner, inner_steps)
    return InnerVsMeta(list(checkpoints), len(tasks), list(model.layer_names), labels, rdm2, tuple(inner_steps))


def support_loss_path(model, theta: Params, tasks: Task, inner: InnerLoop, loss: str = "cross_entropy") -> np.ndarray:
    """Mean support loss over ``tasks`` after 0, 1, …, ``inner.steps`` inner steps from θ."""
    theta = detached(theta)
    tasks = tasks.to(next(iter(theta.values())).device, _dtype(theta))
    loss_fn = _loss_fn(loss)
    out = np.zeros(inner.steps + 1)
    for i in range(len(tasks)):
        t = tasks[i]
        path = adapt(model, theta, t.x_support, t.y_support, replace(inner, first_order=True), trajectory=True, loss=loss)
        out += [loss_fn(functional_call(model, p, (t.x_support,)), t.y_support)[0].item() for p in path]
    return out / len(tasks)
