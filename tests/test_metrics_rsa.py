"""RSA metrics checked against scipy and rsatoolbox (independent implementations)."""

import warnings

import numpy as np
import pytest
import scipy.stats
import torch
from scipy.spatial.distance import pdist, squareform

from mamlscope.metrics import rsa
from mamlscope.metrics.rsa import (
    compare_rdms,
    mds_embedding,
    rank_rows,
    rdm,
    rdm_of_rdms,
    representational_dissimilarity,
    upper_triangle,
)

DTYPES = [torch.float32, torch.float64]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")


def _acts(n=30, shape=(4, 5), seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g, dtype=torch.float64).to(dtype)


def _flat_np(x):
    return x.reshape(x.shape[0], -1).double().numpy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", ["euclidean", "correlation", "cosine"])
def test_rdm_matches_scipy_pdist(metric, dtype):
    x = _acts(dtype=dtype)
    got = rdm(x, metric)
    ref = squareform(pdist(_flat_np(x), metric=metric))
    assert got.shape == (30, 30) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-6, rtol=0)
    assert torch.equal(got, got.T) and torch.all(got.diagonal() == 0)


def test_rdm_euclidean_close_points_are_accurate():
    # two nearly identical examples far from the origin: a naive float32 Gram would give 0 or NaN
    x = torch.full((3, 50), 1000.0, dtype=torch.float32)
    x[1, 0] += 1e-2
    x[2, 0] -= 1.0
    got = rdm(x)
    ref = squareform(pdist(x.double().numpy()))
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-6, atol=1e-9)


def test_upper_triangle_matches_squareform_order():
    r = rdm(_acts(n=7))
    np.testing.assert_array_equal(upper_triangle(r).numpy(), squareform(r.numpy(), checks=False))
    stack = upper_triangle(torch.stack([r, 2 * r]))
    assert stack.shape == (2, 21)
    np.testing.assert_array_equal(stack[1].numpy(), 2 * squareform(r.numpy(), checks=False))


def test_rank_rows_matches_scipy_rankdata_with_ties():
    g = torch.Generator().manual_seed(1)
    v = torch.randint(0, 6, (5, 40), generator=g).double()  # many ties
    ref = np.stack([scipy.stats.rankdata(row) for row in v.numpy()])
    np.testing.assert_array_equal(rank_rows(v).numpy(), ref)
    np.testing.assert_array_equal(rank_rows(v[0]).numpy(), ref[0])
    w = torch.randn(3, 300_000, generator=g, dtype=torch.float64)  # the threaded CPU path
    w[:, :1000] = 0.5  # a large tie group
    ref = np.stack([scipy.stats.rankdata(row) for row in w.numpy()])
    np.testing.assert_array_equal(rank_rows(w).numpy(), ref)


@pytest.mark.parametrize("ties", [False, True])
def test_torch_ranking_path_matches_scipy(ties):
    # the path used on CUDA tensors, exercised here on CPU
    g = torch.Generator().manual_seed(2)
    v = torch.randint(0, 8, (4, 50), generator=g).double() if ties else torch.randn(4, 50, generator=g).double()
    ref = np.stack([scipy.stats.rankdata(row) for row in v.numpy()])
    np.testing.assert_array_equal(rsa._rank_rows_torch(v).numpy(), ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_compare_rdms_matches_scipy_spearman(dtype):
    a, b = _acts(seed=1, dtype=dtype), _acts(seed=2, shape=(7,), dtype=dtype)
    ref = 1 - scipy.stats.spearmanr(pdist(_flat_np(a)), pdist(_flat_np(b))).statistic
    assert compare_rdms(rdm(a), rdm(b)) == pytest.approx(ref, abs=1e-6)
    assert representational_dissimilarity(a, b) == pytest.approx(ref, abs=1e-6)
    assert isinstance(compare_rdms(rdm(a), rdm(b)), float)


def test_compare_rdms_with_tied_dissimilarities_matches_scipy():
    g = torch.Generator().manual_seed(3)
    ra = torch.randint(0, 4, (45,), generator=g).double()
    rb = torch.randint(0, 4, (45,), generator=g).double()
    ref = 1 - scipy.stats.spearmanr(ra.numpy(), rb.numpy()).statistic
    assert compare_rdms(ra, rb) == pytest.approx(ref, abs=1e-12)
    assert compare_rdms(torch.as_tensor(squareform(ra.numpy())), torch.as_tensor(squareform(rb.numpy()))) == \
        pytest.approx(ref, abs=1e-12)


def test_rdm_and_comparison_match_rsatoolbox():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    acts = [_acts(n=25, shape=(12,), seed=s) for s in range(4)]
    acts[1] = acts[0] + 0.3 * acts[1]  # one similar pair so values spread
    datasets = [rsatoolbox.data.Dataset(a.numpy()) for a in acts]
    # rsatoolbox's 'euclidean' is squared distance / n_features
    rt_euc = rsatoolbox.rdm.calc_rdm(datasets, method="euclidean")
    ours = torch.stack([upper_triangle(rdm(a)) for a in acts])
    np.testing.assert_allclose((ours**2 / 12).numpy(), rt_euc.get_vectors(), rtol=1e-9, atol=1e-12)
    rt_corr_rdm = rsatoolbox.rdm.calc_rdm(datasets, method="correlation")
    ours_corr = torch.stack([upper_triangle(rdm(a, "correlation")) for a in acts])
    np.testing.assert_allclose(ours_corr.numpy(), rt_corr_rdm.get_vectors(), atol=1e-9)
    # second stage: 1 − Spearman is invariant to the squaring/scaling of rsatoolbox's RDMs
    rt_sim = rsatoolbox.rdm.compare(rt_euc, rt_euc, method="spearman")
    np.testing.assert_allclose(rdm_of_rdms(ours).numpy(), 1 - rt_sim, atol=1e-6)
    assert compare_rdms(ours[0], ours[1]) == pytest.approx(1 - rt_sim[0, 1], abs=1e-6)
    # and the Pearson comparison of the raw vectors agrees with 'corr' (sanity of the inputs)
    rt_pearson = rsatoolbox.rdm.compare(rt_euc, rt_euc, method="corr")
    np.testing.assert_allclose(np.corrcoef(rt_euc.get_vectors()), rt_pearson, atol=1e-9)


def test_rdm_of_rdms_equals_loop_of_scipy_spearman():
    mats = [rdm(_acts(n=20, shape=(6,), seed=s)) for s in range(6)]
    mats.append(torch.as_tensor(squareform(np.round(squareform(mats[0].numpy()), 0))))  # tied RDM
    got = rdm_of_rdms(mats)
    vecs = [squareform(m.numpy(), checks=False) for m in mats]
    ref = np.array([[1 - scipy.stats.spearmanr(a, b).statistic for b in vecs] for a in vecs])
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-6)
    # the three accepted input forms agree
    np.testing.assert_allclose(rdm_of_rdms(torch.stack(mats)).numpy(), got.numpy())
    np.testing.assert_allclose(rdm_of_rdms(torch.stack([upper_triangle(m) for m in mats])).numpy(), got.numpy())
    assert torch.all(got.diagonal() == 0) and torch.equal(got, got.T)


