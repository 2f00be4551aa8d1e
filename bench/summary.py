"""The end-of-run table in the terminal: n, median, min and max per backend and metric.

Reads the CSV, not the runner's memory, so what is shown is exactly what was saved.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.table import Table

from bench.results import read_rows

KEYS = ["scenario", "guest", "backend", "accel", "phase", "metric", "unit"]


def summarize(csv_path: Path) -> pd.DataFrame:
    rows, _bad = read_rows(csv_path)
    frame = pd.DataFrame(rows, columns=None if rows else [*KEYS, "value", "status"])
    if frame.empty:
        return pd.DataFrame(columns=[*KEYS, "n", "median", "min", "max", "failed"])
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    frame = frame[frame["phase"] != "warmup"]
    failed = (
        frame[(frame["status"] != "ok") & (frame["metric"] == "trial")]
        .groupby(["scenario", "guest", "backend"])
        .size()
        .rename("failed")
    )
    ok = frame[(frame["status"] == "ok") & frame["value"].notna()]
    table = (
        ok.groupby(KEYS)["value"]
        .agg(n="count", median="median", min="min", max="max")
        .reset_index()
    )
    table = table.merge(failed.reset_index(), on=["scenario", "guest", "backend"], how="left")
    table["failed"] = table["failed"].fillna(0).astype(int)
    return table


def human(value: float, unit: str) -> str:
    if unit == "B":
        for size, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if abs(value) >= size:
                return f"{value / size:.1f} {suffix}"
        return f"{value:.0f} B"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:g}"


def summary_table(csv_path: Path) -> Table:
    frame = summarize(csv_path)
    table = Table(title=f"summary of {csv_path} (warmup excluded; time: host perf_counter)")
    for column in (
        "scenario/guest",
        "backend",
        "accel",
        "phase",
        "metric",
        "n",
        "median",
        "min",
        "max",
        "failed",
    ):
        table.add_column(
            column, justify="right" if column in ("n", "median", "min", "max", "failed") else "left"
        )
    for r in frame.itertuples(index=False):
        accel = f"{r.accel} (emulated)" if r.accel == "tcg" else r.accel
        table.add_row(
            f"{r.scenario}/{r.guest}",
            r.backend,
            accel,
            r.phase,
            r.metric,
            str(r.n),
            human(r.median, r.unit),
            human(r.min, r.unit),
            human(r.max, r.unit),
            str(r.failed),
        )
    return table
