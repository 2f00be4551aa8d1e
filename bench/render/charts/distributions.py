"""Distributions of one instance: time to ready (every trial over a box) and the memory of one
idle instance (its own processes, a container's shim stacked on them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bench.analysis.dataset import in_order
from bench.analysis.model import Analysis
from bench.render.charts.axes import (
    END_LABEL,
    LEGEND_ROW_PT,
    ROWS_PT,
    group_label,
    group_rows,
    legend_below,
    log_if_wide,
)
from bench.render.charts.palette import MIB, colour
from bench.render.charts.save import Built
from bench.render.charts.titles import claim_title
from bench.units import human


@dataclass(frozen=True)
class Group:
    """One box of a distribution chart: a host's guest on one engine."""

    label: str
    backend: str
    main: np.ndarray  # warm values (cold when there are no warm ones)
    cold: np.ndarray  # cold values drawn beside warm ones


def _points_over_box(ax: plt.Axes, groups: list[Group]) -> None:
    """Box of the main sample, every value as a point; cold points hollow. Groups are rows."""
    rng = np.random.default_rng(0)
    for i, g in enumerate(groups):
        c = colour(g.backend)
        if len(g.main):
            box = ax.boxplot(
                g.main,
                positions=[i],
                widths=0.5,
                showfliers=False,
                patch_artist=True,
                orientation="horizontal",
            )
            for patch in box["boxes"]:
                patch.set(facecolor=c, alpha=0.25, edgecolor=c)
            for part in ("medians", "whiskers", "caps"):
                for line in box[part]:
                    line.set(color=c, linewidth=2)
            ax.scatter(g.main, i + rng.uniform(-0.15, 0.15, len(g.main)), color=c, s=50, zorder=3)
        if len(g.cold):
            ax.scatter(
                g.cold,
                i + rng.uniform(-0.15, 0.15, len(g.cold)),
                facecolors="none",
                edgecolors=c,
                marker="D",
                s=70,
                linewidths=2,
                zorder=3,
            )
    group_rows(ax, [g.label for g in groups])


def distribution_groups(data: pd.DataFrame, multi_host: bool) -> list[Group]:
    groups = []
    keys = ["host_id", "guest", "backend", "accel", "boot"]
    for _, first in in_order(data.drop_duplicates(keys)).iterrows():
        g = data[(data[keys] == first[keys]).all(axis=1)]
        warm = g[g.phase == "warm"].value.to_numpy(dtype=float)
        cold = g[g.phase == "cold"].value.to_numpy(dtype=float)
        main, extra = (warm, cold) if len(warm) else (cold, np.array([]))
        groups.append(Group(group_label(first, multi_host), first.backend, main, extra))
    return groups


def _legend_cold(ax: plt.Axes, groups: list[Group]) -> None:
    if any(len(g.cold) for g in groups):
        ax.scatter(
            [],
            [],
            facecolors="none",
            edgecolors="black",
            marker="D",
            s=70,
            label="cold start (first run after build)",
        )
        ax.legend(loc="lower right")


def ready_time(a: Analysis) -> Built:
    m = a.dataset.measured_groups
    data = m[(m.metric == "ready_s") & (m.instances == 1)]
    if data.empty:
        return "no ready_s rows"
    groups = distribution_groups(data, a.dataset.multi_host)
    fig, ax = plt.subplots(layout="constrained")
    _points_over_box(ax, groups)
    log_if_wide(ax.xaxis, data.value.to_numpy(dtype=float))
    ax.set_xlabel("Launch to READY (s), host monotonic clock")
    _legend_cold(ax, groups)
    title = claim_title(
        a.claims,
        "speed",
        "Containers reach ready {r} faster than VMs",
        "VMs reached ready {r} faster than containers here",
        "Time from launch to ready",
    )
    return fig, title


