"""Result CSVs -> summary.csv, claims.csv, report.md and charts: the answer to the claims.

The verdict table comes first because that is what a reader came for; the summary,
charts, host metadata and methodology follow so every number can be traced.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from rich.table import Table

from bench.analysis import spectrum
from bench.analysis.claims import CLAIMS, evaluate, memory_comparisons
from bench.analysis.dataset import Dataset, load
from bench.analysis.summary import SUMMARY_KEYS, summarize
from bench.render import charts
from bench.units import accel_label, engine_label, human

VERDICT_STYLE = {
    "supported": "bold green",
    "refuted": "bold red",
    "inconclusive": "yellow",
    "not-measured": "dim",
}
METHODOLOGY = [
    "Ready time: host monotonic clock from just before the launch call until the guest's "
    "`VMBENCH READY` line is read from its console (stdout for a container, the first "
    "serial port for a VM). Warmup runs are left out; cold (first run after a build) and "
    "warm runs are reported apart.",
    "Memory: PSS of every process an instance needs: the hypervisor process for a VM; the "
    "processes in the container's cgroup plus its engine's shim for a container (the process "
    "each shim_pss_bytes row names, e.g. containerd-shim or conmon; recorded apart, added for "
    "every comparison). One instance's memory and the density slopes count "
    "the same processes. Density: the memory of N instances running together (their PSS plus "
    "their shims', or the host's MemAvailable change when a CSV has no PSS at several N) "
    "against N; the slope of that line is what each extra instance costs.",
    "Size: bytes a backend needs to boot the guest (container image; VM kernel + initramfs "
    "+ disk; Vagrant box), and compressed bytes (what a user downloads).",
    "Statistics: medians with seeded percentile-bootstrap 95% confidence intervals. Ratios are "
    "VM over container, so above 1 is the side the article claims. A claim is supported "
    "only when the whole interval lies on the claimed side, refuted when it lies wholly on "
    "the other, inconclusive otherwise; not-measured when one side has no data.",
    "TCG: QEMU's software emulation, used when hardware virtualization (KVM) is absent. It "
    "translates every guest instruction, so a VM under TCG boots far slower than under KVM; "
    "rows measured under TCG are flagged and do not show hardware VM speed.",
]


@dataclass
class ReportOutcome:
    """What a report run produced, for the CLI to print and tests to check."""

    claims: pd.DataFrame
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    summary: pd.DataFrame | None = None
    report_path: Path | None = None


def failure_table(ds: Dataset) -> pd.DataFrame:
    """Failed/timed-out/unsupported trials, counted per group, with one example reason."""
    keys = ["host_id", "scenario", "guest", "backend", "phase", "status"]
    f = ds.failures
    if f.empty:
        return pd.DataFrame(columns=[*keys, "trials", "example"])
    return f.groupby(keys).agg(trials=("trial", "size"), example=("detail", "first")).reset_index()


def write_report(csv_paths: list[Path], out_dir: Path) -> ReportOutcome:
    """Write summary.csv, claims.csv, report.md and charts (png+svg) into out_dir."""
    ds = load(csv_paths)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(ds)
    claims = evaluate(ds)
    made, chart_warnings = charts.make_charts(ds, claims, out_dir)
    spectral = spectrum.write(ds, out_dir)  # spectrum.csv, decomposition.csv and charts
    warnings = [*ds.warnings, *chart_warnings, *spectral.notes]
    files = [out_dir / "summary.csv", out_dir / "claims.csv", out_dir / "report.md"]
    summary.to_csv(files[0], index=False)
    claims.to_csv(files[1], index=False)
    sections = spectrum.markdown(spectral, out_dir)
    files[2].write_text(
        render_markdown(ds, claims, summary, made, warnings, out_dir, sections), encoding="utf-8"
    )
    files += spectral.files
    for chart in [*made, *spectral.charts]:
        files += [chart.png, chart.svg]
    return ReportOutcome(claims, files, warnings, summary, files[2])


# --- markdown -------------------------------------------------------------------------------


def render_markdown(
    ds: Dataset,
    claims: pd.DataFrame,
    summary: pd.DataFrame,
    made: list[charts.Chart],
    warnings: list[str],
    out_dir: Path,
    sections: Sequence[str] = (),
) -> str:
    parts = [
        "# vmbench report",
        "",
        "From: " + ", ".join(f"`{p}`" for p in ds.sources),
        "",
        "## Verdicts",
        "",
        verdict_markdown(claims),
    ]
    memory = memory_comparisons(ds)
    if not memory.empty:
        parts += ["## Memory of one idle instance", "", memory_markdown(memory)]
    if warnings:
        parts += ["## Warnings", "", *[f"- {w}" for w in warnings], ""]
    parts += ["## Summary", "", summary_markdown(summary)]
    failures = failure_table(ds)
    if not failures.empty:
        parts += ["## Failed trials", "", markdown_table(failures), ""]
    if made:
        parts += ["## Charts", ""]
        parts += [f"![{c.title}]({c.png.relative_to(out_dir)})\n" for c in made]
    parts += [*sections, "## Hosts", "", hosts_markdown(ds.hosts), "## Methodology", ""]
    parts += [f"- {line}" for line in METHODOLOGY]
    return "\n".join(parts) + "\n"


def verdict_markdown(claims: pd.DataFrame) -> str:
    rows = []
    for _, c in claims.iterrows():
        comparison = f"{compared(c)}, {c.guest} ({c.scenario})" if c.vm else ""
        rows.append(
            {
                "host": c.host_id,
                "claim": f"{c.claim}: {CLAIMS[c.claim]}",
                "verdict": f"**{c.verdict}**",
                "VM/container [95% CI]": ratio_text(c),
                "n (c/VM)": f"{c.n_container}/{c.n_vm}",
                "comparison": comparison,
                "decided by": c.evidence,
                "caveat": c.caveat,
            }
        )
    return markdown_table(pd.DataFrame(rows))


def memory_markdown(rows: pd.DataFrame) -> str:
    """One instance's PSS, VM over container with its shim: the memory chart's numbers."""
    table = pd.DataFrame(
        {
            "host": rows.host_id,
            "guest": rows.guest,
            "comparison": [
                f"{engine_label(r.vm, r.accel)} vs {r.container} with its shim"
                for _, r in rows.iterrows()
            ],
            "VM/container [95% CI]": [ratio_text(r) for _, r in rows.iterrows()],
            "n (c/VM)": [f"{r.n_container}/{r.n_vm}" for _, r in rows.iterrows()],
            "measured": rows.evidence,
            "caveat": rows.caveat,
        }
    )
    return markdown_table(table)


def compared(c: pd.Series) -> str:
    """The engines a verdict compared, each with its kind: the claims set the vm kind against
    the container kind only (system containers and microVMs are in the spectrum section)."""
    return f"vm {engine_label(c.vm, c.accel)} vs container {c.container}"


def ratio_text(c: pd.Series) -> str:
    """'11.2x [9.8, 12.9]' or '' when a claim has no ratio."""
    if pd.isna(c.ratio):
        return ""
    if pd.isna(c.ci_low):
        return f"{c.ratio:.3g}x [no interval]"
    return f"{c.ratio:.3g}x [{c.ci_low:.3g}, {c.ci_high:.3g}]"


def summary_markdown(summary: pd.DataFrame) -> str:
    if summary.empty:
        return "No measured values.\n"
    table = summary[[*SUMMARY_KEYS, "n", "n_failed"]].copy()
    table["accel"] = table.accel.map(accel_label)
    for col in ("median", "p25", "p75", "min", "max", "sd"):
        table[col] = [human(v, u) for v, u in zip(summary[col], summary.unit, strict=True)]
    table["cv"] = summary.cv.map(lambda v: "" if pd.isna(v) else f"{v:.1%}")
    table["median 95% CI"] = [
        "" if pd.isna(lo) else f"{human(lo, u)} .. {human(hi, u)}"
        for lo, hi, u in zip(summary.ci_low, summary.ci_high, summary.unit, strict=True)
    ]
    return markdown_table(table)


def hosts_markdown(hosts: dict[str, dict[str, Any]]) -> str:
    lines = []
    for host_id, meta in sorted(hosts.items()):
        lines.append(f"### {host_id}")
        if not meta:
            lines.append("No host.json found beside the CSV.")
        for key, value in meta.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in value.items())
            lines.append(f"- {key}: {value}")
        lines.append("")
    return "\n".join(lines) + "\n"


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (no tabulate dependency)."""

    def cell(v: object) -> str:
        return (
            ("" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
            .replace("|", "\\|")
            .replace("\n", " ")
        )

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


# --- terminal -------------------------------------------------------------------------------


def verdict_table(claims: pd.DataFrame) -> Table:
    """The verdicts as a rich table for the terminal."""
    table = Table(title="vmbench verdicts", show_lines=False)
    for name in ("Host", "Claim", "Verdict", "VM/container [95% CI]", "n c/VM", "Comparison"):
        table.add_column(name)
    table.add_column("Caveat", overflow="fold", max_width=60)
    for _, c in claims.iterrows():
        where = c.guest if c.claim in ("kernel", "compat") else f"{c.scenario}/{c.guest}"
        comparison = f"{compared(c)} · {where}" if c.vm else ""
        table.add_row(
            str(c.host_id),
            str(c.claim),
            f"[{VERDICT_STYLE.get(c.verdict, '')}]{c.verdict}[/]",
            ratio_text(c),
            f"{c.n_container}/{c.n_vm}",
            comparison,
            str(c.caveat),
        )
    return table
