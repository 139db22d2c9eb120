"""Objective landscapes along meta-training (Guiroy et al. [L]): the signals at one meta-train
solution θ, on a fixed set of meta-test tasks 𝒯₁…𝒯_T.

With θ̃ᵢ the parameters after the inner loop on task i's support set Dᵢ (the run's own inner loop):

* **target accuracy** (``score``; −MSE for regression) on the queries at θ̃ᵢ and the **support loss** L(Dᵢ; θ̃ᵢ);
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

import hashlib
import inspect
import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Mapping

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from .data import Task
from .inner import LOSSES, InnerLoop, adapt, detached, support_loss_fn
from .metrics.coherence import adaptation_deltas, gradient_coherence, representation_coherence, trajectory_coherence
from .metrics.curvature import hessian_spectral_norm_batched
from .models import adapted_parameter_names
from .progress import progress_bar
from .stats import Correlation, mean_se as _mean_se, rank_correlation  # noqa: F401


def adapted_batch(model, theta, tasks: Task, inner: InnerLoop, *, loss: str = "cross_entropy") -> dict[str, torch.Tensor]:
    """θ̃ᵢ for every task, as one dict of ``(T, …)`` tensors (first order: nothing is
    differentiated through the inner loop here, and the adapted weights are the same)."""
    inner = replace(inner, first_order=True)
    out = vmap(lambda xs, ys: adapt(model, theta, xs, ys, inner, loss=loss), randomness="error")(
        tasks.x_support, tasks.y_support)
    return {k: v.detach() for k, v in out.items()}


def signals(model, theta, tasks: Task, inner: InnerLoop, *, loss: str = "cross_entropy",
            curvature_tasks: int | None = None, hessian_method: str = "lanczos", hessian_tol: float = 1e-4,
            hessian_max_iter: int = 100) -> dict[str, float]:
    """Every signal above at θ on ``tasks`` (the first ``curvature_tasks`` of them for the
    Hessian, all by default; 0 skips the Hessian, and the curvature is NaN). ``score`` is the query accuracy after adaptation (−MSE for
    ``loss="mse"``). Returns plain floats: ``<signal>`` and ``<signal>_se``."""
    theta = detached(theta)
    p = next(iter(theta.values()))
    tasks = tasks.to(p.device, p.dtype)
    names = adapted_parameter_names(model, inner.adapt)
    frozen = {k: v for k, v in theta.items() if k not in names}
    inner_loss, score_fn = support_loss_fn(loss, inner.reduction), LOSSES[loss]

    def support_loss(q, xs, ys):
        return inner_loss(functional_call(model, {**frozen, **q}, (xs,)), ys)

    # adapted solutions: score, support loss, directions, curvature
    fast = adapted_batch(model, theta, tasks, inner, loss=loss)
    q_fast = {k: fast[k] for k in names}
    with torch.no_grad():
        out_q = vmap(lambda q, x: functional_call(model, {**frozen, **q}, (x,)))(q_fast, tasks.x_query)
        score = vmap(lambda o, y: score_fn(o, y)[1])(out_q, tasks.y_query)
        s_loss = vmap(support_loss)(q_fast, tasks.x_support, tasks.y_support)
    traj = trajectory_coherence(adaptation_deltas(q_fast, {k: theta[k] for k in names}, batched=True))
    n_h = len(tasks) if curvature_tasks is None else min(curvature_tasks, len(tasks))
    curv = hessian_spectral_norm_batched(support_loss, {k: v[:n_h] for k, v in q_fast.items()},
                                         tasks.x_support[:n_h], tasks.y_support[:n_h],
                                         method=hessian_method, tol=hessian_tol, max_iter=hessian_max_iter
                                         ) if n_h else torch.full((0,), math.nan)
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
    for key, (m, se) in {"score": _mean_se(score), "support_loss": _mean_se(s_loss), "curvature": _mean_se(curv),
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
    return frame[COLUMNS]


# --------------------------------------------------------------------------------------------
# Along a run: every checkpoint's signals, cached in the run directory
# --------------------------------------------------------------------------------------------
# the settings of signals() and their defaults: part of every cache key of run_signals
_SIGNAL_SETTINGS = {k: p.default for k, p in inspect.signature(signals).parameters.items()
                    if p.kind is inspect.Parameter.KEYWORD_ONLY and k != "loss"}

COLUMNS = [c for k in ("score", "support_loss", "curvature", "trajectory_coherence", "gradient_coherence",
                       "representation_coherence") for c in (k, f"{k}_se")] + ["tasks", "curvature_tasks"]


def tasks_digest(tasks: Task) -> str:
    """A short hash of the tasks' contents (what a cached signal was measured on)."""
    h = hashlib.sha256()
    for t in (tasks.x_support, tasks.y_support, tasks.x_query, tasks.y_query):
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def run_signals(run, tasks: Task, inner: InnerLoop, *, steps=None, head_seed: int = 0, device="cpu",
                **kwargs) -> "pd.DataFrame":
    """:func:`signals` at the checkpoints ``steps`` (default: all) of ``run``, one row per step.

    A meta-learning run is measured at its checkpoints' θ; a supervised run is the fine-tune
    baseline: its body under a fresh head (:func:`mamlscope.meta.finetune_start`, seed
    ``head_seed``, as many outputs as the tasks have classes). Each checkpoint's signals are
    cached in ``<run>/landscape.json``, keyed by the step, a digest of the tasks, the inner loop
    and every setting of :func:`signals` (defaults included, so a changed default is a cache
    miss, not a stale value), so chapters that measure the same run share the measurement."""
    import pandas as pd

    from .meta import MetaConfig, finetune_start

    cfg = run.config
    loss = cfg.loss if isinstance(cfg, MetaConfig) else "cross_entropy"
    n_way = None if isinstance(cfg, MetaConfig) else int(tasks.y_support.max()) + 1
    steps = run.checkpoint_steps() if steps is None else list(steps)
    path = run.dir / "landscape.json"
    cache = json.loads(path.read_text()) if path.is_file() else {}
    settings = dict(_SIGNAL_SETTINGS)
    unknown = set(kwargs) - set(settings)
    if unknown:
        raise TypeError(f"run_signals got unknown settings {sorted(unknown)}; signals accepts {sorted(settings)}.")
    base = {"tasks": tasks_digest(tasks), "n_tasks": len(tasks), "inner": asdict(inner), "loss": loss,
            "finetune_head": None if n_way is None else [n_way, head_seed], **settings, **kwargs}
    rows = {}
    for step in progress_bar(steps, desc=f"signals {run.dir.name}"):
        key = json.dumps({"step": step, **base}, sort_keys=True)
        if key not in cache:
            if n_way is None:
                model = run.load_model(step, device=device)
                theta = dict(model.named_parameters())
            else:
                model, theta = finetune_start(run, n_way, step, seed=head_seed, device=device)
            cache[key] = signals(model, theta, tasks, inner, loss=loss, **kwargs)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
            tmp.replace(path)
        rows[step] = cache[key]
    frame = pd.DataFrame(rows).T
    frame.index.name = "step"
    return frame[COLUMNS]


