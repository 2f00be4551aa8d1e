"""Slide-ready charts: 16:9, large type, a fixed colour per backend, titles stating the finding.

Each chart builder takes the dataset and the claims and returns a figure and its title, or
a sentence saying why it was skipped (its data is absent), so a partial run still reports.
"""

from __future__ import annotations

import math
import textwrap
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from bench.claims import density_metric
from bench.dataset import Dataset
from bench.stats import fit_slope

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
BACKEND_COLOURS = {
    "docker": "#0072B2",
    "podman": "#56B4E9",
    "qemu": "#E69F00",
    "vagrant": "#009E73",
}
EXTRA_COLOURS = ["#CC79A7", "#D55E00", "#000000", "#F0E442"]
COMPONENT_STYLE = {  # size breakdown segments: colour + hatch, apart from backend colours
    "rootfs": ("#56B4E9", ""),
    "kernel": ("#D55E00", "//"),
    "initramfs": ("#F0E442", ".."),
    "disk": ("#CC79A7", "xx"),
    "layers / other": ("#999999", "\\\\"),
}
PHASE_STYLE = {  # boot phase segments; the bar's edge carries the backend colour
    "before the guest kernel runs": ("#555555", "//"),
    "guest boot to READY": ("#BBBBBB", ""),
    "vagrant up returns after READY": ("#FFFFFF", ".."),
}
STYLE = {
    "figure.figsize": (13.333, 7.5),
    "font.size": 18,
    "axes.titlesize": 24,
    "axes.labelsize": 20,
    "xtick.labelsize": 17,
    "ytick.labelsize": 17,
    "legend.fontsize": 16,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "svg.fonttype": "none",  # keep text as text: searchable, editable on slides
}
DPI = 200
MIB = 1024**2


@dataclass(frozen=True)
class Chart:
    """One chart written as PNG and SVG; claim is the claim it illustrates, if any."""

    name: str
    title: str
    claim: str | None
    png: Path
    svg: Path


Built = tuple[Figure, str] | str  # a figure and its title, or why it was skipped


def colour(backend: str) -> str:
    """The backend's fixed colour (unknown backends: stable by name)."""
    if backend in BACKEND_COLOURS:
        return BACKEND_COLOURS[backend]
    return EXTRA_COLOURS[zlib.crc32(backend.encode()) % len(EXTRA_COLOURS)]


def make_charts(
    ds: Dataset, claims: pd.DataFrame, out_dir: Path, prefix: str = ""
) -> tuple[list[Chart], list[str]]:
    """Draw every chart whose data is present; return them and notes on the skipped ones."""
    made, notes = [], []
    for name, (builder, claim) in BUILDERS.items():
        with plt.rc_context(STYLE):
            chart = save_chart(builder(ds, claims), out_dir, prefix + name, claim)
        if isinstance(chart, str):
            notes.append(f"chart {name} skipped: {chart}")
        else:
            made.append(chart)
    return made, notes


def save_chart(built: Built, out_dir: Path, name: str, claim: str | None) -> Chart | str:
    """Title a built figure and write it as PNG (200 dpi) and SVG; pass a skip reason on."""
    if isinstance(built, str):
        return built
    fig, title = built
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.suptitle("\n".join(textwrap.wrap(title, 70)), fontweight="bold")
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    # zlib level 3, not 6: 40 ms less per chart for a PNG ~15% larger.
    fig.savefig(png, dpi=DPI, pil_kwargs={"compress_level": 3})
    fig.set_layout_engine("none")  # the PNG's layout holds for the SVG: not computed twice
    fig.savefig(svg)
    plt.close(fig)
    return Chart(name, title, claim, png, svg)


# --- titles ---------------------------------------------------------------------------------


def _times(values: pd.Series) -> str:
    lo, hi = float(values.min()), float(values.max())

    def one(x: float) -> str:
        return f"{x:.0f}" if x >= 10 else f"{x:.1f}"

    return f"{one(lo)}x" if one(lo) == one(hi) else f"{one(lo)}–{one(hi)}x"


def claim_title(claims: pd.DataFrame, claim: str, supported: str, refuted: str, other: str) -> str:
    """A title stating what the claim's rows found: {r} is the ratio (range) in the text."""
    rows = claims[(claims.claim == claim) & claims.ratio.notna() & np.isfinite(claims.ratio)]
    rows = rows[rows.ratio > 0]
    if rows.empty:
        return other
    verdicts = set(rows.verdict)
    if verdicts == {"supported"}:
        title = supported.format(r=_times(rows.ratio))
    elif verdicts == {"refuted"}:
        title = refuted.format(r=_times(1 / rows.ratio))
    else:
        k = int((rows.verdict == "supported").sum())
        title = f"{other}: claim supported in {k} of {len(rows)} comparisons"
    tcg = rows.caveat.str.contains("TCG")
    if tcg.all():
        title += ", VM under TCG emulation"
    elif tcg.any():
        title += ", some VMs under TCG emulation"
    return title


