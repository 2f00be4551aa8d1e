"""Where a VM's time to ready goes, one bar per boot mode (analysis.phases draws nothing; this
draws its table): firmware, bootloader, before the guest's clock, kernel + init, Vagrant's wait."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

from bench.analysis.model import Analysis
from bench.analysis.phases import SEGMENTS
from bench.render.charts.axes import (
    END_LABEL,
    LEGEND_ROW_PT,
    ROWS_PT,
    engine_name,
    group_rows,
    legend_below,
)
from bench.render.charts.palette import PHASE_STYLE, colour
from bench.render.charts.save import Built
from bench.units import engine_label, human


def boot_phases(a: Analysis) -> Built:
    phases = a.phases
    if phases.empty:
        return "no VM rows with both ready_s and guest_uptime_s"
    fig, ax = plt.subplots(layout="constrained")
    labels: list[str] = []
    shares: dict[str, list[tuple[str, float]]] = {}
    used: set[str] = set()
    multi = a.dataset.multi_host
    for i, r in enumerate(phases.itertuples(index=False)):
        engine = engine_name(r.backend, r.boot)
        shares.setdefault(engine, []).append((r.guest, r.share_before_kernel))
        left = 0.0
        for column, name in SEGMENTS.items():
            secs = getattr(r, column)
            if math.isnan(secs):
                continue
            used.add(name)
            fc, hatch = PHASE_STYLE[name]
            ax.barh(
                i,
                secs,
                left=left,
                color=fc,
                hatch=hatch,
                height=0.6,
                edgecolor=colour(r.backend),
                linewidth=2.5,
            )
            left += secs
        ax.annotate(human(left, "s"), (left, i), xytext=(6, 0), **END_LABEL)
        who = f"{r.host_id} · " * multi + f"{r.guest} · {engine}"
        labels.append(engine_label(f"{who}\n{r.phase}", r.accel))
    ax.set_xlim(0, ax.get_xlim()[1] * 1.12)
    ax.set_xlabel("Seconds from launch")
    handles = [
        Patch(facecolor=fc, hatch=hatch, edgecolor="black", label=name)
        for name, (fc, hatch) in PHASE_STYLE.items()
        if name in used
    ]
    legend_rows = legend_below(fig, handles)
    group_rows(ax, labels, ROWS_PT - LEGEND_ROW_PT * (legend_rows - 1))
    # The title speaks for the engine that spends the largest share before the guest kernel.
    engine = max(shares, key=lambda e: median_share(shares[e]))
    title = phases_title(engine, shares[engine])
    accels = set(phases.accel)
    if accels == {"tcg"}:
        title += ", VMs under TCG emulation"
    elif "tcg" in accels:
        title += ", some VMs under TCG emulation"
    return fig, title


def median_share(bars: list[tuple[str, float]]) -> float:
    return float(np.median([share for _guest, share in bars]))


def phases_title(engine: str, bars: list[tuple[str, float]]) -> str:
    """The share of one engine's bars before the guest kernel, saying which guests (or how many
    bars, when hosts repeat a guest) it is the median of."""
    share = f"{median_share(bars):.0%}"
    if len(bars) == 1:
        return f"{engine}: {share} of {bars[0][0]}'s time to ready passes before its kernel runs"
    guests = [guest for guest, _share in bars]
    over = f"{len(bars)} bars" if len(set(guests)) < len(guests) else " and ".join(guests)
    return (
        f"{engine}: {share} of the time to ready passes before the guest kernel runs "
        f"(median of {over})"
    )
