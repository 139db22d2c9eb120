"""mamlscope.stats against independent references (scipy, closed forms, simulation)."""
import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from mamlscope import stats


def test_normal_interval_over_tasks_matches_the_formula_and_is_order_free():
    v = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.5, 0.25])
    s = stats.mean_ci95(v)
    assert s.mean == pytest.approx(float(v.mean()))
    assert s.ci95 == pytest.approx(1.96 * float(v.std()) / math.sqrt(6))
    assert stats.mean_ci95(v.flip(0)) == s          # exact sums: the order does not matter
    with pytest.raises(ValueError):
        stats.mean_ci95(torch.tensor([]))


def test_t_interval_matches_scipy():
    v = [0.91, 0.95, 0.93, 0.97]
    mean, lo, hi = stats.t_interval(v)
    ref = sps.t.interval(0.95, len(v) - 1, loc=np.mean(v), scale=sps.sem(v))
    assert (lo, hi) == pytest.approx(ref) and mean == pytest.approx(np.mean(v))
    assert math.isnan(stats.t_interval([0.5])[1])
    m, half = stats.mean_ci(np.array([v, v]).T, axis=0)
    assert half[0] == pytest.approx(hi - mean)


def test_prediction_interval_is_wider_than_the_mean_and_covers_new_runs():
    v = [96.9, 97.8, 97.3]
    lo, hi = stats.prediction_interval(v)
    _, mlo, mhi = stats.t_interval(v)
    s, n = np.std(v, ddof=1), len(v)
    assert hi - lo == pytest.approx(2 * sps.t.ppf(0.975, n - 1) * s * math.sqrt(1 + 1 / n))
    assert lo < mlo and hi > mhi
    # coverage by simulation: a new draw falls inside about 95% of the time
    rng = np.random.default_rng(0)
    inside = 0
    for _ in range(4000):
        runs = rng.normal(0, 1, 4)
        a, b = stats.prediction_interval(runs)
        inside += a <= rng.normal(0, 1) <= b
    assert 0.93 < inside / 4000 < 0.97


def test_over_seeds_counts_the_seeds_that_pass():
    agg = stats.over_seeds({0: 0.5, 1: -0.1, 2: 0.3}, lambda x: x > 0)
    assert agg.passing == 2 and agg.n == 3 and agg.mean == pytest.approx(0.7 / 3)
    assert "2/3 pass" in str(agg)


def test_paired_difference_uses_the_per_task_differences():
    a, b = torch.tensor([1.0, 1.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 0.0, 0.0])
    d = stats.paired_difference(a, b)
    assert d == stats.mean_ci95(a - b)
    with pytest.raises(ValueError, match="same tasks"):
        stats.paired_difference(a, b[:3])
    vals = stats.interval_values("diff", {"x": d})
    assert vals["diff_lo"]["x"] == pytest.approx(d.mean - d.ci95)


def test_rank_correlation_matches_scipy_and_its_bootstrap_brackets_it():
    rng = np.random.default_rng(1)
    x = np.arange(20.0)
    y = x + rng.normal(0, 4, 20)
    c = stats.rank_correlation(x, y)
    assert c.rho == pytest.approx(sps.spearmanr(x, y).statistic)
    assert c.lo < c.rho < c.hi and c.n == 20
    assert math.isnan(stats.rank_correlation([1, 2, 3], [1, 2, 3]).rho)  # too few points
    rows = stats.spearman_rows(np.array([[1, 2, 3, 4.0], [1, 1, 1, 1.0]]), np.array([[4, 3, 2, 1.0], [1, 2, 3, 4.0]]))
    assert rows[0] == pytest.approx(-1.0) and math.isnan(rows[1])


def test_ratio_bootstraps():
    meta = np.array([1.0, 1.2, 0.8, 1.0])
    inner = np.full((5, 3), 2.0)
    est, lo, hi = stats.bootstrap_ratio(meta, inner)
    assert est == pytest.approx(2.0) and lo <= est <= hi
    r, lo, hi = stats.median_ratio([2.0, 2.1, 1.9], [1.0, 1.0, 1.0])
    assert r == pytest.approx(2.0) and lo <= r <= hi


def test_ratio_over_units_and_relative_drift_by_hand():
    # shared denominator: per-unit ratios 2, 3, 4 → mean 3, t_{2} · s/√3 with s = 1
    est, lo, hi = stats.ratio_over_units([0.2, 0.3, 0.4], 0.1)
    half = sps.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert est == pytest.approx(3.0) and (lo, hi) == pytest.approx((3 - half, 3 + half))
    est, _, _ = stats.ratio_over_units([1.0, 3.0], [2.0, 1.0])  # per unit: 0.5, 3
    assert est == pytest.approx(1.75)
    assert stats.relative_drift([0.1] * 6) == 0.0
    # halves [1, 2, 9] and [3, 4, 5]: medians 2 and 4, median of all 3.5 → 2 / 3.5
    assert stats.relative_drift([1, 2, 9, 3, 4, 5]) == pytest.approx(2 / 3.5)
    assert stats.relative_drift([1, 1, 50, 1, 1]) == 0.0  # one outlier does not move it


