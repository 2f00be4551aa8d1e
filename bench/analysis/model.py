"""The one analysis object: result CSVs read once, every table and verdict computed once.

``analyse(paths)`` reads the CSVs; each section is computed the first time a view asks for it
and kept, so the markdown report, the deck, the terminal tables, ``compare`` and an HTML page
all render the same numbers and none of them evaluates anything again. A comparison of fifty
hosts never computes the per-engine sections it does not show.

Adding a section is adding a cached property here (computed from ``dataset`` or from other
sections, never from a view) and a renderer in bench.render.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from bench.analysis import claims as claims_module
from bench.analysis import (
    emulation,
    facts,
    footprint,
    outliers,
    phases,
    published,
    repetitions,
    slopes,
    spectrum,
    summary,
)
from bench.analysis.dataset import Dataset, load
from bench.analysis.hosts import Hosts, compare_hosts


@dataclass
class Analysis:
    """Every table and verdict of a set of result CSVs (see the module docstring)."""

    dataset: Dataset

    # --- what was read ---------------------------------------------------------------------

    @property
    def sources(self) -> list[Path]:
        return self.dataset.sources

    @property
    def hosts_meta(self) -> dict[str, dict[str, Any]]:
        """host id -> its host.json (empty where none was beside the CSV)."""
        return self.dataset.hosts

    @property
    def host_ids(self) -> list[str]:
        return self.dataset.host_ids

    @property
    def warnings(self) -> list[str]:
        """What a reader should know about the input (bad lines, unknown columns, ...)."""
        return self.dataset.warnings

    # --- the sections ----------------------------------------------------------------------

    @cached_property
    def claims(self) -> pd.DataFrame:
        """One verdict per host, claim and comparison (claims.COLUMNS), a TCG VM's memory and
        density ratios with their second one without the translation cache beside them."""
        verdicts = claims_module.evaluate_by_host(self.dataset)
        verdicts = emulation.attach_without_cache(verdicts, self.without_cache)
        return outliers.with_busy_caveats(verdicts, self.dataset.rows)

    @cached_property
    def trial_notes(self) -> list[str]:
        """Outliers, drift and busy-host trials, named (bench.analysis.outliers)."""
        return outliers.warnings(self.dataset.rows)

    @cached_property
    def stops(self) -> pd.DataFrame:
        """Why each group stopped repeating (repetitions = "auto", a time budget)."""
        return repetitions.stop_reasons(self.dataset.rows)

    @cached_property
    def memory(self) -> pd.DataFrame:
        """One idle instance's footprint, VM over container, per host and guest (and without
        the translation cache, for a TCG VM)."""
        ratios = claims_module.memory_comparisons(self.dataset)
        return emulation.attach_without_cache(ratios, self.without_cache)

    # --- what emulation adds (bench/analysis/emulation.py) ----------------------------------

    @cached_property
    def memory_split(self) -> pd.DataFrame:
        """A VM's PSS by what holds it: guest RAM, TCG translation cache, VMM (medians)."""
        return emulation.memory_split(self.dataset)

    @cached_property
    def without_cache(self) -> pd.DataFrame:
        """The memory and density ratios of TCG VMs less each trial's translation cache."""
        return emulation.without_cache_ratios(self.dataset)

    @cached_property
    def cpu_factors(self) -> pd.DataFrame:
        """cpu_work_s, VM over container, with its CI and the cache's share of memory."""
        return emulation.cpu_factors(self.dataset, self.memory_split)

    @cached_property
    def published(self) -> list[published.Figure]:
        """The published figures the report cites (bench/analysis/published.toml)."""
        return published.load()

    @cached_property
    def host_figures(self) -> pd.DataFrame:
        """This host's medians of the metrics the published figures have."""
        return emulation.host_figures(self.dataset)

    @cached_property
    def suspect(self) -> list[str]:
        """This host's figures > 10x outside the published range for the same accelerator."""
        return emulation.suspect_notes(self.host_figures, self.published)

    @cached_property
    def summary(self) -> pd.DataFrame:
        """n, median, spread and the median's 95% CI per group (summary.csv)."""
        return summary.summarize(self.dataset)

    @cached_property
    def failures(self) -> pd.DataFrame:
        """Trials that gave no number, counted per group with an example reason."""
        return summary.failure_table(self.dataset)

    @cached_property
    def memory_bars(self) -> pd.DataFrame:
        """One idle instance per engine: its own PSS and its shim's (the memory chart)."""
        return footprint.memory_bars(self.dataset)

    @cached_property
    def sizes(self) -> pd.DataFrame:
        """What each engine needs on disk to boot the guest, by part."""
        return footprint.size_table(self.dataset)

    @cached_property
    def phases(self) -> pd.DataFrame:
        """Where each VM's time to ready goes (phases.COLUMNS)."""
        return phases.boot_phases(self.dataset)

    @cached_property
    def density(self) -> slopes.Density:
        """The memory of N instances against N, and each engine's fitted slope."""
        return slopes.density_slopes(self.dataset)

    @cached_property
    def kernels(self) -> pd.DataFrame:
        """Which kernel each guest reported, per engine (facts.KERNEL_COLUMNS)."""
        return facts.kernel_table(self.dataset)

    @cached_property
    def compat(self) -> pd.DataFrame:
        """Which guest architectures each engine ran, and how (facts.COMPAT_COLUMNS)."""
        return facts.compat_outcomes(self.dataset)

    @cached_property
    def spectrum(self) -> spectrum.Spectrum:
        """The isolation spectrum and the decomposition of a VM's start."""
        return spectrum.isolation_spectrum(self.dataset)

    @cached_property
    def hosts(self) -> Hosts:
        """The hosts side by side: their metadata, differences, gaps and ratios."""
        return compare_hosts(self.dataset, self.claims)


def analyse(paths: list[Path]) -> Analysis:
    """Read result CSVs (any host, any vmbench version) into one analysis.

    Raises dataset.ReportInputError when nothing usable is left (the CLI's exit 2)."""
    return Analysis(load(paths))
