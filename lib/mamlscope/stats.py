"""The book's statistics, in one module: intervals over tasks and over seeds, prediction
intervals, paired differences, rank correlations with their bootstrap, ratios with theirs, and
aggregation over seeds. The analyses (:mod:`evaluate`, :mod:`representations`, :mod:`reuse`,
:mod:`regulariser`, :mod:`landscape`, :mod:`features`) call these; none computes an interval of
its own.

============================  ==================================================================
``mean_ci95(v)``              mean ± 1.96·s/√n over tasks (normal; exact sums: same digits on
                              every CPU) → :class:`Score`
``t_interval(v)``             mean with its Student-t interval over a few units (seeds)
``mean_ci(a, axis)``          mean and t half-width along an axis (arrays)
``mean_se(v)``                mean and standard error of a tensor
``prediction_interval(v)``    where one more run would fall: mean ± t·s·√(1 + 1/n). A paper's
                              single run is compared with our seeds by this, not by the
                              interval of our mean
``paired_difference(a, b)``   mean of per-task a − b ± 95% CI (same tasks)
``excess_over_floor(s, s0)``  (s − s₀)/(1 − s₀): a similarity rescaled so that its null floor
                              (unrelated representations) is 0 and identity 1
``interval_values(name, s)``  {name, name_lo, name_hi} of Scores: what rules read
``bootstrap_ratio(m, i)``     mean(inner)/mean(meta), percentile bootstrap over units
``median_ratio(a, b)``        ratio of medians of two timings, percentile bootstrap
``ratio_over_units(n, d)``    mean of per-unit ratios n_u/d_u (a shared d: the ratio of
                              means) with its t interval over units
``relative_drift(y)``         |median(2nd half) − median(1st half)| / median: levelled off?
``rank_correlation(x, y)``    Spearman's ρ with a percentile bootstrap → :class:`Correlation`
``rank_correlation_difference``  ρ(x, y) − ρ(z, y), paired bootstrap (a signal against a
                              control: step counter, support loss)
``peak_drop_null(se)``        the drop after a peak that a flat, noisy curve shows (its bias)
``grouped_pairwise_mean(h)``  E[hᵢᵀhⱼ] with a jackknife over groups (tasks)
``over_seeds(values, passes)`` per-seed values → mean, t interval, how many seeds pass
``log_depth_slope(values)``    per row, the least-squares slope of log(value) on layer index
``window_rise(curves, steps)``  fitted rise of learning curves over the last 40% of training,
                              with its t interval → :class:`Rise` (has a curve levelled off?)
``interval_power(θ, t, half)``  the share of measurements of a true effect θ, with this
                              interval's half-width, whose interval end clears the threshold t;
                              and the sample that would reach 0.8 → :class:`Power`
============================  ==================================================================
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from scipy import stats as _scipy
from scipy.stats import rankdata


# --------------------------------------------------------------------------------------------
# Over tasks: the normal interval of a mean
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Score:
    """Mean of per-task values with its 95% CI half-width, over ``n`` tasks."""

    mean: float
    ci95: float
    n: int

    def __str__(self) -> str:
        return f"{100 * self.mean:.1f} ± {100 * self.ci95:.1f}%"

    def values(self) -> dict:
        """What an accuracy claim's rule reads: ``mean``, ``ci95``, ``n_tasks``."""
        return {"mean": self.mean, "ci95": self.ci95, "n_tasks": self.n}


def mean_ci95(values: torch.Tensor) -> Score:
    """``mean ± 1.96 · std(ddof=1) / √n`` of a 1-D tensor of per-task values.

    Sums are exact-then-rounded (:func:`math.fsum`), so the result does not depend on the order
    in which a machine's vector kernels add: the same per-task values give the same digits on
    every CPU (per-task accuracies are ratios of integers, identical wherever the predictions are).
    """
    v = [float(x) for x in values.detach().double().flatten().tolist()]
    n = len(v)
    if n == 0:
        raise ValueError("mean_ci95 needs at least one value.")
    mean = math.fsum(v) / n
    ci = 1.96 * math.sqrt(math.fsum((x - mean) ** 2 for x in v) / (n - 1)) / math.sqrt(n) if n > 1 else float("nan")
    return Score(mean, ci, n)


