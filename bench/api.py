"""vmbench's results for a notebook: ``bench.load(paths)`` -> Results.

The same analysis object the report, the deck and the HTML pages render
(bench.analysis.model.Analysis), so a number in a notebook is the number in report.md for the
same CSVs. It reads CSVs only: nothing here imports an engine, a guest or the runner.

    import bench
    results = bench.load("results/20261127T092238Z-vm-56bd/results.csv")
    results.frame            # one row per measured value, typed columns
    results.summary()        # n, median, spread, 95% CI per group (summary.csv)
    results.verdicts()       # one verdict per host, claim and comparison (claims.csv)
    results.figure("ready_time")   # the report's chart, a matplotlib Figure
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from bench.analysis.model import Analysis, analyse
from bench.render.charts import BUILDERS, SECTION_BUILDERS, slide_style, titled
from bench.render.charts.hosts import ratios_across_hosts, ratios_by_host

# Columns of Results.frame that are not measured values: parsed detail facts as a dict.
_DROPPED = ("facts",)


def _comparison_charts() -> dict:
    return {
        "ratios_by_host": lambda a: ratios_by_host(a.claims),
        "ratios_across_hosts": lambda a: ratios_across_hosts(a.hosts.ratios, len(a.host_ids)),
    }


@dataclass
class Results:
    """Result CSVs read once (see the module docstring); ``analysis`` is the full object."""

    analysis: Analysis

    @property
    def frame(self) -> pd.DataFrame:
        """One row per measured value (a failed trial: its row, value NaN, the reason in
        detail), long format as in the CSV, typed: value float, instances and trial int,
        started_at a UTC timestamp, the columns that name a group (host_id, scenario, guest,
        backend, phase, metric, ...) pandas categories; the facts declared in detail as
        columns (boot, shim, guest_kernel, ...). Includes the derived footprint_bytes rows
        the report uses."""
        rows = self.analysis.dataset.rows.drop(columns=list(_DROPPED), errors="ignore")
        rows = rows.copy()
        rows["started_at"] = pd.to_datetime(rows.started_at, errors="coerce", utc=True)
        return rows

    def summary(self) -> pd.DataFrame:
        """n, median, quartiles, spread and the median's 95% CI per group: summary.csv."""
        return self.analysis.summary.copy()

    def verdicts(self) -> pd.DataFrame:
        """One verdict per host, claim and comparison, with the ratio and its 95% CI:
        claims.csv, the report's verdict table."""
        return self.analysis.claims.copy()

    @property
    def charts(self) -> list[str]:
        """The names ``figure`` takes: every chart of the report, and the comparison's."""
        return [*BUILDERS, *SECTION_BUILDERS, *_comparison_charts()]

    def figure(self, name: str) -> Figure:
        """The report's chart ``name`` (see ``charts``) as a matplotlib Figure, drawn as the
        report draws it. ValueError when its data is absent (the reason) or the name is
        unknown."""
        builders = {
            **{n: b for n, (b, _claim) in BUILDERS.items()},
            **SECTION_BUILDERS,
            **_comparison_charts(),
        }
        if name not in builders:
            raise ValueError(f"no chart {name!r}; the charts: {', '.join(builders)}")
        with slide_style():
            built = titled(builders[name](self.analysis))
        if isinstance(built, str):
            raise ValueError(f"chart {name} cannot be drawn from these results: {built}")
        return built[0]


def _csvs(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """A CSV, a run folder (its results.csv) or several of either."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    found = []
    for item in map(Path, items):
        found.append(item / "results.csv" if item.is_dir() else item)
    return found


def load(paths: str | Path | Iterable[str | Path]) -> Results:
    """Read result CSVs (a path, a run folder, or a list of them) into Results.

    Raises bench.analysis.dataset.ReportInputError when nothing usable is in them."""
    return Results(analyse(_csvs(paths)))
