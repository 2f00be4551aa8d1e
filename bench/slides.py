"""A slide deck (python-pptx) of the verdicts: title with hosts, one slide per claim, methodology.

Built from blank slides and text boxes only, so it opens the same in PowerPoint and
LibreOffice and the layout does not depend on a template's placeholders.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pptx import Presentation
from pptx.dml.color import RGBColor
from pptx.slide import Slide
from pptx.util import Emu, Inches, Pt

from bench import charts
from bench.claims import CLAIMS, TCG_CAVEAT, evaluate
from bench.compare import accel_text
from bench.dataset import Dataset, load
from bench.report import METHODOLOGY, ratio_text

WIDTH, HEIGHT = Inches(13.333), Inches(7.5)
MARGIN = Inches(0.5)
BLANK_LAYOUT = 6
MAX_VERDICT_LINES = 3
VERDICT_COLOURS = {  # Okabe-Ito, readable on white
    "supported": RGBColor(0x00, 0x9E, 0x73),
    "refuted": RGBColor(0xD5, 0x5E, 0x00),
    "inconclusive": RGBColor(0xB0, 0x8A, 0x00),
    "not-measured": RGBColor(0x77, 0x77, 0x77),
}
CLAIM_CHARTS = {
    "speed": ["ready_time"],
    "size": ["size_breakdown"],
    "density": ["density", "memory"],
}


def write_deck(csv_paths: list[Path], out_path: Path) -> Path:
    """Write the deck to out_path; its charts go to a folder beside it (<stem>-charts)."""
    out_path = Path(out_path)
    ds = load(csv_paths)
    claims = evaluate(ds)
    made, _notes = charts.make_charts(ds, claims, out_path.parent / f"{out_path.stem}-charts")
    by_name = {c.name: c for c in made}
    prs = Presentation()
    prs.slide_width, prs.slide_height = WIDTH, HEIGHT
    title_slide(prs.slides.add_slide(prs.slide_layouts[BLANK_LAYOUT]), ds)
    for claim in CLAIMS:
        chart = next((by_name[n] for n in CLAIM_CHARTS.get(claim, []) if n in by_name), None)
        slide = prs.slides.add_slide(prs.slide_layouts[BLANK_LAYOUT])
        claim_slide(slide, claim, claims[claims.claim == claim], chart)
    methodology_slide(prs.slides.add_slide(prs.slide_layouts[BLANK_LAYOUT]))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    prs.save(str(out_path))
    return out_path


def title_slide(slide: Slide, ds: Dataset) -> None:
    _text(slide, "Virtual machines vs containers, measured", Inches(1.5), Inches(1.6), 40, True)
    lines = []
    for host in ds.host_ids:
        meta = ds.hosts.get(host, {})
        facts = [str(meta[k]) for k in ("cpu_model", "os") if meta.get(k)]
        if meta.get("cpu_count"):
            facts.append(f"{meta['cpu_count']} CPUs")
        facts.append(accel_text(ds, host))
        lines.append(f"{host}: " + ", ".join(facts))
    _text(slide, "Measured on", Inches(3.5), Inches(0.6), 24, True)
    _lines(slide, lines, Inches(4.1), Inches(3.0), 20)


def claim_slide(slide: Slide, claim: str, rows: pd.DataFrame, chart: charts.Chart | None) -> None:
    _text(slide, CLAIMS[claim], Inches(0.3), Inches(0.8), 28, True)
    if chart is not None:
        height = Inches(5.0)
        width = Emu(int(height * 16 / 9))
        slide.shapes.add_picture(str(chart.png), (WIDTH - width) // 2, Inches(1.05), height=height)
        top = Inches(6.1)
    else:
        top = Inches(1.5)
    shown = rows.head(MAX_VERDICT_LINES)
    box = slide.shapes.add_textbox(MARGIN, top, WIDTH - 2 * MARGIN, HEIGHT - top - Inches(0.1))
    frame = box.text_frame
    frame.word_wrap = True
    for i, (_, r) in enumerate(shown.iterrows()):
        para = frame.paragraphs[0] if i == 0 else frame.add_paragraph()
        where = f"{r.host_id} · {r.vm} vs {r.container}, {r.guest}: " if r.vm else f"{r.host_id}: "
        _run(para, where, 16)
        _run(para, r.verdict.upper(), 16, bold=True, colour=VERDICT_COLOURS.get(r.verdict))
        _run(para, f" {ratio_text(r)}", 16)
        if r.verdict == "not-measured" or (chart is None and r.caveat):
            _run(para, f" ({r.caveat})", 14, italic=True)
        if chart is None and r.evidence:
            _run(frame.add_paragraph(), str(r.evidence), 14)
    if rows.caveat.str.contains("TCG").any():
        _run(frame.add_paragraph(), TCG_CAVEAT, 14, italic=True)
    if len(rows) > len(shown):
        _run(frame.add_paragraph(), f"+{len(rows) - len(shown)} more in report.md", 14)
    slide.notes_slide.notes_text_frame.text = "\n".join(
        f"{r.host_id} {r.vm}/{r.container} {r.guest}: {r.verdict}; {r.evidence}; {r.caveat}"
        for _, r in rows.iterrows()
    )


def methodology_slide(slide: Slide) -> None:
    _text(slide, "How it was measured", Inches(0.3), Inches(0.8), 28, True)
    _lines(slide, [m.replace("`", "") for m in METHODOLOGY], Inches(1.3), Inches(6.0), 16)


def _text(slide: Slide, text: str, top: Emu, height: Emu, size: int, bold: bool = False) -> None:
    box = slide.shapes.add_textbox(MARGIN, top, WIDTH - 2 * MARGIN, height)
    box.text_frame.word_wrap = True
    _run(box.text_frame.paragraphs[0], text, size, bold=bold)


def _lines(slide: Slide, lines: list[str], top: Emu, height: Emu, size: int) -> None:
    box = slide.shapes.add_textbox(MARGIN, top, WIDTH - 2 * MARGIN, height)
    frame = box.text_frame
    frame.word_wrap = True
    for i, line in enumerate(lines):
        para = frame.paragraphs[0] if i == 0 else frame.add_paragraph()
        para.space_after = Pt(8)
        _run(para, line, size)


def _run(
    para: object,
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
