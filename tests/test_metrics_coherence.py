"""Coherence metrics of Guiroy et al. on constructed vectors with known answers."""

import itertools
import math

import numpy as np
import pytest
import torch

from mamlscope.metrics.coherence import (
    adaptation_deltas,
    flatten_params,
    gradient_coherence,
    pairwise_mean,
    representation_coherence,
    trajectory_coherence,
)

DTYPES = [torch.float32, torch.float64]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")


@pytest.mark.parametrize("dtype", DTYPES)
def test_parallel_orthogonal_and_opposite_directions(dtype):
    parallel = torch.tensor([[1.0, 2.0, 2.0], [2.0, 4.0, 4.0], [0.5, 1.0, 1.0]], dtype=dtype)
    res = trajectory_coherence(parallel)
    assert res.mean == pytest.approx(1.0, abs=1e-12) and res.se == pytest.approx(0.0, abs=1e-12) and res.n == 3
    orthogonal = 3.0 * torch.eye(4, dtype=dtype)
    assert trajectory_coherence(orthogonal).mean == pytest.approx(0.0, abs=1e-12)
    opposite = torch.tensor([[1.0, -2.0, 0.5], [-3.0, 6.0, -1.5]], dtype=dtype)
    res = trajectory_coherence(opposite)
    assert res.mean == pytest.approx(-1.0, abs=1e-12)
    assert math.isnan(res.se) and res.n == 2  # no jackknife with two tasks


def test_cosine_on_a_known_configuration():
    # unit vectors at 0°, 60°, 120° in a plane: cosines 1/2, −1/2, 1/2 → mean 1/6
    ang = torch.tensor([0.0, 60.0, 120.0], dtype=torch.float64).deg2rad()
    v = torch.stack([ang.cos(), ang.sin()], 1) * torch.tensor([[1.0], [5.0], [0.2]], dtype=torch.float64)
    assert trajectory_coherence(v).mean == pytest.approx(1 / 6, abs=1e-12)


def test_gradient_inner_products_on_known_vectors():
    g = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 0.0]])
    # g1·g2 = 0, g1·g3 = 1, g2·g3 = 2 → mean over distinct pairs = 1 (self-products 1, 4, 2 excluded)
    assert gradient_coherence(g).mean == pytest.approx(1.0, abs=1e-12)
    assert gradient_coherence(-g).mean == pytest.approx(1.0, abs=1e-12)  # [L]'s sign convention cancels


def test_standard_error_hand_computed_case():
    # scalars 1, 2, 3: products 2, 3, 6 → mean 11/3.  Leaving one out: 6, 3, 2 (mean 11/3),
    # deviations 7/3, −2/3, −5/3, squares sum 78/9; se² = (2/3)(78/9) = 52/9 → se = √52 / 3.
    res = gradient_coherence(torch.tensor([[1.0], [2.0], [3.0]]))
    assert res.mean == pytest.approx(11 / 3, abs=1e-12)
    assert res.se == pytest.approx(math.sqrt(52) / 3, abs=1e-12)


def test_standard_error_equals_explicit_leave_one_out_jackknife():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((7, 5)) + 0.3
    t = len(g)

    def mean_of_pairs(rows):
        return np.mean([g[i] @ g[j] for i, j in itertools.permutations(rows, 2)])

    full = mean_of_pairs(range(t))
    loo = np.array([mean_of_pairs([r for r in range(t) if r != k]) for k in range(t)])
    se = np.sqrt((t - 1) / t * ((loo - loo.mean()) ** 2).sum())
    res = gradient_coherence(torch.as_tensor(g))
    assert res.mean == pytest.approx(full, abs=1e-12)
    assert res.se == pytest.approx(se, abs=1e-12)
    # relation to the naive "per-task mean over partners, then std/√T" shortcut:
    # U_(−k) − Ū = −2 (m_k − m̄)/(T − 2)  ⇒  se = 2 (T−1)/(T−2) · naive  (≈ 2× for large T)
    per_task = np.array([np.mean([g[i] @ g[j] for j in range(t) if j != i]) for i in range(t)])
    naive = per_task.std(ddof=1) / np.sqrt(t)
    assert res.se == pytest.approx(2 * (t - 1) / (t - 2) * naive, rel=1e-9)


def test_representation_coherence_flattens_and_excludes_self_products():
    h = torch.zeros(3, 2, 1, 2)
    h[0, 0, 0, 0], h[1, 0, 0, 0], h[2, 1, 0, 1] = 1.0, 3.0, 5.0
    # h0·h1 = 3, h0·h2 = 0, h1·h2 = 0 → mean 1 (self-products 1, 9, 25 would change it)
    assert representation_coherence(h).mean == pytest.approx(1.0, abs=1e-12)


def test_pairwise_mean_matches_python_loop_on_random_matrix():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 6))
    s = a + a.T
    ref = np.mean([s[i, j] for i in range(6) for j in range(6) if i != j])
    assert pairwise_mean(torch.as_tensor(s)).mean == pytest.approx(ref, abs=1e-12)


def test_flatten_params_and_deltas_align_keys():
    theta = {"w": torch.tensor([[1.0, 2.0]]), "b": torch.tensor([3.0])}
    a1 = {"b": torch.tensor([4.0]), "w": torch.tensor([[1.0, 3.0]])}  # other insertion order
    a2 = {"w": torch.tensor([[0.0, 2.0]]), "b": torch.tensor([3.0]), "extra": torch.ones(2)}
    assert torch.equal(flatten_params(theta), torch.tensor([1.0, 2.0, 3.0]))
    d = adaptation_deltas([a1, a2], theta)
    assert torch.equal(d, torch.tensor([[0.0, 1.0, 1.0], [-1.0, 0.0, 0.0]]))
    batched = {"w": torch.stack([a1["w"], a2["w"]]), "b": torch.stack([a1["b"], a2["b"]])}
    assert torch.equal(adaptation_deltas(batched, theta, batched=True), d)
    assert flatten_params(batched, batched=True).shape == (2, 3)
    with pytest.raises(ValueError, match="missing"):
        adaptation_deltas([{"w": torch.zeros(1, 2)}], theta)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="zero displacement"):
        trajectory_coherence(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="at least 2"):
        gradient_coherence(torch.ones(1, 4))
    with pytest.raises(ValueError, match="NaN"):
        gradient_coherence(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))


@cuda
def test_coherence_on_cuda_matches_cpu():
    g = torch.randn(6, 50, generator=torch.Generator().manual_seed(0))
    for fn in (trajectory_coherence, gradient_coherence, representation_coherence):
        a, b = fn(g.cuda()), fn(g)
        assert a.mean == pytest.approx(b.mean, abs=1e-9) and a.se == pytest.approx(b.se, abs=1e-9)
