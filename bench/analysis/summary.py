"""The one summary of measured values: n, median, spread and the median's 95% CI per group.

The report's summary.csv and the end-of-run table in the terminal (render/terminal.py) are
this same table, read from the CSV (not the runner's memory), so what is shown is exactly what
was saved.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.dataset import Dataset
from bench.analysis.stats import median_ci
from bench.forked import forked_map
from bench.results import unit_of

SUMMARY_KEYS = ["host_id", "scenario", "guest", "backend", "accel", "phase", "instances", "metric"]
STAT_COLUMNS = ["unit", "n", "median", "p25", "p75", "min", "max", "mean", "sd", "cv"]


def summarize(ds: Dataset) -> pd.DataFrame:
    """Per host/scenario/guest/backend/accel/phase/instances/metric: distribution + CI.

    Warmup rows and failed trials are left out of the numbers; n_failed counts the trials
    of the group that gave no number."""
    groups = [(key, g.value.to_numpy(dtype=float)) for key, g in ds.measured.groupby(SUMMARY_KEYS)]
    records = forked_map(_record, groups)  # a long run's bootstraps take seconds
    if not records:
        return pd.DataFrame(columns=[*SUMMARY_KEYS, *STAT_COLUMNS, "ci_low", "ci_high", "n_failed"])
    summary = pd.DataFrame(records)
    failed = _trials(ds.failures).groupby(SUMMARY_KEYS[:-1]).size().rename("n_failed").reset_index()
    summary = summary.merge(failed, on=SUMMARY_KEYS[:-1], how="left")
    summary["n_failed"] = summary["n_failed"].fillna(0).astype(int)
    return summary


def _record(group: tuple[tuple[Any, ...], np.ndarray]) -> dict[str, Any]:
    key, x = group
    return dict(zip(SUMMARY_KEYS, key, strict=True)) | _describe(key[-1], x)


def _describe(metric: str, x: np.ndarray) -> dict[str, Any]:
    ci = median_ci(x)
    mean = float(np.mean(x))
    sd = float(np.std(x, ddof=1)) if len(x) > 1 else math.nan
    return {
        "unit": unit_of(metric),
        "n": len(x),
        "median": float(np.median(x)),
        "p25": float(np.percentile(x, 25)),
        "p75": float(np.percentile(x, 75)),
        "min": float(np.min(x)),
        "max": float(np.max(x)),
        "mean": mean,
        "sd": sd,
        "cv": sd / mean if mean else math.nan,
        "ci_low": ci.low,
        "ci_high": ci.high,
    }


def failure_table(ds: Dataset) -> pd.DataFrame:
    """Failed/timed-out/unsupported trials, counted per group, with one example reason."""
    keys = ["host_id", "scenario", "guest", "backend", "phase", "status"]
    f = ds.failures
    if f.empty:
        return pd.DataFrame(columns=[*keys, "trials", "example"])
    return (
        _trials(f)
        .groupby(keys)
        .agg(trials=("trial", "size"), example=("detail", "first"))
        .reset_index()
    )


def _trials(failures: pd.DataFrame) -> pd.DataFrame:
    """One row per trial that gave no number, its ``trial`` row (the reason) where it has one:
    a trial that failed after some measurements (and the host's load) has several rows."""
    first = failures.assign(_reason=failures.metric != "trial").sort_values(
        "_reason", kind="stable"
    )
    return first.drop_duplicates(
        ["run_id", "host_id", "scenario", "guest", "backend", "instances", "trial", "phase"]
    )
