"""The terminal's tables (rich): the verdicts, the end-of-run summary, and a comparison of
many hosts as one line per comparison."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from rich.table import Table
from rich.text import Text

from bench.analysis.dataset import ReportInputError, load
from bench.analysis.emulation import WITHOUT_CACHE
from bench.analysis.outliers import HOST_METRICS
from bench.analysis.summary import summarize
from bench.render.markdown import compared, ratio_text, without_cache_text
from bench.units import accel_label, human

# C0 and C1 control characters: ESC sequences, newlines, bells, backspaces.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def plain(text: object) -> str:
    """Input text as the terminal may show it: each control character becomes one space, so
    no host id, guest or reason can move the cursor, recolour or clear the screen."""
    return CONTROL_CHARS.sub(" ", str(text))


def cell(text: object, style: str = "") -> Text:
    """A table cell of input text: control characters gone, and never read as rich markup."""
    return Text(plain(text), style=style)


VERDICT_STYLE = {
    "supported": "bold green",
    "refuted": "bold red",
    "inconclusive": "yellow",
    "not-measured": "dim",
}


def verdict_table(claims: pd.DataFrame) -> Table:
    """The verdicts as a rich table for the terminal."""
    table = Table(title="vmbench verdicts", show_lines=False)
    for name in ("Host", "Claim", "Verdict", "VM/container [95% CI]", "n c/VM", "Comparison"):
        table.add_column(name)
    table.add_column("Caveat", overflow="fold", max_width=60)
    for _, c in claims.iterrows():
        where = c.guest if c.claim in ("kernel", "compat") else f"{c.scenario}/{c.guest}"
        comparison = f"{compared(c)} · {where}" if c.vm else ""
        table.add_row(
            cell(c.host_id),
            cell(c.claim),
            cell(c.verdict, VERDICT_STYLE.get(c.verdict, "")),
            cell(ratio_text(c) + _without(c)),
            cell(f"{c.n_container}/{c.n_vm}"),
            cell(comparison),
            cell(c.caveat),
        )
    return table


def _without(c: pd.Series) -> str:
    """'; 11.8x [11.5, 12.1] without the translation cache' for a TCG memory or density row."""
    text = without_cache_text(c)
    return f"; {text} {WITHOUT_CACHE}" if text else ""


TERMINAL_COLUMNS = {  # column title -> right-aligned?
    "scenario/guest": False,
    "backend": False,
    "accel": False,
    "phase": False,
    "N": True,
    "metric": False,
    "n": True,
    "median": True,
    "min": True,
    "max": True,
    "failed": True,
}


def summary_table(csv_path: Path, summary: pd.DataFrame | None = None) -> Table:
    """The end-of-run table: n, median, min and max per group (N = instances running), from
    the analysis's summary (or the CSV's, read here when none is given)."""
    table = Table(
        title=Text(f"summary of {plain(csv_path)} (warmup excluded; time: host perf_counter)")
    )
    for column, right in TERMINAL_COLUMNS.items():
        table.add_column(column, justify="right" if right else "left")
    if summary is None:
        try:
            summary = summarize(load([csv_path]))
        except ReportInputError as e:
            table.caption = Text(plain(e))
            return table
    # The host's load and the repetitions rows are the report's (summary.csv, Warnings,
    # Repetitions): four more lines per group would bury the measurements here.
    shown = summary[~summary.metric.isin([*HOST_METRICS, "repetitions"])]
    if len(shown) < len(summary):
        table.caption = "the host's load per trial (host_* rows): summary.csv and the report"
    for r in shown.itertuples(index=False):
        table.add_row(
            *map(
                cell,
                (
                    f"{r.scenario}/{r.guest}",
                    r.backend,
                    accel_label(r.accel),
                    r.phase,
                    r.instances,
                    r.metric,
                    r.n,
                    human(r.median, r.unit),
                    human(r.min, r.unit),
                    human(r.max, r.unit),
                    r.n_failed,
                ),
            )
        )
    return table


def across_hosts_table(claims: pd.DataFrame, summary: pd.DataFrame | None, most: int) -> Table:
    """Every host's verdicts while ``most`` hosts fit; past that, one line per comparison
    across hosts (``summary``: compare.across_hosts)."""
    if claims.host_id.nunique() <= most or summary is None:
        return verdict_table(claims)
    table = Table(title=f"vmbench across {claims.host_id.nunique()} hosts")
    for column in summary.columns:
        table.add_column(column, overflow="fold")
    for row in summary.itertuples(index=False):
        table.add_row(*map(cell, row))
    return table
