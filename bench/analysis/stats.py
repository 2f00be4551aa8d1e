"""Confidence intervals for medians, ratios of medians and regression slopes.

Everything is seeded so the same CSV gives the same report twice. Percentile bootstrap is
used because it behaves with small samples and ties (BCa fails on the constant samples that
size metrics produce); a constant sample has an exact interval, its own value.

The bootstrap and the least-squares fit are numpy only, written to give bit for bit what
scipy.stats.bootstrap (percentile) and scipy.stats.linregress give (tests/test_stats.py
compares them): importing scipy.stats costs a report more than all its statistics take.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

SEED = 20240521
CONFIDENCE = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval (NaN bounds: no interval possible)."""

    estimate: float
    low: float
    high: float

    @property
    def defined(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))


NO_INTERVAL = Interval(math.nan, math.nan, math.nan)


def _is_constant(x: np.ndarray) -> bool:
    return len(x) > 0 and bool(np.all(x == x[0]))


def median_ci(values: np.ndarray | list[float], seed: int = SEED) -> Interval:
    """Bootstrap 95% CI of the median; exact for a constant sample, undefined for n < 2."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return NO_INTERVAL
    est = float(np.median(x))
    if _is_constant(x):
        return Interval(est, est, est)
    if len(x) < 2:
        return Interval(est, math.nan, math.nan)
    low, high = bootstrap_ci((x,), np.random.default_rng(seed))
    return Interval(est, low, high)


def ratio_of_medians_ci(
    numerator: np.ndarray | list[float],
    denominator: np.ndarray | list[float],
    seed: int = SEED,
) -> Interval:
    """Median(numerator) / median(denominator) with a two-sample bootstrap 95% CI.

    A constant side (one build's size, say) is taken as known exactly and only the other
    side is resampled; two constant sides give the exact ratio.
    """
    a = np.asarray(numerator, dtype=float)
    b = np.asarray(denominator, dtype=float)
    if len(a) == 0 or len(b) == 0 or np.median(b) == 0:
        return NO_INTERVAL
    return _two_sample_ci(a, b, np.divide, seed)


def difference_of_medians_ci(
    minuend: np.ndarray | list[float],
    subtrahend: np.ndarray | list[float],
    seed: int = SEED,
) -> Interval:
    """Median(minuend) - median(subtrahend) with a two-sample bootstrap 95% CI (each sample
    resampled on its own, as they come from different trials). Made for times: a side of one
    value gives no interval (one trial is not an exact value); a constant side of 2+ values
    is taken as known exactly."""
    a = np.asarray(minuend, dtype=float)
    b = np.asarray(subtrahend, dtype=float)
    if len(a) == 0 or len(b) == 0:
        return NO_INTERVAL
    if min(len(a), len(b)) < 2:
        return Interval(float(np.median(a) - np.median(b)), math.nan, math.nan)
    return _two_sample_ci(a, b, np.subtract, seed)


def _two_sample_ci(
    a: np.ndarray, b: np.ndarray, op: Callable[[Any, Any], Any], seed: int
) -> Interval:
    """op(median(a), median(b)) with a percentile bootstrap CI; a constant side is known
    exactly (only the other is resampled), two constant sides give the exact value."""
    est = float(op(np.median(a), np.median(b)))
    a_fixed, b_fixed = _is_constant(a), _is_constant(b)
    if a_fixed and b_fixed:
        return Interval(est, est, est)
    rng = np.random.default_rng(seed)
    if a_fixed:
        low, high = bootstrap_ci((b,), rng, lambda median_b: op(a[0], median_b))
    elif b_fixed:
        low, high = bootstrap_ci((a,), rng, lambda median_a: op(median_a, b[0]))
    else:
        low, high = bootstrap_ci((a, b), rng, op)
    return Interval(est, low, high)


def bootstrap_ci(
    samples: tuple[np.ndarray, ...],
    rng: np.random.Generator,
    combine: Callable[..., np.ndarray] | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``combine(*medians)`` (the one sample's median when not
    given): RESAMPLES resamples of each sample in turn (as scipy.stats.bootstrap draws them),
    each resample's median, then the (1 - CONFIDENCE) / 2 and (1 + CONFIDENCE) / 2 quantiles
    (Hyndman and Fan's method 7, the 'linear' of scipy.stats.quantile, in its arithmetic)."""
    medians = [resampled_medians(s, rng) for s in samples]
    theta = np.sort(combine(*medians) if combine else medians[0])
    tail = (1 - CONFIDENCE) / 2
    p = np.array([tail, 1 - tail])
    position = p * len(theta) + (1 - p)
    upper = position // 1
    lower = upper - 1
    weight = position % 1
    weight[lower < 0] = 0
    lower = np.clip(lower, 0, len(theta) - 1).astype(np.int64)
    upper = np.clip(upper, 0, len(theta) - 1).astype(np.int64)
    low, high = (1 - weight) * theta[lower] + weight * theta[upper]
    return float(low), float(high)


DRAWS_AT_ONCE = 2_000_000  # indices drawn per chunk of resamples: memory stays flat with n


def resampled_medians(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The medians of RESAMPLES resamples of ``x``, bit for bit np.median's of the draws
    scipy.stats.bootstrap makes. A resample is drawn as ranks into sorted ``x`` (the k-th
    smallest rank is the k-th smallest value), in small integers, a chunk at a time: a long
    run's 2,400 trials make 4.8 million draws per sample."""
    n = len(x)
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    rank = np.empty(n, dtype=np.min_scalar_type(n - 1))
    rank[order] = np.arange(n)
    middle = sorted({(n - 1) // 2, n // 2})  # one rank for odd n, the two central for even
    # An even number of resamples per chunk: the generator hands out 32-bit draws in pairs,
    # so chunks of an even count of draws continue one stream exactly as a single call would.
    per_chunk = max(2, DRAWS_AT_ONCE // n // 2 * 2)
    medians = np.empty(RESAMPLES)
    for start in range(0, RESAMPLES, per_chunk):
        count = min(per_chunk, RESAMPLES - start)
        central = np.partition(rank[rng.integers(0, n, (count, n))], middle, axis=1)
        low, high = ordered[central[:, middle[0]]], ordered[central[:, middle[-1]]]
        medians[start : start + count] = (low + high) / 2
    return medians


@dataclass(frozen=True)
class SlopeFit:
    """Least-squares line of y against x, with the t-based 95% CI of the slope."""

    slope: float
    intercept: float
    low: float
    high: float
    n: int
    r_squared: float


def fit_slope(x: np.ndarray | list[float], y: np.ndarray | list[float]) -> SlopeFit | None:
    """Least squares (scipy.stats.linregress's arithmetic) plus a t-based CI for the slope;
    None if x has fewer than 2 levels."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(np.unique(x)) < 2:
        return None
    ssxm, ssxym, _, ssym = np.cov(x, y, bias=True).flat
    slope = ssxym / ssxm
    intercept = np.mean(y) - slope * np.mean(x)
    if ssym == 0.0:  # a flat line: no correlation to speak of (NaN, as linregress says)
        r = math.nan if ssxym == 0 else 0.0
    else:
        r = max(min(ssxym / np.sqrt(ssxm * ssym), 1.0), -1.0)
    if len(x) > 2:
        from scipy.special import stdtrit  # the t quantile; only a fit needs it

        df = len(x) - 2
        stderr = np.sqrt((1 - r**2) * ssym / ssxm / df)
        half = float(stdtrit(df, 0.5 + CONFIDENCE / 2) * stderr)
    else:
        half = math.nan
    return SlopeFit(
        slope=float(slope),
        intercept=float(intercept),
        low=float(slope) - half,
        high=float(slope) + half,
        n=len(x),
        r_squared=float(r**2),
    )


@dataclass(frozen=True)
class SlopeComparison:
    """How two slopes differ: their difference and ratio (a over b) with bootstrap CIs."""

    difference: Interval
    ratio: Interval


def compare_slopes(
    xa: np.ndarray, ya: np.ndarray, xb: np.ndarray, yb: np.ndarray, seed: int = SEED
) -> SlopeComparison:
    """Pairs bootstrap of slope(a) - slope(b) and slope(a) / slope(b).

    Points are resampled within each series; resamples that hit a single x level are dropped.
    The ratio's upper bound is infinite when b's slope is not clearly above zero.
    """
    rng = np.random.default_rng(seed)
    xa, ya, xb, yb = (np.asarray(v, dtype=float) for v in (xa, ya, xb, yb))
    sa, sb = _slopes(xa, ya, rng), _slopes(xb, yb, rng)
    ok = ~(np.isnan(sa) | np.isnan(sb))
    sa, sb = sa[ok], sb[ok]
    fa, fb = fit_slope(xa, ya), fit_slope(xb, yb)
    if fa is None or fb is None or len(sa) < RESAMPLES // 2:
        return SlopeComparison(NO_INTERVAL, NO_INTERVAL)
    tail = (1 - CONFIDENCE) / 2 * 100
    diff = sa - sb
    difference = Interval(
        fa.slope - fb.slope,
        float(np.percentile(diff, tail)),
        float(np.percentile(diff, 100 - tail)),
    )
    point = fa.slope / fb.slope if fb.slope > 0 else math.inf
    if np.mean(sb <= 0) > (1 - CONFIDENCE) / 2:
        low = float(np.percentile(sa[sb > 0] / sb[sb > 0], tail)) if np.any(sb > 0) else math.nan
        ratio = Interval(point, low, math.inf)
    else:
        ratios = sa[sb > 0] / sb[sb > 0]
        ratio = Interval(
            point, float(np.percentile(ratios, tail)), float(np.percentile(ratios, 100 - tail))
        )
    return SlopeComparison(difference, ratio)


def _slopes(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Slopes of RESAMPLES pairs-bootstrap resamples (NaN where x is constant), a chunk of
    resamples at a time (see resampled_medians)."""
    n = len(x)
    per_chunk = max(2, DRAWS_AT_ONCE // n // 2 * 2)
    slopes = np.empty(RESAMPLES)
    for start in range(0, RESAMPLES, per_chunk):
        count = min(per_chunk, RESAMPLES - start)
        idx = rng.integers(0, n, size=(count, n))
        slopes[start : start + count] = _fitted_slopes(x[idx], y[idx])
    return slopes


def _fitted_slopes(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The least-squares slope of each row of ys against the same row of xs."""
    xm = xs - xs.mean(axis=1, keepdims=True)
    ym = ys - ys.mean(axis=1, keepdims=True)
    sxx = (xm * xm).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        slopes = (xm * ym).sum(axis=1) / sxx
    slopes[sxx == 0] = np.nan
    return slopes