def memory(a: Analysis) -> Built:
    """One idle instance: its own processes' PSS, and a container's shim stacked on it."""
    bars = a.memory_bars
    if bars.empty:
        return "no pss_bytes rows at one instance"
    fig, ax = plt.subplots(layout="constrained")
    labels, rng, right, shims, split = [], np.random.default_rng(0), 0.0, set(), False
    parts = _split_parts(a.memory_split)
    for i, r in enumerate(bars.itertuples(index=False)):
        own, shim, total = r.own_bytes, r.shim_bytes, r.totals
        c = colour(r.backend)
        held = parts.get((r.host_id, r.guest, r.backend, r.accel, r.boot))
        text = human(own + shim, "B")
        if held is not None:  # a VM: guest RAM, translation cache, VMM (scaled to its PSS)
            split = True
            _stacked(ax, i, own, held, c)
            if held[1] > 0:
                text += f" ({human(own * held[1] / sum(held), 'B')} cache)"
        else:
            ax.barh(i, own / MIB, color=c, alpha=0.8, height=0.6)
        ax.barh(i, shim / MIB, left=own / MIB, color="white", edgecolor=c, hatch="//", height=0.6)
        ax.scatter(total / MIB, i + rng.uniform(-0.12, 0.12, len(total)), color="black", s=25)
        if shim > 0:
            shims.add(r.shim)
            text += f" = {human(own, 'B')} + {human(shim, 'B')} {r.shim or 'shim'}"
        ax.annotate(text, (max(total.max(), own + shim) / MIB, i), xytext=(8, 0), **END_LABEL)
        right = max(right, float(total.max()))
        labels.append(group_label(pd.Series(r._asdict()), a.dataset.multi_host))
    ax.set_xlim(0, right / MIB * (1.6 if split else 1.45))
    ax.set_xlabel("Memory of one idle instance, PSS (MiB)")
    handles = [
        Patch(facecolor="#777777", label="the instance's own processes"),
        Patch(facecolor="white", edgecolor="#777777", hatch="//", label=_shim_legend(shims)),
        Line2D([], [], color="black", marker="o", linestyle="", label="one trial (sum)"),
    ]
    if split:
        handles[0] = Patch(facecolor="#777777", label="own processes; a VM's guest RAM")
        handles[1:1] = SPLIT_HANDLES
    legend_rows = legend_below(fig, handles)
    group_rows(ax, labels, ROWS_PT - LEGEND_ROW_PT * (legend_rows - 1))
    title = claim_title(
        a.memory,
        "memory",
        "One VM uses {r} the memory of one container with its shim (PSS)",
        "One container with its shim used {r} the memory of one VM here (PSS)",
        "Memory of one idle instance (PSS, a container's shim included)",
    )
    return fig, title


# How a VM's PSS is drawn by what holds it: guest RAM solid, the TCG translation cache hatched,
# the VMM light (bench/analysis/emulation.py splits it).
SPLIT_STYLES: tuple[dict[str, Any], ...] = (
    {"alpha": 0.8},
    {"facecolor": "white", "hatch": "xx"},
    {"alpha": 0.35},
)
SPLIT_HANDLES = [
    Patch(facecolor="white", edgecolor="#777777", hatch="xx", label="a VM's TCG translation cache"),
    Patch(facecolor="#777777", alpha=0.35, label="a VM's VMM (the hypervisor itself)"),
]


def _split_parts(split: pd.DataFrame) -> dict[tuple, tuple[float, float, float]]:
    """(host, guest, backend, accel, boot) -> one idle instance's guest RAM, cache, VMM."""
    one = split[split.instances == 1]
    return {
        (r.host_id, r.guest, r.backend, r.accel, r.boot): (
            r.vm_ram_pss_bytes,
            r.tcg_cache_pss_bytes,
            r.vmm_pss_bytes,
        )
        for r in one.itertuples(index=False)
    }


def _stacked(ax: plt.Axes, y: float, own: float, held: tuple[float, ...], c: str) -> None:
    """A VM's own PSS as its three parts, each scaled so they fill exactly its PSS."""
    left, scale = 0.0, own / sum(held) if sum(held) else 0.0
    for part, style in zip(held, SPLIT_STYLES, strict=True):
        width = part * scale / MIB
        edge: dict[str, Any] = {"edgecolor": c} if "hatch" in style else {"color": c}
        ax.barh(y, width, left=left, height=0.6, **edge, **style)
        left += width


def _shim_legend(names: set[str]) -> str:
    """'its shim (conmon, containerd-shim)': each process named as the rows name it."""
    named = sorted(names - {""})
    return "its shim" + (f" ({', '.join(named)})" if named else "")
