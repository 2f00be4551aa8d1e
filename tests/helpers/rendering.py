"""A deck as LibreOffice Impress shows it, and the checks every deck must pass.

`soffice --headless --convert-to pdf`, then `pdftoppm` (a PNG per page) and `pdftotext -bbox`
(where each word landed). `make test` installs both (scripts/setup-host.sh --tests); without
them the tests skip on a user's machine and fail under CI=true.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
from conftest import engine_missing
from pptx import Presentation
from pptx.enum.shapes import MSO_SHAPE_TYPE

EMU_PER_PT = 12700


def slide_text(slide: object) -> str:
    return "\n".join(s.text_frame.text for s in slide.shapes if s.has_text_frame)


def pictures(slide: object) -> list:
    return [s for s in slide.shapes if s.shape_type == MSO_SHAPE_TYPE.PICTURE]


def assert_shapes_inside(deck: Path) -> None:
    """python-pptx geometry: every shape lies wholly on its slide."""
    prs = Presentation(str(deck))
    for number, slide in enumerate(prs.slides, start=1):
        for shape in slide.shapes:
            assert shape.left >= 0 and shape.top >= 0, (number, shape.name)
            assert shape.left + shape.width <= prs.slide_width, (number, shape.name)
            assert shape.top + shape.height <= prs.slide_height, (number, shape.name)


@dataclass
class Rendered:
    deck: Path
    pages: list[Path]  # one PNG per page
    words: list[list[tuple[float, float, float, float, str]]]  # per page, in points
    page_size: tuple[float, float]  # points


def render(deck: Path, out: Path) -> Rendered:
    """The deck as LibreOffice Impress draws it: PDF, then a PNG and the words of each page."""
    for tool, package in (("soffice", "libreoffice-impress"), ("pdftoppm", "poppler-utils")):
        if shutil.which(tool) is None:
            engine_missing(f"{tool} not found: `make test` installs {package}")
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HOME=str(out))  # a fresh, writable LibreOffice profile
    convert = ["soffice", "--headless", "--convert-to", "pdf", "--outdir", str(out), str(deck)]
    subprocess.run(convert, check=True, timeout=300, env=env, capture_output=True)
    pdf = out / f"{deck.stem}.pdf"
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(out / "page")], check=True)
    pages = sorted(out.glob("page-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    boxes = subprocess.run(
        ["pdftotext", "-bbox", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    size = re.search(r'<page width="([\d.]+)" height="([\d.]+)"', boxes)
    words = [
        [
            (float(a), float(b), float(c), float(d), _unescape(w))
            for a, b, c, d, w in re.findall(
                r'<word xMin="([\d.-]+)" yMin="([\d.-]+)" xMax="([\d.-]+)" yMax="([\d.-]+)">'
                r"([^<]*)</word>",
                page,
            )
        ]
        for page in boxes.split("<page ")[1:]
    ]
    return Rendered(deck, pages, words, (float(size[1]), float(size[2])))


def _unescape(word: str) -> str:
    """pdftotext's HTML escapes, and a typographic apostrophe, undone."""
    return html.unescape(word).replace("’", "'")


def assert_pages_drawn(r: Rendered) -> None:
    """A page per slide, none blank, and every chart drawn (not an empty frame)."""
    slides = list(Presentation(str(r.deck)).slides)
    assert len(r.pages) == len(slides) == len(r.words)
    for number, (page, slide) in enumerate(zip(r.pages, slides, strict=True), start=1):
        pixels = mpimg.imread(page)[..., :3]
        inked = float(np.mean(pixels.min(axis=2) < 0.85))
        assert inked > 0.005, f"page {number} looks blank ({inked:.2%} inked)"
        for picture in pictures(slide):
            scale = pixels.shape[1] / Presentation(str(r.deck)).slide_width
            x0, y0 = int(picture.left * scale), int(picture.top * scale)
            x1, y1 = (
                int((picture.left + picture.width) * scale),
                int((picture.top + picture.height) * scale),
            )
            assert float(np.var(pixels[y0:y1, x0:x1])) > 0.005, f"page {number}: empty chart"


def assert_words_placed(r: Rendered) -> None:
    """Every word of every slide is drawn, on the page and off the charts: text that overflows
    its box lands past the page (where pdftotext drops it) or over the chart."""
    width, height = r.page_size
    for number, (slide, words) in enumerate(
        zip(Presentation(str(r.deck)).slides, r.words, strict=True), start=1
    ):
        expected = Counter(slide_text(slide).split())
        drawn = Counter(w for *_box, w in words)
        assert not expected - drawn, f"page {number}: not drawn: {expected - drawn}"
        for x0, y0, x1, y1, word in words:
            assert x0 >= 0 and y0 >= 0 and x1 <= width + 0.5 and y1 <= height + 0.5, (
                f"page {number}: {word!r} leaves the page"
            )
        for picture in pictures(slide):
            px0, py0 = picture.left / EMU_PER_PT, picture.top / EMU_PER_PT
            px1, py1 = px0 + picture.width / EMU_PER_PT, py0 + picture.height / EMU_PER_PT
            over = [
                w for x0, y0, x1, y1, w in words if x0 < px1 and px0 < x1 and y0 < py1 and py0 < y1
            ]
            assert not over, f"page {number}: text drawn over the chart: {over}"
