"""One analysis -> report.html; several hosts' analysis -> compare.html. One file each, with
nothing to fetch: inline CSS, the charts as inline SVG (text kept as text), no script.

The pages render the same Analysis as report.md, the deck and compare.md, from the same
drawn charts; they compute nothing. Jinja2 with autoescaping writes them, so host ids,
details and file names are data: a host named ``<script>`` shows as text. The sections whose
words report.md already has (memory, emulation, spectrum, published figures, repetitions,
summary, failed trials, method) are its markdown rendered by markdown-it with raw HTML
disabled, so the two reports cannot say different things.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from markdown_it import MarkdownIt
from markupsafe import Markup

from bench.analysis.claims import CLAIMS
from bench.analysis.hosts import OUTLIER_MIN_FACTOR, OUTLIER_Z
from bench.analysis.model import Analysis
from bench.render import spectrum as spectrum_words
from bench.render.charts import Drawing
from bench.render.emulation import emulation_markdown, published_markdown
from bench.render.markdown import (
    METHODOLOGY,
    WITHOUT_HEADING,
    compared,
    markdown_table,
    memory_markdown,
    ratio_text,
    summary_markdown,
    without_cache_text,
)
from bench.render.svg import inline

VERDICT_COLUMN = "verdict"


@dataclass(frozen=True)
class Table:
    """A table for the page: its caption, column names and rows of text (escaped when
    rendered); the first column heads each row."""

    caption: str
    columns: list[str]
    rows: list[list[str]]


def table(df: pd.DataFrame, caption: str) -> Table:
    def cell(v: object) -> str:
        return "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)

    return Table(
        caption,
        [str(c) for c in df.columns],
        [[cell(v) for v in row] for row in df.itertuples(index=False)],
    )


def verdict_frame(claims: pd.DataFrame) -> pd.DataFrame:
    """The verdict table report.md shows (bench.render.markdown.verdict_markdown's columns),
    the verdict as its word (the page styles it)."""
    rows = [
        {
            "host": c.host_id,
            "claim": f"{c.claim}: {CLAIMS.get(c.claim, '')}",
            VERDICT_COLUMN: c.verdict,
            "VM/container [95% CI]": ratio_text(c),
            WITHOUT_HEADING: without_cache_text(c),
            "n (c/VM)": f"{c.n_container}/{c.n_vm}",
            "comparison": f"{compared(c)}, {c.guest} ({c.scenario})" if c.vm else "",
            "decided by": c.evidence,
            "caveat": c.caveat,
        }
        for _, c in claims.iterrows()
    ]
    frame = pd.DataFrame(rows, columns=list(rows[0]) if rows else ["host", VERDICT_COLUMN])
    if WITHOUT_HEADING in frame and not frame[WITHOUT_HEADING].astype(bool).any():
        frame = frame.drop(columns=WITHOUT_HEADING)
    return frame


# --- markdown sections ----------------------------------------------------------------------


@cache
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.add_render_rule(
        "table_open",
        lambda *_a: '<div class="scroll" role="region" tabindex="0" aria-label="table"><table>\n',
    )
    md.add_render_rule("table_close", lambda *_a: "</table></div>\n")
    return md


def markdown_html(lines: list[str], shift: int = 0) -> Markup:
    """report.md's lines as HTML: raw HTML in them is text, table headers get scope="col",
    tables scroll in their own box; ``shift`` lowers every heading (## -> ### with 1)."""
    md = _markdown()
    tokens = md.parse("\n".join(lines))
    for t in tokens:
        if t.type == "th_open":
            t.attrSet("scope", "col")
        elif t.type in ("heading_open", "heading_close") and shift:
            t.tag = f"h{min(int(t.tag[1]) + shift, 6)}"
        elif t.type == "link_open":
            t.attrSet("rel", "noreferrer")
    return Markup(md.renderer.render(tokens, md.options, {}))


def _report_sections(a: Analysis, out_dir: Path) -> dict[str, Markup]:
    """The sections report.md words, as HTML (empty when report.md leaves them out)."""

    def when(frame: pd.DataFrame, lines: list[str]) -> Markup:
        return Markup("") if frame.empty else markdown_html(lines)

    no_charts = Drawing(out_dir)  # the spectrum's charts are placed inline by the template
    stops_why = (
        'Why each group stopped repeating (repetitions = "auto": until the median\'s 95 % CI '
        "is within target_ci_pct % of it, or max_repetitions; or the time budget):"
    )
    return {
        "memory": when(a.memory, [memory_markdown(a.memory)]),
        "emulation": markdown_html(emulation_markdown(a)),
        "repetitions": when(a.stops, [stops_why, "", markdown_table(a.stops)]),
        "summary": markdown_html([summary_markdown(a.summary)]),
        "failures": when(a.failures, [markdown_table(a.failures)]),
        "spectrum": markdown_html(spectrum_words.markdown(a.spectrum, no_charts, out_dir)),
        "published": markdown_html(published_markdown(a)),
        "method": markdown_html([f"- {line}" for line in METHODOLOGY]),
    }


# --- the pages -------------------------------------------------------------------------------


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("bench.render", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["slug"] = lambda s: "".join(ch if ch.isalnum() else "-" for ch in str(s).lower())
    return env


def _host_meta(hosts: Mapping[str, dict[str, Any]]) -> list[tuple[str, list[tuple[str, str]]]]:
    """host id -> its host.json as (key, text) pairs, nested dicts as 'k v, k v'."""
    found = []
    for host_id, meta in sorted(hosts.items()):
        pairs = []
        for key, value in meta.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in value.items())
            pairs.append((str(key), str(value)))
        found.append((str(host_id), pairs))
    return found


def render_report(a: Analysis, drawing: Drawing, warnings: list[str], out_dir: Path) -> str:
    """report.html's text: verdicts, charts, summary, failed trials, warnings, the sections
    report.md adds, hosts, method."""
    charts = [inline(c) for c in drawing.claim_charts]
    named = (drawing.named(n) for n in ("spectrum", "decomposition"))
    section_charts = [inline(c) for c in named if c is not None]
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            sources=[str(p) for p in a.sources],
            verdicts=table(verdict_frame(a.claims), "One verdict per host, claim and comparison"),
            charts=charts,
            section_charts=section_charts,
            sections=_report_sections(a, out_dir),
            warnings=warnings,
            hosts=_host_meta(a.hosts_meta),
        )
    )


