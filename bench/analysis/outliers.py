"""Outliers, drift and busy-host trials: named in the report, never dropped from a figure.

Outliers: per group (host, scenario, guest, engine, instances, phase, metric) of at least
``MIN_N`` ok values, a value whose modified z-score (Iglewicz and Hoaglin 1993:
0.6745 (x - median) / MAD) is above ``Z_LIMIT`` = 3.5. A group whose MAD is 0 uses the
mean absolute deviation instead (0.7979 (x - median) / meanAD), as IBM SPSS does.

Drift: per group of at least ``TREND_MIN_N`` values in run order (``started_at``, then the
trial number), the Mann-Kendall trend test: S, the sum of the signs of every later value
less an earlier one, its variance with the tie correction, the two-sided p of the normal
approximation with continuity correction, and Kendall's tau (S over the number of pairs);
flagged when p < ``TREND_P``. A warming host (values falling) or a throttling one (values
rising) shows here. In numpy: a report does not import scipy.stats (see stats.py).

Busy: a trial during which other processes than the run's own used ``BUSY_OTHER_PCT`` % of
all cores or more (its ``host_other_cpu_pct`` row, bench/run/hostload.py).

Pure pandas/numpy on the rows of results CSVs; nothing here reads a host.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.results import unit_of
from bench.units import human

Z_LIMIT = 3.5
MIN_N = 5
TREND_MIN_N = 6
NAMED_PER_GROUP = 3  # outliers named one by one in a group; the rest are counted
TREND_P = 0.01
BUSY_OTHER_PCT = 25.0
HOST_METRICS = ("host_load_1m", "host_other_cpu_pct", "host_cpu_pressure_pct", "host_steal_pct")
GROUP = ["host_id", "scenario", "guest", "backend", "instances", "phase", "metric"]
TRIAL = ["run_id", "host_id", "scenario", "guest", "backend", "instances", "trial"]
CHECKED_UNITS = ("s", "B")  # timings and sizes; facts (bool) and counts are not samples


def modified_z(values: np.ndarray | list[float]) -> np.ndarray:
    """Iglewicz-Hoaglin modified z-scores (0 for all when the values do not vary)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return x
    median = np.median(x)
    deviation = np.abs(x - median)
    mad = np.median(deviation)
    if mad > 0:
        return 0.6745 * (x - median) / mad
    mean_ad = np.mean(deviation)
    if mean_ad > 0:
        return 0.7979 * (x - median) / mean_ad
    return np.zeros_like(x)


