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

Every coherence keeps its jackknife standard error (:mod:`mamlscope.metrics.coherence`; for the
representations one task's images are left out together, :func:`mamlscope.stats.grouped_pairwise_mean`,
since images of one task are not independent); the curvature and the losses their standard error
over tasks. Only the parameters the inner loop
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
import pandas as pd
import torch
from torch.func import functional_call, grad, vmap

from mamlscope.core.data import Task
from mamlscope.core.inner import LOSSES, InnerLoop, adapt, detached, support_loss_fn
from mamlscope.core.meta import MetaConfig, finetune_start, train
from mamlscope.core.models import adapted_parameter_names
from mamlscope.evidence import Evidence
from mamlscope.metrics.coherence import adaptation_deltas, gradient_coherence, trajectory_coherence
from mamlscope.metrics.curvature import hessian_spectral_norm_batched
from mamlscope.progress import progress_bar
from mamlscope.stats import (  # noqa: F401
    Correlation,
    grouped_pairwise_mean,
    mean_se as _mean_se,
    peak_drop_null,
    rank_correlation,
    rank_correlation_difference,
    smoothed_peak_drop,
)


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
    out = {}
    for key, (m, se) in {"score": _mean_se(score), "support_loss": _mean_se(s_loss), "curvature": _mean_se(curv),
                         "trajectory_coherence": (traj.mean, traj.se), "gradient_coherence": (gcoh.mean, gcoh.se)
                         }.items():
        out[key], out[f"{key}_se"] = m, se
    out.update(representation_signal(model, theta, tasks))
    out["tasks"], out["curvature_tasks"] = len(tasks), n_h
    return out


def representation_signal(model, theta, tasks: Task) -> dict[str, float]:
    """E[hᵢᵀhⱼ] over the meta-test images' penultimate features at θ (each task's images
    in one batch), with its jackknife standard error over *tasks*
    (``representation_se``: "tasks")."""
    penultimate = model.layer_names[-2]
    p = next(iter(theta.values()))
    tasks = tasks.to(p.device, p.dtype)

    def features(x):
        return functional_call(model, theta, (x,), {"return_activations": True})[1][penultimate]

    with torch.no_grad():
        h = vmap(features)(tasks.x_query)
    mean, se = grouped_pairwise_mean(h.reshape(len(tasks), h.shape[1], -1).cpu())
    return {"representation_coherence": mean, "representation_coherence_se": se,
            "representation_se": "tasks"}


