"""Density: the memory of N instances running together against N, on linear axes: every
trial as a point, and the least-squares line whose slope the verdict compares."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from bench.analysis.claims import FOOTPRINT
from bench.analysis.model import Analysis
from bench.analysis.slopes import Slope
from bench.render.charts.distributions import SPLIT_HANDLES, SPLIT_STYLES
from bench.render.charts.palette import HOST_MARKERS, MAX_LEGEND_SERIES, MIB, colour, host_linestyle
from bench.render.charts.save import Built
from bench.render.charts.titles import claim_title
from bench.units import engine_label, human


@dataclass(frozen=True)
class Series:
    """One host's engine as drawn: its slope, name, colour, marker and line style."""

    slope: Slope
    name: str
    marker: str
    line: dict

    @property
    def backend(self) -> str:
        return self.slope.backend


def density(a: Analysis) -> Built:
    d = a.density
    if not d.guests:
        return f"no {d.metric} rows at two or more instance counts"
    hosts = d.hosts
    fig, axes = plt.subplots(1, len(d.guests), layout="constrained", squeeze=False)
    split = a.memory_split
    for ax, guest in zip(axes[0], d.guests, strict=True):
        series = [_series(s, hosts) for s in d.of(guest)]
        stacked = d.metric == FOOTPRINT and _stack_parts(ax, series, split, guest)
        for s in series:
            x, y, fit = s.slope.x, s.slope.y, s.slope.fit
            ax.scatter(x, y / MIB, color=s.line["color"], marker=s.marker, s=60, zorder=3)
            if fit is not None:
                xs = np.array([x.min(), x.max()])
                ax.plot(xs, (fit.intercept + fit.slope * xs) / MIB, **s.line)
        _legend(ax, series, SPLIT_HANDLES if stacked else [])
        ax.set_xlabel("Instances running at once")
        ax.set_xticks(sorted({n for s in series for n in s.slope.x}))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        if len(d.guests) > 1:
            ax.set_title(guest)
    axes[0][0].set_ylabel(
        "PSS of the instances + shims (MiB)"
        if d.metric == FOOTPRINT
        else "Host memory used, MemAvailable (MiB)"
    )
    what = "memory (PSS, shims included)" if d.metric == FOOTPRINT else "host memory (MemAvailable)"
    title = claim_title(
        a.claims,
        "density",
        "Each extra VM costs {r} the " + what + " of an extra container",
        "An extra container cost {r} the " + what + " of an extra VM here",
        "Memory of N instances running at once",
    )
    return fig, title


def _series(s: Slope, hosts: list[str]) -> Series:
    k = hosts.index(s.host_id)
    name = engine_label(f"{s.host_id} {s.backend}" if len(hosts) > 1 else s.backend, s.accel)
    line = {"color": colour(s.backend), "linestyle": host_linestyle(k), "linewidth": 3}
    return Series(s, name, HOST_MARKERS[k % len(HOST_MARKERS)], line)


def _stack_parts(ax: plt.Axes, series: list[Series], split: pd.DataFrame, guest: str) -> bool:
    """Behind each VM's points, at every N, its memory by what holds it (medians): guest RAM,
    the TCG translation cache (hatched), the VMM. True if any VM's was drawn."""
    drawn = False
    here = split[split.guest == guest]
    steps = np.diff(sorted({float(n) for s in series for n in s.slope.x}))
    vms = [s for s in series if _parts_of(here, s).size]
    width = 0.8 * (float(steps.min()) if len(steps) else 1.0) / max(len(vms), 1)
    for j, s in enumerate(vms):
        offset = (j - (len(vms) - 1) / 2) * width  # side by side at each N
        for r in _parts_of(here, s).itertuples(index=False):
            bottom = 0.0
            parts = (r.vm_ram_pss_bytes, r.tcg_cache_pss_bytes, r.vmm_pss_bytes)
            for part, style in zip(parts, SPLIT_STYLES, strict=True):
                c = s.line["color"]
                edge = {"edgecolor": c} if "hatch" in style else {"color": c}
                look = {**style, "alpha": style.get("alpha", 1.0) * 0.6}
                x = r.instances + offset
                ax.bar(x, part / MIB, width, bottom=bottom, zorder=1, **edge, **look)
                bottom += part / MIB
            drawn = True
    return drawn


def _parts_of(split: pd.DataFrame, s: Series) -> pd.DataFrame:
    """One series' rows of the memory split (its host, engine and accelerator)."""
    return split[
        (split.host_id == s.slope.host_id)
        & (split.backend == s.backend)
        & (split.accel == s.slope.accel)
    ]


def _legend(ax: plt.Axes, series: list[Series], extra: list | None = None) -> None:
    """A line per series, or per backend (slope range over hosts) when there are many; then
    the parts of a VM's memory where they are drawn."""
    if len(series) <= MAX_LEGEND_SERIES:
        handles = [
            Line2D([], [], marker=s.marker, **s.line, label=_slope_label(s.name, [s]))
            for s in series
        ]
    else:
        handles = []
        for backend in dict.fromkeys(s.backend for s in series):
            mine = [s for s in series if s.backend == backend]
            label = _slope_label(f"{backend} ({len(mine)} hosts)", mine)
            handles.append(Line2D([], [], color=colour(backend), linewidth=3, label=label))
    parts = [Patch(facecolor="#777777", alpha=0.5, label="a VM's guest RAM")] if extra else []
    ax.legend(handles=[*handles, *parts, *(extra or [])], loc="best")  # hides fewest points


def _slope_label(name: str, series: list[Series]) -> str:
    slopes = [s.slope.fit.slope for s in series if s.slope.fit is not None]
    if not slopes:
        return f"{name}: one instance count only"
    lo, hi = human(min(slopes), "B"), human(max(slopes), "B")
    return f"{name}: +{lo} per instance" if lo == hi else f"{name}: +{lo} to {hi} per instance"
