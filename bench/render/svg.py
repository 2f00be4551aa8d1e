"""A chart's SVG file, made ready to sit inline in an HTML page: nothing to fetch, text kept as
text (the charts are saved with svg.fonttype "none"), ids unique within the page.

Several charts on one page would otherwise share matplotlib's ids (``figure_1``, ``patch_2``,
clip paths), so every id and every reference to one gets the chart's name as a prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup

from bench.render.charts import Chart

_ROOT = re.compile(r"<svg\b[^>]*>", re.S)
_VIEWBOX = re.compile(r'viewBox="([0-9.\s-]+)"')
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(url\(#|href="#)([^)"]+)')
# matplotlib escapes every text it writes; a script or an event handler in a chart would be a
# bug elsewhere, never a feature: dropped so the page stays script-free whatever happens.
_UNSAFE = re.compile(r"<script\b.*?</script>|<foreignObject\b.*?</foreignObject>", re.S | re.I)
_TAG = re.compile(r"<[^>]*>")  # an attribute is only ever inside a tag (text is escaped)
_HANDLER = re.compile(r"\son\w+\s*=", re.I)


@dataclass(frozen=True)
class InlineChart:
    """One chart for the page: its name, title (the finding) and the SVG's inside."""

    name: str
    title: str
    view_box: str
    body: Markup  # the <svg> element's content, ids prefixed; no script

    @property
    def dom_id(self) -> str:
        return f"chart-{self.name}"


def inline(chart: Chart) -> InlineChart:
    """Read a drawn chart's SVG file and make its content embeddable (see the module doc)."""
    text = Path(chart.svg).read_text(encoding="utf-8")
    root = _ROOT.search(text)
    end = text.rfind("</svg>")
    if root is None or end < root.end():
        raise ValueError(f"{chart.svg}: not an SVG file")
    box = _VIEWBOX.search(root.group(0))
    body = _METADATA.sub("", text[root.end() : end])
    body = _TAG.sub(lambda m: _HANDLER.sub(" data-dropped=", m.group(0)), _UNSAFE.sub("", body))
    prefix = f"{chart.name}-"
    body = _ID.sub(lambda m: f'id="{prefix}{m.group(1)}"', body)
    body = _REF.sub(lambda m: f"{m.group(1)}{prefix}{m.group(2)}", body)
    return InlineChart(chart.name, chart.title, box.group(1) if box else "", Markup(body))
