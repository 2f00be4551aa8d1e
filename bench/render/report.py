"""One analysis -> summary.csv, claims.csv, spectrum.csv, decomposition.csv and report.md.

The verdict table comes first because that is what a reader came for; the summary, charts,
host metadata and methodology follow so every number can be traced. The report is a list of
sections (``SECTIONS``), each a function of the analysis and its drawn charts: adding a section
to the report is adding a field to the analysis and a function here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.analysis.model import Analysis
from bench.render import spectrum as spectrum_words
from bench.render.charts import Drawing, draw_all
from bench.render.emulation import emulation_markdown, published_markdown
from bench.render.markdown import (
    METHODOLOGY,
    code,
    hosts_markdown,
    image,
    markdown_table,
    md_text,
    memory_markdown,
    summary_markdown,
    verdict_markdown,
)
from bench.render.tables import write_csv


@dataclass
class ReportOutcome:
    """What a report run produced, for the CLI to print and tests to check."""

    claims: pd.DataFrame
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    summary: pd.DataFrame | None = None
    report_path: Path | None = None


def write_report(a: Analysis, out_dir: Path, drawing: Drawing | None = None) -> ReportOutcome:
    """Write the tables, report.md and (unless ``drawing`` has them already) the charts."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawing = drawing if drawing is not None else draw_all(a, out_dir)
    warnings = report_warnings(a, drawing)
    tables = {
        "summary.csv": a.summary,
        "claims.csv": a.claims,
        "spectrum.csv": a.spectrum.spectrum,
        "decomposition.csv": a.spectrum.decomposition,
    }
    files = []
    for name, table in tables.items():
        files.append(write_csv(table, out_dir / name))
    report = out_dir / "report.md"
    report.write_text(render_markdown(a, drawing, out_dir), encoding="utf-8")
    files.append(report)
    for chart in drawing.charts:
        files += [chart.png, chart.svg]
    return ReportOutcome(a.claims, files, warnings, a.summary, report)


def report_warnings(a: Analysis, drawing: Drawing) -> list[str]:
    """The input's warnings, the trials' (outliers, drift, a busy host), then the charts'
    (skipped, or with crowded text)."""
    return [*a.warnings, *a.trial_notes, *drawing.notes]


# --- the sections of report.md ----------------------------------------------------------------

Section = Callable[[Analysis, Drawing, Path], list[str]]


def _title(a: Analysis, _drawing: Drawing, _out: Path) -> list[str]:
    return ["# vmbench report", "", "From: " + ", ".join(code(p) for p in a.sources), ""]


def _verdicts(a: Analysis, _drawing: Drawing, _out: Path) -> list[str]:
    return ["## Verdicts", "", verdict_markdown(a.claims)]


def _memory(a: Analysis, _drawing: Drawing, _out: Path) -> list[str]:
    if a.memory.empty:
        return []
    return ["## Memory of one idle instance", "", memory_markdown(a.memory)]


def _emulation(a: Analysis, _drawing: Drawing, _out: Path) -> list[str]:
    return emulation_markdown(a)


def _published(a: Analysis, _drawing: Drawing, _out: Path) -> list[str]:
    return published_markdown(a)


def _warnings(a: Analysis, drawing: Drawing, _out: Path) -> list[str]:
    warnings = report_warnings(a, drawing)
    return ["## Warnings", "", *[f"- {md_text(w)}" for w in warnings], ""] if warnings else []


def _repetitions(a: Analysis, _drawing: Drawing, _out: Path) -> list[str]:
    if a.stops.empty:
        return []
    why = (
        'Why each group stopped repeating (repetitions = "auto": until the median\'s 95 % CI '
        "is within target_ci_pct % of it, or max_repetitions; or the time budget):"
    )
    return ["## Repetitions", "", why, "", markdown_table(a.stops), ""]


def _summary(a: Analysis, _drawing: Drawing, _out: Path) -> list[str]:
    return ["## Summary", "", summary_markdown(a.summary)]


def _failures(a: Analysis, _drawing: Drawing, _out: Path) -> list[str]:
    if a.failures.empty:
        return []
    return ["## Failed trials", "", markdown_table(a.failures), ""]


def _charts(_a: Analysis, drawing: Drawing, out_dir: Path) -> list[str]:
    made = drawing.claim_charts
    if not made:
        return []
    return ["## Charts", "", *[image(c, out_dir) for c in made]]


def _spectrum(a: Analysis, drawing: Drawing, out_dir: Path) -> list[str]:
    return spectrum_words.markdown(a.spectrum, drawing, out_dir)


def _hosts(a: Analysis, _drawing: Drawing, _out: Path) -> list[str]:
    return ["## Hosts", "", hosts_markdown(a.hosts_meta)]


def _methodology(_a: Analysis, _drawing: Drawing, _out: Path) -> list[str]:
    return ["## Methodology", "", *[f"- {line}" for line in METHODOLOGY]]


SECTIONS: list[Section] = [
    _title,
    _verdicts,
    _memory,
    _emulation,
    _warnings,
    _repetitions,
    _summary,
    _failures,
    _charts,
    _spectrum,
    _published,
    _hosts,
    _methodology,
]


def render_markdown(a: Analysis, drawing: Drawing, out_dir: Path) -> str:
    """report.md: every section in SECTIONS order."""
    parts = [line for section in SECTIONS for line in section(a, drawing, out_dir)]
    return "\n".join(parts) + "\n"
