"""The isolation spectrum and the decomposition of a VM's start, read from the CSV alone.

Spectrum: every engine on every guest, ordered from the host's kernel to a kernel of its own
(the CSV's ``kind`` column: container, system-container, microvm, vm), with its median time
to READY and median footprint (PSS + container shim), each with a 95% CI.

Decomposition: where a guest runs as an app container (a), a system container (b, its own
init on the host's kernel) and a VM (c, its own kernel, then the same init), (c) - (b) is
what the kernel costs and (b) - (a) what the init system costs. Each share is a difference
of medians with a two-sample bootstrap CI, one line per combination of engines measured.

Times are warm trials of one instance (cold only where an engine has no warm trial; the
``phase`` column says which). The claims (claims.py) compare the container kind with the VM
kind only; the other kinds are reported here and nowhere merged into either side.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from bench.analysis.claims import (
    FOOTPRINT,  # PSS + shim PSS per trial, as the memory claims count it
)
from bench.analysis.dataset import Dataset, detail_reason, prefer_warm
from bench.analysis.stats import Interval, difference_of_medians_ci, median_ci
from bench.render import charts
from bench.results import KINDS
from bench.units import accel_label, engine_label, human

ENTRY_KEYS = ["host_id", "guest", "kind", "backend", "boot", "accel"]
SPECTRUM_COLUMNS = [
    *ENTRY_KEYS,
    "phase",
    "n_ready",
    "ready_s",
    "ready_s_ci_low",
    "ready_s_ci_high",
    "n_footprint",
    "footprint_bytes",
    "footprint_bytes_ci_low",
    "footprint_bytes_ci_high",
]
DECOMPOSITION_COLUMNS = [
    "host_id",
    "guest",
    "vm",
    "vm_boot",
    "accel",
    "system_container",
    "container",
    "vm_ready_s",
    "system_container_ready_s",
    "container_ready_s",
    "kernel_share_s",
    "kernel_share_ci_low",
    "kernel_share_ci_high",
    "init_share_s",
    "init_share_ci_low",
    "init_share_ci_high",
    "kernel_fraction",
    "init_fraction",
    "n_vm",
    "n_system_container",
    "n_container",
    "phases",
]
KIND_COLOURS = {  # Okabe-Ito, one per kind: the spectrum is about kinds, not engines
    "container": "#0072B2",
    "system-container": "#56B4E9",
    "microvm": "#CC79A7",
    "vm": "#E69F00",
}
SHARE_STYLE = {  # decomposition segments
    "app container": ("#0072B2", ""),
    "init's share": ("#56B4E9", ".."),
    "kernel's share": ("#E69F00", "//"),
}
TCG_MARK = "TCG: software emulation, not hardware VM speed"
BETWEEN = ("system-container", "microvm")  # the kinds between the claims' two sides
DECOMPOSED_KINDS = ("container", "system-container", "vm")  # (a), (b), (c) of one guest


@dataclass
class SpectrumReport:
    """What ``write`` made: the two tables, their files and charts (a chart without data is
    left out; ``markdown`` says what is missing)."""

    spectrum: pd.DataFrame
    decomposition: pd.DataFrame
    files: list[Path] = field(default_factory=list)
    charts: list[charts.Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # crowded chart texts
    # engines of the decomposition's kinds that could not run here, with why (unsupported rows)
    unsupported: dict[str, str] = field(default_factory=dict)


def write(ds: Dataset, out_dir: Path) -> SpectrumReport:
    """spectrum.csv, decomposition.csv and their charts (png+svg) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    spectrum, decomposition = spectrum_table(ds), decomposition_table(ds)
    report = SpectrumReport(spectrum, decomposition, unsupported=_unsupported(ds))
    for name, table in (("spectrum", spectrum), ("decomposition", decomposition)):
        path = out_dir / f"{name}.csv"
        table.to_csv(path, index=False)
        report.files.append(path)
    for name, builder, table in (
        ("spectrum", spectrum_chart, spectrum),
        ("decomposition", decomposition_chart, decomposition),
    ):
        with charts.slide_style():
            chart = charts.save_chart(builder(table), out_dir, name, None)
        if not isinstance(chart, str):  # skipped: the markdown section says what is missing
            report.charts.append(chart)
            report.notes += [f"chart {name}: {c}" for c in chart.crowded]
    return report


