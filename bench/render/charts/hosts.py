"""The comparison's own charts: the VM/container ratios of several hosts.

A handful of hosts: each host's ratio with its 95% CI, one marker shape per host. A lab:
one dot per host for each comparison, the median of the hosts, and the hosts that differ
named beside their dot, so fifty machines read as "these three differ", not fifty legends.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.analysis.claims import CLAIMS
from bench.render.charts.palette import HOST_MARKERS, colour
from bench.render.charts.save import Built

LABELS_PER_ROW = 3  # outlying hosts named under one comparison; the rest are counted


def _label(r: pd.DataFrame) -> pd.Series:
    return r.claim + ": " + r.guest + " " + r.vm + "/" + r.container


def _labels_in_claim_order(r: pd.DataFrame) -> list[str]:
    """One label per comparison, claims in the order of the tables (size, speed, ...)."""
    order = r.claim.map({claim: i for i, claim in enumerate(CLAIMS)})
    return list(dict.fromkeys(r.assign(_o=order).sort_values(["_o", "label"]).label))


def _usable(r: pd.DataFrame) -> pd.DataFrame:
    ratio = pd.to_numeric(r.ratio, errors="coerce")
    return r[ratio.notna() & np.isfinite(ratio) & (ratio > 0)]


def ratios_by_host(claims: pd.DataFrame) -> Built:
    """VM/container ratio with its 95% CI for each comparison, one marker shape per host."""
    r = _usable(claims)
    if r.empty:
        return "no ratios to compare"
    r = r.assign(label=_label(r))
    labels = _labels_in_claim_order(r)
    hosts = sorted(r.host_id.unique())
    fig, ax = plt.subplots(layout="constrained")
    step = 0.6 / max(len(hosts), 1)
    for k, host in enumerate(hosts):
        marker = HOST_MARKERS[k % len(HOST_MARKERS)]
        for _, c in r[r.host_id == host].iterrows():
            y = labels.index(c.label) + (k - (len(hosts) - 1) / 2) * step
            low = c.ratio - c.ci_low if np.isfinite(c.ci_low) else 0
            high = c.ci_high - c.ratio if np.isfinite(c.ci_high) else 0
            ax.errorbar(
                c.ratio,
                y,
                xerr=[[max(low, 0)], [max(high, 0)]],
                color=colour(c.vm),
                marker=marker,
                markersize=12,
                capsize=6,
                linewidth=2.5,
            )
        ax.plot([], [], "k" + marker, markersize=12, label=host)
    _ratio_axes(ax, labels)
    ax.set_xlabel("VM / container (above 1: the claim's side), 95% CI")
    fig.legend(title="host", loc="outside right center")  # clear of the title
    above = int((r.ci_low > 1).sum())
    title = (
        f"Every interval lies above 1 on all {len(hosts)} host(s)"
        if above == len(r)
        else f"{above} of {len(r)} intervals lie wholly above 1 across {len(hosts)} host(s)"
    )
    return fig, title + _tcg_note(r)


def ratios_across_hosts(ratios: pd.DataFrame, n_hosts: int) -> Built:
    """One dot per host for each comparison, the hosts' median as a bar, outliers named.

    ``ratios`` is compare.ratio_table: one row per host and comparison, with ``outlier``."""
    r = _usable(ratios)
    if r.empty:
        return "no ratios to compare"
    r = r.assign(label=_label(r), ratio=r.ratio.astype(float))
    labels = _labels_in_claim_order(r)
    fig, ax = plt.subplots(layout="constrained")
    rng = np.random.default_rng(0)  # the same vertical spread of dots on every run
    rows = []
    for i, label in enumerate(labels):
        g = r[r.label == label]
        y = i + rng.uniform(-0.22, 0.22, len(g))
        vm_colour = colour(g.vm.iloc[0])
        ax.scatter(g.ratio, y, s=70, color=vm_colour, alpha=0.6, edgecolors="none", zorder=3)
        median = g.ratio.median()
        ax.plot([median] * 2, [i - 0.38, i + 0.38], color="black", linewidth=3, zorder=5)
        odd = g.outlier.to_numpy(dtype=bool)
        ax.scatter(g.ratio[odd], y[odd], s=130, facecolors="none", edgecolors="black", zorder=4)
        rows.append(_row_label(label, g))
    _ratio_axes(ax, rows)
    ax.set_xlabel("VM / container per host (bar: the hosts' median)")
    ax.scatter([], [], s=130, facecolors="none", edgecolors="black", label="host that differs")
    ax.legend(loc="best")
    supported = int((r.verdict == "supported").sum())
    odd_hosts = sorted(set(r.host_id[r.outlier.astype(bool)]))
    title = (
        f"Every ratio shown supports its claim, on all {n_hosts} hosts"
        if supported == len(r)
        else f"{supported} of {len(r)} ratios shown support their claim, across {n_hosts} hosts"
    )
    if odd_hosts:
        names = ", ".join(odd_hosts[:3]) + (
            f" and {len(odd_hosts) - 3} more" * (len(odd_hosts) > 3)
        )
        title += f"; {names} differ"
    return fig, title + _tcg_note(r)


def _row_label(label: str, g: pd.DataFrame) -> str:
    """The comparison, its number of hosts and, on a second line, the hosts that differ."""
    text = f"{label} ({len(g)} hosts)"
    odd = g[g.outlier.astype(bool)]
    if odd.empty:
        return text
    names = sorted(odd.host_id.astype(str))
    more = f" +{len(names) - LABELS_PER_ROW}" if len(names) > LABELS_PER_ROW else ""
    return f"{text}\ndiffer: {', '.join(names[:LABELS_PER_ROW])}{more}"


def _ratio_axes(ax: plt.Axes, labels: list[str]) -> None:
    ax.axvline(1, color="black", linewidth=1.5, linestyle="--")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _p: f"{x:g}x"))
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()


def _tcg_note(r: pd.DataFrame) -> str:
    tcg = r.accel.fillna("").astype(str).str.contains("tcg")
    if tcg.all():
        return ", VM under TCG emulation"
    return ", some VMs under TCG emulation" if tcg.any() else ""
