"""The numpy statistics give bit for bit what scipy.stats gives: the pinned verdicts' numbers
came from scipy.stats.bootstrap and linregress, and a report must not need scipy.stats."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps

from bench.analysis.stats import CONFIDENCE, RESAMPLES, bootstrap_ci, fit_slope


def median(x, axis=-1):
    return np.median(x, axis=axis)


def ratio(x, y, axis=-1):
    return np.median(x, axis=axis) / np.median(y, axis=axis)


LONG_RUN = {60: (2401, 3), 61: (3000, 2401)}  # a long run's groups: several chunks of draws


@pytest.mark.parametrize("case", [*range(60), *LONG_RUN])
def test_bootstrap_equals_scipy_percentile_bootstrap(case: int) -> None:
    rng = np.random.default_rng(case)
    n_a, n_b = LONG_RUN.get(case, (int(rng.integers(2, 40)), int(rng.integers(2, 40))))
    a = np.round(rng.lognormal(0, 1, n_a), 2)  # rounded: ties, as measured times have
    b = np.round(rng.lognormal(0, 1, n_b), 2)
    samples, statistic = ((a,), median) if case % 2 else ((a, b), ratio)
    theirs = sps.bootstrap(
        samples,
        statistic,
        n_resamples=RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=np.random.default_rng(7),
    ).confidence_interval
    ours = bootstrap_ci(samples, np.random.default_rng(7), None if case % 2 else np.divide)
    assert ours == (float(theirs.low), float(theirs.high))


@pytest.mark.parametrize("case", range(30))
def test_fit_equals_linregress_and_its_t_interval(case: int) -> None:
    rng = np.random.default_rng(case)
    x = rng.integers(1, 9, int(rng.integers(3, 30))).astype(float)
    x[:2] = (1.0, 2.0)  # at least two levels
    y = 3e6 * x + rng.normal(0, 1e6, len(x)) if case % 5 else np.full(len(x), 4e6)
    fit, ref = fit_slope(x, y), sps.linregress(x, y)
    half = sps.t.ppf(0.5 + CONFIDENCE / 2, len(x) - 2) * ref.stderr
    assert (fit.slope, fit.intercept) == (ref.slope, ref.intercept)
    assert (fit.low, fit.high) == (ref.slope - half, ref.slope + half) or (
        math.isnan(fit.low) and math.isnan(half)
    )
    assert fit.r_squared == ref.rvalue**2 or math.isnan(fit.r_squared)


def test_the_statistics_do_not_load_scipy_stats() -> None:
    code = (
        "import sys, numpy as np; from bench.analysis import stats; "
        "stats.median_ci([1.0, 2.0, 3.0]); stats.fit_slope([1, 2, 3], [2, 4, 7]); "
        "print('scipy.stats' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