# --- helpers --------------------------------------------------------------------------------


def _label(row: pd.Series, multi_host: bool, with_guest: bool = True) -> str:
    parts = [row.host_id] if multi_host else []
    if with_guest:
        parts.append(row.guest)
    parts.append(row.backend)
    return "\n".join(parts)


def _order(df: pd.DataFrame) -> pd.DataFrame:
    """Hosts, then guests, containers before VMs: the same order in every chart."""
    key = df.kind.map({"container": 0, "vm": 1}).fillna(2)
    return df.assign(_k=key).sort_values(["host_id", "guest", "_k", "backend"])


def _log_if_wide(ax: plt.Axes, values: np.ndarray, span: float = 20.0) -> None:
    v = values[values > 0]
    if len(v) and v.max() / v.min() > span:
        ax.set_yscale("log")
        # Plain numbers at 1, 2, 5 x 10^k: "0.2", "5", not "2 x 10^-1" on a slide.
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: f"{y:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())


def _points_over_box(ax: plt.Axes, groups: list[tuple[str, str, np.ndarray, np.ndarray]]) -> None:
    """Box of the main sample, every value as a point; cold points hollow."""
    rng = np.random.default_rng(0)
    for i, (_label_text, backend, main, cold) in enumerate(groups):
        c = colour(backend)
        if len(main):
            box = ax.boxplot(main, positions=[i], widths=0.5, showfliers=False, patch_artist=True)
            for patch in box["boxes"]:
                patch.set(facecolor=c, alpha=0.25, edgecolor=c)
            for part in ("medians", "whiskers", "caps"):
                for line in box[part]:
                    line.set(color=c, linewidth=2)
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(main)), main, color=c, s=50, zorder=3)
        if len(cold):
            ax.scatter(
                i + rng.uniform(-0.15, 0.15, len(cold)),
                cold,
                facecolors="none",
                edgecolors=c,
                marker="D",
                s=70,
                linewidths=2,
                zorder=3,
            )
    ax.set_xticks(range(len(groups)), [g[0] for g in groups])
    ax.set_xlim(-0.6, len(groups) - 0.4)
    if len(groups) > 6:  # long guest names side by side would overlap
        ax.tick_params(axis="x", labelsize=14, labelrotation=30)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")


def _distribution_groups(data: pd.DataFrame, multi_host: bool) -> list:
    groups = []
    keys = ["host_id", "guest", "backend"]
    for _, first in _order(data.drop_duplicates(keys)).iterrows():
        g = data[(data.host_id == first.host_id) & (data.guest == first.guest)]
        g = g[g.backend == first.backend]
        warm = g[g.phase == "warm"].value.to_numpy(dtype=float)
        cold = g[g.phase == "cold"].value.to_numpy(dtype=float)
        main, extra = (warm, cold) if len(warm) else (cold, np.array([]))
        groups.append((_label(first, multi_host), first.backend, main, extra))
    return groups


def _legend_cold(ax: plt.Axes, groups: list) -> None:
    if any(len(g[3]) for g in groups):
        ax.scatter(
            [],
            [],
            facecolors="none",
            edgecolors="black",
            marker="D",
            s=70,
            label="cold start (first run after build)",
        )
        ax.legend(loc="best")


# --- the charts -----------------------------------------------------------------------------


def ready_time(ds: Dataset, claims: pd.DataFrame) -> Built:
    m = ds.measured
    data = m[(m.metric == "ready_s") & (m.instances == 1)]
    if data.empty:
        return "no ready_s rows"
    groups = _distribution_groups(data, ds.rows.host_id.nunique() > 1)
    fig, ax = plt.subplots(layout="constrained")
    _points_over_box(ax, groups)
    _log_if_wide(ax, data.value.to_numpy(dtype=float))
    ax.set_ylabel("Launch to READY (s)")
    _legend_cold(ax, groups)
    title = claim_title(
        claims,
        "speed",
        "Containers reach ready {r} faster than VMs",
        "VMs reached ready {r} faster than containers here",
        "Time from launch to ready",
    )
    return fig, title


