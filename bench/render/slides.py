"""A slide deck (python-pptx) of the verdicts: title with hosts, a slide per chart, methodology.

Every slide uses the "Title Only" layout with its title in the title placeholder (placed and
sized here, so the look does not depend on the template), so the outline view, the slide
sorter, a screen reader and a PDF's bookmarks see each slide's title; the rest are text
boxes and pictures, which open the same in PowerPoint and LibreOffice. Every claim gets
one slide per chart that illustrates it (a text slide when it has none), with its verdicts
under the chart; the evidence of every verdict is in the speaker notes.
"""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

import pandas as pd
from pptx import Presentation
from pptx.dml.color import RGBColor
from pptx.enum.text import MSO_ANCHOR, PP_ALIGN
from pptx.presentation import Presentation as Deck
from pptx.slide import Slide
from pptx.text.text import TextFrame, _Paragraph
from pptx.util import Emu, Inches, Length, Pt

from bench.analysis.claims import CLAIMS
from bench.analysis.emulation import WITHOUT_CACHE
from bench.analysis.model import Analysis
from bench.analysis.phases import OWN_KERNEL
from bench.render import emulation as emulation_words
from bench.render import spectrum as spectrum_words
from bench.render.charts import Chart, Drawing, draw_all
from bench.render.markdown import METHODOLOGY, ratio_text, without_cache_text
from bench.units import engine_label

WIDTH, HEIGHT = Inches(13.333), Inches(7.5)
MARGIN = Inches(0.5)
TITLE_ONLY_LAYOUT = 5  # python-pptx's default template: a title placeholder, nothing else
CHART_TOP, CHART_HEIGHT = Inches(1.05), Inches(5.0)
VERDICT_TOP = Inches(6.1)  # under the chart: room for MAX_VERDICT_LINES + one footer line
MAX_VERDICT_LINES = 3
LINE_CHARS = 105  # a 16 pt line across the slide; longer lines are shortened, never wrapped
VERDICT_COLOURS = {  # Okabe-Ito, readable on white
    "supported": RGBColor(0x00, 0x9E, 0x73),
    "refuted": RGBColor(0xD5, 0x5E, 0x00),
    "inconclusive": RGBColor(0xB0, 0x8A, 0x00),
    "not-measured": RGBColor(0x77, 0x77, 0x77),
}


def write_deck(a: Analysis, out_path: Path, drawing: Drawing | None = None) -> Path:
    """Write the deck to out_path with the report's charts (``drawing``); without them, the
    charts are drawn into a temporary folder: the deck holds its images, no folder stays."""
    out_path = Path(out_path)
    if drawing is None:
        with tempfile.TemporaryDirectory(prefix="vmbench-deck-") as charts:
            return write_deck(a, out_path, draw_all(a, Path(charts)))
    claims = a.claims
    prs = Presentation()
    prs.slide_width, prs.slide_height = WIDTH, HEIGHT
    title_slide(_new_slide(prs), a)
    # The memory chart's lines are its own comparisons (one instance), not the density slopes.
    lines_for = {"memory": a.memory}
    for claim in CLAIMS:
        shown: list[Chart | None] = [*drawing.for_claim(claim)] or [None]
        for chart in shown:
            rows = lines_for.get(chart.name if chart else "", claims[claims.claim == claim])
            claim_slide(_new_slide(prs), claim, rows, chart)
    for page in spectrum_words.slides(a.spectrum, drawing):
        chart_slide(_new_slide(prs), page.heading, page.chart, page.lines)
    for heading, lines, size in emulation_words.slides(a):
        text_slide(_new_slide(prs), heading, lines, size)
    methodology_slide(_new_slide(prs))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    prs.save(str(out_path))
    return out_path


def _new_slide(prs: Deck) -> Slide:
    return prs.slides.add_slide(prs.slide_layouts[TITLE_ONLY_LAYOUT])


