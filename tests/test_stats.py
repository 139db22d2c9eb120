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