def samples(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows outliers and drift are looked for in: ok timings and sizes of measured
    (warm or cold) trials, in run order."""
    r = rows[(rows.status == "ok") & rows.value.notna() & rows.phase.isin(["warm", "cold"])]
    r = r[r.metric.map(unit_of).isin(CHECKED_UNITS) & ~r.metric.isin(HOST_METRICS)]
    return r.sort_values(["started_at", "trial"], kind="stable")


def host_state(rows: pd.DataFrame) -> pd.DataFrame:
    """Per trial (TRIAL columns): its host_* values, one column each (NaN where not recorded:
    a CSV from before they were)."""
    r = rows[rows.metric.isin(HOST_METRICS) & rows.value.notna()]
    if r.empty:
        return pd.DataFrame(columns=[*TRIAL, *HOST_METRICS])
    wide = r.pivot_table(index=TRIAL, columns="metric", values="value", aggfunc="first")
    for metric in HOST_METRICS:
        if metric not in wide.columns:
            wide[metric] = np.nan
    return wide[list(HOST_METRICS)].reset_index()


def outliers(rows: pd.DataFrame) -> pd.DataFrame:
    """Every value with |modified z| > Z_LIMIT in its group, with the group's median and the
    host's state during that trial; in group order, then run order."""
    columns = [*TRIAL, "phase", "metric", "value", "median", "z", "started_at"]
    s = samples(rows)
    z, median = _group_z(s)
    hit = (z.abs() > Z_LIMIT) & (s.groupby(GROUP, sort=False).value.transform("size") >= MIN_N)
    if not hit.any():
        return pd.DataFrame(columns=[*columns, *HOST_METRICS])
    table = s[hit].assign(z=z[hit], median=median[hit]).sort_values(GROUP, kind="stable")
    return table[columns].merge(host_state(rows), on=TRIAL, how="left")


def _group_z(s: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each value's modified z-score in its GROUP and the group's median (``modified_z``,
    computed for every group at once: a lab's CSVs have thousands of groups)."""
    median = s.groupby(GROUP, sort=False).value.transform("median")
    deviation = (s.value - median).abs()
    by_group = deviation.groupby([s[c] for c in GROUP], sort=False)
    mad, mean_ad = by_group.transform("median"), by_group.transform("mean")
    away = s.value - median
    z = (0.6745 * away / mad).where(mad > 0, (0.7979 * away / mean_ad).where(mean_ad > 0, 0.0))
    return z, median


@dataclass(frozen=True)
class Trend:
    key: tuple  # GROUP values
    n: int
    tau: float
    p: float
    first: str  # started_at of its first and last trial
    last: str


def mann_kendall(values: np.ndarray | list[float]) -> tuple[float, float]:
    """(Kendall's tau, two-sided p) of ``values`` against their order: the Mann-Kendall test."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    pairs = n * (n - 1) / 2
    if n < 3:
        return 0.0, 1.0
    s = _kendall_s(x)
    _, ties = np.unique(x, return_counts=True)
    var = (n * (n - 1) * (2 * n + 5) - float(np.sum(ties * (ties - 1) * (2 * ties + 5)))) / 18
    if var <= 0 or s == 0:
        return s / pairs, 1.0
    z = (s - math.copysign(1, s)) / math.sqrt(var)
    return s / pairs, math.erfc(abs(z) / math.sqrt(2))


def _kendall_s(x: np.ndarray) -> int:
    """S: the sum of the signs of every later value less an earlier one, as the pairs that
    rise less those that fall. The falling pairs are counted as in a merge sort, for blocks
    of 2, 4, 8, ... values at once: every pair is split between the two halves of one block
    once. O(n log² n): a long run's groups have thousands of values, millions of pairs."""
    n = len(x)
    _, rank, ties = np.unique(x, return_inverse=True, return_counts=True)
    falling = 0
    position = np.arange(n)
    width = 1
    while width < n:
        block = position // (2 * width)
        first = position % (2 * width) < width
        # One sorted key per value of a first half: its block, then its rank.
        keys = np.sort(block[first] * n + rank[first])
        later_block, later_rank = block[~first], rank[~first]
        block_end = np.searchsorted(keys, later_block * n + n)
        not_above = np.searchsorted(keys, later_block * n + later_rank, side="right")
        falling += int(np.sum(block_end - not_above))  # earlier values above each later one
        width *= 2
    tied = int(np.sum(ties * (ties - 1) // 2))
    rising = n * (n - 1) // 2 - falling - tied
    return rising - falling


def trends(rows: pd.DataFrame) -> list[Trend]:
    """Groups whose values rise or fall over the run's order (Mann-Kendall, p < TREND_P)."""
    s = samples(rows)
    found: list[Trend] = []
    values = s.value.to_numpy()
    for start, end, where in _group_spans(s):
        x = values[where[start:end]]
        if end - start < TREND_MIN_N or np.all(x == x[0]):
            continue
        tau, p = mann_kendall(x)
        if p < TREND_P:
            first, last = s.iloc[where[start]], s.iloc[where[end - 1]]
            key = tuple(first[GROUP])
            found.append(Trend(key, end - start, tau, p, first.started_at, last.started_at))
    return found


def _group_spans(s: pd.DataFrame) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, end, where) per GROUP in sorted key order: s.iloc[where[start:end]] is the
    group, in the order of s. Positions, not frames: a lab's CSVs have thousands of groups."""
    if s.empty:
        return
    codes = s.groupby(GROUP, sort=True).ngroup().to_numpy()
    where = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[where])) + 1
    for start, end in zip([0, *bounds], [*bounds, len(where)], strict=True):
        yield int(start), int(end), where


def busy_trials(rows: pd.DataFrame) -> pd.DataFrame:
    """Trials during which other processes used BUSY_OTHER_PCT % of the CPU or more."""
    state = host_state(rows)
    return state[state.host_other_cpu_pct >= BUSY_OTHER_PCT]


def _clocks(started_at: pd.Series) -> pd.Series:
    """'14:03:22 UTC' of each ISO time (the day is the run's), or the text as it is."""
    stamps = pd.to_datetime(started_at, errors="coerce", utc=True, format="ISO8601")
    return stamps.dt.strftime("%H:%M:%S UTC").where(stamps.notna(), started_at.astype(str))


def _clock(started_at: str) -> str:
    return str(_clocks(pd.Series([started_at])).iloc[0])


def host_then(record) -> str:
    """'load 2.31, other processes 64 % of the CPU (busy)', or what of it was recorded."""
    parts = []
    load, other = (
        getattr(record, "host_load_1m", np.nan),
        getattr(record, "host_other_cpu_pct", np.nan),
    )
    if pd.notna(load):
        parts.append(f"load {load:.2f}")
    if pd.notna(other):
        busy = " (busy)" if other >= BUSY_OTHER_PCT else ""
        parts.append(f"other processes {other:.0f} % of the CPU{busy}")
    return ", ".join(parts) if parts else "host load not recorded"


def warnings(rows: pd.DataFrame) -> list[str]:
    """The report's lines about outliers, drift and busy-host trials."""
    lines = outlier_lines(outliers(rows))
    for t in trends(rows):
        host, scenario, guest, backend, _n, phase, metric = t.key
        way = "rises" if t.tau > 0 else "falls"
        lines.append(
            f"drift: {scenario}/{guest} {backend} {phase} {metric} on {host} {way} over the run "
            f"(Mann-Kendall: tau {t.tau:+.2f}, p {t.p:.3g}, {t.n} trials {_clock(t.first)} .. "
            f"{_clock(t.last)}): a warming or throttling host, or a cache filling?"
        )
    busy = busy_trials(rows)
    if len(busy):
        total = len(host_state(rows))
        named = [
            f"{b.scenario}/{b.guest} {b.backend} #{b.trial} ({b.host_other_cpu_pct:.0f} %)"
            for b in busy.itertuples(index=False)
        ]
        shown = ", ".join(named[:8]) + (f" and {len(named) - 8} more" if len(named) > 8 else "")
        lines.append(
            f"busy host: {len(busy)} of {total} trials ran while other processes used "
            f"{BUSY_OTHER_PCT:g} % of the CPU or more: {shown}"
        )
    return lines


def outlier_lines(found: pd.DataFrame) -> list[str]:
    """A line per outlier, at most NAMED_PER_GROUP per group (its most extreme, in run order)
    and one line that counts the rest of a group: a long run can have thousands."""
    if found.empty:
        return []
    group = found.groupby(GROUP, sort=False)
    size = group.z.transform("size")
    shown = size.where(size > NAMED_PER_GROUP + 1, 0).clip(upper=NAMED_PER_GROUP)
    shown = shown.where(shown > 0, size)  # never "1 more"
    rank = (
        found.z.abs()
        .groupby([found[c] for c in GROUP], sort=False)
        .rank(method="first", ascending=False)
    )
    found = found.assign(clock=_clocks(found.started_at), group_code=group.ngroup())
    named = rank <= shown
    rest = (
        found[~named]
        .groupby("group_code")
        .agg(
            n=("z", "size"),
            low=("z", "min"),
            high=("z", "max"),
            first=("trial", "min"),
            last=("trial", "max"),
        )
    )
    lines = []
    named_rows = list(found[named].itertuples(index=False))  # in group order, then run order
    for r, after in zip(named_rows, [*named_rows[1:], None], strict=True):
        unit = unit_of(r.metric)
        lines.append(
            f"outlier (kept): {r.scenario}/{r.guest} {r.backend} {r.phase} {r.metric} "
            f"trial {r.trial} at {r.clock} on {r.host_id}: {human(r.value, unit)} vs "
            f"median {human(r.median, unit)} (modified z {r.z:.1f}); host then: {host_then(r)}"
        )
        if r.group_code in rest.index and (after is None or after.group_code != r.group_code):
            n, low, high, first, last = rest.loc[
                r.group_code, ["n", "low", "high", "first", "last"]
            ]
            z = f"{low:.1f}" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f} to {high:.1f}"
            lines.append(
                f"outlier (kept): {int(n)} more in {r.scenario}/{r.guest} {r.backend} "
                f"{r.phase} {r.metric} on {r.host_id}, modified z {z} "
                f"(trials {int(first)}..{int(last)})"
            )
    return lines


def busy_caveat(rows: pd.DataFrame, metric: str | None = None) -> str:
    """For a verdict whose interval rests on ``rows`` (its groups' rows, ``metric`` the one
    compared): how many of their trials ran on a busy host, or "" when none did (or none
    was recorded)."""
    used = samples(rows)
    if metric is not None:
        used = used[used.metric == metric]
    used = used[TRIAL].drop_duplicates()
    if used.empty:
        return ""
    busy = used.merge(busy_trials(rows)[TRIAL], on=TRIAL)
    if busy.empty:
        return ""
    return (
        f"{len(busy)} of the {len(used)} trials behind this interval ran on a busy host "
        f"(other processes {BUSY_OTHER_PCT:g} % of the CPU or more): it may be wider or "
        "shifted"
    )


def with_busy_caveats(claims: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The claims table with busy_caveat added to each verdict that has an interval: its
    host, scenario, guest, the two engines compared, its metric and phase."""
    if claims.empty or not rows.metric.isin(HOST_METRICS).any():
        return claims
    claims = claims.copy()
    for i, c in claims.iterrows():
        if pd.isna(c.get("ci_low")) or not c.get("metric"):
            continue
        engines = {c.get("container"), c.get("vm")} - {None, ""}
        mine = rows[
            (rows.host_id == c.host_id)
            & (rows.scenario == c.scenario)
            & (rows.guest == c.guest)
            & rows.backend.isin(engines)
            & ((rows.phase == c.phase) if c.get("phase") else True)
        ]
        said = busy_caveat(mine, c.metric)
        if said:
            claims.at[i, "caveat"] = "; ".join(x for x in (c.caveat, said) if x)
    return claims