def title_slide(slide: Slide, a: Analysis) -> None:
    _title(slide, "Virtual machines vs containers, measured", Inches(1.5), Inches(1.6), 40)
    lines = []
    for host in a.host_ids:
        meta = a.hosts_meta.get(host, {})
        facts = [str(meta[k]) for k in ("cpu_model", "os") if meta.get(k)]
        if meta.get("cpu_count"):
            facts.append(f"{meta['cpu_count']} CPUs")
        facts.append(vm_engines(a, host))
        lines.append(f"{host}: " + ", ".join(facts))
    _text(slide, "Measured on", Inches(3.5), Inches(0.6), 24, True)
    _lines(slide, lines, Inches(4.1), Inches(3.0), 20)


def vm_engines(a: Analysis, host: str) -> str:
    """'VMs: qemu emulated (TCG), vagrant emulated (TCG)': how this host's VMs ran."""
    rows = a.dataset.rows
    r = rows[(rows.host_id == host) & rows.kind.isin(OWN_KERNEL)]
    pairs = sorted(set(zip(r.backend, r.accel, strict=True)))
    return "VMs: " + (", ".join(engine_label(b, a, " ") for b, a in pairs) or "none")


def claim_slide(slide: Slide, claim: str, rows: pd.DataFrame, chart: Chart | None) -> None:
    """The claim, its chart (if any) and up to MAX_VERDICT_LINES verdicts beneath."""
    heading = CLAIMS[claim]  # one line at 28 pt holds ~52 characters; longer ones get smaller
    _title(slide, heading, Inches(0.3), Inches(0.8), min(28, 28 * 52 // len(heading)))
    top = Inches(1.5)
    if chart is not None:
        width = Emu(int(CHART_HEIGHT * 16 / 9))
        slide.shapes.add_picture(
            str(chart.png), Emu((WIDTH - width) // 2), CHART_TOP, width, CHART_HEIGHT
        )
        top = VERDICT_TOP
    box = slide.shapes.add_textbox(
        MARGIN, top, Emu(WIDTH - 2 * MARGIN), Emu(HEIGHT - top - Inches(0.1))
    )
    frame = box.text_frame
    frame.word_wrap = True
    shown = rows.head(MAX_VERDICT_LINES)
    for i, (_, r) in enumerate(shown.iterrows()):
        para = frame.paragraphs[0] if i == 0 else frame.add_paragraph()
        _verdict_line(para, r, with_caveat=chart is None or r.verdict == "not-measured")
        if chart is None and r.evidence:
            _run(frame.add_paragraph(), _short(str(r.evidence), LINE_CHARS + 10), 14)
    footer = []
    tcg = rows.caveat[rows.caveat.str.contains("TCG")]
    if len(tcg):  # the TCG caveat as these rows state it (speed, or memory too)
        footer.append(next(c for c in tcg.iloc[0].split("; ") if "TCG" in c))
    if len(rows) > len(shown):
        footer.append(f"+{len(rows) - len(shown)} more in report.md")
    if footer:
        _run(frame.add_paragraph(), _short(". ".join(footer), LINE_CHARS + 15), 13, italic=True)
    _notes(slide).text = "\n".join(
        f"{r.host_id} {r.vm}/{r.container} {r.guest}: {r.verdict}; {r.evidence}; {r.caveat}"
        for _, r in rows.iterrows()
    )


def _verdict_line(para: _Paragraph, r: pd.Series, with_caveat: bool) -> None:
    """'host · qemu, emulated (TCG) vs docker, busybox: SUPPORTED 14.9x [10.1, 18.3]'."""
    without = without_cache_text(r)
    without = f"; {without.split(' [')[0]} {WITHOUT_CACHE}" if without else ""
    if r.claim not in CLAIMS:  # a comparison, not a verdict: what it compared, its ratio
        where = f"{r.host_id} · {r.guest}: "
        what = str(r.evidence).replace(r.vm, engine_label(r.vm, r.accel), 1)
        ratio = ratio_text(r) + without
        _run(para, where + _short(what, LINE_CHARS - len(where) - len(ratio) - 2) + ": ", 16)
        _run(para, ratio, 16, bold=True)
        return
    if r.vm:
        vm = engine_label(r.vm, r.accel)
        where = f"{r.host_id} · {vm} vs {r.container}, {r.guest}: "
    else:
        where = f"{r.host_id}: "
    ratio = f" {ratio_text(r)}{without}"
    _run(para, where, 16)
    _run(para, r.verdict.upper(), 16, bold=True, colour=VERDICT_COLOURS.get(r.verdict))
    _run(para, ratio, 16)
    room = LINE_CHARS - len(where) - len(r.verdict) - len(ratio)
    if with_caveat and r.caveat and room > 20:
        _run(para, f" ({_short(str(r.caveat), room - 3)})", 14, italic=True)


def chart_slide(slide: Slide, heading: str, chart: Chart, lines: list[str]) -> None:
    """A chart that is no claim's (the isolation spectrum): heading, chart, lines under it;
    all lines in the speaker notes."""
    _title(slide, heading, Inches(0.3), Inches(0.8), 28)
    width = Emu(int(CHART_HEIGHT * 16 / 9))
    slide.shapes.add_picture(
        str(chart.png), Emu((WIDTH - width) // 2), CHART_TOP, width, CHART_HEIGHT
    )
    shown = [_short(line, LINE_CHARS) for line in lines[:MAX_VERDICT_LINES]]
    _lines(slide, shown, VERDICT_TOP, Emu(HEIGHT - VERDICT_TOP - Inches(0.1)), 14)
    _notes(slide).text = "\n".join(lines)


def text_slide(slide: Slide, heading: str, lines: list[str], size: int) -> None:
    """A slide of lines under a heading (what emulation adds, the published figures); every
    line whole in the speaker notes."""
    _title(slide, heading, Inches(0.3), Inches(0.8), 28)
    shown = [_short(line, LINE_CHARS * 16 // size) for line in lines]
    _lines(slide, shown, Inches(1.2), Emu(HEIGHT - Inches(1.3)), size)
    _notes(slide).text = "\n".join(lines)


def methodology_slide(slide: Slide) -> None:
    _title(slide, "How it was measured", Inches(0.3), Inches(0.8), 28)
    _lines(slide, [m.replace("`", "") for m in METHODOLOGY], Inches(1.2), Inches(6.1), 15)


def _notes(slide: Slide) -> TextFrame:
    """The speaker notes' text frame (every notes slide of the default template has one)."""
    frame = slide.notes_slide.notes_text_frame
    assert frame is not None
    return frame


def _short(text: str, width: int) -> str:
    return textwrap.shorten(text, width, placeholder=" …")


def _title(slide: Slide, text: str, top: Length, height: Length, size: int) -> None:
    """The slide's title, in its layout's title placeholder: placed, sized and set like the
    text boxes (left-aligned, bold, top-anchored), and named as the slide's title."""
    title = slide.shapes.title
    assert title is not None  # TITLE_ONLY_LAYOUT has one
    title.left, title.top, title.width, title.height = MARGIN, top, Emu(WIDTH - 2 * MARGIN), height
    frame = title.text_frame
    frame.word_wrap = True
    frame.vertical_anchor = MSO_ANCHOR.TOP
    frame.margin_left = frame.margin_right = Inches(0.1)
    frame.margin_top = frame.margin_bottom = Inches(0.05)
    para = frame.paragraphs[0]
    para.alignment = PP_ALIGN.LEFT
    _run(para, text, size, bold=True)


def _text(
    slide: Slide, text: str, top: Length, height: Length, size: int, bold: bool = False
) -> None:
    box = slide.shapes.add_textbox(MARGIN, top, Emu(WIDTH - 2 * MARGIN), height)
    box.text_frame.word_wrap = True
    _run(box.text_frame.paragraphs[0], text, size, bold=bold)


def _lines(slide: Slide, lines: list[str], top: Length, height: Length, size: int) -> None:
    box = slide.shapes.add_textbox(MARGIN, top, Emu(WIDTH - 2 * MARGIN), height)
    frame = box.text_frame
    frame.word_wrap = True
    for i, line in enumerate(lines):
        para = frame.paragraphs[0] if i == 0 else frame.add_paragraph()
        para.space_after = Pt(8)
        _run(para, line, size)


def _run(
    para: _Paragraph,
    text: str,
    size: int,
    bold: bool = False,
    italic: bool = False,
    colour: RGBColor | None = None,
) -> None:
    run = para.add_run()
    run.text = text
    run.font.size = Pt(size)
    run.font.bold = bold
    run.font.italic = italic
    if colour is not None:
        run.font.color.rgb = colour
