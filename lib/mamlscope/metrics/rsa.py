"""Representational similarity analysis (RSA), as used by Goerttler & Obermayer [G].

[G] (§3 and App. B) compare two representations of the *same* inputs in two stages:

1. For each representation, a representational dissimilarity matrix (RDM) holds the
   dissimilarity of every pair of inputs, ``RDM[i, j] = δ(x_i, x_j)``.  [G] use the Euclidean
   distance; classical RSA (Kriegeskorte et al., 2008) uses ``1 − Pearson(x_i, x_j)``.
2. Two RDMs are compared through their upper triangles (the diagonal is zero and the matrix is
   symmetric): ``dissimilarity(A, B) = 1 − ρ_Spearman(triu(A), triu(B))``.  This number is what
   [G] plot as "dissimilarity" (0 = same geometry, up to a monotone transform of distances).

[G] Fig. 3 goes one level up: the second-stage dissimilarities between many representations form
an "RDM of RDMs", which is then embedded in 2-D with multidimensional scaling (MDS).

Conventions of this module
--------------------------
* Activations of any shape are flattened per example: ``(n, ...) -> (n, d)``.
* Matrix-valued results (:func:`rdm`, :func:`upper_triangle`, :func:`rank_rows`,
  :func:`rdm_of_rdms`, :func:`mds_embedding`) are ``torch.float64`` tensors on the device of the
  input.  Scalar results (:func:`compare_rdms`, :func:`representational_dissimilarity`) are python
  floats.
* Everything is computed in float64: Euclidean distances obtained from a Gram matrix lose
  precision in float32 when two examples are close.
"""

from __future__ import annotations

import inspect
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

__all__ = [
    "flatten_examples",
    "rdm",
    "upper_triangle",
    "rank_rows",
    "compare_rdms",
    "rdm_of_rdms",
    "mds_embedding",
    "representational_dissimilarity",
    "RDM_METRICS",
]

RDM_METRICS = ("euclidean", "correlation", "cosine")


# --------------------------------------------------------------------------------------------
# input handling (shared with the other metric modules)
# --------------------------------------------------------------------------------------------


def _all_finite(t: torch.Tensor) -> bool:
    """``torch.isfinite(t).all()``, via a cheap sum first (a NaN/inf anywhere makes it non-finite;
    only an overflowing sum of finite values needs the element-wise check)."""
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def flatten_examples(acts, *, name: str = "acts", min_examples: int = 1) -> torch.Tensor:
    """Return activations as a float64 matrix ``(n, d)``, one row per example.

    ``acts`` is a tensor (or array-like) of shape ``(n, ...)``; every trailing dimension is
    flattened, so conv feature maps ``(n, c, h, w)`` become ``(n, c·h·w)``.  The result lives on the
    input's device.  Raises ``ValueError`` for 0-d input, fewer than ``min_examples`` rows, zero
    features or non-finite values.
    """
    x = torch.as_tensor(acts)
    if x.dim() == 0:
        raise ValueError(f"{name} must have shape (n, ...) with one row per example, got a scalar")
    if x.is_complex():
        raise ValueError(f"{name} must be real-valued, got dtype {x.dtype}")
    n = x.shape[0]
    if n < min_examples:
        raise ValueError(f"{name} needs at least {min_examples} examples (rows), got {n}")
    x = x.reshape(n, -1).to(torch.float64)
    if x.shape[1] == 0:
        raise ValueError(f"{name} has zero features per example (shape {tuple(torch.as_tensor(acts).shape)})")
    if not _all_finite(x):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _check_same_n(x: torch.Tensor, y: torch.Tensor, names=("x", "y")) -> None:
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} must describe the same examples: got {x.shape[0]} and "
            f"{y.shape[0]} rows"
        )


# --------------------------------------------------------------------------------------------
# first stage: RDMs
# --------------------------------------------------------------------------------------------


def _squared_euclidean(x: torch.Tensor) -> torch.Tensor:
    """``D²[i, j] = ‖x_i − x_j‖²`` from the Gram matrix of mean-centred rows (float64, ``(n, n)``).

    Centring over examples leaves distances unchanged and reduces cancellation in
    ``‖x_i‖² + ‖x_j‖² − 2 x_iᵀx_j``.
    """
    x = x - x.mean(dim=0, keepdim=True)
    gram = x @ x.T
    sq = gram.diagonal()
    d2 = (sq[:, None] + sq[None, :] - 2.0 * gram).clamp_min_(0.0)
    d2.fill_diagonal_(0.0)
    return 0.5 * (d2 + d2.T)