# --------------------------------------------------------------------------------------------
# Reading the curves: the accuracy peak, rank correlations with bootstrap intervals
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Peak:
    """Where target accuracy peaks over meta-training, by the rule of :func:`peak`."""

    step: int         # checkpoint of the highest smoothed accuracy
    value: float      # smoothed accuracy there
    final: float      # mean accuracy over the last ``window`` checkpoints
    drop: float       # value − final: how much meta-overfitting costs
    drop_se: float    # its standard error (from the per-checkpoint standard errors over tasks)

    @property
    def z(self) -> float:
        return self.drop / self.drop_se if self.drop_se > 0 else math.nan


def peak(frame, key: str = "score", window: int = 3) -> Peak:
    """The accuracy peak, located by a rule fixed in advance: smooth the curve with a centred
    moving average over ``window`` checkpoints (fewer at the ends), take the checkpoint where the
    smoothed curve is highest, and compare it with the mean of the last ``window`` checkpoints.
    Standard errors combine the checkpoints' own (over tasks) as independent."""
    v, se = frame[key].to_numpy(float), frame[f"{key}_se"].to_numpy(float)
    n, h = len(v), window // 2
    sm, sm_se = np.empty(n), np.empty(n)
    for i in range(n):
        sl = slice(max(0, i - h), min(n, i + h + 1))
        sm[i], sm_se[i] = v[sl].mean(), math.sqrt((se[sl] ** 2).sum()) / len(v[sl])
    i = int(np.argmax(sm))
    final, final_se = v[-window:].mean(), math.sqrt((se[-window:] ** 2).sum()) / len(v[-window:])
    return Peak(int(frame.index[i]), float(sm[i]), float(final), float(sm[i] - final),
                float(math.hypot(sm_se[i], final_se)))