def test_excess_over_floor_by_hand():
    # (s − s₀)/(1 − s₀): 0.7 over 0.4 → 0.3/0.6 = 0.5; at the floor → 0; identical → 1
    e = stats.excess_over_floor([0.7, 0.4, 1.0, 0.2], [0.4, 0.4, 0.5, 0.6])
    assert e == pytest.approx([0.5, 0.0, 1.0, -1.0])
    with pytest.raises(ValueError, match="pairs"):
        stats.excess_over_floor([0.5, 0.5], [0.1])
    with pytest.raises(ValueError, match="floor of 1"):
        stats.excess_over_floor([0.5], [1.0])


def test_log_depth_slope_by_hand():
    v = np.array([[1.0, 2.0, 4.0, 8.0], [0.1, 0.1, 0.1, 0.1], [1.0, 1.0, 2.0, 8.0]])
    got = stats.log_depth_slope(v)
    depth = np.array([-1.5, -0.5, 0.5, 1.5])
    by_hand = np.log(v[2]) @ depth / 5.0
    assert got == pytest.approx([math.log(2), 0.0, by_hand])
    assert stats.log_depth_slope(7 * v) == pytest.approx(got)   # scale-free
    assert stats.log_depth_slope(v[0]) == pytest.approx([math.log(2)])


def test_window_rise_fits_a_common_slope_over_the_last_part_of_training():
    """Per-curve intercepts, one slope, over steps ≥ 60% of training; the rise is slope × 40%."""
    steps = [0, 100, 200, 300, 400, 500]
    rising = {s: {t: 0.5 + s * 0.1 + 0.0003 * t + 0.001 * (-1) ** (t // 100) for t in steps} for s in range(3)}
    r = stats.window_rise(rising, 500)
    assert r.n == 9 and r.rise == pytest.approx(0.0003 * 200, abs=1e-3) and r.lo < r.rise < r.hi
    flat = {s: {t: 0.8 + s * 0.05 for t in steps} for s in range(2)}
    f = stats.window_rise(flat, 500)
    assert f.rise == pytest.approx(0.0) and f.hi == pytest.approx(0.0)
    assert math.isnan(stats.window_rise({0: {400: 0.1, 500: 0.2}}, 500).hi)  # no residual df
    assert stats.window_rise({0: {0: 0.1}}, 500).n == 0


def test_rank_correlation_difference_is_paired_and_zero_against_itself():
    import scipy.stats as sps

    rng = np.random.default_rng(3)
    y = np.arange(12.0) + rng.normal(size=12)
    x, z = y + rng.normal(size=12), np.arange(12.0)
    d = stats.rank_correlation_difference(x, z, y)
    assert d.rho == pytest.approx(sps.spearmanr(x, y).statistic - sps.spearmanr(z, y).statistic)
    assert d.lo <= d.rho <= d.hi and d.n == 12
    assert stats.rank_correlation_difference(x, x, y)[:3] == (0.0, 0.0, 0.0)
    assert math.isnan(stats.rank_correlation_difference([1, 2, 3], [1, 2, 3], [1, 2, 3]).rho)


def test_peak_drop_null_is_the_bias_of_a_max_over_a_flat_noisy_curve():
    rng = np.random.default_rng(4)
    se = np.full(10, 0.02)
    drops = [stats.smoothed_peak_drop(0.5 + se * rng.standard_normal(10))[2] for _ in range(3000)]
    bias, q95 = stats.peak_drop_null(se, n_sim=3000, seed=5)
    assert bias > 0.005 and bias == pytest.approx(np.mean(drops), abs=0.002)
    assert q95 == pytest.approx(np.quantile(drops, 0.95), abs=0.004)
    assert stats.smoothed_peak_drop([0.1, 0.5, 0.9, 0.5, 0.1])[:2] == (2, pytest.approx(1.9 / 3))


def test_grouped_pairwise_mean_matches_brute_force():
    import torch

    h = torch.tensor(np.random.default_rng(5).normal(size=(4, 2, 3)))
    mean, se = stats.grouped_pairwise_mean(h)
    flat = h.reshape(8, 3)
    off = ~torch.eye(8, dtype=torch.bool)
    assert mean == pytest.approx((flat @ flat.T)[off].mean().item())
    loo = np.array([(lambda k: (k @ k.T)[~torch.eye(6, dtype=torch.bool)].mean().item())(
        torch.cat([h[j] for j in range(4) if j != i])) for i in range(4)])
    assert se == pytest.approx(math.sqrt(3 / 4 * ((loo - loo.mean()) ** 2).sum()))


def test_overlap_power_against_a_simulation():
    rng = np.random.default_rng(0)
    est = rng.normal(0.0, 0.01, 200_000)
    assert stats.overlap_power(0.01, 0.015) == pytest.approx(float(np.mean(np.abs(est) <= 0.015)), abs=0.005)
    assert stats.overlap_power(0.01, 0.015, one_sided=True) == pytest.approx(float(np.mean(est >= -0.015)), abs=0.005)