def memory(ds: Dataset, claims: pd.DataFrame) -> Built:
    m = ds.measured
    metric = "pss_bytes" if (m.metric == "pss_bytes").any() else "rss_bytes"
    data = m[(m.metric.isin([metric, "shim_pss_bytes"])) & (m.instances == 1)]
    if data[data.metric == metric].empty:
        return "no pss_bytes or rss_bytes rows"
    data = data.assign(value=data.value / MIB)
    shim = data.metric == "shim_pss_bytes"
    data.loc[shim, "backend"] = data.loc[shim, "backend"] + " shim"
    data.loc[shim, "kind"] = "container"
    groups = _distribution_groups(data, ds.rows.host_id.nunique() > 1)
    groups = [(lab, b.removesuffix(" shim"), main, cold) for lab, b, main, cold in groups]
    fig, ax = plt.subplots(layout="constrained")
    _points_over_box(ax, groups)
    _log_if_wide(ax, data.value.to_numpy(dtype=float))
    ax.set_ylabel(f"{metric.split('_')[0].upper()} per instance (MiB)")
    _legend_cold(ax, groups)
    main = data[data.metric == metric]
    med = main.groupby("kind").value.median()
    if "vm" in med and "container" in med and med["container"] > 0:
        ratio = med["vm"] / med["container"]
        title = (
            f"A VM's processes use {ratio:.0f}x the memory of a container's ({metric[:3].upper()})"
        )
        if ratio < 10:
            title = title.replace(f"{ratio:.0f}x", f"{ratio:.1f}x")
    else:
        title = f"Memory per instance ({metric[:3].upper()})"
    return fig, title


def size_breakdown(ds: Dataset, claims: pd.DataFrame) -> Built:
    m = ds.measured
    parts = ["image_bytes", "rootfs_bytes", "kernel_bytes", "initramfs_bytes", "disk_bytes"]
    data = m[(m.phase == "build") & m.metric.isin(parts)]
    if data.empty:
        return "no size rows (image_bytes, kernel_bytes, ...)"
    med = data.groupby(["host_id", "guest", "backend", "kind", "metric"]).value.median()
    table = med.unstack("metric").reindex(columns=parts).fillna(0.0).reset_index()
    guests = sorted(table.guest.unique())
    multi_host = ds.rows.host_id.nunique() > 1
    fig, axes = plt.subplots(1, len(guests), layout="constrained", squeeze=False)
    for ax, guest in zip(axes[0], guests, strict=True):
        sub = _order(table[table.guest == guest])
        scale, unit = (1024**3, "GiB") if sub.image_bytes.max() > 5 * 1024**3 else (MIB, "MiB")
        for i, (_, r) in enumerate(sub.iterrows()):
            bottom = 0.0
            for name, size in _segments(r).items():
                fc, hatch = COMPONENT_STYLE[name]
                ax.bar(
                    i,
                    size / scale,
                    bottom=bottom,
                    color=fc,
                    hatch=hatch,
                    edgecolor=colour(r.backend),
                    linewidth=2.5,
                    width=0.6,
                )
                bottom += size / scale
            ax.annotate(
                f"{bottom:.1f} {unit}",
                (i, bottom),
                ha="center",
                va="bottom",
                xytext=(0, 4),
                textcoords="offset points",
            )
        ax.set_xticks(range(len(sub)), [_label(r, multi_host, False) for _, r in sub.iterrows()])
        ax.set_title(guest)
        ax.set_ylabel(f"Bytes to boot the guest ({unit})")
    used = {name for _, r in table.iterrows() for name in _segments(r)}
    handles = [
        plt.Rectangle((0, 0), 1, 1, facecolor=fc, hatch=h, edgecolor="black", label=name)
        for name, (fc, h) in COMPONENT_STYLE.items()
        if name in used
    ]
    axes[0][0].legend(handles=handles, loc="upper left")
    title = claim_title(
        claims,
        "size",
        "Container images are {r} smaller than what a VM needs to boot",
        "Container images were {r} larger than the VM's boot files here",
        "What each backend needs on disk to boot the guest",
    )
    return fig, title


def _segments(r: pd.Series) -> dict[str, float]:
    """Stack kernel, initramfs and disk; the rootfs only where it is not inside them."""
    boot = {"kernel": r.kernel_bytes, "initramfs": r.initramfs_bytes, "disk": r.disk_bytes}
    total = r.image_bytes or sum(boot.values()) + r.rootfs_bytes
    rest = total - sum(boot.values())
    segs = {}
    if 0 < r.rootfs_bytes <= rest * 1.001:
        segs["rootfs"] = min(r.rootfs_bytes, rest)
        rest -= segs["rootfs"]
    segs |= {k: v for k, v in boot.items() if v > 0}
    if rest > 0.01 * total:
        segs["layers / other"] = rest
    return segs