CONSTANT_ROWS = ("raise", "uncorrelated")


def _unit_rows(x: torch.Tensor, what: str, constant: str = "raise") -> torch.Tensor:
    """Rows scaled to unit norm. A zero row (a constant activation vector, which a ReLU layer can
    give an example) raises, or with ``constant="uncorrelated"`` stays zero, so that its
    correlation with every example is 0 and its distance 1."""
    norms = x.norm(dim=1, keepdim=True)
    bad = (norms.squeeze(1) <= torch.finfo(torch.float64).tiny).nonzero().flatten()
    if bad.numel():
        if constant == "uncorrelated":
            return x / norms.where(norms > torch.finfo(torch.float64).tiny, 1.0)  # zero rows stay zero
        raise ValueError(
            f"{what} is undefined for examples {bad[:10].tolist()}: their activation vector is "
            "constant (zero norm after the required centring); pass constant='uncorrelated' to "
            "treat such an example as uncorrelated with every other"
        )
    return x / norms


def rdm(acts, metric: str = "euclidean", constant: str = "raise") -> torch.Tensor:
    """Representational dissimilarity matrix ``(n, n)`` of activations ``(n, ...)`` ([G] App. B).

    ``metric`` selects δ(x_i, x_j) for the flattened example vectors ``x_i ∈ R^d``:

    * ``"euclidean"`` — ``‖x_i − x_j‖₂`` (what [G] use).  Note: rsatoolbox's "euclidean" RDM is
      the *squared* distance divided by ``d``; both give the same ranks, hence the same
      :func:`compare_rdms` values.
    * ``"correlation"`` — ``1 − Pearson(x_i, x_j)``, the correlation across the ``d`` features of
      the two examples (the classical RSA choice, Kriegeskorte et al. 2008).
    * ``"cosine"`` — ``1 − x_iᵀx_j / (‖x_i‖ ‖x_j‖)``.

    Returns a symmetric float64 tensor with an exactly zero diagonal, on the input's device.
    Requires ``n ≥ 3`` (fewer examples leave fewer than 3 pairs to rank). The correlation and
    cosine distances of a constant example vector are undefined: ``constant="raise"`` (default)
    says so, ``"uncorrelated"`` sets its distance to every other example to 1.
    """
    if constant not in CONSTANT_ROWS:
        raise ValueError(f"constant={constant!r}; use one of {CONSTANT_ROWS}")
    x = flatten_examples(acts, min_examples=3)
    if metric == "euclidean":
        return _squared_euclidean(x).sqrt_()
    if metric == "correlation":
        u = _unit_rows(x - x.mean(dim=1, keepdim=True), "correlation distance", constant)
    elif metric == "cosine":
        u = _unit_rows(x, "cosine distance", constant)
    else:
        raise ValueError(f"unknown RDM metric {metric!r}; choose one of {RDM_METRICS}")
    d = (1.0 - u @ u.T).clamp_(0.0, 2.0)
    d.fill_diagonal_(0.0)
    return 0.5 * (d + d.T)


def upper_triangle(rdm_matrix) -> torch.Tensor:
    """Strict upper triangle of a square ``(n, n)`` matrix as a vector ``(n(n−1)/2,)``.

    Row-major order ``(0,1), (0,2), …, (1,2), …`` — the order of
    ``scipy.spatial.distance.squareform`` and rsatoolbox's RDM vectors.  Also accepts a stack
    ``(m, n, n)`` and returns ``(m, n(n−1)/2)``.  Output is float64.
    """
    r = torch.as_tensor(rdm_matrix)
    if r.dim() not in (2, 3) or r.shape[-1] != r.shape[-2]:
        raise ValueError(f"expected a square matrix (n, n) or a stack (m, n, n), got shape {tuple(r.shape)}")
    n = r.shape[-1]
    if n < 3:
        raise ValueError(f"an RDM needs at least 3 examples, got a {n}×{n} matrix")
    i, j = torch.triu_indices(n, n, offset=1, device=r.device)
    flat = r.reshape(*r.shape[:-2], n * n)
    return flat.index_select(-1, i * n + j).to(torch.float64)