def _unsupported(ds: Dataset) -> dict[str, str]:
    """Engines of a decomposition kind whose every trial was ``unsupported``, and the reason
    their rows give (e.g. rootless podman-systemd on cgroup v1)."""
    f = ds.failures
    f = f[(f.status == "unsupported") & f.kind.isin(DECOMPOSED_KINDS)]
    ran = set(ds.measured.backend)
    return {b: detail_reason(g.detail.iloc[0]) for b, g in f.groupby("backend") if b not in ran}


# --- the tables -----------------------------------------------------------------------------


def single_instance_rows(ds: Dataset, metrics: tuple[str, ...]) -> pd.DataFrame:
    """Measured rows of one instance (each with its trial's ``boot``, dataset.trial_boot)."""
    m = ds.measured
    rows = m[(m.instances == 1) & m.phase.isin(["cold", "warm"]) & m.kind.isin(KINDS)]
    return rows[rows.metric.isin(metrics)]


def spectrum_table(ds: Dataset) -> pd.DataFrame:
    """One row per host, guest and engine (and boot mode, accelerator): median ready_s and
    footprint with their CIs, shared kernel first."""
    rows = single_instance_rows(ds, ("ready_s", FOOTPRINT))
    records = []
    for key, g in rows.groupby(ENTRY_KEYS, sort=False):
        ready, phase = prefer_warm(g[g.metric == "ready_s"])
        if ready.empty:
            continue  # an engine that never reached READY has no place on the spectrum
        foot, _ = prefer_warm(g[g.metric == FOOTPRINT])
        r, f = median_ci(ready.value), median_ci(foot.value)
        records.append(
            dict(zip(ENTRY_KEYS, key, strict=True))
            | {"phase": phase, "n_ready": len(ready), "n_footprint": len(foot)}
            | _interval("ready_s", r)
            | _interval("footprint_bytes", f)
        )
    table = pd.DataFrame(records, columns=SPECTRUM_COLUMNS)
    order = table.kind.map({k: i for i, k in enumerate(KINDS)})
    return (
        table.assign(_order=order)
        .sort_values(["host_id", "guest", "_order", "backend", "boot", "accel"])
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def _interval(name: str, ci: Interval) -> dict[str, float]:
    return {name: ci.estimate, f"{name}_ci_low": ci.low, f"{name}_ci_high": ci.high}


@dataclass(frozen=True)
class Side:
    """One engine's ready times on one host and guest (one decomposition term)."""

    backend: str
    boot: str
    accel: str
    phase: str
    values: np.ndarray

    @property
    def median(self) -> float:
        return float(np.median(self.values))


def decomposition_table(ds: Dataset) -> pd.DataFrame:
    """Per host and guest with all three kinds: each VM x system container x app container."""
    rows = single_instance_rows(ds, ("ready_s",))
    records = []
    for (host, guest), g in rows.groupby(["host_id", "guest"], sort=True):
        sides = {kind: _sides(g[g.kind == kind]) for kind in DECOMPOSED_KINDS}
        for vm, system, app in itertools.product(
            sides["vm"], sides["system-container"], sides["container"]
        ):
            records.append(_decompose(host, guest, vm, system, app))
    return pd.DataFrame(records, columns=DECOMPOSITION_COLUMNS)


def _sides(g: pd.DataFrame) -> list[Side]:
    found = []
    for (backend, boot, accel), e in g.groupby(["backend", "boot", "accel"], sort=True):
        chosen, phase = prefer_warm(e)
        found.append(Side(backend, boot, accel, phase, chosen.value.to_numpy(dtype=float)))
    return found


def _decompose(host: str, guest: str, vm: Side, system: Side, app: Side) -> dict:
    kernel = difference_of_medians_ci(vm.values, system.values)
    init = difference_of_medians_ci(system.values, app.values)
    return {
        "host_id": host,
        "guest": guest,
        "vm": vm.backend,
        "vm_boot": vm.boot,
        "accel": vm.accel,
        "system_container": system.backend,
        "container": app.backend,
        "vm_ready_s": vm.median,
        "system_container_ready_s": system.median,
        "container_ready_s": app.median,
        "kernel_share_s": kernel.estimate,
        "kernel_share_ci_low": kernel.low,
        "kernel_share_ci_high": kernel.high,
        "init_share_s": init.estimate,
        "init_share_ci_low": init.low,
        "init_share_ci_high": init.high,
        "kernel_fraction": kernel.estimate / vm.median if vm.median else math.nan,
        "init_fraction": init.estimate / vm.median if vm.median else math.nan,
        "n_vm": len(vm.values),
        "n_system_container": len(system.values),
        "n_container": len(app.values),
        "phases": "/".join(dict.fromkeys((vm.phase, system.phase, app.phase))),
    }


# --- words ----------------------------------------------------------------------------------


def decomposition_line(r: pd.Series) -> str:
    """One line: the VM's start split into the app container, the init's and kernel's shares."""
    vm = _vm_name(r)
    line = (
        f"{r.host_id} · {r.guest}: {vm} reached READY in {human(r.vm_ready_s, 's')} = "
        f"app container {r.container} {human(r.container_ready_s, 's')}"
        f" + init's share {_share(r, 'init')} ({r.system_container} system container"
        f" − {r.container})"
        f" + kernel's share {_share(r, 'kernel')} ({r.vm} VM − {r.system_container})"
        f"; n = {r.n_container}/{r.n_system_container}/{r.n_vm}, {r.phases} trials"
    )
    return line + (f" ({TCG_MARK})" if r.accel == "tcg" else "")


def slide_lines(decomposition: pd.DataFrame) -> list[str]:
    """Short lines for a slide: each kernel's share once, then each init's share.
    'qemu, emulated (TCG) 14.01 s − podman-systemd 1.52 s = kernel's share 12.49 s [12.16,
    12.66] (89%)' (95% CIs in brackets)."""

    def share(r: pd.Series, which: str) -> str:
        est, low, high = (r[f"{which}_share{s}"] for s in ("_s", "_ci_low", "_ci_high"))
        ci = "" if pd.isna(low) else f" [{low:.2f}, {high:.2f}]"
        return f"{which}'s share {est:.2f} s{ci} ({r[f'{which}_fraction']:.0%})"

    kernel, init = {}, {}
    several = decomposition.guest.nunique() > 1  # else the chart's title names the guest
    for _, r in decomposition.iterrows():
        vm = engine_label(r.vm, r.accel)
        guest = f"{r.guest}: " if several else ""
        kernel[(r.guest, vm, r.system_container)] = (
            f"{guest}{vm} {r.vm_ready_s:.2f} s − {r.system_container} "
            f"{r.system_container_ready_s:.2f} s = {share(r, 'kernel')}"
        )
        init[(r.guest, r.system_container, r.container)] = (
            f"{guest}{r.system_container} − {r.container} {r.container_ready_s:.2f} s "
            f"= {share(r, 'init')}"
        )
    return [*kernel.values(), *init.values()]


def _vm_name(r: pd.Series) -> str:
    boot = f" boot={r.vm_boot}" if r.vm_boot else ""
    return f"{r.vm}{boot} [{accel_label(r.accel)}]"


def _share(r: pd.Series, which: str) -> str:
    est, low, high = (r[f"{which}_share{s}"] for s in ("_s", "_ci_low", "_ci_high"))
    fraction = r[f"{which}_fraction"]
    ci = "no interval" if pd.isna(low) else f"95% CI {human(low, 's')} .. {human(high, 's')}"
    share = f" ({fraction:.0%} of the VM's)" if not pd.isna(fraction) else ""
    return f"{human(est, 's')} [{ci}]{share}"


def markdown(report: SpectrumReport, out_dir: Path) -> list[str]:
    """The report.md section: the decomposition lines, the spectrum table, the charts."""
    from bench.render.report import markdown_table  # the report's one table writer

    parts = ["## Isolation spectrum", ""]
    if report.decomposition.empty and report.unsupported:
        why = "; ".join(reason for _b, reason in sorted(report.unsupported.items()))
        parts += [f"Decomposition: not measured: {why}.", ""]
    elif report.decomposition.empty:
        parts += [
            "Decomposition: not measured (it needs one guest as an app container, a system "
            "container and a VM on one host: `vmbench run scenarios/spectrum.toml`).",
            "",
        ]
    else:
        parts += ["Decomposition of the VM's start:", ""]
        parts += [f"- {decomposition_line(r)}" for _, r in report.decomposition.iterrows()]
        parts += [""]
    if report.spectrum.kind.isin(BETWEEN).any():
        parts += [markdown_table(_readable(report.spectrum))]
    else:
        parts += [
            "Only containers and VMs were measured (their medians are in spectrum.csv); "
            "`scenarios/spectrum.toml` adds a system container and a microVM.",
            "",
        ]
    parts += [f"![{c.title}]({c.png.relative_to(out_dir)})\n" for c in report.charts]
    return parts


def _readable(spectrum: pd.DataFrame) -> pd.DataFrame:
    s = spectrum
    return pd.DataFrame(
        {
            "host": s.host_id,
            "guest": s.guest,
            "kind": s.kind,
            "engine": s.backend,
            "boot": s.boot,
            "accel": s.accel.map(accel_label),
            "phase": s.phase,
            "n": s.n_ready,
            "ready (median)": [human(v, "s") for v in s.ready_s],
            "ready 95% CI": [
                _ci_text(lo, hi, "s")
                for lo, hi in zip(s.ready_s_ci_low, s.ready_s_ci_high, strict=True)
            ],
            "footprint (median PSS + shim)": [human(v, "B") for v in s.footprint_bytes],
            "footprint 95% CI": [
                _ci_text(lo, hi, "B")
                for lo, hi in zip(s.footprint_bytes_ci_low, s.footprint_bytes_ci_high, strict=True)
            ],
        }
    )


def _ci_text(low: float, high: float, unit: str) -> str:
    return "" if pd.isna(low) else f"{human(low, unit)} .. {human(high, unit)}"


@dataclass(frozen=True)
class SlideText:
    """A slide of the deck: heading, chart and the lines under it (slides.py draws it)."""

    heading: str
    chart: charts.Chart
    lines: list[str]


def slides(report: SpectrumReport) -> list[SlideText]:
    made = {c.name: c for c in report.charts}
    found = []
    if "spectrum" in made:
        found.append(
            SlideText(
                "From the host's kernel to a kernel of its own",
                made["spectrum"],
                ["Kinds: container, system container (own init), microVM and VM (own kernel)."],
            )
        )
    if "decomposition" in made:
        lines = slide_lines(report.decomposition)
        found.append(
            SlideText("Why a VM starts slower: kernel vs init", made["decomposition"], lines)
        )
    return found


# --- charts ---------------------------------------------------------------------------------


def spectrum_chart(spectrum: pd.DataFrame) -> charts.Built:
    """Median time to READY (left) and footprint (right) per engine, grouped by guest."""
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
            charts.MIB,
        )
        host = f"{r.host_id} · " if multi_host else ""
        boot = f", boot={r.boot}" if r.boot else ""
        labels.append(f"{host}{r.guest} · {engine_label(r.backend, r.accel)}{boot}")
    ax_t.set_yticks(range(len(labels)), labels, fontsize=13)
    ax_t.invert_yaxis()
    for ax, values, label in (
        (ax_t, spectrum.ready_s, "to READY (s, log)"),
        (ax_m, spectrum.footprint_bytes / charts.MIB, "PSS + shim (MiB, log)"),
    ):
        charts.plain_log_axis(ax.xaxis, decades_only=True)  # two narrow panels
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


def decomposition_chart(decomposition: pd.DataFrame) -> charts.Built:
    """One bar per combination: app container + init's share + kernel's share = the VM."""
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
