"""Density: the memory of N instances running together against N, and the least-squares line
of each host's engine whose slope the density verdict compares (claims._density)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.analysis.dataset import Dataset, in_order, prefer_warm
from bench.analysis.stats import SlopeFit, fit_slope

# The instances' own memory (PSS + shims) first; the host's MemAvailable change when that is
# all a CSV has. The latter moves with everything else running on the host.
DENSITY_METRICS = ("footprint_bytes", "host_used_delta_bytes")


def density_metric(ds: Dataset, host: str | None = None) -> str:
    m = ds.measured
    if host is not None:
        m = m[m.host_id == host]
    for metric in DENSITY_METRICS:
        counts = m[m.metric == metric].groupby("kind").instances.nunique()
        if counts.get("container", 0) >= 2 and counts.get("vm", 0) >= 2:
            return metric
    return DENSITY_METRICS[-1]


@dataclass(frozen=True)
class Slope:
    """One host's engine on one guest: every trial's point and the fitted line."""

    host_id: str
    guest: str
    backend: str
    accel: str
    phase: str
    x: np.ndarray  # instances running at once
    y: np.ndarray  # bytes (density.metric)
    fit: SlopeFit | None  # None: one instance count only


@dataclass(frozen=True)
class Density:
    """The slopes of every guest measured at two or more instance counts."""

    metric: str  # footprint_bytes, or host_used_delta_bytes where a CSV has no PSS
    guests: list[str] = field(default_factory=list)
    slopes: list[Slope] = field(default_factory=list)

    @property
    def hosts(self) -> list[str]:
        return sorted({s.host_id for s in self.slopes})

    def of(self, guest: str) -> list[Slope]:
        return [s for s in self.slopes if s.guest == guest]


def density_slopes(ds: Dataset) -> Density:
    m = ds.measured
    metric = density_metric(ds)
    data = m[(m.metric == metric) & m.phase.isin(["cold", "warm"])]
    # Only guests measured at several sizes: a single N has no slope to draw.
    guests = sorted(g for g, rows in data.groupby("guest") if rows.instances.nunique() >= 2)
    slopes = []
    for guest in guests:
        sub = data[data.guest == guest]
        for _, first in in_order(sub.drop_duplicates(["host_id", "backend", "accel"])).iterrows():
            g, phase = prefer_warm(
                sub[(sub.host_id == first.host_id) & (sub.backend == first.backend)]
            )
            x, y = g.instances.to_numpy(dtype=float), g.value.to_numpy(dtype=float)
            slopes.append(
                Slope(
                    first.host_id, guest, first.backend, first.accel, phase, x, y, fit_slope(x, y)
                )
            )
    return Density(metric, guests, slopes)