def test_representational_dissimilarity_zero_only_for_same_geometry():
    a = _acts(seed=4)
    b = 3.0 * a.reshape(30, -1) @ torch.linalg.qr(torch.randn(20, 20, dtype=torch.float64))[0] + 5.0
    assert representational_dissimilarity(a, b) == pytest.approx(0.0, abs=1e-12)
    assert representational_dissimilarity(a, _acts(seed=5)) > 0.5


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="at least 3"):
        rdm(torch.randn(2, 5))
    with pytest.raises(ValueError, match="same examples"):
        representational_dissimilarity(torch.randn(5, 3), torch.randn(6, 3))
    with pytest.raises(ValueError, match="unknown RDM metric"):
        rdm(torch.randn(5, 3), "manhattan")
    x = torch.randn(5, 3)
    x[2] = 1.0  # constant example: correlation undefined
    with pytest.raises(ValueError, match=r"examples \[2\]"):
        rdm(x, "correlation")
    with pytest.raises(ValueError, match="NaN"):
        rdm(torch.tensor([[0.0, 1], [1, float("nan")], [2, 2]]))
    with pytest.raises(ValueError, match="different sizes"):
        compare_rdms(rdm(torch.randn(5, 2)), rdm(torch.randn(6, 2)))
    with pytest.raises(ValueError, match="constant"):
        compare_rdms(torch.ones(10), torch.arange(10.0))


def test_mds_embedding_recovers_planar_configuration_without_warnings():
    g = torch.Generator().manual_seed(6)
    pts = torch.randn(8, 2, generator=g, dtype=torch.float64)
    d = torch.as_tensor(squareform(pdist(pts.numpy())))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        emb = mds_embedding(d, n_components=2, seed=0)
        again = mds_embedding(d, n_components=2, seed=0)
    assert emb.shape == (8, 2) and emb.dtype == torch.float64
    np.testing.assert_allclose(squareform(pdist(emb.numpy())), d.numpy(), atol=1e-3)
    assert torch.equal(emb, again)
    # canonical orientation: centred, principal axes, largest |coordinate| positive per axis
    np.testing.assert_allclose(emb.mean(0).numpy(), 0, atol=1e-10)
    cov = (emb.T @ emb).numpy()
    assert abs(cov[0, 1]) < 1e-8 and cov[0, 0] >= cov[1, 1]
    assert torch.all(emb[emb.abs().argmax(0), torch.arange(2)] > 0)
    with pytest.raises(ValueError, match="symmetric"):
        mds_embedding(d + torch.triu(torch.ones(8, 8, dtype=torch.float64), 1))


@cuda
def test_rsa_on_cuda_matches_cpu():
    a, b = _acts(seed=1, dtype=torch.float32), _acts(seed=2, dtype=torch.float32)
    r = rdm(a.cuda())
    assert r.device.type == "cuda"
    np.testing.assert_allclose(r.cpu().numpy(), rdm(a).numpy(), atol=1e-9)
    assert representational_dissimilarity(a.cuda(), b.cuda()) == pytest.approx(
        representational_dissimilarity(a, b), abs=1e-9)
    mats = torch.stack([rdm(_acts(seed=s)) for s in range(3)])
    np.testing.assert_allclose(rdm_of_rdms(mats.cuda()).cpu().numpy(), rdm_of_rdms(mats).numpy(), atol=1e-9)


def test_constant_rows_raise_or_count_as_uncorrelated():
    x = torch.randn(5, 8, dtype=torch.float64)
    x[2] = 3.0  # a constant activation vector (e.g. all zeros after a ReLU)
    with pytest.raises(ValueError, match="constant='uncorrelated'"):
        rdm(x, "correlation")
    r = rdm(x, "correlation", constant="uncorrelated")
    others = [0, 1, 3, 4]
    assert torch.all(r[2, others] == 1.0) and torch.all(r[others, 2] == 1.0) and r[2, 2] == 0
    keep = torch.tensor(others)
    torch.testing.assert_close(r[keep][:, keep], rdm(x[keep], "correlation"))  # the rest unchanged
    with pytest.raises(ValueError, match="constant='zero'"):
        rdm(x, "correlation", constant="zero")