def over_training(start, steps, tasks: Task, inner: InnerLoop, **kwargs):
    """:func:`signals` at every checkpoint in ``steps``; ``start(step) → (model, θ)`` gives the
    meta-train solution (a meta-learning run's checkpoint, or :func:`mamlscope.core.meta.finetune_start`).
    Returns a DataFrame indexed by step."""

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
    baseline: its body under a fresh head (:func:`mamlscope.core.meta.finetune_start`, seed
    ``head_seed``, as many outputs as the tasks have classes). Each checkpoint's signals are
    cached in ``<run>/landscape.json``, keyed by the step, a digest of the tasks, the inner loop
    and every setting of :func:`signals` (defaults included, so a changed default is a cache
    miss, not a stale value), so chapters that measure the same run share the measurement."""

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
            model, theta = _start(run, step, n_way, head_seed, device)
            cache[key] = signals(model, theta, tasks, inner, loss=loss, **kwargs)
            _write(path, cache)
        elif cache[key].get("representation_se") != "tasks":  # cached before the SE over tasks
            model, theta = _start(run, step, n_way, head_seed, device)
            rep = representation_signal(model, detached(theta), tasks)
            cache[key] = {**cache[key], **rep}
            _write(path, cache)
        rows[step] = cache[key]
    frame = pd.DataFrame(rows).T
    frame.index.name = "step"
    return with_controls(frame[COLUMNS].astype(float))


def _start(run, step, n_way, head_seed, device):
    if n_way is None:
        model = run.load_model(step, device=device)
        return model, dict(model.named_parameters())
    return finetune_start(run, n_way, step, seed=head_seed, device=device)


def _write(path, cache):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
    tmp.replace(path)


def uniform_steps(run) -> list[int]:
    """The run's checkpoints on its uniform grid: the multiples of ``checkpoint_every``
    (the log-spaced extra checkpoints crowd the first steps and would weigh a rank
    correlation towards the early rise)."""
    every = run.config.checkpoint_every
    return [s for s in run.checkpoint_steps() if s % every == 0]


# the negative controls of L1–L5, as columns of a signals frame (measured by the same code)
CONTROLS = {"step_counter": "step counter", "support_loss_neg": "−support loss"}


def with_controls(frame):
    """``frame`` with the controls' columns: ``step_counter`` (the step itself: any
    trend), ``support_loss_neg`` (−support loss at θ̃ᵢ, the signal [L] set aside; lower is
    "better") and ``error_rate`` (1 − accuracy, with its SE: a signal that tracks
    generalisation, L1's null)."""
    frame = frame.copy()
    frame["step_counter"] = frame.index.to_numpy(float)
    frame["support_loss_neg"] = -frame["support_loss"]
    frame["error_rate"], frame["error_rate_se"] = 1 - frame["score"], frame["score_se"]
    return frame


# --------------------------------------------------------------------------------------------
# Reading the curves: the accuracy peak, rank correlations with bootstrap intervals
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Peak:
    """Where target accuracy peaks over meta-training, by the rule of :func:`peak`."""

    step: int         # checkpoint of the highest smoothed accuracy
    value: float      # smoothed accuracy there
    final: float      # mean accuracy over the last ``window`` checkpoints
    drop: float       # value − final, as found (biased upward: a max over noisy checkpoints)
    drop_se: float    # its standard error (from the per-checkpoint standard errors over tasks)
    drop_bias: float = 0.0   # the drop a flat curve with the same noise shows, on average
    drop_q95: float = 0.0    # … and its 95% quantile

    @property
    def z(self) -> float:
        return self.drop / self.drop_se if self.drop_se > 0 else math.nan

    @property
    def corrected(self) -> float:
        """The drop less its bias under no meta-overfitting."""
        return self.drop - self.drop_bias

    @property
    def excess(self) -> float:
        """How far the drop exceeds the 95% quantile of a flat curve's (> 0: a real drop)."""
        return self.drop - self.drop_q95


def peak(frame, key: str = "score", window: int = 3) -> Peak:
    """The accuracy peak, located by a rule fixed in advance: smooth the curve with a centred
    moving average over ``window`` checkpoints (fewer at the ends), take the checkpoint where the
    smoothed curve is highest, and compare it with the mean of the last ``window`` checkpoints.
    Standard errors combine the checkpoints' own (over tasks) as independent. The same rule run
    on a flat curve with the same standard errors (:func:`mamlscope.stats.peak_drop_null`) gives
    the drop's bias and its 95% quantile: a maximum over noisy checkpoints lies above the end
    even when nothing drops."""
    v, se = frame[key].to_numpy(float), frame[f"{key}_se"].to_numpy(float)
    n, h = len(v), window // 2
    i, value, drop = smoothed_peak_drop(v, window)
    sl = slice(max(0, i - h), min(n, i + h + 1))
    sm_se = math.sqrt((se[sl] ** 2).sum()) / len(v[sl])
    final_se = math.sqrt((se[-window:] ** 2).sum()) / len(v[-window:])
    bias, q95 = peak_drop_null(np.nan_to_num(se), window)
    return Peak(int(frame.index[i]), value, float(v[-window:].mean()), drop,
                float(math.hypot(sm_se, final_se)), bias, q95)


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
           "representation_coherence": "E[hᵢᵀhⱼ] (penultimate features)", "support_loss": "support loss",
           "step_counter": "step counter (control)"}


def predictors(frames: Mapping[str, "pd.DataFrame"], key: str = "score", **kwargs) -> "pd.DataFrame":
    """Which signal predicts generalisation? For each run (``frames``: name → :func:`run_signals`)
    and each signal of :data:`SIGNALS`, Spearman's ρ with target ``key`` over checkpoints, with
    its bootstrap interval, over all checkpoints, up to the run's accuracy peak, and from it on.
    One row per (run, signal); cells are :class:`Correlation`."""

    rows = {}
    for name, frame in frames.items():
        frame = _controlled(frame)
        p = peak(frame, key)
        for sig in SIGNALS:
            rows[(name, sig)] = {ph: rank_correlation(phase(frame, p.step, ph)[sig], phase(frame, p.step, ph)[key],
                                                      **kwargs) for ph in PHASES}
    out = pd.DataFrame(rows).T
    out.index.names = ["run", "signal"]
    return out




def _controlled(frame):
    return frame if "step_counter" in frame else with_controls(frame)


