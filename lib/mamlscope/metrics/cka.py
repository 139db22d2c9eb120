"""Centered kernel alignment (CKA), Kornblith et al. (2019), as used by Raghu et al. [R] (2020).

For two representations of the same ``n`` examples, ``X ∈ R^{n×d₁}`` and ``Y ∈ R^{n×d₂}``, with
Gram matrices ``K = k(X, X)`` and ``L = l(Y, Y)`` (``n×n``):

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) · HSIC(L, L))

With the biased HSIC estimator ``HSIC(K, L) = tr(K H L H) / (n − 1)²`` (``H = I − 11ᵀ/n``) the
normalisation cancels, so ``CKA = ⟨HKH, HLH⟩_F / (‖HKH‖_F ‖HLH‖_F)``.  For the linear kernel this
equals the feature-space formula (Kornblith et al. 2019, eq. 5, centred columns)

    CKA_lin(X, Y) = ‖YᵀX‖_F² / (‖XᵀX‖_F ‖YᵀY‖_F).

``debiased=True`` replaces HSIC by the unbiased estimator of Song et al. (2012), as suggested for
"debiased CKA" by Nguyen et al. (2021): with ``K̃``, ``L̃`` the Gram matrices with zeroed diagonals,

    HSIC₁(K, L) = [ tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1) / ((n−1)(n−2)) − 2/(n−2) · 1ᵀK̃L̃1 ] / (n(n−3)),

which needs ``n ≥ 4``.  The biased CKA of two *independent* representations is pulled upwards
when ``d`` is large compared to ``n``; the debiased one is close to 0.

CKA is invariant to orthogonal transformations and isotropic scaling of either representation
(and, for the linear kernel, to translations), but *not* to arbitrary invertible linear maps.

All functions flatten activations per example (``(n, ...) -> (n, d)``), compute in float64 and
return python floats, except the Gram-matrix helpers which return float64 tensors ``(n, n)``.
"""

from __future__ import annotations

import torch

from mamlscope.metrics.rsa import _check_same_n, flatten_examples

__all__ = [
    "gram_linear",
    "gram_rbf",
    "gram",
    "hsic",
    "cka",
    "cka_grams",
    "linear_cka",
    "rbf_cka",
    "linear_cka_features",
    "CKA_KERNELS",
]

CKA_KERNELS = ("linear", "rbf")


