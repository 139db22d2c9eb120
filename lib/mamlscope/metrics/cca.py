"""CCA-based representation similarity: SVCCA (Raghu et al. 2017) and PWCCA (Morcos et al. 2018).

[R] (Raghu et al. 2020, §4 of the protocol notes) compare each layer's representation of the same
inputs before and after inner-loop adaptation with CCA (and linear CKA as a check).

Canonical correlation analysis of ``X ∈ R^{n×d₁}`` and ``Y ∈ R^{n×d₂}`` (rows = examples, columns
= neurons, both mean-centred over examples) finds directions ``a_i``, ``b_i`` maximising
``ρ_i = corr(X a_i, Y b_i)`` subject to orthogonality to the previous canonical variates.  We
compute it without inverting covariance matrices (Björck & Golub, 1973): if ``Q_X`` ``(n, r_X)``
and ``Q_Y`` ``(n, r_Y)`` are orthonormal bases of the column spaces of the centred ``X`` and ``Y``,
the canonical correlations are the singular values of ``Q_Xᵀ Q_Y`` and the canonical variates are
``Q_X U`` and ``Q_Y V`` for its SVD ``U Σ Vᵀ``.  The bases come from an SVD that drops singular
values below ``rtol · σ_max`` — this is the small epsilon that makes rank-deficient activations
(duplicated or dead neurons, ``d > n``) safe; no singular covariance is ever inverted.

**Degenerate regime.**  Centred activations span at most ``n − 1`` dimensions.  If
``r_X + r_Y > n − 1`` the two column spaces must intersect, and at least ``r_X + r_Y − (n − 1)``
canonical correlations equal 1 whatever the data; with ``d ≥ n`` (e.g. 3136 conv features for
600 inputs) *all* of them are 1.  SVCCA's truncation to the top singular directions is what keeps
CCA meaningful there; test and interpret plain CCA/PWCCA only with ``n`` well above the rank.
A ``RuntimeWarning`` is emitted when this happens.

All functions flatten activations per example (``(n, ...) -> (n, d)``) and compute in float64.
:func:`canonical_correlations` returns a float64 tensor; :func:`svcca` and :func:`pwcca` return
python floats in ``[0, 1]``.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch

from mamlscope.metrics.rsa import _check_same_n, flatten_examples

__all__ = ["canonical_correlations", "svcca", "pwcca", "svd_reduce", "CCAResult"]

_DEFAULT_RTOL = 1e-10


class CCAResult(NamedTuple):
    """Canonical correlations ``rho`` ``(k,)`` (descending) and the canonical variates of each side
    (``(n, k)``, orthonormal columns, paired with ``rho``), plus the ranks used for each side."""

    rho: torch.Tensor
    variates_x: torch.Tensor
    variates_y: torch.Tensor
    rank_x: int
    rank_y: int


def _centre(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(dim=0, keepdim=True)


def _column_basis(xc: torch.Tensor, rtol: float, name: str):
    """Orthonormal basis ``(n, r)`` of the column space of centred ``xc`` via a thin SVD.

    Singular values ``≤ rtol · σ_max`` are treated as zero.  Returns ``(U_r, S_r)``.  Wide inputs
    (``d > n``) are decomposed through their transpose, which LAPACK handles far faster.
    """
    if xc.shape[1] > xc.shape[0]:
        _, s, vh = torch.linalg.svd(xc.T, full_matrices=False)
        u = vh.T
    else:
        u, s, _ = torch.linalg.svd(xc, full_matrices=False)
    if s.numel() == 0 or s[0] <= 0:
        raise ValueError(f"{name} is constant over examples (all centred activations are zero)")
    r = int((s > rtol * s[0]).sum())
    return u[:, :r], s[:r]


def _n_components_for_variance(s: torch.Tensor, keep_variance: float) -> int:
    """Smallest ``k`` with ``Σ_{i≤k} s_i² / Σ s_i² ≥ keep_variance``."""
    frac = torch.cumsum(s**2, 0) / (s**2).sum()
    return int((frac < keep_variance - 1e-12).sum()) + 1


def svd_reduce(x, keep_variance: float = 0.99, rtol: float = _DEFAULT_RTOL) -> torch.Tensor:
    """SVCCA step 1 (Raghu et al. 2017): top singular directions of centred activations.

    ``x`` ``(n, ...)`` → ``U_k S_k`` ``(n, k)`` where ``k`` is the fewest directions explaining at
    least ``keep_variance`` of the variance (``Σ_{i≤k} σ_i² ≥ keep_variance · Σ σ_i²``).  Float64.
    """
    if not 0 < keep_variance <= 1:
        raise ValueError(f"keep_variance must be in (0, 1], got {keep_variance}")
    xc = _centre(flatten_examples(x, name="x", min_examples=2))
    u, s = _column_basis(xc, rtol, "x")
    k = _n_components_for_variance(s, keep_variance)
    return u[:, :k] * s[:k]


def _cca(xc: torch.Tensor, yc: torch.Tensor, rtol: float) -> CCAResult:
    """Björck–Golub CCA of centred ``xc`` ``(n, d₁)`` and ``yc`` ``(n, d₂)``."""
    n = xc.shape[0]
    qx, _ = _column_basis(xc, rtol, "x")
    qy, _ = _column_basis(yc, rtol, "y")
    rx, ry = qx.shape[1], qy.shape[1]
    forced = rx + ry - (n - 1)
    if forced > 0:
        warnings.warn(
            f"degenerate CCA: ranks {rx} + {ry} exceed n − 1 = {n - 1}, so at least {forced} of the "
            f"{min(rx, ry)} canonical correlations are 1 by construction; reduce the dimension "
            "(e.g. SVCCA) or use more examples",
            RuntimeWarning,
            stacklevel=3,
        )
    u, rho, vh = torch.linalg.svd(qx.T @ qy, full_matrices=False)
    k = min(rx, ry)
    return CCAResult(rho[:k].clamp(0.0, 1.0), qx @ u[:, :k], qy @ vh[:k].T, rx, ry)


def _prepare(x, y):
    xf = flatten_examples(x, name="x", min_examples=2)
    yf = flatten_examples(y, name="y", min_examples=2)
    _check_same_n(xf, yf)
    return _centre(xf), _centre(yf.to(xf.device))


def canonical_correlations(x, y, rtol: float = _DEFAULT_RTOL) -> torch.Tensor:
    """All ``min(r_X, r_Y)`` canonical correlations of ``x`` ``(n, ...)`` and ``y`` ``(n, ...)``.

    Descending float64 tensor in ``[0, 1]``; ``r`` are the numerical ranks of the centred inputs.
    """
    xc, yc = _prepare(x, y)
    return _cca(xc, yc, rtol).rho


def svcca(x, y, keep_variance: float = 0.99, rtol: float = _DEFAULT_RTOL) -> float:
    """SVCCA similarity (Raghu et al. 2017): mean canonical correlation after SVD truncation.

    1. centre each neuron over the ``n`` examples; 2. keep the top singular directions of each
    representation explaining ``keep_variance`` (99%) of its variance, ``X' = U_k S_k``;
    3. CCA between ``X'`` and ``Y'``; 4. return ``mean(ρ_1, …, ρ_min(k_X, k_Y))``.

    ``x`` ``(n, ...)``, ``y`` ``(n, ...)``.  Returns a python float in ``[0, 1]``.
    ``keep_variance=1`` skips the truncation (plain mean CCA).
    """
    xf = flatten_examples(x, name="x", min_examples=2)
    yf = flatten_examples(y, name="y", min_examples=2)
    _check_same_n(xf, yf)
    xr = svd_reduce(xf, keep_variance, rtol)
    yr = svd_reduce(yf.to(xf.device), keep_variance, rtol)
    return float(_cca(xr, yr, rtol).rho.mean())


def pwcca(x, y, keep_variance: float | None = None, rtol: float = _DEFAULT_RTOL,
          side: str = "auto") -> float:
    """Projection-weighted CCA (Morcos et al. 2018): ``Σ_i α_i ρ_i / Σ_i α_i``.

    The weight of canonical pair ``i`` is how much of the representation it accounts for,
    ``α_i = Σ_j |⟨h_i, z_j⟩|``, with ``h_i`` ``(n,)`` the unit-norm canonical variate on one side and
    ``z_j`` ``(n,)`` the centred activation of neuron ``j`` on that side.  ``side="auto"`` weights by
    the side with the smaller rank (Morcos et al.'s code uses the side with fewer neurons), ties →
    ``x``; ``"x"``/``"y"`` force it.  PWCCA is not symmetric in ``x``, ``y`` in general.

    ``keep_variance`` (e.g. 0.99) optionally applies the SVCCA truncation before CCA; the weights
    still use the full centred neurons.  Returns a python float in ``[0, 1]``.
    """
    xc, yc = _prepare(x, y)
    if keep_variance is not None:
        res = _cca(svd_reduce(xc, keep_variance, rtol), svd_reduce(yc, keep_variance, rtol), rtol)
    else:
        res = _cca(xc, yc, rtol)
    if side == "auto":
        side = "x" if res.rank_x <= res.rank_y else "y"
    if side == "x":
        h, z = res.variates_x, xc
    elif side == "y":
        h, z = res.variates_y, yc
    else:
        raise ValueError(f"side must be 'auto', 'x' or 'y', got {side!r}")
    alpha = (h.T @ z).abs().sum(dim=1)  # (k,)
    return float((alpha * res.rho).sum() / alpha.sum())
