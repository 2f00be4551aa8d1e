"""Why each group stopped repeating: its ``repetitions`` rows (repetitions = "auto", or a
time budget that cut the run short), as a table for the report."""

from __future__ import annotations

import pandas as pd

from bench.results import parse_detail

COLUMNS = ["host_id", "scenario", "guest", "workload", "instances", "backend", "trials",
           "stopped", "target_ci_pct", "ci_pct"]  # fmt: skip
REASONS = {
    "target-reached": "target reached",
    "max-reached": "maximum reached",
    "budget-over": "time budget over",
}


def stop_reasons(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per engine of each block that says why it stopped; empty when none does."""
    r = rows[rows.metric == "repetitions"]
    records = []
    for row in r.itertuples(index=False):
        words = {k: str(v) for k, v in parse_detail(row.detail).items()}
        records.append(
            {
                "host_id": row.host_id,
                "scenario": row.scenario,
                "guest": row.guest,
                "workload": words.get("workload", ""),
                "instances": row.instances,
                "backend": row.backend,
                "trials": int(row.value) if pd.notna(row.value) else 0,
                "stopped": REASONS.get(words.get("stopped", ""), words.get("stopped", "")),
                "target_ci_pct": f"{float(words['target_ci_pct']):g}"
                if "target_ci_pct" in words
                else "",
                # ready_s:3.1,exit_s:2.0 -> 'ready_s ±3.1 %, exit_s ±2.0 %'
                "ci_pct": ", ".join(
                    f"{m} ±{w} %" if w != "inf" else f"{m}: no interval"
                    for m, _, w in (p.partition(":") for p in words.get("ci_pct", "").split(","))
                    if m
                ),
            }
        )
    return pd.DataFrame(records, columns=COLUMNS)
