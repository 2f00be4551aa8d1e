"""Several hosts side by side, rendered: compare.md, claims.csv, ratios.csv and the charts.

A ratio from a TCG laptop and one from a KVM server are not the same measurement, so the
comparison says where hosts differ (CPU, accelerator, engine versions) and where a host
lacks a backend or scenario that another has (bench.analysis.hosts computes both). A lab of
fifty hosts gets one line per comparison (how many hosts support the claim, the median
ratio, which hosts differ) instead of fifty columns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis.hosts import (
    COMPARISON_KEYS,
    GAP,
    NOT_MEASURED,
    OUTLIER_MIN_FACTOR,
    OUTLIER_Z,
    host_list,
    quoted,
)
from bench.analysis.model import Analysis
from bench.render.charts import Chart, Drawing, draw, draw_all
from bench.render.charts.hosts import ratios_across_hosts, ratios_by_host
from bench.render.markdown import METHODOLOGY, code, image, markdown_table, md_text
from bench.render.markdown import verdict_markdown as claims_markdown
from bench.render.report import ReportOutcome
from bench.render.tables import write_csv
from bench.units import accel_label

# Past a handful of hosts, per-host charts (one box or line per host) give way to one chart
# of the ratios across hosts: a dot per host, the median, the hosts that differ named.
MAX_HOSTS_PER_CHART = 5


def write_comparison(
    a: Analysis,
    out_dir: Path,
    *,
    missing_hosts: Mapping[str, str] | None = None,
    drawing: Drawing | None = None,
    markdown: bool = True,
) -> ReportOutcome:
    """Write compare.md (unless ``markdown`` is false), claims.csv, ratios.csv (long: one row
    per host and comparison) and (unless ``drawing`` has them already) the charts into out_dir.

    ``missing_hosts``: hosts that were meant to be compared but gave no results (a fleet
    run's failed hosts), each with the reason; compare.md lists them.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hosts = a.hosts
    warnings = [*a.warnings, *hosts.warnings, *a.trial_notes]
    drawing = drawing if drawing is not None else draw_comparison(a, out_dir)
    warnings += drawing.notes
    files = [out_dir / "claims.csv", out_dir / "ratios.csv"]
    write_csv(a.claims, files[0])
    write_csv(hosts.ratios, files[1])
    page = None
    if markdown:
        page = out_dir / "compare.md"
        page.write_text(render(a, drawing.charts, warnings, out_dir, missing_hosts or {}), "utf-8")
        files.append(page)
    for chart in drawing.charts:
        files += [chart.png, chart.svg]
    summary = across_hosts(hosts.ratios, hosts.count)
    return ReportOutcome(a.claims, files, warnings, summary, page)


def draw_comparison(a: Analysis, out_dir: Path) -> Drawing:
    """The ratio chart first; the per-host charts only while a handful of hosts fit on them."""
    n = len(a.host_ids)
    if n <= MAX_HOSTS_PER_CHART:
        drawing = draw_all(a, out_dir, sections=False)  # the spectrum: each host's report
        name = "ratios_by_host"
        chart = draw(lambda x: ratios_by_host(x.claims), a, out_dir, name, None)
    else:
        drawing = Drawing(out_dir)
        drawing.notes.append(
            f"per-host charts are drawn for up to {MAX_HOSTS_PER_CHART} hosts; with "
            f"{n}, see the chart of ratios across hosts, and each host's own report"
        )
        name = "ratios_across_hosts"
        chart = draw(lambda x: ratios_across_hosts(x.hosts.ratios, n), a, out_dir, name, None)
    if isinstance(chart, str):
        drawing.notes.append(f"chart {name} skipped: {chart}")
    else:
        drawing.charts.insert(0, chart)
    return drawing


def across_hosts(
    ratios: pd.DataFrame, total: int, show: Callable[[str], str] | None = None
) -> pd.DataFrame:
    """One line per comparison: verdicts counted over hosts, median and range of the
    ratios, and the hosts that differ (an outlying ratio, another verdict, a gap), each
    host id written by ``show`` (quoted for a terminal, a code span for markdown)."""
    show = show or quoted
    rows = []
    for key, g in ratios.groupby(COMPARISON_KEYS, sort=False):
        combo = dict(zip(COMPARISON_KEYS, key, strict=True))
        counts = g.verdict.value_counts()
        ok = g[g.ratio.notna() & np.isfinite(g.ratio.astype(float)) & (g.ratio > 0)]
        differ = [f"{show(t.host_id)} {t.ratio:.3g}x" for t in ok[ok.outlier].itertuples()]
        judged = g[~g.verdict.isin([GAP, NOT_MEASURED])]
        if len(judged):
            usual = judged.verdict.value_counts().idxmax()
            odd = judged[judged.verdict != usual]
            differ += [f"{show(t.host_id)} {t.verdict}" for t in odd.itertuples()]
        gap_hosts = g.host_id[g.verdict == GAP].tolist()
        if gap_hosts:
            differ.append(f"gap on {host_list(gap_hosts, show)}")
        accels = judged.accel.fillna("").replace("", "unknown").value_counts()
        rows.append(
            {
                "claim": combo["claim"],
                "comparison": _comparison(combo),
                "VM accel": ", ".join(f"{_accel(a)} on {n}" for a, n in accels.items()),
                "verdicts": ", ".join(f"{n} {v}" for v, n in counts.items()) + f" (of {total})",
                "median ratio": f"{ok.ratio.median():.3g}x" if len(ok) else "",
                "range": f"{ok.ratio.min():.3g}x .. {ok.ratio.max():.3g}x" if len(ok) > 1 else "",
                "hosts that differ": "; ".join(differ),
            }
        )
    return pd.DataFrame(rows)


def _accel(accel: str) -> str:
    """'tcg (emulated)': a VM under TCG is labelled so wherever it appears."""
    return "+".join(accel_label(a) for a in accel.split(","))


def _comparison(combo: dict[str, str]) -> str:
    if not combo["vm"]:
        return ""
    return f"{combo['vm']} vs {combo['container']}, {combo['guest']} ({combo['scenario']})"


# --- markdown ---------------------------------------------------------------------------------


def render(
    a: Analysis,
    made: list[Chart],
    warnings: list[str],
    out_dir: Path,
    missing_hosts: Mapping[str, str],
) -> str:
    hosts = a.host_ids
    title = (
        "# vmbench comparison: " + ", ".join(code(h) for h in hosts)
        if len(hosts) <= MAX_HOSTS_PER_CHART
        else f"# vmbench comparison of {len(hosts)} hosts"
    )
    host_rows = a.hosts.table.assign(host_id=lambda t: t.host_id.map(code))
    parts = [
        title,
        "",
        "From: " + ", ".join(code(p) for p in a.sources),
        "",
        "## Hosts",
        "",
        markdown_table(host_rows, markdown=("host_id",)),
    ]
    if missing_hosts:
        parts += ["## Hosts without results", ""]
        parts += [f"- {code(host)}: {md_text(why)}" for host, why in missing_hosts.items()]
        parts += [""]
    if warnings:
        parts += ["## Differences and gaps", "", *[f"- {md_text(w)}" for w in warnings], ""]
    parts += [
        "## Across hosts",
        "",
        f"One line per comparison; the ratio is VM / container. A host differs when its ratio "
        f"is more than {OUTLIER_Z} robust standard deviations (MAD) and {OUTLIER_MIN_FACTOR}x "
        "from the median of the hosts, or its verdict is not the most common one. Every host's "
        "verdict and ratio is in ratios.csv (one row per host and comparison).",
        "",
        markdown_table(
            across_hosts(a.hosts.ratios, len(hosts), show=code), markdown=("hosts that differ",)
        ),
    ]
    if made:
        parts += ["## Charts", ""]
        parts += [image(c, out_dir) for c in made]
    parts += ["## Claims per host", "", claims_markdown(a.claims)]
    parts += ["## Methodology", "", *[f"- {line}" for line in METHODOLOGY]]
    return "\n".join(parts) + "\n"
