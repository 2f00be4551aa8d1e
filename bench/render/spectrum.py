"""The isolation spectrum in words: the report's section and the deck's lines (the tables are
bench.analysis.spectrum's, the charts bench.render.charts.spectral's)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.analysis.spectrum import BETWEEN, Spectrum
from bench.render.charts import Chart, Drawing
from bench.render.markdown import image, markdown_table, md_text
from bench.units import accel_label, engine_label, human

TCG_MARK = "TCG: software emulation, not hardware VM speed"


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


def markdown(spectrum: Spectrum, drawing: Drawing, out_dir: Path) -> list[str]:
    """The report.md section: the decomposition lines, the spectrum table, the charts."""
    parts = ["## Isolation spectrum", ""]
    if spectrum.decomposition.empty and spectrum.unsupported:
        why = "; ".join(reason for _b, reason in sorted(spectrum.unsupported.items()))
        parts += [f"Decomposition: not measured: {md_text(why)}.", ""]
    elif spectrum.decomposition.empty:
        parts += [
            "Decomposition: not measured (it needs one guest as an app container, a system "
            "container and a VM on one host: `vmbench run scenarios/spectrum.toml`).",
            "",
        ]
    else:
        parts += ["Decomposition of the VM's start:", ""]
        parts += [
            f"- {md_text(decomposition_line(r))}" for _, r in spectrum.decomposition.iterrows()
        ]
        parts += [""]
    if spectrum.spectrum.kind.isin(BETWEEN).any():
        parts += [markdown_table(_readable(spectrum.spectrum))]
    else:
        parts += [
            "Only containers and VMs were measured (their medians are in spectrum.csv); "
            "`scenarios/spectrum.toml` adds a system container and a microVM.",
            "",
        ]
    charts = [drawing.named(name) for name in ("spectrum", "decomposition")]
    parts += [image(c, out_dir) for c in charts if c is not None]
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
    chart: Chart
    lines: list[str]


def slides(spectrum: Spectrum, drawing: Drawing) -> list[SlideText]:
    found = []
    if (chart := drawing.named("spectrum")) is not None:
        found.append(
            SlideText(
                "From the host's kernel to a kernel of its own",
                chart,
                ["Kinds: container, system container (own init), microVM and VM (own kernel)."],
            )
        )
    if (chart := drawing.named("decomposition")) is not None:
        lines = slide_lines(spectrum.decomposition)
        found.append(SlideText("Why a VM starts slower: kernel vs init", chart, lines))
    return found
