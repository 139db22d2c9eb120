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
from dataclasses import replace
from typing import Mapping, Sequence

import numpy as np
import torch
from scipy import stats
from torch.func import functional_call

from .data import Task
from .inner import InnerLoop, adapt, detached
from .metrics import linear_cka, rdm, rdm_of_rdms, compare_rdms

Params = Mapping[str, torch.Tensor]


def activations(model, params: Params, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
    """Every layer's activation of ``model`` with parameters θ=``params`` on inputs ``x``:
    ``{layer: (n, ...)}``, detached."""
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