def mean_se(v: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error (ddof 1) of a tensor; NaN error for one value."""
    v = v.double()
    return float(v.mean()), float(v.std(unbiased=True) / math.sqrt(len(v))) if len(v) > 1 else math.nan


def paired_difference(a: torch.Tensor, b: torch.Tensor) -> Score:
    """Mean of the per-task differences ``a − b`` (same tasks, same order) ± 95% CI."""
    if a.shape != b.shape:
        raise ValueError(f"paired_difference needs per-task values of the same tasks; got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}.")
    return mean_ci95(a.double() - b.double())


def interval_values(name: str, scores: Mapping[str, Score]) -> dict:
    """``{name: means, name_lo: lower ends, name_hi: upper ends}`` of the 95% CIs of ``scores``
    (label → :class:`Score`): what the rules' checks read."""
    return {name: {k: s.mean for k, s in scores.items()}, f"{name}_lo": {k: s.mean - s.ci95 for k, s in scores.items()},
            f"{name}_hi": {k: s.mean + s.ci95 for k, s in scores.items()}}


def excess_over_floor(s, floor) -> np.ndarray:
    """``(s − s₀)/(1 − s₀)`` elementwise: a similarity ``s`` (≤ 1) rescaled by its null floor
    ``s₀`` (the same measure on unrelated representations of the same size, paired with ``s``),
    so that 0 means "as similar as unrelated representations" and 1 "identical". CCA and CKA have
    a positive floor at a small number of examples; a threshold on ``s`` alone ignores it."""
    s, floor = np.asarray(s, dtype=float), np.asarray(floor, dtype=float)
    if s.shape != floor.shape:
        raise ValueError(f"excess_over_floor pairs each similarity with its floor; got shapes {s.shape} "
                         f"and {floor.shape}.")
    if np.any(floor >= 1):
        raise ValueError("a floor of 1 leaves nothing to exceed (the null representations are identical).")
    return (s - floor) / (1 - floor)


# --------------------------------------------------------------------------------------------
# Over a few units (seeds): Student t
# --------------------------------------------------------------------------------------------
def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean of per-unit values with its t interval, ``mean ± t_{n−1} · s/√n`` (NaN for one unit)."""
    v = [float(x) for x in values]
    n = len(v)
    if n == 0:
        raise ValueError("t_interval needs at least one value.")
    mean = math.fsum(v) / n
    if n < 2:
        return mean, math.nan, math.nan
    half = float(_scipy.t.ppf(0.5 + level / 2, n - 1)) * statistics.stdev(v) / math.sqrt(n)
    return mean, mean - half, mean + half


def mean_ci(values: np.ndarray, axis: int = 0, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Mean and Student-t half-width along ``axis``."""
    values = np.asarray(values, dtype=float)
    n = values.shape[axis]
    sem = values.std(axis=axis, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(values.shape[1 - axis])
    return values.mean(axis=axis), _scipy.t.ppf(0.5 + confidence / 2, max(n - 1, 1)) * sem


def prediction_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Where one more independent run would fall, given ``values`` of n runs:
    ``mean ± t_{n−1} · s · √(1 + 1/n)`` (NaN for fewer than two runs). A single run reported by a
    paper is consistent with ours when it lies inside; the interval of our *mean* is too narrow
    for that comparison."""
    v = [float(x) for x in values]
    n = len(v)
    if n < 2:
        return math.nan, math.nan
    mean = math.fsum(v) / n
    half = float(_scipy.t.ppf(0.5 + level / 2, n - 1)) * statistics.stdev(v) * math.sqrt(1 + 1 / n)
    return mean - half, mean + half


@dataclass(frozen=True)
class OverSeeds:
    """A claim's value per seed, aggregated: the mean and its t interval over seeds, and how many
    seeds pass the claim's decisive check on their own."""

    values: Mapping[int, float]
    mean: float
    lo: float
    hi: float
    passing: int

    @property
    def n(self) -> int:
        return len(self.values)

    def __str__(self) -> str:
        interval = "" if math.isnan(self.lo) else f" [{self.lo:+.3g}, {self.hi:+.3g}]"
        return f"{self.mean:+.3g}{interval} over {self.n} seeds, {self.passing}/{self.n} pass"


def over_seeds(values: Mapping[int, float], passes: Callable[[float], bool], level: float = 0.95) -> OverSeeds:
    """``values`` (seed → the claim's value for that seed) → :class:`OverSeeds`."""
    if not values:
        raise ValueError("over_seeds needs at least one seed.")
    mean, lo, hi = t_interval(list(values.values()), level)
    return OverSeeds(dict(values), mean, lo, hi, sum(bool(passes(v)) for v in values.values()))


# --------------------------------------------------------------------------------------------
# Bootstrap: ratios
# --------------------------------------------------------------------------------------------
def bootstrap_ratio(meta: np.ndarray, inner: np.ndarray, *, resamples: int = 2000, seed: int = 0,
                    confidence: float = 0.95) -> tuple[float, float, float]:
    """mean(inner) / mean(meta) with a percentile bootstrap interval over checkpoints and tasks:
    each resample draws checkpoint intervals with replacement (their meta change, and the inner
    change from their first checkpoint), then tasks with replacement within them."""
    rng = np.random.default_rng(seed)
    n_int, n_tasks = len(meta), inner.shape[1]
    est = float(inner[:n_int].mean() / meta.mean())
    ratios = np.empty(resamples)
    for r in range(resamples):
        c = rng.integers(0, n_int, n_int)
        i = rng.integers(0, n_tasks, (n_int, n_tasks))
        ratios[r] = inner[c[:, None], i].mean() / meta[c].mean()
    lo, hi = np.quantile(ratios, [(1 - confidence) / 2, (1 + confidence) / 2])
    return est, float(lo), float(hi)


def ratio_over_units(num: Sequence[float], den, level: float = 0.95) -> tuple[float, float, float]:
    """Per-unit ratios ``num_u / den_u`` (``den`` one number shared by every unit, or one per
    unit), their mean and its t interval over units (:func:`t_interval`). With a shared ``den``
    the mean is the ratio of means, so estimate and interval come from the same units."""
    r = np.asarray(num, float) / np.broadcast_to(np.asarray(den, float), np.shape(num))
    return t_interval(r.ravel().tolist(), level)


def relative_drift(y: Sequence[float]) -> float:
    """How far a series still moves, robustly: |median(second half) − median(first half)| /
    median(all), halves of ⌊n/2⌋ points (the middle point of an odd series is in neither half).
    0 for a level series; one or two outliers barely move it."""
    y = np.asarray(y, float)
    h = len(y) // 2
    if h < 1:
        raise ValueError("relative_drift needs at least two points.")
    mid = float(np.median(y))
    return abs(float(np.median(y[-h:]) - np.median(y[:h]))) / mid if mid > 0 else 0.0


def median_ratio(ta: Sequence[float], tb: Sequence[float], *, resamples: int = 2000, seed: int = 0
                 ) -> tuple[float, float, float]:
    """median(ta) / median(tb) with a 95% percentile bootstrap interval (each timing resampled
    with replacement on its own)."""
    ta_, tb_ = np.array(ta), np.array(tb)
    rng = np.random.default_rng(seed)
    boot = [np.median(rng.choice(ta_, len(ta_))) / np.median(rng.choice(tb_, len(tb_))) for _ in range(resamples)]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return statistics.median(ta) / statistics.median(tb), float(lo), float(hi)


# --------------------------------------------------------------------------------------------
# Rank correlation over checkpoints
# --------------------------------------------------------------------------------------------
class Correlation(NamedTuple):
    rho: float   # Spearman's rank correlation
    lo: float    # percentile bootstrap interval over checkpoints
    hi: float
    n: int       # checkpoints

    def __str__(self) -> str:
        return "—" if math.isnan(self.rho) else f"{self.rho:+.2f} [{self.lo:+.2f}, {self.hi:+.2f}]"


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's ρ of each row pair of ``x``, ``y`` (B, n): Pearson's r of the ranks (ties
    averaged); NaN where a row is constant."""
    rx, ry = (rankdata(a, axis=1) for a in (x, y))
    rx, ry = rx - rx.mean(1, keepdims=True), ry - ry.mean(1, keepdims=True)
    den = np.sqrt((rx ** 2).sum(1) * (ry ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(1) / den, np.nan)


def rank_correlation(x, y, *, n_resamples: int = 4000, level: float = 0.95, seed: int = 0,
                     min_points: int = 4) -> Correlation:
    """Spearman's ρ between two curves over checkpoints, with a percentile bootstrap interval
    (checkpoints resampled with replacement; resamples with a constant curve are dropped).
    NaN with fewer than ``min_points`` checkpoints."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if n < min_points:
        return Correlation(math.nan, math.nan, math.nan, n)
    rho = float(spearman_rows(x[None], y[None])[0])
    idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    boot = spearman_rows(x[idx], y[idx])
    boot = boot[~np.isnan(boot)]
    a = (1 - level) / 2
    lo, hi = np.quantile(boot, [a, 1 - a]) if len(boot) else (math.nan, math.nan)
    return Correlation(rho, float(lo), float(hi), n)


# --------------------------------------------------------------------------------------------
# Has a learning curve levelled off?
# --------------------------------------------------------------------------------------------
class Rise(NamedTuple):
    rise: float  # the fitted change over the window (slope × the window's length)
    lo: float    # its t interval (NaN without a residual degree of freedom)
    hi: float
    n: int       # points in the window (over all curves)


def window_rise(curves: Mapping[object, Mapping[int, float]], total_steps: int,
                last_fraction: float = 0.4, level: float = 0.95) -> Rise:
    """How much a learning curve still rises over the last ``last_fraction`` of training.

    ``curves``: curve (e.g. seed) → {step: value}. The points at steps ≥ (1 − last_fraction) ·
    total_steps are fitted by least squares with one intercept per curve and a common slope;
    the result is slope × window length with its t interval (df = points − curves − 1). A
    curve that has levelled off gives a rise near 0 with an interval that contains it."""
    start = (1 - last_fraction) * total_steps
    xs, ys, groups = [], [], []
    for g, (_, curve) in enumerate(curves.items()):
        for step, value in curve.items():
            if int(step) >= start:
                xs.append(float(step)), ys.append(float(value)), groups.append(g)
    x, y, grp = np.array(xs), np.array(ys), np.array(groups, dtype=int)
    n, k = len(x), len(curves)
    if n == 0:
        return Rise(math.nan, math.nan, math.nan, 0)
    # within-curve centring removes each curve's intercept
    xc, yc = x.copy(), y.copy()
    for g in np.unique(grp):
        xc[grp == g] -= x[grp == g].mean()
        yc[grp == g] -= y[grp == g].mean()
    sxx = float((xc ** 2).sum())
    if sxx == 0:
        return Rise(math.nan, math.nan, math.nan, n)
    slope = float((xc * yc).sum() / sxx)
    length = total_steps - start
    df = n - len(np.unique(grp)) - 1
    if df < 1:
        return Rise(slope * length, math.nan, math.nan, n)
    resid = yc - slope * xc
    se = math.sqrt(float((resid ** 2).sum()) / df / sxx)
    half = float(_scipy.t.ppf(0.5 + level / 2, df)) * se
    return Rise(slope * length, (slope - half) * length, (slope + half) * length, n)


def rank_correlation_difference(x, z, y, *, n_resamples: int = 4000, level: float = 0.95, seed: int = 0,
                                min_points: int = 4) -> Correlation:
    """ρ(x, y) − ρ(z, y): does signal ``x`` follow curve ``y`` better than a control ``z`` (a
    step counter, the support loss) does? Paired percentile bootstrap: each resample draws the
    same checkpoints for both correlations (resamples where either is undefined are dropped).
    ``rho`` of the result is the difference; NaN with fewer than ``min_points`` checkpoints."""
    x, z, y = (np.asarray(a, float) for a in (x, z, y))
    n = len(x)
    if n < min_points:
        return Correlation(math.nan, math.nan, math.nan, n)
    diff = float(spearman_rows(x[None], y[None])[0] - spearman_rows(z[None], y[None])[0])
    idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    boot = spearman_rows(x[idx], y[idx]) - spearman_rows(z[idx], y[idx])
    boot = boot[~np.isnan(boot)]
    a = (1 - level) / 2
    lo, hi = np.quantile(boot, [a, 1 - a]) if len(boot) else (math.nan, math.nan)
    return Correlation(diff, float(lo), float(hi), n)


def smoothed_peak_drop(v, window: int = 3) -> tuple[int, float, float]:
    """Where a curve peaks and how far it falls: smooth ``v`` with a centred moving average over
    ``window`` points (fewer at the ends), take the highest smoothed point ``i`` and its drop to
    the mean of the last ``window`` points. Returns ``(i, smoothed[i], drop)``."""
    v = np.asarray(v, float)
    n, h = len(v), window // 2
    sm = np.array([v[max(0, i - h):min(n, i + h + 1)].mean() for i in range(n)])
    i = int(np.argmax(sm))
    return i, float(sm[i]), float(sm[i] - v[-window:].mean())


def peak_drop_null(se, window: int = 3, *, n_sim: int = 4000, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float]:
    """The drop :func:`smoothed_peak_drop` finds on a curve that does *not* drop: a flat curve
    plus independent normal noise with the checkpoints' standard errors ``se``. The maximum over
    noisy checkpoints is biased upward, so a drop is meta-overfitting only beyond this null.
    Returns the null drop's mean (the bias) and its ``level`` quantile (Monte Carlo)."""
    se = np.asarray(se, float)
    noise = np.random.default_rng(seed).standard_normal((n_sim, len(se))) * se
    n, h = len(se), window // 2
    csum = np.concatenate([np.zeros((n_sim, 1)), np.cumsum(noise, axis=1)], axis=1)
    lo, hi = np.maximum(np.arange(n) - h, 0), np.minimum(np.arange(n) + h + 1, n)
    sm = (csum[:, hi] - csum[:, lo]) / (hi - lo)
    drops = sm.max(axis=1) - noise[:, -window:].mean(axis=1)
    return float(drops.mean()), float(np.quantile(drops, level))


def grouped_pairwise_mean(h) -> tuple[float, float]:
    """Mean inner product ``E_{i≠j}[hᵢᵀhⱼ]`` over all distinct pairs of the ``K·n`` vectors of
    ``h`` (``K`` groups — tasks — of ``n`` vectors each, ``(K, n, d)``), with a jackknife
    standard error that leaves out one *group* at a time (the vectors of one task are not
    independent). Exact and without the ``(Kn)²`` Gram matrix: Σ_{i≠j} hᵢᵀhⱼ = ‖Σh‖² − Σ‖h‖²."""
    h = torch.as_tensor(h).double()
    k, n = h.shape[0], h.shape[1]
    h = h.reshape(k, n, -1)
    s_k, q_k = h.sum(1), (h ** 2).sum((1, 2))       # per group: Σh, Σ‖h‖²
    s, q, big = s_k.sum(0), q_k.sum(), k * n
    mean = float((s @ s - q) / (big * (big - 1)))
    if k < 2:
        return mean, math.nan
    rest = s[None] - s_k
    m = big - n
    loo = (((rest ** 2).sum(1) - (q - q_k)) / (m * (m - 1))).numpy()
    se = math.sqrt((k - 1) / k * ((loo - loo.mean()) ** 2).sum())
    return mean, se


# --------------------------------------------------------------------------------------------
# Depth profiles: how fast a per-layer quantity grows with depth
# --------------------------------------------------------------------------------------------
def log_depth_slope(values, floor: float = 1e-12) -> np.ndarray:
    """Per row of ``values (n_units, n_layers)`` (positive per-layer quantities, e.g. RSA
    dissimilarities), the least-squares slope of ``log(max(value, floor))`` on the layer index
    0, 1, …: ``Σ (ℓ − ℓ̄)(log v_ℓ − mean) / Σ (ℓ − ℓ̄)²``. Scale-free: multiplying a row by a
    constant leaves its slope unchanged, so the slopes of two arms compare how *concentrated in
    the later layers* their changes are, not how large. A 1-D input is one row."""
    v = np.atleast_2d(np.asarray(values, dtype=float))
    depth = np.arange(v.shape[1], dtype=float)
    depth -= depth.mean()
    logs = np.log(np.maximum(v, floor))
    return (logs - logs.mean(1, keepdims=True)) @ depth / float((depth ** 2).sum())


# --------------------------------------------------------------------------------------------
# Power: would the rule see the paper's effect through this measurement's noise?
# --------------------------------------------------------------------------------------------
class Power(NamedTuple):
    power: float    # the share of measurements of the effect that pass the check
    needed: float   # the sample (in the measurement's units) that would give ``target``; inf if none
    n: int          # the sample it was computed for


def interval_power(effect: float, threshold: float, half: float, op: str = ">", n: int = 1,
                   target: float = 0.8, z: float = 1.96, lenient: bool = False) -> Power:
    """A decisive check of the form "the interval's lower end > ``threshold``" (``op`` ``">"``;
    ``"<"``: its upper end below it), where the interval is an estimate ± ``half`` (95%, normal:
    se = half / z). If the truth is ``effect``, the estimate is N(effect, se²) and the check passes
    with probability ``power``. ``lenient``: the check reads the interval's other end (upper end
    above the threshold: "reaches the paper's level"). ``needed``: the sample, in the units ``n``
    counts, whose interval (se ∝ 1/√n) would pass with probability ``target``."""
    if half < 0 or not math.isfinite(half):
        raise ValueError(f"half={half}: the interval's half-width must be non-negative and finite.")
    margin = (effect - threshold) if op in (">", ">=") else (threshold - effect)
    if half == 0:  # an exact measurement: it passes when the effect itself passes
        return Power(float(margin > 0 or (margin == 0 and op in (">=", "<="))), n if margin > 0 else math.inf, n)
    se = half / z
    if lenient:  # passes unless the estimate falls more than z·se short; more sample only narrows it
        power = float(_scipy.norm.cdf(margin / se + z))
        return Power(power, n if power >= target else math.inf, n)
    power = float(_scipy.norm.cdf(margin / se - z))
    need = z + float(_scipy.norm.ppf(target))
    needed = math.inf if margin <= 0 else n * (need * se / margin) ** 2
    return Power(power, needed, n)


def detectable(threshold: float, half: float, op: str = ">", target: float = 0.8, z: float = 1.96,
               lenient: bool = False) -> float:
    """The true value that the check of :func:`interval_power` passes with probability ``target``
    at this interval's width: the smallest effect it sees (for a paper that gives no size)."""
    se = half / z
    shift = (float(_scipy.norm.ppf(target)) + (-z if lenient else z)) * se
    return threshold + shift if op in (">", ">=") else threshold - shift


def overlap_power(se: float, reach: float, one_sided: bool = False) -> float:
    """The chance that an estimate of the true value, with standard error ``se``, lands within
    ``reach`` of it (below it only, ``one_sided``: "reaches the level"): the power of a rule that
    calls a match when our interval and the paper's overlap (``reach`` = the two half-widths)."""
    z = reach / se
    return float(_scipy.norm.cdf(z)) if one_sided else float(2 * _scipy.norm.cdf(z) - 1)