# --------------------------------------------------------------------------------------------
# The measured values the claims L1–L5 are judged on (rules: mamlscope.verdict.claims)
# --------------------------------------------------------------------------------------------
# Every values function takes ``signal=``: the column judged. The chapter calls it once with the
# signal and once per control of :data:`CONTROLS` (same code, the control's column in its place),
# and mamlscope.verdict.claims.null_envelope turns the controls' values into the rule's null_values.
MIN_POINTS_UP = 3   # the rise before the peak is short on a uniform grid: ρ from 3 checkpoints


def _z(a: float, a_se: float, b: float, b_se: float) -> float:
    se = math.hypot(a_se, b_se)
    return (a - b) / se if se > 0 else math.nan


def _series(frame, cols) -> dict:
    return {"step": [int(x) for x in frame.index],
            **{c: frame[c].astype(float).tolist() for c in cols}}


def _track(frame, signal: str, key: str = "score") -> dict:
    """One run's phase-by-phase test of ``signal`` against ``key`` (on the frame's checkpoints,
    which should be the uniform grid, :func:`uniform_steps`): ρ up to the peak and from the
    peak on; over all checkpoints, ρ(signal, key) less the step counter's and the −support
    loss's (paired bootstrap); and the meta-overfitting (bias-corrected drop)."""
    frame = _controlled(frame)
    p = peak(frame, key)
    up, after = phase(frame, p.step, "up to the peak"), phase(frame, p.step, "from the peak")
    c_up = rank_correlation(up[signal], up[key], min_points=MIN_POINTS_UP)
    c_after = rank_correlation(after[signal], after[key])
    c_all = rank_correlation(frame[signal], frame[key])
    vs = {c: rank_correlation_difference(frame[signal], frame[c], frame[key]) for c in CONTROLS}
    out = {"rho_up": c_up.rho, "up_checkpoints": c_up.n, "rho_after": c_after.rho,
           "rho_after_lo": c_after.lo, "rho_after_hi": c_after.hi,
           "after_checkpoints": c_after.n, "rho_all": c_all.rho, "rho_all_lo": c_all.lo,
           "rho_all_hi": c_all.hi}
    for c, name in (("step_counter", "vs_step"), ("support_loss_neg", "vs_support")):
        out[name], out[f"{name}_lo"], out[f"{name}_hi"] = vs[c].rho, vs[c].lo, vs[c].hi
    out.update(peak_step=p.step, peak_score=p.value, final_score=p.final,
               overfit_drop=p.corrected, overfit_raw_drop=p.drop, overfit_excess=p.excess,
               overfit_z=p.z)
    return out


def tracking_power(series: Mapping, n_sims: int = 100, seed: int = 0, task_factor: float = 1.0) -> float:
    """The positive control of a "signal tracks generalisation" rule (:func:`_track`'s three
    decisive checks) on one stored run ``series`` (:func:`tracking_values`' ``series[run]``): a
    signal that tracks the true accuracy *perfectly*, the recorded curve taken as the truth, with
    the measured accuracy drawn around it with the recorded per-checkpoint standard errors
    (divided by √``task_factor``: that many times the test tasks). The share of ``n_sims`` draws
    that pass every decisive check."""

    truth = np.asarray(series["score"], dtype=float)
    se = np.asarray(series["score_se"], dtype=float) / math.sqrt(task_factor)
    base = pd.DataFrame({"score_se": se, "support_loss": series["support_loss"]}, index=series["step"])
    rng = np.random.default_rng(seed)
    passed = 0
    for _ in range(n_sims):
        f = base.assign(score=truth + rng.normal(0.0, se), tracker=truth)
        t = _track(f, "tracker")
        passed += t["rho_after_lo"] > 0 and t["vs_step_lo"] > 0 and t["vs_support_lo"] > 0
    return passed / n_sims


def tracking_values(frames: Mapping, signal: str, key: str = "score") -> dict:
    """``{quantity: {run: value}}`` of :func:`_track` for every run, plus ``series`` (the
    per-checkpoint curves, so that the record can be re-judged) and ``signal``."""
    per = {run: _track(f, signal, key) for run, f in frames.items()}
    out = {q: {run: per[run][q] for run in per} for q in next(iter(per.values()))}
    out["series"] = {run: _series(_controlled(f), [key, f"{key}_se", signal, "support_loss"])
                     for run, f in frames.items()}
    out["signal"] = signal
    return out


