"""Objective landscapes along meta-training (Guiroy et al. [L]): the signals at one meta-train
solution θ, on a fixed set of meta-test tasks 𝒯₁…𝒯_T.

With θ̃ᵢ the parameters after the inner loop on task i's support set Dᵢ (the run's own inner loop):

* **target accuracy** on the queries at θ̃ᵢ and the **support loss** L(Dᵢ; θ̃ᵢ);
* **flatness** ([L] §4.1): E‖H‖σ, the spectral norm of the Hessian of the support loss at θ̃ᵢ
  (:func:`mamlscope.metrics.curvature.hessian_spectral_norm_batched`, all tasks at once);
* **trajectory coherence** ([L] §4.2): E_{i≠j}[θ⃗ᵢᵀθ⃗ⱼ], θ⃗ᵢ = (θ̃ᵢ − θ)/‖θ̃ᵢ − θ‖;
* **gradient coherence** ([L] §4.3): E_{i≠j}[gᵢᵀgⱼ], gᵢ = −∇_θ L(Dᵢ; θ) at θ itself;
* **representation coherence** ([L] §6): E_{i≠j}[hᵢᵀhⱼ] over the meta-test images' penultimate
  features at θ (each task's images in one batch: BatchNorm uses batch statistics).

Every coherence keeps its jackknife standard error (:mod:`mamlscope.metrics.coherence`); the
curvature and the losses their standard error over tasks. Only the parameters the inner loop
adapts enter the Hessian, the directions and the gradients.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from .data import Task
from .inner import InnerLoop, adapt, detached
from .metrics.coherence import adaptation_deltas, gradient_coherence, representation_coherence, trajectory_coherence
from .metrics.curvature import hessian_spectral_norm_batched
from .models import adapted_parameter_names


def _mean_se(v: torch.Tensor) -> tuple[float, float]:
    v = v.double()
    return float(v.mean()), float(v.std(unbiased=True) / math.sqrt(len(v))) if len(v) > 1 else math.nan


def adapted_batch(model, theta, tasks: Task, inner: InnerLoop) -> dict[str, torch.Tensor]:
    """θ̃ᵢ for every task, as one dict of ``(T, …)`` tensors (first order: nothing is
    differentiated through the inner loop here, and the adapted weights are the same)."""
    inner = replace(inner, first_order=True)
    out = vmap(lambda xs, ys: adapt(model, theta, xs, ys, inner), randomness="error")(tasks.x_support, tasks.y_support)
    return {k: v.detach() for k, v in out.items()}


def signals(model, theta, tasks: Task, inner: InnerLoop, *, curvature_tasks: int | None = None,
            hessian_tol: float = 1e-3, hessian_max_iter: int = 100) -> dict[str, float]:
    """Every signal above at θ on ``tasks`` (the first ``curvature_tasks`` of them for the
    Hessian, all by default). Returns plain floats: ``<signal>`` and ``<signal>_se``."""
    theta = detached(theta)
    p = next(iter(theta.values()))
    tasks = tasks.to(p.device, p.dtype)
    names = adapted_parameter_names(model, inner.adapt)
    frozen = {k: v for k, v in theta.items() if k not in names}

    def support_loss(q, xs, ys):
        return F.cross_entropy(functional_call(model, {**frozen, **q}, (xs,)), ys)

    # adapted solutions: accuracy, support loss, directions, curvature
    fast = adapted_batch(model, theta, tasks, inner)
    q_fast = {k: fast[k] for k in names}
    with torch.no_grad():
        out_q = vmap(lambda q, x: functional_call(model, {**frozen, **q}, (x,)))(q_fast, tasks.x_query)
        acc = (out_q.argmax(-1) == tasks.y_query).double().mean(-1)
        s_loss = vmap(support_loss)(q_fast, tasks.x_support, tasks.y_support)
    traj = trajectory_coherence(adaptation_deltas(q_fast, {k: theta[k] for k in names}, batched=True))
    n_h = len(tasks) if curvature_tasks is None else min(curvature_tasks, len(tasks))
    curv = hessian_spectral_norm_batched(support_loss, {k: v[:n_h] for k, v in q_fast.items()},
                                         tasks.x_support[:n_h], tasks.y_support[:n_h],
                                         tol=hessian_tol, max_iter=hessian_max_iter)
    # at θ: meta-test gradients and penultimate representations
    q0 = {k: theta[k] for k in names}
    g = vmap(grad(support_loss), in_dims=(None, 0, 0))(q0, tasks.x_support, tasks.y_support)
    gcoh = gradient_coherence(torch.cat([g[k].reshape(len(tasks), -1) for k in names], dim=1))
    penultimate = model.layer_names[-2]
    with torch.no_grad():
        h = vmap(lambda x: functional_call(model, theta, (x,), {"return_activations": True})[1][penultimate])(
            tasks.x_query)
    rcoh = representation_coherence(h.reshape(-1, h[0, 0].numel()))
    out = {}
    for key, (m, se) in {"accuracy": _mean_se(acc), "support_loss": _mean_se(s_loss), "curvature": _mean_se(curv),
                         "trajectory_coherence": (traj.mean, traj.se), "gradient_coherence": (gcoh.mean, gcoh.se),
                         "representation_coherence": (rcoh.mean, rcoh.se)}.items():
        out[key], out[f"{key}_se"] = m, se
    out["tasks"], out["curvature_tasks"] = len(tasks), n_h
    return out


def over_training(start, steps, tasks: Task, inner: InnerLoop, **kwargs):
    """:func:`signals` at every checkpoint in ``steps``; ``start(step) → (model, θ)`` gives the
    meta-train solution (a meta-learning run's checkpoint, or :func:`mamlscope.meta.finetune_start`).
    Returns a DataFrame indexed by step."""
    import pandas as pd

    rows = {}
    for step in steps:
        model, theta = start(step)
        rows[step] = signals(model, theta, tasks, inner, **kwargs)
    frame = pd.DataFrame(rows).T
    frame.index.name = "step"
    return frame