def write_html_report(a: Analysis, drawing: Drawing, warnings: list[str], out_dir: Path) -> Path:
    """Write report.html into out_dir (the charts of ``drawing``, already drawn, inlined)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    path = Path(out_dir) / "report.html"
    path.write_text(render_report(a, drawing, warnings, out_dir), encoding="utf-8")
    return path


def render_comparison(
    a: Analysis,
    drawing: Drawing,
    warnings: list[str],
    missing_hosts: Mapping[str, str],
    across: pd.DataFrame,
) -> str:
    """compare.html's text: one line per claim across hosts, the charts, the hosts that differ
    and those without results, the hosts, every host's verdicts folded per host, the method."""
    verdicts = verdict_frame(a.claims)
    per_host = []
    for host_id in a.host_ids:
        mine = verdicts[verdicts.host == host_id].drop(columns="host")
        counts = mine[VERDICT_COLUMN].value_counts() if len(mine) else pd.Series(dtype=int)
        per_host.append(
            {
                "host": str(host_id),
                "counts": ", ".join(f"{n} {v}" for v, n in counts.items()),
                "table": table(mine, f"The verdicts of host {host_id}"),
            }
        )
    rule = (
        f"One line per comparison; the ratio is VM / container. A host differs when its ratio "
        f"is more than {OUTLIER_Z} robust standard deviations (MAD) and {OUTLIER_MIN_FACTOR}x "
        "from the median of the hosts, or its verdict is not the most common one."
    )
    return (
        _environment()
        .get_template("compare.html.j2")
        .render(
            host_ids=[str(h) for h in a.host_ids],
            sources=[str(p) for p in a.sources],
            rule=rule,
            across=table(across, "Each claim across hosts"),
            charts=[inline(c) for c in drawing.charts],
            warnings=warnings,
            missing=[(str(h), str(why)) for h, why in missing_hosts.items()],
            hosts=table(a.hosts.table, "The hosts compared"),
            per_host=per_host,
            method=markdown_html([f"- {line}" for line in METHODOLOGY]),
        )
    )


def write_html_comparison(
    a: Analysis,
    drawing: Drawing,
    warnings: list[str],
    out_dir: Path,
    missing_hosts: Mapping[str, str] | None = None,
) -> Path:
    """Write compare.html into out_dir from the comparison's analysis and drawn charts."""
    from bench.render.compare import across_hosts  # the one line per claim compare.md shows

    across = across_hosts(a.hosts.ratios, len(a.host_ids), show=str)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    path = Path(out_dir) / "compare.html"
    text = render_comparison(a, drawing, warnings, missing_hosts or {}, across)
    path.write_text(text, encoding="utf-8")
    return path