PHASES = ("all", "up to the peak", "from the peak")


def phase(frame, peak_step: int, which: str):
    """The checkpoints of ``which`` phase (:data:`PHASES`); the peak belongs to both halves."""
    if which == "all":
        return frame
    if which == "up to the peak":
        return frame[frame.index <= peak_step]
    if which == "from the peak":
        return frame[frame.index >= peak_step]
    raise ValueError(f"phase {which!r}; use one of {PHASES}.")


SIGNALS = {"curvature": "E‖H‖σ (flatness)", "trajectory_coherence": "E[θ⃗ᵢᵀθ⃗ⱼ] (adaptation directions)",
           "gradient_coherence": "E[gᵢᵀgⱼ] (meta-test gradients)",
           "representation_coherence": "E[hᵢᵀhⱼ] (penultimate features)", "support_loss": "support loss"}


def predictors(frames: Mapping[str, "pd.DataFrame"], key: str = "score", **kwargs) -> "pd.DataFrame":
    """Which signal predicts generalisation? For each run (``frames``: name → :func:`run_signals`)
    and each signal of :data:`SIGNALS`, Spearman's ρ with target ``key`` over checkpoints, with
    its bootstrap interval, over all checkpoints, up to the run's accuracy peak, and from it on.
    One row per (run, signal); cells are :class:`Correlation`."""
    import pandas as pd

    rows = {}
    for name, frame in frames.items():
        p = peak(frame, key)
        for sig in SIGNALS:
            rows[(name, sig)] = {ph: rank_correlation(phase(frame, p.step, ph)[sig], phase(frame, p.step, ph)[key],
                                                      **kwargs) for ph in PHASES}
    out = pd.DataFrame(rows).T
    out.index.names = ["run", "signal"]
    return out


# --------------------------------------------------------------------------------------------
# The measured values the claims L1–L5 are judged on (rules: mamlscope.claims)
# --------------------------------------------------------------------------------------------
def _z(a: float, a_se: float, b: float, b_se: float) -> float:
    se = math.hypot(a_se, b_se)
    return (a - b) / se if se > 0 else math.nan


def _correlations(frames: Mapping, signal: str, name: str, which: str = "all", key: str = "score") -> dict:
    """``{name: {run: ρ}, name_lo: …, name_hi: …}`` of ``signal`` against ``key``."""
    out = {name: {}, f"{name}_lo": {}, f"{name}_hi": {}}
    for run, frame in frames.items():
        f = phase(frame, peak(frame, key).step, which)
        c = rank_correlation(f[signal], f[key])
        out[name][run], out[f"{name}_lo"][run], out[f"{name}_hi"][run] = c.rho, c.lo, c.hi
    return out


def _overfitting(frame) -> dict:
    p = peak(frame)
    return {"peak_step": p.step, "peak_score": p.value, "final_score": p.final, "overfit_drop": p.drop,
            "overfit_z": p.z}


