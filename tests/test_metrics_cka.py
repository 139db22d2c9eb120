"""CKA: invariances, hand-computed values, and numpy reference implementations."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform

from mamlscope.metrics.cka import cka, gram_linear, hsic, linear_cka, linear_cka_features, rbf_cka

DTYPES = [torch.float32, torch.float64]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
SETTINGS = [dict(kernel="linear"), dict(kernel="rbf"), dict(kernel="linear", debiased=True),
            dict(kernel="rbf", debiased=True)]


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _orthogonal(d, seed):
    return torch.linalg.qr(_randn(d, d, seed=seed))[0]


def _pair(n=60, seed=0):
    """Two related representations: y is a noisy nonlinear function of x."""
    x = _randn(n, 12, seed=seed)
    y = torch.tanh(x[:, :8] @ _randn(8, 10, seed=seed + 1)) + 0.5 * _randn(n, 10, seed=seed + 2)
    return x, y


@pytest.mark.parametrize("kw", SETTINGS)
def test_identical_representations_give_one(kw):
    x, _ = _pair()
    assert cka(x, x, **kw) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("kw", SETTINGS)
def test_invariant_to_orthogonal_transform_and_isotropic_scaling(kw):
    x, y = _pair()
    base = cka(x, y, **kw)
    assert 0.1 < base < 0.95  # a non-trivial value, so invariance is a real check
    assert cka(x @ _orthogonal(12, 7), y, **kw) == pytest.approx(base, abs=1e-10)
    assert cka(x, 4.5 * y @ _orthogonal(10, 8), **kw) == pytest.approx(base, abs=1e-10)
    assert cka(x, x @ _orthogonal(12, 9), **kw) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("kw", SETTINGS)
def test_not_invariant_to_general_invertible_linear_map(kw):
    x, y = _pair()
    a = _randn(12, 12, seed=11) @ torch.diag(torch.logspace(0, 2, 12, dtype=torch.float64))
    assert torch.linalg.matrix_rank(a) == 12  # invertible
    assert abs(cka(x @ a, y, **kw) - cka(x, y, **kw)) > 0.02
    assert cka(x, x @ a, **kw) < 0.95


def test_hand_computed_linear_cka_one_feature():
    # x = (0, 1, 2), y = (0, 1, 4).  Centred: x = (−1, 0, 1), y = (−5/3, −2/3, 7/3).
    # With one feature, linear CKA = (xᵀy)² / (‖x‖² ‖y‖²) = 4² / (2 · 26/3) = 12/13.
    x = torch.tensor([[0.0], [1.0], [2.0]])
    y = torch.tensor([[0.0], [1.0], [4.0]])
    assert linear_cka(x, y) == pytest.approx(12 / 13, abs=1e-12)
    assert linear_cka_features(x, y) == pytest.approx(12 / 13, abs=1e-12)


def test_hand_computed_linear_cka_two_features():
    # X rows (1,0), (0,1), (−1,0), (0,−1); Y = (1, 1, −1, −1); both already centred.
    # XᵀX = 2·I → ‖·‖_F = 2√2;  YᵀY = 4;  YᵀX = (2, 2) → ‖·‖_F² = 8.  CKA = 8 / (2√2 · 4) = 1/√2.
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    y = torch.tensor([[1.0], [1.0], [-1.0], [-1.0]])
    assert linear_cka(x, y) == pytest.approx(1 / math.sqrt(2), abs=1e-12)


def test_gram_space_equals_feature_space_formula():
    x = _randn(50, 30, seed=3)
    y = x[:, :20] @ _randn(20, 25, seed=4) + _randn(50, 25, seed=5) + 3.0  # offset: centring matters
    ref = linear_cka_features(x, y)
    assert linear_cka(x, y) == pytest.approx(ref, abs=1e-12)
    # and both equal the explicit HSIC formula with the centring matrix, computed in numpy
    xn, yn = x.numpy(), y.numpy()
    h = np.eye(50) - 1 / 50
    k, l = xn @ xn.T, yn @ yn.T
    hs = lambda a, b: np.trace(a @ h @ b @ h)  # noqa: E731
    assert ref == pytest.approx(hs(k, l) / np.sqrt(hs(k, k) * hs(l, l)), abs=1e-12)


def _np_rbf_gram_pairs(x, frac):
    d2 = squareform(pdist(x, "sqeuclidean"))
    sigma = frac * np.median(pdist(x))  # median over distinct pairs
    return np.exp(-d2 / (2 * sigma**2))


def _np_rbf_gram_kornblith(x, threshold):
    """Kornblith et al.'s released ``gram_rbf`` (their CKA notebook), line for line: the median
    of all n² squared distances, zero diagonal included, scaled by threshold²."""
    dot_products = x.dot(x.T)
    sq_norms = np.diag(dot_products)
    sq_distances = -2 * dot_products + sq_norms[:, None] + sq_norms[None, :]
    sq_median_distance = np.median(sq_distances)
    return np.exp(-sq_distances / (2 * threshold ** 2 * sq_median_distance))


def _np_biased_cka(k, l):
    h = np.eye(k.shape[0]) - 1 / k.shape[0]
    kc, lc = h @ k @ h, h @ l @ h
    return (kc * lc).sum() / np.sqrt((kc * kc).sum() * (lc * lc).sum())


def _np_debiased_cka(k, l):
    """U-centring reference (Székely & Rizzo 2014; as in Kornblith et al.'s released code)."""
    def u_centre(g):
        n = g.shape[0]
        g = g.copy()
        np.fill_diagonal(g, 0)
        means = g.sum(0) / (n - 2)
        means -= means.sum() / (2 * (n - 1))
        g -= means[:, None] + means[None, :]
        np.fill_diagonal(g, 0)
        return g
    kc, lc = u_centre(k), u_centre(l)
    return (kc * lc).sum() / np.sqrt((kc * kc).sum() * (lc * lc).sum())


def test_rbf_cka_default_is_kornblith_released_code():
    x, y = _pair(n=40)
    xn, yn = x.numpy(), y.numpy()
    for frac in (0.5, 1.0):
        k, l = _np_rbf_gram_kornblith(xn, frac), _np_rbf_gram_kornblith(yn, frac)
        assert rbf_cka(x, y, sigma_frac=frac) == pytest.approx(_np_biased_cka(k, l), abs=1e-10)
        assert rbf_cka(x, y, sigma_frac=frac, debiased=True) == pytest.approx(_np_debiased_cka(k, l), abs=1e-10)


def test_rbf_cka_distinct_pairs_convention():
    x, y = _pair(n=40)
    xn, yn = x.numpy(), y.numpy()
    for frac in (0.5, 1.0):
        k, l = _np_rbf_gram_pairs(xn, frac), _np_rbf_gram_pairs(yn, frac)
        assert rbf_cka(x, y, sigma_frac=frac, median="pairs") == pytest.approx(_np_biased_cka(k, l), abs=1e-10)
        assert rbf_cka(x, y, sigma_frac=frac, median="pairs", debiased=True) == pytest.approx(
            _np_debiased_cka(k, l), abs=1e-10)
    # the two conventions give different numbers (the released code's bandwidth is smaller)
    assert abs(rbf_cka(x, y) - rbf_cka(x, y, median="pairs")) > 1e-4
    with pytest.raises(ValueError, match="median='mean'"):
        rbf_cka(x, y, median="mean")


def test_debiased_linear_cka_matches_u_centring_reference():
    x, y = _pair(n=30, seed=5)
    xn, yn = x.numpy(), y.numpy()
    assert linear_cka(x, y, debiased=True) == pytest.approx(_np_debiased_cka(xn @ xn.T, yn @ yn.T), abs=1e-10)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_debiased_cka_of_independent_noise_is_near_zero(kernel):
    x, y = _randn(100, 500, seed=20), _randn(100, 500, seed=21)
    assert cka(x, y, kernel=kernel) > 0.5  # the biased estimator is inflated when d ≫ n ...
    assert abs(cka(x, y, kernel=kernel, debiased=True)) < 0.05  # ... the debiased one is not


def test_hsic_helper_is_consistent_with_gram_helpers():
    x, y = _pair(n=20)
    k, l = gram_linear(x), gram_linear(y)
    assert hsic(k, l) / math.sqrt(hsic(k, k) * hsic(l, l)) == pytest.approx(linear_cka(x, y), abs=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_accepts_float32_and_float64_and_conv_shapes(dtype):
    x = _randn(16, 3, 4, 4, seed=1).to(dtype)
    y = _randn(16, 5, 2, 2, seed=2).to(dtype)
    for kw in SETTINGS:
        v = cka(x, y, **kw)
        assert isinstance(v, float)
        assert v == pytest.approx(cka(x.double().reshape(16, -1), y.double().reshape(16, -1), **kw), abs=1e-6)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(torch.randn(5, 3), torch.randn(6, 3))
    with pytest.raises(ValueError, match="at least 4"):
        linear_cka(torch.randn(3, 3), torch.randn(3, 3), debiased=True)
    with pytest.raises(ValueError, match="unknown CKA kernel"):
        cka(torch.randn(5, 3), torch.randn(5, 3), kernel="poly")
    with pytest.raises(ValueError, match="constant"):
        linear_cka(torch.ones(5, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="sigma_frac"):
        rbf_cka(torch.randn(5, 3), torch.randn(5, 3), sigma_frac=0)


@cuda
def test_cka_on_cuda_matches_cpu():
    x, y = _pair()
    for kw in SETTINGS:
        assert cka(x.float().cuda(), y.float().cuda(), **kw) == pytest.approx(cka(x.float(), y.float(), **kw), abs=1e-8)


@pytest.mark.parametrize("m", [1, 2, 7, 10, 501])
def test_median_by_selection_is_numpys_median(m):
    from mamlscope.metrics.cka import _median

    v = torch.randn(m, generator=torch.Generator().manual_seed(m), dtype=torch.float64)
    v[: m // 3] = v[0]  # ties
    assert float(_median(v)) == float(np.median(v.numpy()))


@pytest.mark.parametrize("kw", [dict(kernel="linear"), dict(kernel="rbf", sigma_frac=1.0, median="nonzero"),
                                dict(kernel="rbf", sigma_frac=0.5, median="all"), dict(kernel="linear", debiased=True)])
def test_cka_from_precomputed_grams_is_cka_exactly(kw):
    from mamlscope.metrics.cka import cka_grams, gram

    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(30, 8, generator=g), torch.randn(30, 5, 2, generator=g)
    debiased = kw.pop("debiased", False)
    assert cka_grams(gram(x, **kw), gram(y, **kw), debiased) == cka(x, y, debiased=debiased, **kw)
    with pytest.raises(ValueError, match="unknown CKA kernel"):
        gram(x, kernel="cosine")
