"""The report's "What emulation adds" and "Published figures" sections, from the frames
bench.analysis.emulation computes and the published figures (citations, never this host's
data: they sit in their own table, and this host's rows there say which accelerator ran)."""

from __future__ import annotations

import pandas as pd

from bench.analysis import emulation, published
from bench.analysis.model import Analysis
from bench.render.markdown import code, markdown_table, md_text
from bench.results import METRIC_UNITS
from bench.units import engine_label, human

WHAT_EMULATION_ADDS = "What emulation adds"
PUBLISHED_FIGURES = "Published figures"
# The metrics the reference table shows, in its order, and how a row names them.
TABLE_METRICS = {
    "ready_s": "launch to ready",
    "pss_bytes": "PSS of the instance's own processes (a VM: its hypervisor)",
    "vmm_pss_bytes": "the VMM's own memory",
    "footprint_bytes": "memory per instance",
}


def emulation_markdown(a: Analysis) -> list[str]:
    """The section's lines: the cpu factor beside the cache's share of memory, the split, and
    the ratios without the translation cache. [] when nothing of it was measured."""
    factors, split, without = a.cpu_factors, a.memory_split, a.without_cache
    if factors.empty and split.empty and without.empty:
        return []
    lines = [f"## {WHAT_EMULATION_ADDS}", ""]
    lines += [
        "Under TCG a VM pays twice: its code runs translated (the cpu workload's factor, VM ÷ "
        "container: the same CPU work, 64 MiB of zeros through md5sum, timed on the host clock "
        "between two console lines), and the translated code lives in a cache inside the "
        "hypervisor process (the translation cache's share of the VM's PSS). Under KVM the "
        "factor is near 1 and the cache is 0. A VM's PSS is split by mapping (its "
        "/proc/PID/smaps): guest RAM (a named memfd), the translation cache (the one anonymous "
        "rwx mapping), the VMM (every other mapping).",
        "",
    ]
    for _, r in factors.iterrows():
        lines.append(f"- {md_text(emulation.factor_sentence(r))}")
    if not factors.empty:
        lines.append("")
    if not split.empty:
        lines += ["A VM's memory by what holds it (median PSS of one idle instance):", ""]
        lines.append(markdown_table(_split_table(split)))
    if not without.empty:
        lines += [
            f"Ratios {emulation.WITHOUT_CACHE}: each TCG VM trial's footprint less its own "
            "translation cache. A subtraction on this host, not a KVM measurement.",
            "",
            markdown_table(_without_table(without)),
        ]
    return lines


def _split_table(split: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "host": split.host_id,
            "guest": split.guest,
            "engine": [engine_label(r.backend, r.accel) for _, r in split.iterrows()],
            "instances": split.instances,
            "guest RAM": split.vm_ram_pss_bytes.map(lambda v: human(v, "B")),
            "translation cache": split.tcg_cache_pss_bytes.map(lambda v: human(v, "B")),
            "VMM": split.vmm_pss_bytes.map(lambda v: human(v, "B")),
            "PSS": split.pss_bytes.map(lambda v: human(v, "B")),
            "cache share": split.tcg_share.map(lambda v: f"{v:.0%}"),
            "n": split.n,
        }
    )


def _without_table(without: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "host": without.host_id,
            "claim": without.claim,
            "comparison": [
                f"{engine_label(r.vm, r.accel)} vs {r.container}, {r.guest}"
                for _, r in without.iterrows()
            ],
            f"VM/container {emulation.WITHOUT_CACHE} [95% CI]": [
                ratio_text(r) for _, r in without.iterrows()
            ],
            "n (c/VM)": [f"{r.n_container}/{r.n_vm}" for _, r in without.iterrows()],
        }
    )


def ratio_text(r: pd.Series) -> str:
    if pd.isna(r.ratio):
        return ""
    if pd.isna(r.ci_low):
        return f"{r.ratio:.3g}x [no interval]"
    high = "unbounded" if r.ci_high == float("inf") else f"{r.ci_high:.3g}"
    return f"{r.ratio:.3g}x [{r.ci_low:.3g}, {high}]"