def _as_rdm_vectors(rdms, name: str = "rdms") -> torch.Tensor:
    """Stack RDMs into ``(m, L)`` float64 upper-triangle vectors.

    Accepts a sequence of square ``(n, n)`` matrices or of vectors ``(L,)``, a tensor ``(m, n, n)``
    or a tensor ``(m, L)`` of already-extracted upper triangles.
    """
    if isinstance(rdms, (list, tuple)):
        if len(rdms) == 0:
            raise ValueError(f"{name} is empty")
        items = [torch.as_tensor(r) for r in rdms]
        shapes = {tuple(r.shape) for r in items}
        if len(shapes) != 1:
            raise ValueError(f"all RDMs in {name} must have the same shape, got {sorted(shapes)}")
        stacked = torch.stack(items)
    else:
        stacked = torch.as_tensor(rdms)
    if stacked.dim() == 3:
        vecs = upper_triangle(stacked)
    elif stacked.dim() == 2:
        vecs = stacked.to(torch.float64)
    else:
        raise ValueError(
            f"{name} must be (m, n, n) matrices or (m, L) upper-triangle vectors, got shape {tuple(stacked.shape)}"
        )
    if vecs.shape[1] < 3:
        raise ValueError(f"{name}: Spearman correlation needs at least 3 entries per RDM, got {vecs.shape[1]}")
    if not _all_finite(vecs):
        raise ValueError(f"{name} contains NaN or infinite values")
    return vecs


def _as_rdm_vector(r, name: str) -> torch.Tensor:
    t = torch.as_tensor(r)
    if t.dim() == 2 and t.shape[0] == t.shape[1]:
        v = upper_triangle(t)
    elif t.dim() == 1:
        v = t.to(torch.float64)
    else:
        raise ValueError(f"{name} must be a square RDM (n, n) or its upper triangle (L,), got shape {tuple(t.shape)}")
    return _as_rdm_vectors(v[None], name)[0]


# --------------------------------------------------------------------------------------------
# second stage: Spearman comparison
# --------------------------------------------------------------------------------------------


def _rank_rows_torch(t: torch.Tensor) -> torch.Tensor:
    """Average ranks of the rows of ``t`` ``(m, L)`` with torch ops (any device)."""
    m, L = t.shape
    order = torch.sort(t, dim=1).indices
    srt = t.gather(1, order)
    pos = torch.arange(L, device=t.device, dtype=torch.float64).expand(m, L)
    starts = torch.ones(m, L, dtype=torch.bool, device=t.device)
    starts[:, 1:] = srt[:, 1:] != srt[:, :-1]
    if bool(starts.all()):  # no ties: rank = 1 + position in sorted order
        sorted_ranks = pos + 1.0
    else:  # a tie group spanning sorted positions [first, last] gets (first + last)/2 + 1
        first = torch.where(starts, pos, torch.zeros_like(pos)).cummax(dim=1).values
        ends = torch.ones_like(starts)
        ends[:, :-1] = starts[:, 1:]
        last = torch.where(ends, pos, torch.full_like(pos, L)).flip(1).cummin(dim=1).values.flip(1)
        sorted_ranks = 0.5 * (first + last) + 1.0
    return torch.empty_like(t).scatter_(1, order, sorted_ranks)


def _rank_rows_numpy(a: np.ndarray) -> np.ndarray:
    """Same algorithm as :func:`_rank_rows_torch` in NumPy, for a block of rows."""
    m, L = a.shape
    order = np.argsort(a, axis=1)
    srt = np.take_along_axis(a, order, axis=1)
    starts = np.empty((m, L), dtype=bool)
    starts[:, 0] = True
    np.not_equal(srt[:, 1:], srt[:, :-1], out=starts[:, 1:])
    pos = np.arange(L, dtype=np.float64)
    if starts.all():
        sorted_ranks = np.broadcast_to(pos + 1.0, (m, L))
    else:
        first = np.maximum.accumulate(np.where(starts, pos, 0.0), axis=1)
        ends = np.empty_like(starts)
        ends[:, -1] = True
        ends[:, :-1] = starts[:, 1:]
        last = np.minimum.accumulate(np.where(ends, pos, float(L))[:, ::-1], axis=1)[:, ::-1]
        sorted_ranks = 0.5 * (first + last) + 1.0
    ranks = np.empty((m, L), dtype=np.float64)
    np.put_along_axis(ranks, order, sorted_ranks, axis=1)
    return ranks