def density(ds: Dataset, claims: pd.DataFrame) -> Built:
    m = ds.measured
    metric = density_metric(ds)
    data = m[(m.metric == metric) & m.phase.isin(["cold", "warm"])]
    # Only guests measured at several sizes: a single N has no slope to draw.
    guests = sorted(g for g, rows in data.groupby("guest") if rows.instances.nunique() >= 2)
    if not guests:
        return f"no {metric} rows at two or more instance counts"
    data = data[data.guest.isin(guests)]
    multi_host = ds.rows.host_id.nunique() > 1
    styles = dict(zip(sorted(data.host_id.unique()), ["-", "--", ":", "-."] * 10, strict=False))
    fig, axes = plt.subplots(1, len(guests), layout="constrained", squeeze=False)
    for ax, guest in zip(axes[0], guests, strict=True):
        sub = data[data.guest == guest]
        for _, first in _order(sub.drop_duplicates(["host_id", "backend"])).iterrows():
            g = sub[(sub.host_id == first.host_id) & (sub.backend == first.backend)]
            phase = "warm" if (g.phase == "warm").any() else "cold"
            g = g[g.phase == phase]
            c = colour(first.backend)
            ax.scatter(g.instances, g.value / MIB, color=c, s=60, zorder=3)
            fit = fit_slope(g.instances, g.value)
            name = f"{first.host_id} {first.backend}" if multi_host else first.backend
            if fit is None:
                ax.plot([], [], color=c, label=f"{name}: one instance count only")
                continue
            xs = np.linspace(g.instances.min(), g.instances.max(), 50)
            ax.plot(
                xs,
                (fit.intercept + fit.slope * xs) / MIB,
                color=c,
                linestyle=styles[first.host_id],
                linewidth=3,
                label=f"{name}: +{fit.slope / MIB:.1f} MiB per instance",
            )
        ax.set_xlabel("Instances running")
        ax.set_ylabel(
            "Instances' PSS + shims (MiB)"
            if metric == "footprint_bytes"
            else "Host memory used (MiB)"
        )
        if len(guests) > 1:
            ax.set_title(guest)
        if sub.instances.max() / sub.instances.min() >= 8:  # 1..32 containers beside 1..4 VMs
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
        ax.legend(loc="best")
    title = claim_title(
        claims,
        "density",
        "Each extra VM costs {r} the host memory of an extra container",
        "An extra container cost {r} the host memory of an extra VM here",
        "Host memory against instances",
    )
    return fig, title


def boot_phases(ds: Dataset, claims: pd.DataFrame) -> Built:
    """Where a VM's time to ready goes: before its kernel runs, guest boot, and for Vagrant
    the wait until `vagrant up` returns."""
    m = ds.measured
    data = m[(m.kind == "vm") & (m.instances == 1) & m.phase.isin(["cold", "warm"])]
    keys = ["host_id", "backend", "guest", "phase", "metric"]
    med = data.groupby(keys).value.median().unstack("metric")
    if "ready_s" not in med or not (data.metric == "guest_uptime_s").any():
        return "no VM rows with both ready_s and guest_uptime_s"
    med = med.dropna(subset=["ready_s", "guest_uptime_s"])
    fig, ax = plt.subplots(layout="constrained")
    labels, shares = [], {}
    multi = ds.rows.host_id.nunique() > 1
    for i, ((host, backend, guest, phase), r) in enumerate(med.iterrows()):
        ready, uptime = r.ready_s, min(r.guest_uptime_s, r.ready_s)
        up = r.get("up_returned_s", math.nan)
        segs = {"before the guest kernel runs": ready - uptime, "guest boot to READY": uptime}
        shares.setdefault(backend, []).append((ready - uptime) / ready)
        if not math.isnan(up) and up > ready:
            segs["vagrant up returns after READY"] = up - ready
        left = 0.0
        for name, secs in segs.items():
            fc, hatch = PHASE_STYLE[name]
            seen = ax.get_legend_handles_labels()[1]
            ax.barh(
                i,
                secs,
                left=left,
                color=fc,
                hatch=hatch,
                height=0.6,
                edgecolor=colour(backend),
                linewidth=2.5,
                label=None if name in seen else name,
            )
            left += secs
        ax.annotate(
            f"{left:.1f} s", (left, i), va="center", xytext=(6, 0), textcoords="offset points"
        )
        labels.append(f"{host} " * multi + f"{guest} {backend}\n{phase}")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(-0.8, len(labels) - 0.2)
    ax.set_xlabel("Seconds from launch")
    fig.legend(loc="outside lower center", ncols=3)
    backend = "vagrant" if "vagrant" in shares else max(shares, key=lambda b: np.median(shares[b]))
    who = "vagrant up" if backend == "vagrant" else backend
    title = (
        f"{who}: {np.median(shares[backend]):.0%} of the time to ready passes "
        "before the guest kernel runs"
    )
    return fig, title


BUILDERS: dict[str, tuple[Callable[[Dataset, pd.DataFrame], Built], str | None]] = {
    "ready_time": (ready_time, "speed"),
    "size_breakdown": (size_breakdown, "size"),
    "memory": (memory, None),
    "density": (density, "density"),
    "boot_phases": (boot_phases, None),
}