def flatness_values(meta_frames: Mapping, finetune, signal: str = "curvature") -> dict:
    """L1, phase by phase. For each meta-learning run: ρ(E‖H‖σ, accuracy) from the accuracy
    peak on (> 0: the solutions get flatter while accuracy falls) and up to it; how far the
    curvature's maximum rises above step 0 and falls to the last checkpoint (in SE). For the
    fine-tune baseline: ρ(E‖H‖σ, support loss) less the step counter's, paired bootstrap.
    ``signal="error_rate"``: the control, 1 − accuracy in place of E‖H‖σ."""
    v = tracking_values(meta_frames, signal)
    v.update(rise_z={}, fall_z={}, curvature_peak_step={})
    for run, f in meta_frames.items():
        f = _controlled(f)
        c, se = f[signal], f[f"{signal}_se"]
        top = int(np.argmax(c.to_numpy()))
        v["rise_z"][run] = _z(c.iloc[top], se.iloc[top], c.iloc[0], se.iloc[0])
        v["fall_z"][run] = _z(c.iloc[top], se.iloc[top], c.iloc[-1], se.iloc[-1])
        v["curvature_peak_step"][run] = int(f.index[top])
    ft = _controlled(finetune)
    ft_rho = rank_correlation(ft[signal], ft["support_loss"])
    ft_vs = rank_correlation_difference(ft[signal], -ft["step_counter"], ft["support_loss"])
    v.update(finetune_rho=ft_rho.rho, finetune_rho_lo=ft_rho.lo, finetune_rho_hi=ft_rho.hi,
             finetune_vs_step=ft_vs.rho, finetune_vs_step_lo=ft_vs.lo,
             finetune_vs_step_hi=ft_vs.hi, finetune_checkpoints=ft_rho.n,
             finetune_series=_series(ft, [signal, "support_loss"]))
    return v


def trajectory_values(meta_frames: Mapping, finetune,
                      signal: str = "trajectory_coherence") -> dict:
    """L2: :func:`tracking_values` of E[θ⃗ᵢᵀθ⃗ⱼ] per meta-learning run, and the contrast with the
    fine-tune baseline: each run's mean cosine over its trained checkpoints (step > 0) less the
    baseline's, with a 95% interval from the checkpoints' jackknife SEs (the contrast does not
    depend on ``signal``: it is the same for the controls)."""
    v = tracking_values(meta_frames, signal)
    ft = finetune[finetune.index > 0]
    ft_m = float(ft["trajectory_coherence"].mean())
    ft_se = float(np.sqrt((ft["trajectory_coherence_se"] ** 2).sum()) / len(ft))
    v.update(finetune_traj=ft_m, meta_traj={}, meta_minus_finetune={}, meta_minus_finetune_lo={},
             meta_minus_finetune_hi={})
    for run, f in meta_frames.items():
        f = f[f.index > 0]
        m = float(f["trajectory_coherence"].mean())
        se = math.hypot(float(np.sqrt((f["trajectory_coherence_se"] ** 2).sum()) / len(f)), ft_se)
        v["meta_traj"][run], v["meta_minus_finetune"][run] = m, m - ft_m
        v["meta_minus_finetune_lo"][run] = m - ft_m - 1.96 * se
        v["meta_minus_finetune_hi"][run] = m - ft_m + 1.96 * se
    return v


def gradient_values(one_step: Mapping, others: Mapping | None = None,
                    signal: str = "gradient_coherence") -> dict:
    """L3 in [L]'s setting: :func:`tracking_values` of E[gᵢᵀgⱼ] on the one-step run(s)
    ``one_step``; the 5-step runs ``others`` are measured the same way for comparison
    (``five_steps``), and do not enter the rule."""
    v = tracking_values(one_step, signal)
    if others:
        o = tracking_values(others, signal)
        keep = ("rho_up", "rho_after", "rho_after_lo", "rho_after_hi", "vs_step", "vs_step_lo",
                "vs_step_hi")
        v["five_steps"] = {q: o[q] for q in keep}
    return v


def sinusoid_values(frame, tasks: Task, signal: str = "gradient_coherence") -> dict:
    """L4: :func:`tracking_values` of E[gᵢᵀgⱼ] against −MSE on the sinusoid run, and whether the
    meta-learner generalises at all: its best meta-test MSE against predicting 0 everywhere
    (the mean of y² over the same meta-test queries)."""
    v = tracking_values({"sinusoid": frame}, signal)
    zero = float(tasks.y_query.double().pow(2).mean())
    best = -float(frame["score"].max())
    v.update(mse_first=-float(frame["score"].iloc[0]), mse_best=best,
             mse_last=-float(frame["score"].iloc[-1]), mse_zero=zero, mse_best_ratio=best / zero)
    return v


