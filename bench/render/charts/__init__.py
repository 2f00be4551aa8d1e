"""Slide-ready charts of one analysis: 16:9, large type, a fixed colour per backend, titles
stating the finding.

Each builder takes the analysis object (bench.analysis.model.Analysis) and returns a figure
and its title, or a sentence saying why it was skipped (its data is absent), so a partial run
still reports. A VM under TCG is labelled "emulated (TCG)" wherever it is drawn. Every chart
is drawn once per report (``draw_all``) and checked for text that overlaps other text or
leaves the figure (layout.py); a collision becomes a note in the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench import forked
from bench.analysis.model import Analysis
from bench.render.charts.boot import boot_phases
from bench.render.charts.distributions import memory, ready_time
from bench.render.charts.growth import density
from bench.render.charts.layout import text_collisions
from bench.render.charts.palette import colour, slide_style
from bench.render.charts.save import Built, Chart, save_chart, titled
from bench.render.charts.sizes import size_breakdown
from bench.render.charts.spectral import decomposition_chart, spectrum_chart
from bench.render.charts.tables import compat_matrix, kernel_table

Builder = Callable[[Analysis], Built]

# The charts of the claims, in the order the report and the deck show them: name -> (builder,
# the claim it illustrates).
BUILDERS: dict[str, tuple[Builder, str | None]] = {
    "ready_time": (ready_time, "speed"),
    "size_breakdown": (size_breakdown, "size"),
    "memory": (memory, "density"),
    "density": (density, "density"),
    "boot_phases": (boot_phases, "speed"),
    "kernel_table": (kernel_table, "kernel"),
    "compat_matrix": (compat_matrix, "compat"),
}
# The isolation spectrum's charts: skipped without a note (its section says what is missing).
SECTION_BUILDERS: dict[str, Builder] = {
    "spectrum": spectrum_chart,
    "decomposition": decomposition_chart,
}

__all__ = [
    "BUILDERS",
    "SECTION_BUILDERS",
    "Built",
    "Chart",
    "Drawing",
    "colour",
    "draw_all",
    "save_chart",
    "slide_style",
    "text_collisions",
    "titled",
]


@dataclass
class Drawing:
    """The charts of one analysis, each drawn once (PNG and SVG) into ``out_dir``: the report,
    the deck and the HTML page all show these files."""

    out_dir: Path
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # skipped or crowded claim charts

    def named(self, name: str) -> Chart | None:
        return next((c for c in self.charts if c.name == name), None)

    def for_claim(self, claim: str) -> Iterator[Chart]:
        """The charts that illustrate a claim, in BUILDERS order."""
        return (c for c in self.charts if c.claim == claim)

    @property
    def claim_charts(self) -> list[Chart]:
        return [c for c in self.charts if c.name in BUILDERS]


def draw(builder: Builder, a: Analysis, out_dir: Path, name: str, claim: str | None) -> Chart | str:
    """One chart in the slide style, saved as PNG and SVG; or why it was skipped."""
    with slide_style():
        return save_chart(builder(a), out_dir, name, claim)


Job = tuple[str, Builder, str | None]  # name, builder, claim
# The analysis sections the builders read.
READS: tuple[str, ...] = ("claims", "memory", "memory_bars", "sizes", "phases", "density")
READS += ("kernels", "compat", "spectrum")


def draw_all(a: Analysis, out_dir: Path, prefix: str = "", sections: bool = True) -> Drawing:
    """Draw every chart whose data is present (the claims', then with ``sections`` the
    spectrum's); notes on skipped or crowded claim charts."""
    drawing = Drawing(Path(out_dir))
    jobs: list[Job] = [(name, builder, claim) for name, (builder, claim) in BUILDERS.items()]
    if sections:
        jobs += [(name, builder, None) for name, builder in SECTION_BUILDERS.items()]
    made = _draw_jobs(a, drawing.out_dir, prefix, jobs)
    for (name, _builder, _claim), chart in zip(jobs, made, strict=True):
        if isinstance(chart, str):
            if name in BUILDERS:  # a section's chart: its section says what is missing
                drawing.notes.append(f"chart {name} skipped: {chart}")
        else:
            drawing.charts.append(chart)
            drawing.notes += [f"chart {name}: {c}" for c in chart.crowded]
    return drawing


def _draw_jobs(a: Analysis, out_dir: Path, prefix: str, jobs: list[Job]) -> list[Chart | str]:
    """Each job's chart, in order: in forked processes that share the analysis (computed
    here first, so that no process evaluates anything again) where there are several CPUs."""
    if min(len(jobs), forked.processes()) > 1:
        for section in READS:  # computed once, here: the forked processes inherit them
            getattr(a, section)
    return forked.forked_map(
        lambda job: draw(job[1], a, out_dir, prefix + job[0], job[2]),
        jobs,
    )
