"""The layout check: every text and legend a chart drew, where it landed, and which ones
overlap or leave the figure. A collision becomes a note in the report, not an unreadable slide.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from matplotlib.backend_bases import RendererBase
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.transforms import Bbox


def text_collisions(fig: Figure) -> list[str]:
    """Texts whose rendered boxes overlap another text or a legend, or reach past the figure.

    Draws the figure and checks every text the renderer actually drew (tick labels outside
    the view are never drawn, so they never count), at the extent it had on that renderer."""
    with drawing_recorded() as drawn:
        fig.canvas.draw()
    return collisions(drawn)


@dataclass(frozen=True)
class Drawn:
    """A text or a legend as drawn: its box as fractions of the figure (0..1 on the page)."""

    artist: Text | Legend
    box: Bbox


@contextmanager
def drawing_recorded() -> Iterator[list[Drawn]]:
    """Record every text and legend drawn inside the block, where it was drawn.

    save_chart writes the PNG inside it, so the layout check costs no extra drawing. Texts
    are caught in Text.draw (not the renderer's draw_text, which does not say which text a
    line of a multi-line label belongs to)."""
    drawn: dict[int, Drawn] = {}
    draw_text, draw_legend = Text.draw, Legend.draw

    def where(artist: Text | Legend, renderer: RendererBase) -> Drawn:
        box = artist.get_window_extent(renderer)
        width, height = renderer.get_canvas_width_height()
        fraction = Bbox.from_extents(
            box.x0 / width, box.y0 / height, box.x1 / width, box.y1 / height
        )
        return Drawn(artist, fraction)

    def recording_text(self: Text, renderer: RendererBase) -> None:
        draw_text(self, renderer)
        if self.get_visible() and self.get_text().strip():
            drawn[id(self)] = where(self, renderer)

    def recording_legend(self: Legend, renderer: RendererBase) -> None:
        draw_legend(self, renderer)
        if self.get_visible():
            drawn[id(self)] = where(self, renderer)

    # A deliberate, scoped patch of two methods (undone below): the types cannot say so.
    Text.draw, Legend.draw = recording_text, recording_legend  # type: ignore[method-assign, assignment]
    result: list[Drawn] = []
    try:
        yield result
    finally:
        Text.draw, Legend.draw = draw_text, draw_legend  # type: ignore[method-assign]
        result.extend(drawn.values())


def collisions(drawn: list[Drawn]) -> list[str]:
    """What text_collisions reports, from what drawing_recorded saw."""
    texts = [d for d in drawn if isinstance(d.artist, Text)]
    tolerance = 0.0005  # of the figure: half a pixel at 1000 px
    page = Bbox.from_extents(-tolerance, -tolerance, 1 + tolerance, 1 + tolerance)
    problems = [
        f"{_quote(d.artist)} leaves the figure"
        for d in texts
        if not (page.x0 <= d.box.x0 and d.box.x1 <= page.x1)
        or not (page.y0 <= d.box.y0 and d.box.y1 <= page.y1)
    ]
    for i, a in enumerate(texts):
        for b in texts[i + 1 :]:
            if _overlap(a.box, b.box):
                problems.append(f"{_quote(a.artist)} overlaps {_quote(b.artist)}")
    for legend in (d for d in drawn if isinstance(d.artist, Legend)):
        assert isinstance(legend.artist, Legend)
        own = {id(t) for t in [*legend.artist.get_texts(), legend.artist.get_title()]}
        for d in texts:
            if id(d.artist) not in own and _overlap(legend.box, d.box):
                problems.append(f"{_quote(d.artist)} is under a legend")
    return problems


def _overlap(a: Bbox, b: Bbox) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _quote(t: Text | Legend) -> str:
    text = t.get_title().get_text() if isinstance(t, Legend) else t.get_text()
    return repr(textwrap.shorten(text.replace("\n", " "), 40, placeholder="…"))