def representation_values(frame, signal: str = "representation_coherence") -> dict:
    """L5: :func:`tracking_values` of E[hᵢᵀhⱼ] on the MAML run (its meta-overfitting phase is
    the test)."""
    return tracking_values({"MAML": frame}, signal)


def with_nulls(values_fn, *args, controls=tuple(CONTROLS), **kwargs) -> tuple[dict, dict]:
    """``values_fn(*args)`` and, for each control column, the same function with that column
    as ``signal``: ``(values, {control: values})``. The values keep the controls' values
    (without their series) under ``controls``, so the record shows what the rule rejected."""
    values = values_fn(*args, **kwargs)
    nulls = {c: values_fn(*args, signal=c, **kwargs) for c in controls}
    values["controls"] = {c: {k: x for k, x in n.items() if "series" not in k}
                          for c, n in nulls.items()}
    return values, nulls


def signal_table(values: Mapping, label: str) -> "pd.DataFrame":
    """The signal beside its controls: one row per (run, signal or control) with ρ up to the
    peak, ρ from the peak on [95% CI], and over all checkpoints ρ less the step counter's and
    less the −support loss's [95% CI]."""

    def ci(d, name, run):
        return str(Correlation(d[name][run], d[f"{name}_lo"][run], d[f"{name}_hi"][run], 0))

    rows = {}
    controls = {CONTROLS.get(c, c) + " (control)": n
                for c, n in values.get("controls", {}).items()}
    for who, d in {label: values, **controls}.items():
        for run in d["rho_after"]:
            up = f"{d['rho_up'][run]:+.2f} ({d['up_checkpoints'][run]} checkpoints)"
            after = ci(d, "rho_after", run) + f" ({d['after_checkpoints'][run]})"
            rows[(run, who)] = {"ρ up to the peak": up, "ρ from the peak on": after,
                                "ρ − step counter's": ci(d, "vs_step", run),
                                "ρ − (−support loss)'s": ci(d, "vs_support", run)}
    out = pd.DataFrame(rows).T
    out.index.names = ["run", "signal"]
    return out


# --------------------------------------------------------------------------------------------
# Chapter 5's measurements: one Evidence per claim
# --------------------------------------------------------------------------------------------
#: The seeds of L1–L5: one training seed per run.
ONE_SEED = {"n": 1, "note": "one training seed per run: at cpu the signal measurements dominate the chapter's "
                            "time (Hessians on 60 tasks at every checkpoint of 4 runs), and two more seeds of the "
                            "4 runs would add about 2x the chapter's cpu time, over its budget"}


@dataclass
class LandscapeRuns:
    """The runs of chapter 5: MAML, FOMAML, MAML with one inner step and the fine-tune baseline
    on Omniglot (``runs``, with the inner-loop ``configs`` they are measured with), and the
    sinusoid MAML run."""

    runs: dict
    configs: dict
    sinusoid: object

    def table(self) -> pd.DataFrame:
        """Each run's training characters and steps."""
        every = {**self.runs, "sinusoid": self.sinusoid}
        chars = {name: r.config.characters if name == "fine-tune" else r.config.train_characters
                 for name, r in self.runs.items()}
        chars["sinusoid"] = "—"
        return pd.DataFrame({name: {"training characters": chars[name], "steps": r.config.steps}
                             for name, r in every.items()}).T


def landscape_runs(P, device="cpu") -> LandscapeRuns:
    """Train (or load from the cache) :class:`LandscapeRuns` at profile ``P``."""
    base = P.landscape_5w1s
    configs = {"MAML": base, "FOMAML": P.meta("landscape_5w1s", "fomaml"),
               "MAML T=1": replace(base, inner_steps=1, eval_inner_steps=1)}
    runs = {name: train(cfg, device=device) for name, cfg in configs.items()}
    runs["fine-tune"] = train(P.landscape_finetune, device=device)
    return LandscapeRuns(runs, {**configs, "fine-tune": base}, train(P.landscape_sinusoid, device=device))


