"""Markdown pieces every view shares: tables, verdict and memory lines, ratios, host ids as
code spans, the methodology. They render analysis tables; they compute nothing."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from bench.analysis.claims import CLAIMS
from bench.analysis.emulation import WITHOUT_CACHE
from bench.analysis.summary import SUMMARY_KEYS
from bench.units import accel_label, engine_label, human

if TYPE_CHECKING:  # the terminal's tables load no matplotlib
    from bench.render.charts.save import Chart

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
    "Host load: each trial records the load average, the CPU other processes used (/proc/stat "
    "less the run's own and its engine's daemons), CPU pressure and steal. Outliers (modified "
    "z-score above 3.5 in their group) and drift over the run's order (Kendall's tau, p below "
    "0.01) are named under Warnings, never dropped; a verdict resting on trials run on a busy "
    "host says so in its caveat.",
]


def verdict_markdown(claims: pd.DataFrame) -> str:
    rows = []
    for _, c in claims.iterrows():
        comparison = f"{compared(c)}, {c.guest} ({c.scenario})" if c.vm else ""
        rows.append(
            {
                "host": c.host_id,
                "claim": f"{c.claim}: {CLAIMS[c.claim]}",
                "verdict": f"**{md_text(c.verdict)}**",
                "VM/container [95% CI]": ratio_text(c),
                WITHOUT_HEADING: without_cache_text(c),
                "n (c/VM)": f"{c.n_container}/{c.n_vm}",
                "comparison": comparison,
                "decided by": c.evidence,
                "caveat": c.caveat,
            }
        )
    table = _drop_if_empty(pd.DataFrame(rows), WITHOUT_HEADING)
    return markdown_table(table, markdown=("verdict",))


# A TCG VM's memory and density ratio again, less each trial's translation cache: its label.
WITHOUT_HEADING = f"{WITHOUT_CACHE} [95% CI]"


def without_cache_text(c: pd.Series) -> str:
    """'11.8x [11.5, 12.1]': the row's ratio without the translation cache ('' if none)."""
    ratio = c.get("ratio_without_cache", float("nan"))
    if pd.isna(ratio):
        return ""
    low, high = c.get("ci_low_without_cache"), c.get("ci_high_without_cache")
    if pd.isna(low):
        return f"{ratio:.3g}x [no interval]"
    top = "unbounded" if high == float("inf") else f"{high:.3g}"
    return f"{ratio:.3g}x [{low:.3g}, {top}]"


def _drop_if_empty(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """A column no row fills (no TCG VM, or none split) is left out of the table."""
    if column in table and not table[column].astype(bool).any():
        return table.drop(columns=column)
    return table


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
            WITHOUT_HEADING: [without_cache_text(r) for _, r in rows.iterrows()],
            "n (c/VM)": [f"{r.n_container}/{r.n_vm}" for _, r in rows.iterrows()],
            "measured": rows.evidence,
            "caveat": rows.caveat,
        }
    )
    return markdown_table(_drop_if_empty(table, WITHOUT_HEADING))


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
        lines.append(f"### {code(host_id)}")
        if not meta:
            lines.append("No host.json found beside the CSV.")
        for key, value in meta.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in value.items())
            lines.append(f"- {md_text(key)}: {md_text(value)}")
        lines.append("")
    return "\n".join(lines) + "\n"


def markdown_table(df: pd.DataFrame, markdown: tuple[str, ...] = ()) -> str:
    """A GitHub-flavoured markdown table (no tabulate dependency). Every cell is text, escaped
    (``md_text``), except the ``markdown`` columns, which the caller built as markdown from
    escaped parts (a verdict in bold, host ids as code spans)."""

    def cell(v: object, raw: bool) -> str:
        text = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
        if not raw:
            return md_text(text)
        return CONTROL_CHARS.sub(" ", text).replace("|", "\\|")

    raw = [c in markdown for c in df.columns]
    head = "| " + " | ".join(md_text(str(c)) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = [
        "| " + " | ".join(cell(v, r) for v, r in zip(row, raw, strict=True)) + " |"
        for row in df.itertuples(index=False)
    ]
    return "\n".join([head, rule, *body]) + "\n"


# C0 and C1 control characters (newlines included): one space each in markdown, so no input
# text can end a table row, a heading or a list item early.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def image(chart: Chart, out_dir: Path) -> str:
    """A chart as a markdown image: its title (which may name hosts) escaped as alt text."""
    return f"![{md_text(chart.title)}]({chart.png.relative_to(out_dir)})\n"


def code(text: object) -> str:
    """A markdown code span of text, whatever backticks it holds: host ids shown verbatim
    (HTML in a code span is text; control characters become spaces)."""
    text = CONTROL_CHARS.sub(" ", str(text))
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_text(text: object) -> str:
    """Input text as markdown shows it, acting on none of it: the one escape of the markdown
    views. Control characters (newlines) become spaces, so a host id cannot split a heading
    or a table row; markdown's and HTML's characters are escaped, so ``<script>`` stays
    text. Underscores are left alone: inside words (pss_bytes) GFM does not act on them."""
    return re.sub(r"([\\`*\[\]<>|])", r"\\\1", CONTROL_CHARS.sub(" ", str(text)))