def published_markdown(a: Analysis) -> list[str]:
    """The reference table: each published figure in its side's column, then this host's own
    medians for the same metrics (their accelerator named), then the 10x notes."""
    figures, host_figures, notes = a.published, a.host_figures, a.suspect
    lines = [
        f"## {PUBLISHED_FIGURES}",
        "",
        "What others measured or promise, cited as published (KVM for VMs): a reference, never "
        "part of this host's data. A figure of this host under TCG is set beside them here "
        "only, and compared with none of them; a figure of this host more than 10x outside "
        f"the published range for the same accelerator is named below ({emulation.SUSPECT}).",
        "",
        markdown_table(reference_table(figures, host_figures), markdown=("source",)),
    ]
    if notes:
        lines += [*(f"- {md_text(n)}" for n in notes), ""]
    return lines


def reference_table(figures: list[published.Figure], host_figures: pd.DataFrame) -> pd.DataFrame:
    """source, conditions, container figure, VM figure: published rows, then this host's."""
    rows = [
        {
            "source": f"[{md_text(f.source)}]({f.url})",
            "conditions": f.conditions,
            "measured": f.measured,
            "container figure": f.text() if f.side == "container" else "",
            "VM figure": f.text() if f.side == "vm" else "",
        }
        for f in figures
    ]
    for (host, metric), g in host_figures.groupby(["host_id", "metric"], sort=True):
        if metric not in TABLE_METRICS:
            continue
        unit = METRIC_UNITS.get(metric, "")

        def cell(part: pd.DataFrame, unit: str = unit) -> str:
            return "; ".join(
                f"{engine_label(r.backend, r.accel)} {human(r['median'], unit)}"
                for _, r in part.iterrows()
            )

        rows.append(
            {
                "source": f"this host ({code(host)})",
                "conditions": "measured by this run; accelerators as named",
                "measured": f"{TABLE_METRICS[metric]} ({metric}), median of one instance",
                "container figure": cell(g[g.kind == "container"]),
                "VM figure": cell(g[g.kind != "container"]),
            }
        )
    return pd.DataFrame(rows)


def slides(a: Analysis) -> list[tuple[str, list[str], int]]:
    """The deck's pages of this section: (heading, lines, font size). What emulation adds (the
    factors, each VM's split), then the published figures as citations, this host's apart."""
    pages = []
    lines = [emulation.factor_sentence(r) for _, r in a.cpu_factors.iterrows()]
    one = a.memory_split[a.memory_split.instances == 1]
    lines += [
        f"{r.host_id}, {r.guest}, {engine_label(r.backend, r.accel)}: PSS {human(r.pss_bytes, 'B')}"
        f" = guest RAM {human(r.vm_ram_pss_bytes, 'B')} + translation cache "
        f"{human(r.tcg_cache_pss_bytes, 'B')} ({r.tcg_share:.0%}) + VMM {human(r.vmm_pss_bytes, 'B')}"
        for _, r in one.iterrows()
    ]
    if lines:
        pages.append((WHAT_EMULATION_ADDS, lines[:8], 15))
    cited = [
        f"{f.text()} ({f.side}, {f.accel}) · {f.source} · {f.measured}; {f.conditions}"
        for f in a.published
    ]
    here = [
        f"This host ({r.host_id}): {engine_label(r.backend, r.accel)} {r.metric} "
        f"{human(r['median'], METRIC_UNITS.get(r.metric, ''))}"
        for _, r in a.host_figures[a.host_figures.metric == "ready_s"].iterrows()
    ]
    pages.append((f"{PUBLISHED_FIGURES} (citations, not this host's data)", cited, 11))
    if here or a.suspect:
        pages.append((f"{PUBLISHED_FIGURES}: this host beside them", [*here, *a.suspect], 15))
    return pages