def signal_frames(runs: LandscapeRuns, tasks: Task, curvature_tasks: int, device="cpu") -> dict:
    """Run → :func:`run_signals` at its uniform checkpoints on ``tasks``, each with its own test-time
    inner loop (the fine-tune baseline with MAML's)."""
    return {name: run_signals(r, tasks, runs.configs[name].inner(train=False), steps=uniform_steps(r),
                              curvature_tasks=curvature_tasks, device=device)
            for name, r in runs.runs.items()}


def peak_table(peaks: Mapping[str, Peak]) -> pd.DataFrame:
    """Each run's accuracy peak (:func:`peak`): where, how high, the drop after it and that drop
    on a flat curve with the same noise."""
    return pd.DataFrame.from_dict({name: {
        "peak step": p.step, "peak accuracy (%)": round(100 * p.value, 1),
        "final accuracy (%)": round(100 * p.final, 1), "drop (points)": round(100 * p.drop, 1),
        "flat-curve drop: mean (control)": round(100 * p.drop_bias, 1),
        "flat-curve drop: 95% quantile": round(100 * p.drop_q95, 1),
        "bias-corrected drop": round(100 * p.corrected, 1)} for name, p in peaks.items()}, orient="index")


def evidence(claim_id: str, values_fn, *args, controls=tuple(CONTROLS), label: str = "") -> Evidence:
    """An L claim's evidence: ``values_fn(*args)`` with each control column measured by the same
    function (:func:`with_nulls`); the rule must reject the most favourable of them, check by
    check (``envelope``). Its table: :func:`signal_table` with the signal named ``label``."""
    values, nulls = with_nulls(values_fn, *args, controls=controls)
    return Evidence(claim_id, values, nulls, ONE_SEED, envelope=True,
                    table=signal_table(values, label) if label else None)


def last_losses(run, n: int = 4) -> dict:
    """The last ``n`` logged training query losses of ``run`` (step → loss, rounded)."""
    log = pd.DataFrame([r for r in run.metrics() if "train_loss" in r]).set_index("step")
    return log["train_loss"].tail(n).round(4).to_dict()


def flatness_table(values: Mapping) -> pd.DataFrame:
    """L1: ρ(E‖H‖σ, accuracy) from the peak on, per run, beside the 1 − accuracy control's."""
    def cell(d, run):
        return f"{d['rho_after'][run]:+.2f} [{d['rho_after_lo'][run]:+.2f}, {d['rho_after_hi'][run]:+.2f}]"

    rows = {"E‖H‖σ": values, "1 − accuracy (control)": values["controls"]["error_rate"]}
    return pd.DataFrame({who: {run: cell(d, run) for run in values["rho_after"]} for who, d in rows.items()}
                        ).rename_axis("ρ(·, accuracy) from the peak on")


def sinusoid_signals(run, n_tasks: int, curvature_tasks: int, device="cpu"):
    """The sinusoid run's :func:`run_signals` on its first ``n_tasks`` meta-test functions, and those tasks."""
    cfg = run.config
    tasks = cfg.test_tasks(n_tasks)
    return run_signals(run, tasks, cfg.inner(train=False), steps=uniform_steps(run),
                       curvature_tasks=curvature_tasks, device=device), tasks


def swapped_table(run, l4_values: Mapping, n_tasks: int, curvature_tasks: int, device="cpu") -> pd.DataFrame:
    """L4 beside the same measurement with meta-train and meta-test ranges swapped (a second run)."""
    cfg = run.config
    swapped_cfg = replace(cfg, amplitude=cfg.test_amplitude, phase=cfg.test_phase,
                          test_amplitude=cfg.amplitude, test_phase=cfg.phase)
    frame, tasks = sinusoid_signals(train(swapped_cfg, device=device), n_tasks, curvature_tasks, device)
    cols = {"mse_first": "MSE, first checkpoint", "mse_best": "MSE, best", "mse_last": "MSE, last",
            "mse_zero": "MSE of predicting 0", "mse_best_ratio": "best ÷ predicting 0"}
    splits = {"meta-test above meta-train (L4)": l4_values, "swapped": sinusoid_values(frame, tasks)}
    return pd.DataFrame.from_dict({split: {**{name: round(v[k], 3) for k, name in cols.items()},
                                           "ρ from the peak on": round(v["rho_after"]["sinusoid"], 2),
                                           "checkpoints from the peak on": v["after_checkpoints"]["sinusoid"]}
                                   for split, v in splits.items()}, orient="index").astype(object).fillna("—")
