"""The isolation spectrum's charts: each engine's median time to READY and footprint by kind,
and a VM's start decomposed into the app container, the init's and the kernel's shares."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from bench.analysis.model import Analysis
from bench.analysis.spectrum import BETWEEN
from bench.render.charts.axes import plain_log_axis
from bench.render.charts.palette import KIND_COLOURS, MIB, SHARE_STYLE
from bench.render.charts.save import Built
from bench.results import KINDS
from bench.units import engine_label, human


def spectrum_chart(a: Analysis) -> Built:
    """Median time to READY (left) and footprint (right) per engine, grouped by guest."""
    spectrum = a.spectrum.spectrum
    if not spectrum.kind.isin(BETWEEN).any():
        return "only containers and VMs: the ready time and memory charts show them"
    multi_host = spectrum.host_id.nunique() > 1
    fig, (ax_t, ax_m) = plt.subplots(1, 2, layout="constrained", sharey=True)
    labels = []
    for i, r in enumerate(spectrum.itertuples(index=False)):
        c = KIND_COLOURS.get(r.kind, "#999999")
        _bar(ax_t, i, r.ready_s, r.ready_s_ci_low, r.ready_s_ci_high, c, "s", 1.0)
        _bar(
            ax_m,
            i,
            r.footprint_bytes,
            r.footprint_bytes_ci_low,
            r.footprint_bytes_ci_high,
            c,
            "B",
            MIB,
        )
        host = f"{r.host_id} · " if multi_host else ""
        boot = f", boot={r.boot}" if r.boot else ""
        labels.append(f"{host}{r.guest} · {engine_label(r.backend, r.accel)}{boot}")
    ax_t.set_yticks(range(len(labels)), labels, fontsize=13)
    ax_t.invert_yaxis()
    for ax, values, label in (
        (ax_t, spectrum.ready_s, "to READY (s, log)"),
        (ax_m, spectrum.footprint_bytes / MIB, "PSS + shim (MiB, log)"),
    ):
        plain_log_axis(ax.xaxis, decades_only=True)  # two narrow panels
        if values.notna().any():
            ax.set_xlim(values.min() / 2, values.max() * 12)  # room for the value labels
        ax.set_xlabel(label, fontsize=16)
    for edge in np.flatnonzero(spectrum.guest.to_numpy()[1:] != spectrum.guest.to_numpy()[:-1]):
        for ax in (ax_t, ax_m):
            ax.axhline(edge + 0.5, color="#777777", linewidth=1)
    kinds = [k for k in KINDS if k in set(spectrum.kind)]
    handles = [Patch(facecolor=KIND_COLOURS[k], label=k) for k in kinds]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    tcg = "; VMs emulated by TCG" if (spectrum.accel == "tcg").any() else ""
    return fig, f"From the host's kernel to a kernel of its own: medians with 95% CI{tcg}"


def _bar(
    ax: plt.Axes, i: int, est: float, low: float, high: float, colour: str, unit: str, scale: float
) -> None:
    """A bar with its CI whisker and its value, or 'n/a' where nothing was measured."""
    if pd.isna(est):
        ax.annotate(
            "n/a",
            (0, i),
            xycoords=("axes fraction", "data"),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=14,
            color="#555555",
        )
        return
    err = _errors(est, low, high)
    ax.barh(
        i,
        est / scale,
        color=colour,
        height=0.6,
        xerr=None if err is None else err / scale,
        capsize=4,
    )
    ax.annotate(
        human(est, unit),
        ((est if err is None else est + err[1][0]) / scale, i),
        xytext=(6, 0),
        textcoords="offset points",
        va="center",
        fontsize=13,
    )


def _errors(est: float, low: float, high: float) -> np.ndarray | None:
    if pd.isna(low) or pd.isna(high):
        return None
    return np.array([[max(0.0, est - low)], [max(0.0, high - est)]])


def decomposition_chart(a: Analysis) -> Built:
    """One bar per combination: app container + init's share + kernel's share = the VM."""
    decomposition = a.spectrum.decomposition
    if decomposition.empty:
        return "no guest measured as app container, system container and VM on one host"
    fig, ax = plt.subplots(layout="constrained")
    labels = []
    for i, r in enumerate(decomposition.itertuples(index=False)):
        left = 0.0
        for name, value in (
            ("app container", r.container_ready_s),
            ("init's share", r.init_share_s),
            ("kernel's share", r.kernel_share_s),
        ):
            colour, hatch = SHARE_STYLE[name]
            ax.barh(i, value, left=left, color=colour, hatch=hatch, edgecolor="white", height=0.6)
            left += value
        init_end = r.container_ready_s + r.init_share_s
        for end, est, low, high in (
            (init_end, r.init_share_s, r.init_share_ci_low, r.init_share_ci_high),
            (r.vm_ready_s, r.kernel_share_s, r.kernel_share_ci_low, r.kernel_share_ci_high),
        ):
            err = _errors(est, low, high)  # the share's 95% CI, at the end of its segment
            if err is not None:
                ax.errorbar(end, i, xerr=err, fmt="none", ecolor="black", capsize=5)
        ax.annotate(
            f"kernel {human(r.kernel_share_s, 's')} ({r.kernel_fraction:.0%})\n"
            f"init {human(r.init_share_s, 's')} ({r.init_fraction:.0%})",
            (_bar_end(r), i),  # past the kernel's CI whisker
            xytext=(16, 0),
            textcoords="offset points",
            va="center",
            fontsize=15,
        )
        host = f"{r.host_id} · " if decomposition.host_id.nunique() > 1 else ""
        labels.append(
            f"{host}{r.container} → {r.system_container}\n→ {engine_label(r.vm, r.accel)}"
        )
    ax.set_yticks(range(len(labels)), labels, fontsize=14)
    ax.invert_yaxis()
    ax.set_xlim(0, max(_bar_end(r) for r in decomposition.itertuples()) * 1.4)
    ax.set_xlabel("Launch to READY (s, medians): VM = app container + init + kernel")
    handles = [
        Patch(facecolor=c, hatch=h, edgecolor="white", label=n) for n, (c, h) in SHARE_STYLE.items()
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    guests = ", ".join(sorted(decomposition.guest.unique()))
    tcg = "; VM emulated by TCG" if (decomposition.accel == "tcg").any() else ""
    title = (
        f"The kernel is {_percent_range(decomposition.kernel_fraction)} of the VM's start, "
        f"the init {_percent_range(decomposition.init_fraction)} ({guests}{tcg})"
    )
    return fig, title


def _bar_end(r) -> float:
    """Where a decomposition bar's drawing ends: the VM's median, or its kernel CI whisker."""
    high = r.kernel_share_ci_high
    return (
        r.vm_ready_s if pd.isna(high) else max(r.vm_ready_s, r.vm_ready_s + high - r.kernel_share_s)
    )


def _percent_range(fractions: pd.Series) -> str:
    low, high = (f"{v:.0%}" for v in (fractions.min(), fractions.max()))
    return low if low == high else f"{low[:-1]}-{high}"