def _median(v: torch.Tensor) -> torch.Tensor:
    """Median of a 1-D tensor, averaging the two middle values for even length (as NumPy).

    The middle order statistics by selection (``kthvalue``), not a full sort: the same elements,
    so the same value, in linear time."""
    m = v.numel()
    upper = v.kthvalue(m // 2 + 1).values
    return upper if m % 2 else 0.5 * (v.kthvalue(m // 2).values + upper)


def gram_linear(x) -> torch.Tensor:
    """Linear-kernel Gram matrix ``K = X_c X_cᵀ`` ``(n, n)`` of mean-centred features (float64).

    Centring the features first does not change (biased or debiased) CKA, which centres the
    kernel anyway, but keeps the products better conditioned.
    """
    x = flatten_examples(x, name="x", min_examples=2)
    x = x - x.mean(dim=0, keepdim=True)
    return x @ x.T


RBF_MEDIANS = ("all", "pairs", "nonzero")


def gram_rbf(x, sigma_frac: float = 0.5, median: str = "all") -> torch.Tensor:
    """RBF Gram matrix ``K_ij = exp(−‖x_i − x_j‖² / (2σ²))`` ``(n, n)`` (float64).

    The bandwidth is a fraction of a median distance (Kornblith et al. 2019):

    * ``median="all"`` (default) — as in Kornblith et al.'s released code, which [G] and most
      later papers used: ``σ² = sigma_frac² · median_{i,j} ‖x_i − x_j‖²`` over all ``n²`` entries,
      the ``n`` zeros of the diagonal included;
    * ``median="pairs"`` — ``σ = sigma_frac · median_{i<j} ‖x_i − x_j‖`` over the ``n(n−1)/2``
      distinct pairs (the two middle values averaged when their number is even). Slightly larger
      than the released code's, so CKA values differ a little;
    * ``median="nonzero"`` — as in Goerttler & Obermayer's released ``cka.py`` [G] (taken from
      another public CKA implementation), with ``sigma_frac=1``: ``σ² = sigma_frac² ·
      median{‖x_i − x_j‖² ≠ 0}``, the median of the non-zero squared distances of the full
      ``n × n`` matrix (the diagonal and coincident pairs left out).
    """
    if not sigma_frac > 0:
        raise ValueError(f"sigma_frac must be positive, got {sigma_frac}")
    if median not in RBF_MEDIANS:
        raise ValueError(f"median={median!r}; use 'all' (Kornblith et al.'s code), 'pairs' or "
                         "'nonzero' ([G]'s code)")
    x = flatten_examples(x, name="x", min_examples=2)
    x = x - x.mean(dim=0, keepdim=True)
    g = x @ x.T
    sq = g.diagonal()
    d2 = (sq[:, None] + sq[None, :] - 2.0 * g).clamp_min_(0.0)
    d2.fill_diagonal_(0.0)
    if median == "all":
        sigma2 = sigma_frac**2 * _median(d2.flatten())
    elif median == "nonzero":
        nonzero = d2.flatten()
        nonzero = nonzero[nonzero != 0]
        if nonzero.numel() == 0:
            raise ValueError("RBF bandwidth is zero: every example pair coincides")
        sigma2 = sigma_frac**2 * _median(nonzero)
    else:
        i, j = torch.triu_indices(*d2.shape, offset=1, device=d2.device)
        sigma2 = (sigma_frac * _median(d2[i, j].sqrt())) ** 2
    if sigma2 <= 0:
        raise ValueError("RBF bandwidth is zero: at least half of the example pairs coincide")
    return torch.exp(-d2 / (2.0 * sigma2))


def gram(x, kernel: str = "linear", sigma_frac: float = 0.5, median: str = "all") -> torch.Tensor:
    """The Gram matrix :func:`cka` uses for ``kernel`` (``"linear"``: :func:`gram_linear`,
    ``"rbf"``: :func:`gram_rbf` with ``sigma_frac`` and ``median``). Compute one
    representation's once and compare it with many through :func:`cka_grams`."""
    if kernel == "linear":
        return gram_linear(x)
    if kernel == "rbf":
        return gram_rbf(x, sigma_frac, median)
    raise ValueError(f"unknown CKA kernel {kernel!r}; choose one of {CKA_KERNELS}")


def _centre_gram(k: torch.Tensor) -> torch.Tensor:
    """``H K H`` with ``H = I − 11ᵀ/n`` (double centring of an ``(n, n)`` matrix)."""
    k = k - k.mean(dim=0, keepdim=True)
    return k - k.mean(dim=1, keepdim=True)


def _hsic_biased(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """``tr(K H L H) / (n − 1)²`` (Gretton et al. 2005)."""
    n = k.shape[0]
    return (_centre_gram(k) * _centre_gram(l)).sum() / (n - 1) ** 2


def _hsic_unbiased(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Unbiased HSIC estimator of Song et al. (2012), see the module docstring; ``n ≥ 4``."""
    n = k.shape[0]
    kt = k.clone()
    lt = l.clone()
    kt.fill_diagonal_(0.0)
    lt.fill_diagonal_(0.0)
    trace_term = (kt * lt).sum()  # tr(K̃L̃) for symmetric matrices
    sums_term = kt.sum() * lt.sum() / ((n - 1) * (n - 2))
    cross_term = 2.0 / (n - 2) * (kt.sum(dim=0) @ lt.sum(dim=1))  # 1ᵀK̃L̃1
    return (trace_term + sums_term - cross_term) / (n * (n - 3))


def hsic(k, l, debiased: bool = False) -> float:
    """HSIC between two Gram matrices ``k``, ``l`` ``(n, n)``: biased (default) or unbiased.

    Returns a python float.  ``debiased=True`` needs ``n ≥ 4``.
    """
    k, l = torch.as_tensor(k, dtype=torch.float64), torch.as_tensor(l, dtype=torch.float64)
    _check_gram_pair(k, l, debiased)
    return float(_hsic_unbiased(k, l.to(k.device)) if debiased else _hsic_biased(k, l.to(k.device)))


def _check_gram_pair(k: torch.Tensor, l: torch.Tensor, debiased: bool) -> None:
    for name, g in (("k", k), ("l", l)):
        if g.dim() != 2 or g.shape[0] != g.shape[1]:
            raise ValueError(f"Gram matrix {name} must be square (n, n), got shape {tuple(g.shape)}")
    if k.shape != l.shape:
        raise ValueError(f"Gram matrices describe different numbers of examples: {k.shape[0]} vs {l.shape[0]}")
    if debiased and k.shape[0] < 4:
        raise ValueError(f"debiased (unbiased-HSIC) CKA needs at least 4 examples, got {k.shape[0]}")


def _cka_from_grams(k: torch.Tensor, l: torch.Tensor, debiased: bool) -> float:
    """``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with the chosen estimator."""
    _check_gram_pair(k, l, debiased)
    h = _hsic_unbiased if debiased else _hsic_biased
    kl, kk, ll = h(k, l), h(k, k), h(l, l)
    if kk <= 0 or ll <= 0:
        which = "x" if kk <= 0 else "y"
        raise ValueError(
            f"CKA is undefined: the {'unbiased ' if debiased else ''}self-HSIC of {which} is "
            f"{float(kk if which == 'x' else ll):.3g} ≤ 0 (a constant representation"
            + (", or too few examples for the unbiased estimator" if debiased else "") + ")"
        )
    return float(kl / torch.sqrt(kk * ll))


def cka_grams(k: torch.Tensor, l: torch.Tensor, debiased: bool = False) -> float:
    """CKA from two Gram matrices ``(n, n)`` of the same inputs (:func:`gram`); a python float.
    ``cka(x, y, kernel, …) == cka_grams(gram(x, kernel, …), gram(y, kernel, …))``."""
    return _cka_from_grams(k, l.to(k.device), debiased)


def cka(x, y, kernel: str = "linear", debiased: bool = False, sigma_frac: float = 0.5,
        median: str = "all") -> float:
    """CKA between activations ``x`` ``(n, ...)`` and ``y`` ``(n, ...)`` of the same ``n`` inputs.

    ``kernel``: ``"linear"`` (what [R] report) or ``"rbf"`` (bandwidth from ``sigma_frac`` and a
    median distance, computed separately for ``x`` and ``y``; ``median`` as in :func:`gram_rbf`).  ``debiased``: use the unbiased
    HSIC estimator (Song et al. 2012).  Returns a python float, 1 for identical representations.
    """
    xf = flatten_examples(x, name="x", min_examples=2)
    yf = flatten_examples(y, name="y", min_examples=2)
    _check_same_n(xf, yf)
    yf = yf.to(xf.device)
    return cka_grams(gram(xf, kernel, sigma_frac, median), gram(yf, kernel, sigma_frac, median), debiased)


def linear_cka(x, y, debiased: bool = False) -> float:
    """Linear-kernel CKA, ``cka(x, y, kernel="linear", debiased=debiased)``; a python float."""
    return cka(x, y, kernel="linear", debiased=debiased)


def rbf_cka(x, y, sigma_frac: float = 0.5, debiased: bool = False, median: str = "all") -> float:
    """RBF-kernel CKA, ``cka(x, y, kernel="rbf", ...)``; a python float. The default bandwidth is
    Kornblith et al.'s released code's (``median="all"``)."""
    return cka(x, y, kernel="rbf", debiased=debiased, sigma_frac=sigma_frac, median=median)


def linear_cka_features(x, y) -> float:
    """Linear CKA in feature space: ``‖YᵀX‖_F² / (‖XᵀX‖_F ‖YᵀY‖_F)`` with centred columns.

    ``x`` ``(n, ...)``, ``y`` ``(n, ...)``; costs ``O(n d₁ d₂)`` instead of ``O(n² (d₁+d₂))`` and
    equals the (biased) Gram-space :func:`linear_cka` (Kornblith et al. 2019, eq. 5).  Returns a
    python float.
    """
    xf = flatten_examples(x, name="x", min_examples=2)
    yf = flatten_examples(y, name="y", min_examples=2)
    _check_same_n(xf, yf)
    yf = yf.to(xf.device)
    xc = xf - xf.mean(dim=0, keepdim=True)
    yc = yf - yf.mean(dim=0, keepdim=True)
    den = torch.linalg.matrix_norm(xc.T @ xc) * torch.linalg.matrix_norm(yc.T @ yc)
    if den <= 0:
        raise ValueError("CKA is undefined for a constant representation (zero centred features)")
    return float(torch.linalg.matrix_norm(yc.T @ xc) ** 2 / den)