def _rank_rows_cpu(t: torch.Tensor) -> torch.Tensor:
    """CPU ranking through NumPy's SIMD sort, rows split over threads (NumPy releases the GIL
    while sorting); several times faster than ``torch.sort`` on CPU for long rows."""
    a = t.detach().contiguous().numpy()
    workers = max(1, min(torch.get_num_threads(), os.cpu_count() or 1, a.shape[0]))
    if workers == 1 or a.size < 200_000:
        return torch.from_numpy(_rank_rows_numpy(a))
    chunks = np.array_split(np.arange(a.shape[0]), workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(lambda rows: _rank_rows_numpy(a[rows]), chunks))
    return torch.from_numpy(np.concatenate(parts, axis=0))


def rank_rows(x) -> torch.Tensor:
    """Rank each row of ``x`` ``(m, L)`` (or a vector ``(L,)``), ties get their average rank.

    Ranks start at 1, exactly as ``scipy.stats.rankdata(method="average")`` (the ranking used by
    ``scipy.stats.spearmanr``).  Each row is sorted once; tie groups are located with cumulative
    max/min scans, not a Python loop.  On CPU the work runs in NumPy (faster sort), elsewhere in
    torch.  Returns float64 of the same shape and device.
    """
    t = torch.as_tensor(x).to(torch.float64)
    squeeze = t.dim() == 1
    if squeeze:
        t = t[None]
    if t.dim() != 2:
        raise ValueError(f"rank_rows expects (L,) or (m, L), got shape {tuple(t.shape)}")
    if torch.isnan(t.sum()) and torch.isnan(t).any():
        raise ValueError("cannot rank NaN values")
    ranks = _rank_rows_cpu(t) if t.device.type == "cpu" else _rank_rows_torch(t)
    return ranks[0] if squeeze else ranks


def _pearson_matrix(v: torch.Tensor, name: str) -> torch.Tensor:
    """Pearson correlations between the rows of ``v`` ``(m, L)`` → ``(m, m)`` float64."""
    c = v - v.mean(dim=1, keepdim=True)
    norms = c.norm(dim=1, keepdim=True)
    bad = (norms.squeeze(1) == 0).nonzero().flatten()
    if bad.numel():
        raise ValueError(
            f"{name}: RDM(s) {bad[:10].tolist()} are constant (all dissimilarities equal), so their "
            "Spearman correlation is undefined"
        )
    u = c / norms
    return (u @ u.T).clamp_(-1.0, 1.0)


def compare_rdms(a, b) -> float:
    """Second-stage RSA dissimilarity ``1 − ρ_Spearman(triu(A), triu(B))`` ([G] App. B).

    ``a`` and ``b`` are square RDMs ``(n, n)`` (their strict upper triangles are used) or already
    extracted upper-triangle vectors ``(L,)``.  ρ is the Pearson correlation of the ranks, ties
    ranked by their average (as ``scipy.stats.spearmanr``).  Returns a python float in [0, 2].
    """
    va, vb = _as_rdm_vector(a, "a"), _as_rdm_vector(b, "b")
    if va.shape != vb.shape:
        raise ValueError(f"RDMs of different sizes cannot be compared: {va.numel()} vs {vb.numel()} pairs")
    ranks = rank_rows(torch.stack([va, vb.to(va.device)]))
    return float(1.0 - _pearson_matrix(ranks, "compare_rdms")[0, 1])


def rdm_of_rdms(rdms) -> torch.Tensor:
    """Matrix ``(m, m)`` of pairwise :func:`compare_rdms` between ``m`` RDMs ([G] Fig. 3).

    ``M[a, b] = 1 − ρ_Spearman(triu(RDM_a), triu(RDM_b))``.  Vectorised: each upper triangle is
    ranked once (one sort per RDM), then all pairs come from a single correlation matrix of the
    rank vectors — ``O(m L log L + m² L)`` instead of ranking both members of every pair.

    ``rdms``: a sequence of ``(n, n)`` RDMs, a tensor ``(m, n, n)``, or a tensor ``(m, L)`` of
    upper triangles (a 2-D tensor is always read as ``m`` vectors, never as one RDM).  Returns a
    symmetric float64 tensor with a zero diagonal, on the input's device.
    """
    vecs = _as_rdm_vectors(rdms)
    out = 1.0 - _pearson_matrix(rank_rows(vecs), "rdm_of_rdms")
    out.fill_diagonal_(0.0)
    return 0.5 * (out + out.T)


