"""CCA / SVCCA / PWCCA against a covariance-whitening reference and known limits."""

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from mamlscope.metrics.cca import canonical_correlations, pwcca, svcca, svd_reduce

DTYPES = [torch.float32, torch.float64]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _related(n=400, seed=0):
    """x (n, 6) and y (n, 5) sharing a 3-dimensional signal plus independent noise."""
    z = _randn(n, 3, seed=seed)
    x = torch.cat([z, _randn(n, 3, seed=seed + 1)], 1) @ _randn(6, 6, seed=seed + 2)
    y = torch.cat([z + 0.5 * _randn(n, 3, seed=seed + 3), _randn(n, 2, seed=seed + 4)], 1) @ _randn(5, 5, seed=seed + 5)
    return x, y


def _whitening_reference(x, y):
    """Classical CCA: singular values and directions of Σxx^{-1/2} Σxy Σyy^{-1/2} (full-rank case)."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    sxx, syy, sxy = xc.T @ xc, yc.T @ yc, xc.T @ yc
    wx = np.linalg.inv(scipy.linalg.sqrtm(sxx)).real
    wy = np.linalg.inv(scipy.linalg.sqrtm(syy)).real
    u, rho, _ = np.linalg.svd(wx @ sxy @ wy)
    return rho, xc, xc @ wx @ u  # correlations, centred x, canonical variates of x (unit norm)


def test_canonical_correlations_match_whitening_reference():
    x, y = _related()
    rho_ref, _, _ = _whitening_reference(x.numpy(), y.numpy())
    got = canonical_correlations(x, y)
    assert got.dtype == torch.float64 and got.shape == (5,)
    np.testing.assert_allclose(got.numpy(), rho_ref[:5], atol=1e-10)
    assert 0.7 < float(got[0]) < 1 and float(got[-1]) < 0.3  # shared signal is found, noise is not


def test_pwcca_matches_morcos_formula_with_whitened_directions():
    x, y = _related(seed=10)
    rho, xc, variates = _whitening_reference(x.numpy(), y.numpy())
    k = 5
    alpha = np.abs(variates[:, :k].T @ xc).sum(axis=1)  # α_i = Σ_j |⟨h_i, x_j⟩|
    ref_x = (alpha * rho[:k]).sum() / alpha.sum()
    assert pwcca(x, y, side="x") == pytest.approx(ref_x, abs=1e-9)
    assert pwcca(x, y) == pytest.approx(pwcca(x, y, side="y"), abs=1e-12)  # y has the smaller rank
    assert pwcca(x, y) != pytest.approx(float(canonical_correlations(x, y).mean()), abs=1e-3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_invertible_linear_transform_gives_one(dtype):
    x = _randn(500, 20, seed=1)
    a = _randn(20, 20, seed=2) + 3 * torch.eye(20, dtype=torch.float64)
    y = (x @ a + 7.0).to(dtype)
    x = x.to(dtype)
    np.testing.assert_allclose(canonical_correlations(x, y).numpy(), 1.0, atol=1e-6)
    assert svcca(x, y, keep_variance=1.0) == pytest.approx(1.0, abs=1e-6)
    assert pwcca(x, y) == pytest.approx(1.0, abs=1e-6)
    # x is near-isotropic, so truncating y's spectrum keeps a subspace of span(x): still 1
    assert svcca(x, y) == pytest.approx(1.0, abs=1e-6)


def test_independent_noise_gives_small_similarity():
    # Under independence the largest canonical correlation concentrates near
    # sqrt(d1/n) + sqrt(d2/n) ≈ 0.12 (Wachter/Johnstone), so the mean is well below 0.2.
    x, y = _randn(3000, 10, seed=3), _randn(3000, 12, seed=4)
    assert float(canonical_correlations(x, y)[0]) < 0.2
    assert svcca(x, y) < 0.2
    assert pwcca(x, y) < 0.2


def test_svd_reduce_keeps_the_documented_number_of_directions():
    # centred orthonormal columns with singular values 10, 1.2, 0.1, 0.01: squared 100, 1.44, 0.01,
    # 0.0001 (total 101.4501); cumulative fractions 0.98571, 0.99990, 0.999999, 1 → keep 2 for 99%
    q = torch.linalg.qr(_randn(50, 4, seed=5) - _randn(50, 4, seed=5).mean(0))[0]
    s = torch.tensor([10.0, 1.2, 0.1, 0.01], dtype=torch.float64)
    x = q * s @ torch.linalg.qr(_randn(4, 4, seed=6))[0].T
    assert svd_reduce(x).shape == (50, 2)
    assert svd_reduce(x, keep_variance=0.98).shape == (50, 1)
    assert svd_reduce(x, keep_variance=1.0).shape == (50, 4)


def test_rank_deficient_inputs_are_finite_and_warn_when_degenerate():
    x, y = _related(n=200, seed=20)
    x_dup = torch.cat([x, x[:, :3], torch.zeros(200, 4, dtype=torch.float64)], 1)  # duplicated + dead
    y_dup = torch.cat([y, 2 * y[:, :1]], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rho = canonical_correlations(x_dup, y_dup)
        assert rho.shape == (5,)  # numerical ranks 6 and 5, not 13 and 6
        np.testing.assert_allclose(rho.numpy(), canonical_correlations(x, y).numpy(), atol=1e-8)
        # duplicates change the variance spectrum (so the SVCCA truncation) but not the span
        assert svcca(x_dup, y_dup, keep_variance=1.0) == pytest.approx(svcca(x, y, keep_variance=1.0), abs=1e-8)
        assert 0 <= svcca(x_dup, y_dup) <= 1
        # PWCCA weights count neurons, so duplicates re-weight, but dead (zero) neurons add nothing
        assert 0 <= pwcca(x_dup, y_dup) <= 1
        x_dead = torch.cat([x, torch.zeros(200, 4, dtype=torch.float64)], 1)
        assert pwcca(x_dead, y, side="x") == pytest.approx(pwcca(x, y, side="x"), abs=1e-8)
    # d > n: plain CCA is degenerate (all correlations 1) and says so; SVCCA still runs
    wide_x, wide_y = _randn(30, 100, seed=21), _randn(30, 80, seed=22)
    with pytest.warns(RuntimeWarning, match="degenerate CCA"):
        rho = canonical_correlations(wide_x, wide_y)
    np.testing.assert_allclose(rho.numpy(), 1.0, atol=1e-8)
    with pytest.warns(RuntimeWarning, match="degenerate CCA"):
        val = svcca(wide_x, wide_y)
    assert np.isfinite(val) and 0 <= val <= 1
    with pytest.warns(RuntimeWarning):
        assert np.isfinite(pwcca(wide_x, wide_y))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="same examples"):
        svcca(torch.randn(10, 3), torch.randn(11, 3))
    with pytest.raises(ValueError, match="constant"):
        svcca(torch.ones(10, 3), torch.randn(10, 3))
    with pytest.raises(ValueError, match="keep_variance"):
        svcca(torch.randn(10, 3), torch.randn(10, 3), keep_variance=0)
    with pytest.raises(ValueError, match="side"):
        pwcca(torch.randn(10, 3), torch.randn(10, 3), side="z")


def test_conv_shaped_activations_are_flattened():
    x = _randn(300, 2, 2, 2, seed=30)
    y = x.reshape(300, -1) @ _randn(8, 8, seed=31)
    assert svcca(x, y.reshape(300, 2, 4), keep_variance=1.0) == pytest.approx(1.0, abs=1e-8)


@cuda
def test_cca_on_cuda_matches_cpu():
    x, y = _related()
    assert svcca(x.cuda(), y.cuda()) == pytest.approx(svcca(x, y), abs=1e-9)
    assert pwcca(x.float().cuda(), y.float().cuda()) == pytest.approx(pwcca(x.float(), y.float()), abs=1e-9)