def flatness_values(meta_frames: Mapping, finetune) -> dict:
    """L1. For each meta-learning run: how far the curvature's maximum rises above its value at
    step 0 and falls to its value at the last checkpoint (in standard errors), and Spearman's ρ
    between step and curvature from the accuracy peak on. For the fine-tune baseline: ρ between
    curvature and support loss over its checkpoints. ``overfit_*``: the first run's accuracy
    drop after its peak (the precondition: there must be meta-overfitting to look past)."""
    v = {"rise_z": {}, "fall_z": {}, "after_peak_rho": {}, "curvature_peak_step": {}, "accuracy_peak_step": {}}
    for run, f in meta_frames.items():
        c, se = f["curvature"], f["curvature_se"]
        top = int(np.argmax(c.to_numpy()))
        v["rise_z"][run] = _z(c.iloc[top], se.iloc[top], c.iloc[0], se.iloc[0])
        v["fall_z"][run] = _z(c.iloc[top], se.iloc[top], c.iloc[-1], se.iloc[-1])
        p = peak(f)
        after = phase(f, p.step, "from the peak")
        v["after_peak_rho"][run] = rank_correlation(after.index.to_numpy(), after["curvature"]).rho
        v["curvature_peak_step"][run], v["accuracy_peak_step"][run] = int(f.index[top]), p.step
    ft = rank_correlation(finetune["curvature"], finetune["support_loss"])
    v.update(finetune_rho=ft.rho, finetune_rho_lo=ft.lo, finetune_rho_hi=ft.hi, finetune_checkpoints=ft.n)
    v.update(_overfitting(next(iter(meta_frames.values()))))
    return v


def trajectory_values(meta_frames: Mapping, finetune) -> dict:
    """L2. ρ(E[θ⃗ᵢᵀθ⃗ⱼ], accuracy) over checkpoints per meta-learning run, with intervals; the
    fine-tune baseline's coherence averaged over its trained checkpoints (step > 0) and, beside
    it, the first run's."""
    v = _correlations(meta_frames, "trajectory_coherence", "traj_rho")
    first = next(iter(meta_frames.values()))
    v["finetune_traj"] = float(finetune["trajectory_coherence"][finetune.index > 0].mean())
    v["meta_traj"] = float(first["trajectory_coherence"][first.index > 0].mean())
    return v


def gradient_values(meta_frames: Mapping) -> dict:
    """L3. ρ(E[gᵢᵀgⱼ], accuracy) per meta-learning run (the one-step run first), with intervals,
    and the same for E[θ⃗ᵢᵀθ⃗ⱼ] to compare the two signals' consistency."""
    return {**_correlations(meta_frames, "gradient_coherence", "grad_rho"),
            **_correlations(meta_frames, "trajectory_coherence", "traj_rho")}


def sinusoid_values(frame) -> dict:
    """L4. ρ(E[gᵢᵀgⱼ], −MSE) over the sinusoid run's checkpoints, with its interval."""
    c = rank_correlation(frame["gradient_coherence"], frame["score"])
    return {"grad_rho": c.rho, "grad_rho_lo": c.lo, "grad_rho_hi": c.hi, "checkpoints": c.n,
            "mse_first": -float(frame["score"].iloc[0]), "mse_best": -float(frame["score"].max()),
            "mse_last": -float(frame["score"].iloc[-1])}


def representation_values(frame) -> dict:
    """L5. ρ(E[hᵢᵀhⱼ], accuracy) over all checkpoints and from the accuracy peak on (the
    meta-overfitting phase), with intervals, and the size of the meta-overfitting."""
    v = {}
    for which, name in (("all", "rep_rho"), ("from the peak", "rep_after_rho")):
        c = _correlations({"run": frame}, "representation_coherence", name, which)
        v.update({k: d["run"] for k, d in c.items()})
    return {**v, **_overfitting(frame)}