def representational_dissimilarity(acts_a, acts_b, metric: str = "euclidean") -> float:
    """RSA dissimilarity of two representations of the same ``n`` inputs ([G] Figs. 1, 2).

    ``compare_rdms(rdm(acts_a, metric), rdm(acts_b, metric))`` — 0 when the two representations
    order all pairwise distances identically.  ``acts_a`` ``(n, ...)`` and ``acts_b`` ``(n, ...)``
    may have different feature shapes (e.g. two layers).  Returns a python float.
    """
    xa, xb = flatten_examples(acts_a, name="acts_a"), flatten_examples(acts_b, name="acts_b")
    _check_same_n(xa, xb, ("acts_a", "acts_b"))
    return compare_rdms(rdm(xa, metric), rdm(xb.to(xa.device), metric))


# --------------------------------------------------------------------------------------------
# MDS embedding of a dissimilarity matrix
# --------------------------------------------------------------------------------------------


def _make_mds(n_components: int, seed: int, n_init: int, max_iter: int, eps: float):
    """Construct ``sklearn.manifold.MDS`` for a precomputed metric dissimilarity matrix.

    scikit-learn 1.8 renamed the arguments (``metric`` → ``metric_mds``; ``dissimilarity`` →
    ``metric="precomputed"``) and 1.9/1.10 change the defaults of ``n_init``/``init``.  Every
    argument that matters is passed explicitly so results do not depend on the version's defaults.
    """
    from sklearn.manifold import MDS

    accepted = inspect.signature(MDS.__init__).parameters
    kwargs = dict(n_components=n_components, n_init=n_init, max_iter=max_iter, eps=eps,
                  random_state=seed)
    if "metric_mds" in accepted:  # scikit-learn ≥ 1.8
        kwargs.update(metric_mds=True, metric="precomputed")
        if "init" in accepted:
            kwargs["init"] = "random"
    else:  # scikit-learn < 1.8
        kwargs.update(metric=True, dissimilarity="precomputed")
    if "normalized_stress" in accepted:
        kwargs["normalized_stress"] = False
    return MDS(**kwargs)


def _canonical_orientation(y: np.ndarray) -> np.ndarray:
    """Centre, rotate onto principal axes and fix signs, removing MDS's rotation/reflection freedom."""
    y = y - y.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(y, full_matrices=False)
    y = y @ vt.T
    signs = np.sign(y[np.abs(y).argmax(axis=0), np.arange(y.shape[1])])
    signs[signs == 0] = 1.0
    return y * signs


def mds_embedding(dissimilarity_matrix, n_components: int = 2, seed: int = 0, *, n_init: int = 4,
                  max_iter: int = 3000, eps: float = 1e-9) -> torch.Tensor:
    """Metric MDS embedding ``(m, n_components)`` of a dissimilarity matrix ``(m, m)`` ([G] Fig. 3).

    Runs scikit-learn's SMACOF (``MDS`` with a precomputed metric dissimilarity) from ``n_init``
    random starts seeded by ``seed`` and keeps the lowest-stress one (4 starts was scikit-learn's
    default before 1.9), with a tighter convergence tolerance than scikit-learn's defaults
    (``eps=1e-6``, 300 iterations stop ~0.5% short of the optimum on small matrices).  MDS is only defined up to translation, rotation and reflection, so the
    result is centred, rotated onto its principal axes and each axis is signed so that its largest
    absolute coordinate is positive.  Returns float64 on the input's device.
    """
    d = torch.as_tensor(dissimilarity_matrix)
    if d.dim() != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"expected a square dissimilarity matrix, got shape {tuple(d.shape)}")
    if d.shape[0] <= n_components:
        raise ValueError(f"need more than n_components={n_components} items, got {d.shape[0]}")
    a = d.detach().to("cpu", torch.float64).numpy()
    if not np.isfinite(a).all():
        raise ValueError("dissimilarity matrix contains NaN or infinite values")
    if not np.allclose(a, a.T, atol=1e-10):
        raise ValueError("dissimilarity matrix must be symmetric")
    if (a < 0).any():
        raise ValueError("dissimilarities must be non-negative")
    a = 0.5 * (a + a.T)
    np.fill_diagonal(a, 0.0)
    mds = _make_mds(n_components, seed, n_init, max_iter, eps)
    with warnings.catch_warnings():
        # version-transition FutureWarnings only; the arguments above are explicit
        warnings.simplefilter("ignore", FutureWarning)
        y = mds.fit_transform(a)
    return torch.as_tensor(_canonical_orientation(y), dtype=torch.float64, device=d.device)
