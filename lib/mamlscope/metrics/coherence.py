"""Coherence metrics of Guiroy et al. [L]: the mean over distinct pairs ``i ≠ j`` of a
similarity between ``T`` vectors, from one Gram matrix, with a jackknife standard error
(:func:`pairwise_mean`). Adaptation directions (:func:`trajectory_coherence`, [L] eq. 5),
meta-test gradients (:func:`gradient_coherence`, eq. 6) and penultimate representations
(:func:`representation_coherence`, §6). Float64; inputs flattened per row; python floats out.
"""

from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Sequence

import torch

from mamlscope.metrics.rsa import flatten_examples

__all__ = [
    "PairwiseMean",
    "flatten_params",
    "adaptation_deltas",
    "pairwise_mean",
    "trajectory_coherence",
    "gradient_coherence",
    "representation_coherence",
]


class PairwiseMean(NamedTuple):
    """Mean of a pairwise similarity over distinct pairs, its jackknife standard error, and the
    number of vectors ``n`` (python floats / int)."""

    mean: float
    se: float
    n: int


def flatten_params(params, keys: Sequence[str] | None = None, *, batched: bool = False) -> torch.Tensor:
    """Concatenate a parameter dict (or sequence of tensors) into one vector ``(P,)``.

    Order: ``keys`` if given, else the mapping's own iteration order — use the same ``keys`` for
    every dict you compare (see :func:`adaptation_deltas`).  With ``batched=True`` every tensor has
    a leading task dimension ``T`` and the result is ``(T, P)``.  Keeps dtype and device.
    """
    if isinstance(params, Mapping):
        if keys is None:
            keys = list(params)
        missing = [k for k in keys if k not in params]
        if missing:
            raise ValueError(f"parameters {missing} are missing")
        tensors = [params[k] for k in keys]
    else:
        tensors = list(params)
    if not tensors:
        raise ValueError("no parameters to flatten")
    if batched:
        t = {x.shape[0] if x.dim() else None for x in tensors}
        if len(t) != 1 or None in t:
            raise ValueError(f"batched tensors must share a leading task dimension, got {t}")
        n = t.pop()
        return torch.cat([x.reshape(n, -1) for x in tensors], dim=1)
    return torch.cat([x.reshape(-1) for x in tensors])


def adaptation_deltas(adapted, theta: Mapping[str, torch.Tensor], *, batched: bool = False) -> torch.Tensor:
    """Displacements ``θ̃_i − θ`` ``(T, P)`` ([L] §4.2), aligned on ``theta``'s key order.

    ``adapted`` is a sequence of ``T`` parameter dicts or, with ``batched=True``, one dict of
    ``(T, ...)`` tensors.  Only the keys of ``theta`` are used (pass a subset to study one block);
    each adapted dict must contain them all.
    """
    keys = list(theta)
    base = flatten_params(theta, keys).detach()
    if batched:
        return flatten_params(adapted, keys, batched=True).detach() - base
    if len(adapted) == 0:
        raise ValueError("adapted is empty")
    return torch.stack([flatten_params(a, keys).detach() - base for a in adapted])


def _as_rows(vectors, name: str) -> torch.Tensor:
    return flatten_examples(vectors, name=name, min_examples=2)


def pairwise_mean(gram) -> PairwiseMean:
    """Mean of the off-diagonal entries of a symmetric ``(T, T)`` matrix and its jackknife SE.

    ``gram[i, j] = s(v_i, v_j)`` for any symmetric similarity ``s``. The ``T(T−1)`` pairwise
    values share members, so their naive standard error is wrong: the mean over distinct pairs is
    a U-statistic of order 2, and ``se`` is its leave-one-vector-out jackknife,
    ``U_(−k) = (S − 2 r_k) / ((T−1)(T−2))`` with ``S = Σ_{i≠j} s_ij``, ``r_k = Σ_{j≠k} s_kj``,
    ``se² = (T−1)/T · Σ_k (U_(−k) − mean U_(−k))²`` — about twice the "per-vector mean, then
    std/√T" shortcut (the U-statistic's Hoeffding variance ``4ζ₁/T``). ``T ≥ 2`` (``se`` is NaN
    for ``T = 2``).
    """
    g = torch.as_tensor(gram, dtype=torch.float64)
    if g.dim() != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {tuple(g.shape)}")
    t = g.shape[0]
    if t < 2:
        raise ValueError(f"need at least 2 vectors for pairwise statistics, got {t}")
    off = g - torch.diag_embed(g.diagonal())
    row = off.sum(dim=1)  # r_k = Σ_{j≠k} s_kj
    total = row.sum()  # S = Σ_{i≠j} s_ij
    mean = total / (t * (t - 1))
    if t < 3:
        return PairwiseMean(float(mean), math.nan, t)
    loo = (total - 2.0 * row) / ((t - 1) * (t - 2))
    se = torch.sqrt((t - 1) / t * ((loo - loo.mean()) ** 2).sum())
    return PairwiseMean(float(mean), float(se), t)


def trajectory_coherence(deltas) -> PairwiseMean:
    """Mean pairwise cosine of adaptation directions ``E_{i≠j}[θ⃗_iᵀθ⃗_j]`` ([L] eq. 5).

    ``deltas`` ``(T, ...)``: one displacement ``θ̃_i − θ`` per task (see :func:`adaptation_deltas`),
    all from the same ``θ``.  Raises ``ValueError`` for a zero displacement (no direction).
    """
    d = _as_rows(deltas, "deltas")
    norms = d.norm(dim=1, keepdim=True)
    zero = (norms.squeeze(1) == 0).nonzero().flatten()
    if zero.numel():
        raise ValueError(f"tasks {zero[:10].tolist()} have a zero displacement, so no direction")
    u = d / norms
    return pairwise_mean((u @ u.T).clamp_(-1.0, 1.0))


def gradient_coherence(grads) -> PairwiseMean:
    """Mean pairwise inner product of meta-test gradients ``E_{i≠j}[g_iᵀg_j]`` ([L] eq. 6).

    ``grads`` ``(T, ...)``: one flattened gradient per task at the meta-train solution ``θ``, on
    its support set ([L] define ``g_i = −∇_θ L``; the sign cancels in the product).
    """
    g = _as_rows(grads, "grads")
    return pairwise_mean(g @ g.T)


def representation_coherence(h) -> PairwiseMean:
    """Mean pairwise inner product of representations ``E_{i≠j}[h_iᵀh_j]`` ([L] §6).

    ``h`` ``(N, ...)``: penultimate features ``f_feat(x)`` (the final classifier's input) of ``N``
    meta-test images at ``θ``, before any adaptation: the index runs over images, not tasks. [L]
    sometimes print ``E[h_iᵀh_i]``; this is the ``i ≠ j`` reading of their Fig. 10.
    """
    v = _as_rows(h, "h")
    return pairwise_mean(v @ v.T)
