"""Slide-ready charts: 16:9, large type, a fixed colour per backend, titles stating the finding.

Each chart builder takes the dataset and the claims and returns a figure and its title, or
a sentence saying why it was skipped (its data is absent), so a partial run still reports.
A VM under TCG is labelled "emulated (TCG)" wherever it is drawn. Every chart is checked for
text that overlaps other text or leaves the figure (``text_collisions``); a collision becomes a
note in the report instead of an unreadable slide.
"""

from __future__ import annotations

import math
import textwrap
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import Bbox

from bench.analysis.claims import (
    FOOTPRINT,
    density_metric,
    memory_comparisons,
    not_linux,
    vm_init_where_it_differs,
)
from bench.analysis.dataset import Dataset, detail_words, prefer_warm
from bench.analysis.stats import fit_slope
from bench.units import ACCEL_SUFFIX, engine_label, human

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
BACKEND_COLOURS = {
    "docker": "#0072B2",
    "podman": "#56B4E9",
    "qemu": "#E69F00",
    "vagrant": "#009E73",
}
EXTRA_COLOURS = ["#CC79A7", "#D55E00", "#000000", "#F0E442"]
COMPONENT_STYLE = {  # size breakdown segments: colour + hatch, apart from backend colours
    "rootfs": ("#BFE1F5", ""),  # a tint of podman's sky blue: its bar's edge stays visible
    "kernel": ("#D55E00", "//"),
    "initramfs": ("#F0E442", ".."),
    "disk": ("#CC79A7", "xx"),
    "firmware vars": ("#009E73", "++"),
    "layers / other": ("#999999", "\\\\"),
}
PHASE_STYLE = {  # boot phase segments; the bar's edge carries the backend colour
    "firmware": ("#222222", "xx"),
    "bootloader": ("#777777", "\\\\"),
    "before the guest's clock starts": ("#555555", "//"),
    "kernel + init (guest uptime)": ("#BBBBBB", ""),
    "vagrant up returns after READY": ("#FFFFFF", ".."),
}
OUTCOME_COLOURS = {  # compat matrix and kernel table cells (light, so black text reads)
    "native": "#B8E3D3",
    "emulated": "#F7DBA7",
    "refused": "#F2C1A6",
    "failed": "#DDDDDD",
    "not measured": "#FFFFFF",
}
KIND_ORDER = {"container": 0, "system-container": 1, "microvm": 2, "vm": 3}
OWN_KERNEL = ("microvm", "vm")  # kinds that boot a kernel of their own
STYLE = {
    "figure.figsize": (13.333, 7.5),
    "font.size": 18,
    "axes.titlesize": 22,
    "axes.labelsize": 20,
    "xtick.labelsize": 17,
    "ytick.labelsize": 17,
    "legend.fontsize": 16,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "svg.fonttype": "none",  # keep text as text: searchable, editable on slides
}
DPI = 200
MIB = 1024**2
MAX_LEGEND_SERIES = 8  # more density lines than this: one legend entry per backend
TITLE_WIDTH = 70  # characters per suptitle line


@dataclass(frozen=True)
class Chart:
    """One chart written as PNG and SVG; claim is the claim it illustrates, if any."""

    name: str
    title: str
    claim: str | None
    png: Path
    svg: Path
    crowded: tuple[str, ...] = ()  # texts that collide (see text_collisions)


Built = tuple[Figure, str] | str  # a figure and its title, or why it was skipped


def colour(backend: str) -> str:
    """The backend's fixed colour (unknown backends: stable by name)."""
    if backend in BACKEND_COLOURS:
        return BACKEND_COLOURS[backend]
    return EXTRA_COLOURS[zlib.crc32(backend.encode()) % len(EXTRA_COLOURS)]


def host_linestyle(index: int) -> str | tuple[int, tuple[int, int]]:
    """Solid for the first host, then a distinct dash pattern per host: never runs out."""
    if index == 0:
        return "-"
    return (0, (2 + index % 7, 1 + index // 7))


def slide_style() -> AbstractContextManager:
    """The rc settings every chart is drawn and saved with."""
    return plt.rc_context(STYLE)


def make_charts(
    ds: Dataset, claims: pd.DataFrame, out_dir: Path, prefix: str = ""
) -> tuple[list[Chart], list[str]]:
    """Draw every chart whose data is present; return them and notes on skipped or crowded ones."""
    made, notes = [], []
    for name, (builder, claim) in BUILDERS.items():
        with slide_style():
            chart = save_chart(builder(ds, claims), out_dir, prefix + name, claim)
        if isinstance(chart, str):
            notes.append(f"chart {name} skipped: {chart}")
        else:
            made.append(chart)
            notes += [f"chart {name}: {c}" for c in chart.crowded]
    return made, notes


def titled(built: Built) -> Built:
    """Put the title on a built figure as its suptitle (once); pass a skip reason on."""
    if isinstance(built, str):
        return built
    fig, title = built
    if fig.get_suptitle() == "":
        fig.suptitle("\n".join(textwrap.wrap(title, TITLE_WIDTH)), fontweight="bold")
    return fig, title


def save_chart(built: Built, out_dir: Path, name: str, claim: str | None) -> Chart | str:
    """Title a built figure and write it as PNG (200 dpi) and SVG; pass a skip reason on."""
    built = titled(built)
    if isinstance(built, str):
        return built
    fig, title = built
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    with drawing_recorded() as drawn:  # the layout check costs no extra drawing
        # zlib level 3, not 6: 40 ms less per chart for a PNG ~15% larger.
        fig.savefig(png, dpi=DPI, pil_kwargs={"compress_level": 3})
    fig.set_layout_engine("none")  # the PNG's layout holds for the SVG: not computed twice
    crowded = tuple(collisions(drawn))
    fig.savefig(svg)
    plt.close(fig)
    return Chart(name, title, claim, png, svg, crowded)


# --- the layout check ------------------------------------------------------------------------


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

    def where(artist: Text | Legend, renderer: object) -> Drawn:
        box = artist.get_window_extent(renderer)
        width, height = renderer.get_canvas_width_height()
        fraction = Bbox.from_extents(
            box.x0 / width, box.y0 / height, box.x1 / width, box.y1 / height
        )
        return Drawn(artist, fraction)

    def recording_text(self: Text, renderer: object) -> None:
        draw_text(self, renderer)
        if self.get_visible() and self.get_text().strip():
            drawn[id(self)] = where(self, renderer)

    def recording_legend(self: Legend, renderer: object) -> None:
        draw_legend(self, renderer)
        if self.get_visible():
            drawn[id(self)] = where(self, renderer)

    Text.draw, Legend.draw = recording_text, recording_legend
    result: list[Drawn] = []
    try:
        yield result
    finally:
        Text.draw, Legend.draw = draw_text, draw_legend
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
        own = {id(t) for t in [*legend.artist.get_texts(), legend.artist.get_title()]}
        for d in texts:
            if id(d.artist) not in own and _overlap(legend.box, d.box):
                problems.append(f"{_quote(d.artist)} is under a legend")
    return problems


def _overlap(a: Bbox, b: Bbox) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _quote(t: Text) -> str:
    return repr(textwrap.shorten(t.get_text().replace("\n", " "), 40, placeholder="…"))


# --- titles ---------------------------------------------------------------------------------


def _times(values: pd.Series) -> str:
    lo, hi = float(values.min()), float(values.max())

    def one(x: float) -> str:
        return f"{x:.0f}" if x >= 10 else f"{x:.1f}"

    return f"{one(lo)}x" if one(lo) == one(hi) else f"{one(lo)}–{one(hi)}x"


def claim_title(claims: pd.DataFrame, claim: str, supported: str, refuted: str, other: str) -> str:
    """A title stating what the claim's rows found: {r} is the ratio (range) in the text."""
    rows = claims[(claims.claim == claim) & np.isfinite(claims.ratio)]  # claims._table: float
    rows = rows[rows.ratio > 0]
    if rows.empty:
        return other
    verdicts = set(rows.verdict)
    if verdicts == {"supported"}:
        title = supported.format(r=_times(rows.ratio))
    elif verdicts == {"refuted"}:
        title = refuted.format(r=_times(1 / rows.ratio))
    else:
        k = int((rows.verdict == "supported").sum())
        title = f"{other}: claim supported in {k} of {len(rows)} comparisons"
    return title + _init_note(rows) + _tcg_note(rows)


def _tcg_note(rows: pd.DataFrame) -> str:
    tcg = rows.caveat.str.contains("TCG")
    if len(rows) and tcg.all():
        return ", VM under TCG emulation"
    if tcg.any():
        return ", some VMs under TCG emulation"
    return ""


def _init_note(rows: pd.DataFrame) -> str:
    """A ratio that holds an init system on one side only (claims._init_caveat) says so."""
    differs = vm_init_where_it_differs(rows.caveat).dropna()
    if differs.empty:
        return ""
    inits = "/".join(sorted(set(differs)))
    return f", {len(differs)} of {len(rows)} with {inits} as PID 1 in the VM only"


def fact_title(claims: pd.DataFrame, claim: str, supported: str, other: str) -> str:
    """A fact claim's title: the finding when every comparison supports it."""
    rows = claims[claims.claim == claim]
    return supported if len(rows) and set(rows.verdict) == {"supported"} else other


# --- helpers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """One box of a distribution chart: a host's guest on one engine."""

    label: str
    backend: str
    main: np.ndarray  # warm values (cold when there are no warm ones)
    cold: np.ndarray  # cold values drawn beside warm ones


def _label(row: pd.Series, multi_host: bool, with_guest: bool = True) -> str:
    """'busybox · qemu' with the accelerator on a second line: 'emulated (TCG)'."""
    parts = [row.host_id] if multi_host else []
    if with_guest:
        parts.append(row.guest)
    parts.append(_engine(row.backend, row.get("boot", "")))
    return engine_label(" · ".join(parts), row.accel, sep="\n")


def _measured(ds: Dataset) -> pd.DataFrame:
    """``ds.measured`` with a direct kernel boot and no boot word in one group: both are
    labelled the same (``qemu``), and rows from before boot modes were recorded booted so.
    Without another system's rows (memtest86+): the compat matrix shows those, the charts of
    the ratio claims never set them beside a Linux guest."""
    m = ds.measured
    m = m[~not_linux(m)]
    return m.assign(boot=m.boot.replace("kernel", ""))


def _engine(backend: str, boot: str) -> str:
    """``qemu`` for a direct kernel boot (or no boot word), ``qemu bios`` for a disk boot."""
    return backend if boot in ("", "kernel") else f"{backend} {boot}"


def _order(df: pd.DataFrame, by_guest: bool = True) -> pd.DataFrame:
    """Hosts, then guests, containers before VMs: the same order in every chart (a table
    that lists an engine's guests in one row: hosts, then kinds)."""
    key = df.kind.map(KIND_ORDER).fillna(len(KIND_ORDER))
    by = ["host_id", *(["guest"] if by_guest else []), "_k", "backend", "accel"]
    return df.assign(_k=key).sort_values(by)


def _log_if_wide(axis: matplotlib.axis.Axis, values: np.ndarray, span: float = 20.0) -> None:
    v = values[values > 0]
    if len(v) and v.max() / v.min() > span:
        plain_log_axis(axis)


def plain_log_axis(axis: matplotlib.axis.Axis, decades_only: bool = False) -> None:
    """A log axis labelled with plain numbers at 1, 2, 5 x 10^k ("0.2", "5", not "2 x 10^-1"
    on a slide), or at 1 x 10^k only where a narrow axis spans many decades."""
    axis._set_axes_scale("log")
    subs = (1.0,) if decades_only else (1.0, 2.0, 5.0)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda y, _pos: f"{y:g}"))
    axis.set_minor_formatter(NullFormatter())


ROWS_PT = 400.0  # height the group rows of a 7.5 in chart get, title and x axis taken off
TICK_PT = 17.0  # STYLE's tick label size
MIN_TICK_PT = 8.0
READABLE_TICK_PT = 11.0  # below this, a label takes another line rather than smaller type


def _group_rows(ax: plt.Axes, labels: list[str], rows_pt: float = ROWS_PT) -> None:
    """Groups top to bottom on the y axis, in the given order. Many groups (several hosts)
    get one-line labels, then smaller type, so neighbours never overlap; past MIN_TICK_PT
    the layout check in the report says so. ``rows_pt``: less where a legend takes more."""
    per_row = rows_pt / max(len(labels), 1)
    lines = max(label.count("\n") + 1 for label in labels)
    if lines * TICK_PT * 1.25 > per_row:
        labels, lines = [label.replace("\n", ", ") for label in labels], 1
    ax.set_yticks(range(len(labels)), labels)
    ax.tick_params(axis="y", labelsize=max(MIN_TICK_PT, min(TICK_PT, per_row / 1.25 / lines)))
    ax.set_ylim(len(labels) - 0.4, -0.6)
    ax.grid(False, axis="y")


def _group_columns(ax: plt.Axes, labels: list[str], width_pt: float) -> float:
    """Groups left to right on the x axis, in type small enough that labels stay apart."""
    size = _column_type(labels, width_pt, TICK_PT)
    ax.set_xticks(range(len(labels)), labels)
    ax.tick_params(axis="x", labelsize=size)
    return size


def _column_type(texts: list[str], width_pt: float, largest: float) -> float:
    """The type size at which the widest of these texts fits its column (a character is
    ~0.6 em wide), between MIN_TICK_PT and largest."""
    widest = max(len(line) for text in texts for line in text.split("\n"))
    per_column = width_pt / max(len(texts), 1)
    return max(MIN_TICK_PT, min(largest, per_column / (0.65 * widest)))


def _points_over_box(ax: plt.Axes, groups: list[Group]) -> None:
    """Box of the main sample, every value as a point; cold points hollow. Groups are rows."""
    rng = np.random.default_rng(0)
    for i, g in enumerate(groups):
        c = colour(g.backend)
        if len(g.main):
            box = ax.boxplot(
                g.main,
                positions=[i],
                widths=0.5,
                showfliers=False,
                patch_artist=True,
                orientation="horizontal",
            )
            for patch in box["boxes"]:
                patch.set(facecolor=c, alpha=0.25, edgecolor=c)
            for part in ("medians", "whiskers", "caps"):
                for line in box[part]:
                    line.set(color=c, linewidth=2)
            ax.scatter(g.main, i + rng.uniform(-0.15, 0.15, len(g.main)), color=c, s=50, zorder=3)
        if len(g.cold):
            ax.scatter(
                g.cold,
                i + rng.uniform(-0.15, 0.15, len(g.cold)),
                facecolors="none",
                edgecolors=c,
                marker="D",
                s=70,
                linewidths=2,
                zorder=3,
            )
    _group_rows(ax, [g.label for g in groups])


def _distribution_groups(data: pd.DataFrame, multi_host: bool) -> list[Group]:
    groups = []
    keys = ["host_id", "guest", "backend", "accel", "boot"]
    for _, first in _order(data.drop_duplicates(keys)).iterrows():
        g = data[(data[keys] == first[keys]).all(axis=1)]
        warm = g[g.phase == "warm"].value.to_numpy(dtype=float)
        cold = g[g.phase == "cold"].value.to_numpy(dtype=float)
        main, extra = (warm, cold) if len(warm) else (cold, np.array([]))
        groups.append(Group(_label(first, multi_host), first.backend, main, extra))
    return groups


def _legend_cold(ax: plt.Axes, groups: list[Group]) -> None:
    if any(len(g.cold) for g in groups):
        ax.scatter(
            [],
            [],
            facecolors="none",
            edgecolors="black",
            marker="D",
            s=70,
            label="cold start (first run after build)",
        )
        ax.legend(loc="lower right")


def _legend_below(fig: Figure, handles: list) -> int:
    """A legend under the plots in one row, or in as many rows as it needs to stay on the
    page (a boot-phase legend with Vagrant's wait and a disk boot's firmware has five).
    Returns its number of rows."""
    renderer = fig.canvas.get_renderer()
    for ncols in range(len(handles), 0, -1):
        legend = fig.legend(handles=handles, loc="outside lower center", ncols=ncols)
        if ncols == 1 or legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width:
            break
        legend.remove()
    return math.ceil(len(handles) / ncols)


LEGEND_ROW_PT = 28.0  # one more row of a legend at STYLE's legend.fontsize


def _multi_host(ds: Dataset) -> bool:
    return ds.rows.host_id.nunique() > 1


# --- the charts -----------------------------------------------------------------------------


def ready_time(ds: Dataset, claims: pd.DataFrame) -> Built:
    m = _measured(ds)
    data = m[(m.metric == "ready_s") & (m.instances == 1)]
    if data.empty:
        return "no ready_s rows"
    groups = _distribution_groups(data, _multi_host(ds))
    fig, ax = plt.subplots(layout="constrained")
    _points_over_box(ax, groups)
    _log_if_wide(ax.xaxis, data.value.to_numpy(dtype=float))
    ax.set_xlabel("Launch to READY (s), host monotonic clock")
    _legend_cold(ax, groups)
    title = claim_title(
        claims,
        "speed",
        "Containers reach ready {r} faster than VMs",
        "VMs reached ready {r} faster than containers here",
        "Time from launch to ready",
    )
    return fig, title


def memory(ds: Dataset, claims: pd.DataFrame) -> Built:
    """One idle instance: its own processes' PSS, and a container's shim stacked on it."""
    m = _measured(ds)
    one = m[(m.instances == 1) & m.phase.isin(["cold", "warm"])]
    totals = one[one.metric == FOOTPRINT]
    if totals.empty:
        return "no pss_bytes rows at one instance"
    keys = ["host_id", "guest", "backend", "accel", "boot"]
    fig, ax = plt.subplots(layout="constrained")
    labels, rng, right, shims = [], np.random.default_rng(0), 0.0, set()
    for i, (_, first) in enumerate(_order(totals.drop_duplicates(keys)).iterrows()):
        g = one[(one[keys] == first[keys]).all(axis=1)]
        g, _phase = prefer_warm(g)
        total = g[g.metric == FOOTPRINT].value.to_numpy(dtype=float)
        own = min(float(np.median(g[g.metric == "pss_bytes"].value)), float(np.median(total)))
        shim = float(np.median(total)) - own
        c = colour(first.backend)
        ax.barh(i, own / MIB, color=c, alpha=0.8, height=0.6)
        ax.barh(i, shim / MIB, left=own / MIB, color="white", edgecolor=c, hatch="//", height=0.6)
        ax.scatter(total / MIB, i + rng.uniform(-0.12, 0.12, len(total)), color="black", s=25)
        text = human(own + shim, "B")
        if shim > 0:
            name = shim_name(g[g.metric == "shim_pss_bytes"])
            shims.add(name)
            text += f" = {human(own, 'B')} + {human(shim, 'B')} {name or 'shim'}"
        ax.annotate(text, (max(total.max(), own + shim) / MIB, i), xytext=(8, 0), **_END_LABEL)
        right = max(right, float(total.max()))
        labels.append(_label(first, _multi_host(ds)))
    ax.set_xlim(0, right / MIB * 1.45)
    ax.set_xlabel("Memory of one idle instance, PSS (MiB)")
    handles = [
        Patch(facecolor="#777777", label="the instance's own processes"),
        Patch(facecolor="white", edgecolor="#777777", hatch="//", label=_shim_legend(shims)),
        Line2D([], [], color="black", marker="o", linestyle="", label="one trial (sum)"),
    ]
    legend_rows = _legend_below(fig, handles)
    _group_rows(ax, labels, ROWS_PT - LEGEND_ROW_PT * (legend_rows - 1))
    title = claim_title(
        memory_comparisons(ds),
        "memory",
        "One VM uses {r} the memory of one container with its shim (PSS)",
        "One container with its shim used {r} the memory of one VM here (PSS)",
        "Memory of one idle instance (PSS, a container's shim included)",
    )
    return fig, title


def shim_name(rows: pd.DataFrame) -> str:
    """The shim's process name the engine wrote on its shim_pss_bytes rows (``shim=conmon``),
    or '' for rows that do not say (a CSV from before engines named it)."""
    names = {detail_words(d).get("shim", "") for d in rows.detail} - {""}
    return ", ".join(sorted(names))


def _shim_legend(names: set[str]) -> str:
    """'its shim (conmon, containerd-shim)': each process named as the rows name it."""
    named = sorted(names - {""})
    return "its shim" + (f" ({', '.join(named)})" if named else "")


_END_LABEL = {"textcoords": "offset points", "va": "center", "ha": "left", "fontsize": 16}


def size_breakdown(ds: Dataset, claims: pd.DataFrame) -> Built:
    m = _measured(ds)
    parts = ["image_bytes", "rootfs_bytes", "kernel_bytes", "initramfs_bytes", "disk_bytes"]
    parts.append("firmware_vars_bytes")
    data = m[(m.phase == "build") & m.metric.isin([*parts, "image_compressed_bytes"])]
    if data[data.metric.isin(parts)].empty:
        return "no size rows (image_bytes, kernel_bytes, ...)"
    keys = ["host_id", "guest", "backend", "kind", "accel", "boot", "metric"]
    med = data.groupby(keys).value.median()
    columns = [*parts, "image_compressed_bytes"]
    table = med.unstack("metric").reindex(columns=columns).fillna(0.0).reset_index()
    fig = plt.figure(layout="constrained")
    for ax, guest, width_pt in _panels_by_bars(fig, table.guest.value_counts()):
        _size_bars(ax, _order(table[table.guest == guest]), _multi_host(ds), width_pt)
        ax.set_title(guest, fontsize=20)
    fig.supylabel("Bytes to boot the guest (MiB)")
    used = {name for _, r in table.iterrows() for name in _segments(r)}
    handles = [
        Patch(facecolor=fc, hatch=h, edgecolor="black", label=name)
        for name, (fc, h) in COMPONENT_STYLE.items()
        if name in used
    ]
    _legend_below(fig, handles)
    title = claim_title(
        claims,
        "size",
        "Container images are {r} smaller than what a VM needs to boot",
        "Container images were {r} larger than the VM's boot files here",
        "What each backend needs on disk to boot the guest",
    )
    return fig, title


def _panels_by_bars(
    fig: Figure, bars: pd.Series, per_row: int = 2
) -> Iterator[tuple[plt.Axes, str, float]]:
    """A panel per guest (``bars``: guest -> bar count), two to a row, each as wide as its
    share of the row's bars (at least MIN_BARS' worth): every bar of the chart gets about
    the same width, so a guest measured on many engines has room for their labels."""
    guests = sorted(bars.index)
    rows = [guests[i : i + per_row] for i in range(0, len(guests), per_row)]
    row_pt = 0.85 * STYLE["figure.figsize"][0] * 72
    for subfig, row in zip(fig.subfigures(len(rows), 1, squeeze=False)[:, 0], rows, strict=True):
        weights = [max(float(bars[g]), MIN_BARS) for g in row]
        axes = subfig.subplots(1, len(row), width_ratios=weights, squeeze=False)[0]
        for ax, guest, weight in zip(axes, row, weights, strict=True):
            yield ax, guest, row_pt * weight / sum(weights)


MIN_BARS = 2.5  # a panel of one or two bars still has room for a guest's name as its title


def _size_bars(ax: plt.Axes, sub: pd.DataFrame, multi_host: bool, width_pt: float) -> None:
    """One stacked bar per engine, its total (and gzip size) written above it."""
    totals, notes = [], []
    for i, (_, r) in enumerate(sub.iterrows()):
        bottom = 0.0
        for name, size in _segments(r).items():
            fc, hatch = COMPONENT_STYLE[name]
            ax.bar(i, size / MIB, bottom=bottom, color=fc, hatch=hatch, width=0.6)
            bottom += size / MIB
        ax.bar(i, bottom, width=0.6, fill=False, edgecolor=colour(r.backend), linewidth=2.5)
        note = human(bottom * MIB, "B")
        if r.image_compressed_bytes > 0:
            note += f"\n{human(r.image_compressed_bytes, 'B')} gzip"
        totals.append(bottom)
        notes.append(note)
    labels = [
        (f"{r.host_id}\n" if multi_host else "")
        + engine_label(_engine(r.backend, r.boot), r.accel, "\n")
        for _, r in sub.iterrows()
    ]
    if _column_type(labels, width_pt, TICK_PT) < READABLE_TICK_PT:  # narrow: a third line
        labels = [label.replace("emulated (TCG)", "emulated\n(TCG)") for label in labels]
    if _column_type(labels, width_pt, TICK_PT) <= MIN_TICK_PT:  # narrower: the title says TCG
        labels = [label.replace("emulated\n(TCG)", "emulated") for label in labels]
    size = _group_columns(ax, labels, width_pt)
    note_size = _column_type(notes, width_pt, 16.0)
    if note_size < 11:  # many bars: the total alone (the gzip size is in report.md)
        notes = [note.split("\n")[0] for note in notes]
        note_size = _column_type(notes, width_pt, 16.0)
    for i, (total, note) in enumerate(zip(totals, notes, strict=True)):
        ax.annotate(
            note,
            (i, total),
            ha="center",
            va="bottom",
            xytext=(0, 4),
            textcoords="offset points",
            fontsize=note_size,
        )
    ax.set_xlim(-0.6, len(sub) - 0.4)
    ax.set_ylim(0, max(totals) * (1.25 + 0.2 * min(size, note_size) / TICK_PT))
    ax.grid(False, axis="x")


ROOTFS_SLACK = 1.05


def _segments(r: pd.Series) -> dict[str, float]:
    """Stack kernel, initramfs and disk; the rootfs only where it is not inside them. A boot
    disk has kernel and initramfs inside (no rows of their own), a UEFI VM its variable store."""
    boot = {"kernel": r.kernel_bytes, "initramfs": r.initramfs_bytes, "disk": r.disk_bytes}
    boot["firmware vars"] = r.firmware_vars_bytes
    total = r.image_bytes or sum(boot.values()) + r.rootfs_bytes
    rest = total - sum(boot.values())
    segs = {}
    # An image a few per cent below the tree's apparent bytes still holds the tree: Docker's
    # and podman's imports of the same files measure 1-3% apart (hard links, block rounding).
    if 0 < r.rootfs_bytes <= rest * ROOTFS_SLACK:
        segs["rootfs"] = min(r.rootfs_bytes, rest)
        rest -= segs["rootfs"]
    segs |= {k: v for k, v in boot.items() if v > 0}
    if rest > 0.01 * total:
        segs["layers / other"] = rest
    return segs


def density(ds: Dataset, claims: pd.DataFrame) -> Built:
    """Memory of N instances running together against N, on linear axes: every trial as a
    point, and the least-squares line whose slope the verdict compares."""
    m = ds.measured
    metric = density_metric(ds)
    data = m[(m.metric == metric) & m.phase.isin(["cold", "warm"])]
    # Only guests measured at several sizes: a single N has no slope to draw.
    guests = sorted(g for g, rows in data.groupby("guest") if rows.instances.nunique() >= 2)
    if not guests:
        return f"no {metric} rows at two or more instance counts"
    data = data[data.guest.isin(guests)]
    hosts = sorted(data.host_id.unique())
    fig, axes = plt.subplots(1, len(guests), layout="constrained", squeeze=False)
    for ax, guest in zip(axes[0], guests, strict=True):
        series = _density_series(data[data.guest == guest], hosts)
        for s in series:
            ax.scatter(s.x, s.y / MIB, color=s.colour, marker=s.marker, s=60, zorder=3)
            if s.fit is not None:
                xs = np.array([s.x.min(), s.x.max()])
                ax.plot(xs, (s.fit.intercept + s.fit.slope * xs) / MIB, **s.line)
        _density_legend(ax, series, len(hosts))
        ax.set_xlabel("Instances running at once")
        ax.set_xticks(sorted({n for s in series for n in s.x}))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        if len(guests) > 1:
            ax.set_title(guest)
    axes[0][0].set_ylabel(
        "PSS of the instances + shims (MiB)"
        if metric == FOOTPRINT
        else "Host memory used, MemAvailable (MiB)"
    )
    what = "memory (PSS, shims included)" if metric == FOOTPRINT else "host memory (MemAvailable)"
    title = claim_title(
        claims,
        "density",
        "Each extra VM costs {r} the " + what + " of an extra container",
        "An extra container cost {r} the " + what + " of an extra VM here",
        "Memory of N instances running at once",
    )
    return fig, title


@dataclass(frozen=True)
class Series:
    """One host's engine in the density chart: its points and its fitted line."""

    name: str
    backend: str
    x: np.ndarray
    y: np.ndarray
    fit: object  # SlopeFit | None
    colour: str
    marker: str
    line: dict


HOST_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _density_series(sub: pd.DataFrame, hosts: list[str]) -> list[Series]:
    out = []
    multi = len(hosts) > 1
    for _, first in _order(sub.drop_duplicates(["host_id", "backend", "accel"])).iterrows():
        g = sub[(sub.host_id == first.host_id) & (sub.backend == first.backend)]
        g, _phase = prefer_warm(g)
        k = hosts.index(first.host_id)
        name = engine_label(
            f"{first.host_id} {first.backend}" if multi else first.backend, first.accel
        )
        line = {"color": colour(first.backend), "linestyle": host_linestyle(k), "linewidth": 3}
        x, y = g.instances.to_numpy(dtype=float), g.value.to_numpy(dtype=float)
        out.append(
            Series(
                name,
                first.backend,
                x,
                y,
                fit_slope(x, y),
                line["color"],
                HOST_MARKERS[k % len(HOST_MARKERS)],
                line,
            )
        )
    return out


def _density_legend(ax: plt.Axes, series: list[Series], n_hosts: int) -> None:
    """A line per series, or per backend (slope range over hosts) when there are many."""
    if len(series) <= MAX_LEGEND_SERIES:
        handles = [
            Line2D([], [], marker=s.marker, **s.line, label=_slope_label(s.name, [s]))
            for s in series
        ]
    else:
        handles = []
        for backend in dict.fromkeys(s.backend for s in series):
            mine = [s for s in series if s.backend == backend]
            label = _slope_label(f"{backend} ({len(mine)} hosts)", mine)
            handles.append(Line2D([], [], color=colour(backend), linewidth=3, label=label))
    ax.legend(handles=handles, loc="best")  # where it hides the fewest points


def _slope_label(name: str, series: list[Series]) -> str:
    slopes = [s.fit.slope for s in series if s.fit is not None]
    if not slopes:
        return f"{name}: one instance count only"
    lo, hi = human(min(slopes), "B"), human(max(slopes), "B")
    return f"{name}: +{lo} per instance" if lo == hi else f"{name}: +{lo} to {hi} per instance"


def _median_share(bars: list[tuple[str, float]]) -> float:
    return float(np.median([share for _guest, share in bars]))


def _phases_title(engine: str, bars: list[tuple[str, float]]) -> str:
    """The share of one engine's bars before the guest kernel, saying which guests (or how many
    bars, when hosts repeat a guest) it is the median of."""
    share = f"{_median_share(bars):.0%}"
    if len(bars) == 1:
        return f"{engine}: {share} of {bars[0][0]}'s time to ready passes before its kernel runs"
    guests = [guest for guest, _share in bars]
    over = f"{len(bars)} bars" if len(set(guests)) < len(guests) else " and ".join(guests)
    return f"{engine}: {share} of the time to ready passes before the guest kernel runs (median of {over})"


def boot_phases(ds: Dataset, claims: pd.DataFrame) -> Built:
    """Where a VM's time to ready goes, one bar per boot mode: firmware and bootloader (a disk
    boot, host clock), what passes before the guest's clock starts (the hypervisor's start
    and the kernel's decompression), the guest's kernel and init (its uptime at READY), and
    for Vagrant the wait until `vagrant up` returns."""
    m = _measured(ds)
    data = m[m.kind.isin(OWN_KERNEL) & (m.instances == 1) & m.phase.isin(["cold", "warm"])]
    keys = ["host_id", "backend", "boot", "accel", "guest", "phase", "metric"]
    med = data.groupby(keys).value.median().unstack("metric")
    if "ready_s" not in med or not (data.metric == "guest_uptime_s").any():
        return "no VM rows with both ready_s and guest_uptime_s"
    med = med.dropna(subset=["ready_s", "guest_uptime_s"])
    # Per guest, each engine's boot modes from the shortest path: kernel, bios, uefi.
    rank = {"": 0, "kernel": 0, "disk": 1, "bios": 1, "uefi": 2}
    med = med.loc[sorted(med.index, key=lambda k: (k[0], k[4], k[1], rank.get(k[2], 3), k[3:]))]
    fig, ax = plt.subplots(layout="constrained")
    labels, shares, accels, used = [], {}, set(), set()
    multi = _multi_host(ds)
    for i, ((host, backend, boot, accel, guest, phase), r) in enumerate(med.iterrows()):
        ready, uptime = r.ready_s, min(r.guest_uptime_s, r.ready_s)
        up = r.get("up_returned_s", math.nan)
        firmware, bootloader = r.get("firmware_s", math.nan), r.get("bootloader_s", math.nan)
        segs = {}
        if not (math.isnan(firmware) or math.isnan(bootloader)):
            segs = {"firmware": firmware, "bootloader": bootloader}
        after = ready - sum(segs.values())  # host clock; the guest's clock may run a bit off
        segs["before the guest's clock starts"] = after - min(uptime, after)
        segs["kernel + init (guest uptime)"] = min(uptime, after)
        engine = _engine(backend, boot)
        shares.setdefault(engine, []).append((guest, (ready - uptime) / ready))
        accels.add(accel)
        if not math.isnan(up) and up > ready:
            segs["vagrant up returns after READY"] = up - ready
        left = 0.0
        used |= set(segs)
        for name, secs in segs.items():
            fc, hatch = PHASE_STYLE[name]
            ax.barh(
                i,
                secs,
                left=left,
                color=fc,
                hatch=hatch,
                height=0.6,
                edgecolor=colour(backend),
                linewidth=2.5,
            )
            left += secs
        ax.annotate(human(left, "s"), (left, i), xytext=(6, 0), **_END_LABEL)
        who = f"{host} · " * multi + f"{guest} · {engine}"
        labels.append(engine_label(f"{who}\n{phase}", accel))
    ax.set_xlim(0, ax.get_xlim()[1] * 1.12)
    ax.set_xlabel("Seconds from launch")
    handles = [
        Patch(facecolor=fc, hatch=hatch, edgecolor="black", label=name)
        for name, (fc, hatch) in PHASE_STYLE.items()
        if name in used
    ]
    legend_rows = _legend_below(fig, handles)
    _group_rows(ax, labels, ROWS_PT - LEGEND_ROW_PT * (legend_rows - 1))
    # The title speaks for the engine that spends the largest share before the guest kernel.
    engine = max(shares, key=lambda e: _median_share(shares[e]))
    title = _phases_title(engine, shares[engine])
    if accels == {"tcg"}:
        title += ", VMs under TCG emulation"
    elif "tcg" in accels:
        title += ", some VMs under TCG emulation"
    return fig, title


# --- facts as tables ------------------------------------------------------------------------


def kernel_table(ds: Dataset, claims: pd.DataFrame) -> Built:
    """Engine | guest | kernel the guest reported | host kernel | same?, one row per kernel."""
    m = ds.measured
    k = m[m.metric == "kernel_matches_host"]
    if k.empty:
        return "no kernel_matches_host rows"
    words = k.detail.map(detail_words)
    k = k.assign(
        guest_kernel=words.map(lambda w: w.get("guest_kernel", "not recorded")),
        host_kernel=words.map(lambda w: w.get("host_kernel", "not recorded")),
    )
    multi = _multi_host(ds)
    header = [
        *(["host"] if multi else []),
        "engine",
        "guest",
        "kernel the guest\nreported",
        "host kernel",
        "same?",
    ]
    cells, colours = [], []
    keys = ["host_id", "backend", "accel", "guest_kernel", "host_kernel"]
    # A row per engine and kernel (its guests listed): shared kernels first, then own ones.
    for _, first in _order(k.drop_duplicates(keys), by_guest=False).iterrows():
        g = k[(k[keys] == first[keys]).all(axis=1)]
        same = bool((g.value == 1).all())
        guests = textwrap.fill(", ".join(sorted(g.guest.unique())), 24, break_on_hyphens=False)
        row = [first.host_id] * multi + [
            engine_label(first.backend, first.accel, "\n"),
            guests,
            first.guest_kernel,
            first.host_kernel,
            "yes" if same else "no",
        ]
        cells.append(row)
        colour_same = OUTCOME_COLOURS["native"] if same else OUTCOME_COLOURS["emulated"]
        colours.append(["white"] * (len(row) - 1) + [colour_same])
    fig = _table_figure(header, cells, colours)
    title = fact_title(
        claims,
        "kernel",
        "Containers report the host's kernel; each VM boots its own",
        "Which kernel each guest reported",
    )
    return fig, title


FOREIGN = ("runs_foreign_arch", "runs_foreign_os")  # another architecture, another OS


def compat_matrix(ds: Dataset, claims: pd.DataFrame) -> Built:
    """Guest (architecture or OS) x engine: booted natively, emulated, or exec format error."""
    m = ds.measured
    foreign = m[m.metric.isin(FOREIGN)]
    if foreign.empty:
        return "no runs_foreign_arch or runs_foreign_os rows"
    outcomes = _compat_outcomes(ds, foreign)
    engines = list(dict.fromkeys(outcomes.engine))
    cells, colours = [], []
    for label in dict.fromkeys(outcomes.label):
        row, row_colours = [label], ["white"]
        for engine in engines:
            hit = outcomes[(outcomes.label == label) & (outcomes.engine == engine)]
            text, kind = (
                (hit.iloc[0].text, hit.iloc[0].outcome)
                if len(hit)
                else ("not measured", "not measured")
            )
            row.append(text)
            row_colours.append(OUTCOME_COLOURS[kind])
        cells.append(row)
        colours.append(row_colours)
    fig = _table_figure(["guest: architecture or OS", *engines], cells, colours)
    title = fact_title(
        claims,
        "compat",
        _compat_finding(outcomes),
        "Which guest architectures and systems each engine ran",
    )
    return fig, title


def _compat_outcomes(ds: Dataset, foreign: pd.DataFrame) -> pd.DataFrame:
    """One row per (host, guest arch, engine): what happened, as a cell text and an outcome."""
    multi = _multi_host(ds)
    scenarios = set(foreign.scenario)
    m = ds.measured
    native = m[(m.metric == "kernel_matches_host") & m.scenario.isin(scenarios)]
    native = native[~native.guest.isin(set(foreign.guest))]
    rows = []
    for _, r in _order(pd.concat([native, foreign])).iterrows():
        words = detail_words(r.detail)
        host_arch = words.get("host_arch") or _host_arch(foreign, r.host_id)
        native = r.metric not in FOREIGN
        if native:
            arch = f"{host_arch} guest (the host's)"
            text, outcome = _native_cell(r)
        elif r.metric == "runs_foreign_os":
            arch = f"another OS: {words.get('os', r.guest)}"
            text, outcome = _foreign_os_cell(r)
        else:
            arch = f"{words.get('guest_arch', r.guest)} guest"
            text, outcome = _foreign_cell(r)
        label = f"{r.host_id}: {arch}" if multi else arch
        rows.append(
            {"label": label, "arch": arch, "native": native, "engine": _engine(r.backend, r.boot)}
            | {"text": text, "outcome": outcome}
        )
    columns = ["label", "arch", "native", "engine", "text", "outcome"]
    return pd.DataFrame(rows, columns=columns).drop_duplicates(["label", "engine"])


def _host_arch(foreign: pd.DataFrame, host: str) -> str:
    for detail in foreign[foreign.host_id == host].detail:
        if arch := detail_words(detail).get("host_arch"):
            return arch
    return "native"


def _native_cell(r: pd.Series) -> tuple[str, str]:
    if r.kind in ("container", "system-container"):
        return "runs natively\n(host kernel)", "native"
    if r.accel == "tcg":
        return "emulated (TCG)\nown kernel", "emulated"
    return f"booted natively\n({ACCEL_SUFFIX.get(r.accel, r.accel)}, own kernel)", "native"


def _foreign_cell(r: pd.Series) -> tuple[str, str]:
    if r.value == 1:
        if "user-mode emulation" in r.detail:
            return "emulated\n(qemu-user, host kernel)", "emulated"
        how = "TCG" if r.accel == "tcg" else ACCEL_SUFFIX.get(r.accel, r.accel)
        return f"emulated ({how})\nown kernel", "emulated"
    if "exec format error" in r.detail:
        return "exec format error", "refused"
    return "did not run", "refused"


def _foreign_os_cell(r: pd.Series) -> tuple[str, str]:
    """Another OS: a VM boots it (its banner showed), a container engine refuses its file."""
    if r.value == 1:
        if r.kind in ("container", "system-container"):
            return "ran\n(see the row's detail)", "emulated"
        if r.accel == "tcg":
            return "booted (TCG)\nits own system", "emulated"
        return f"booted ({ACCEL_SUFFIX.get(r.accel, r.accel)})\nits own system", "native"
    if "exec format error" in r.detail:
        return "exec format error", "refused"
    return "did not run", "refused"


def _compat_finding(outcomes: pd.DataFrame) -> str:
    foreign = outcomes[~outcomes.native]
    other_os = foreign.arch.str.startswith("another OS")
    arch, systems = foreign[~other_os], foreign[other_os]
    refused = foreign[foreign.outcome == "refused"]
    if len(refused) and (refused.text == "exec format error").all():
        ran = []
        if (arch.outcome == "emulated").any():
            ran.append(f"the {' and '.join(sorted(set(arch.arch)))} under emulation")
        if (systems.outcome != "refused").any():
            names = sorted({a.removeprefix("another OS: ") for a in systems.arch})
            ran.append(f"{' and '.join(names)} (not Linux)")
        if ran:
            return f"A VM ran {' and '.join(ran)}; the container failed: exec format error"
    if len(systems) and not len(arch):
        return "A VM booted another operating system; a container could not"
    return "A VM ran a foreign-architecture guest; a container could not"


TABLE_AREA = (0.02, 0.03, 0.96, 0.78)  # left, bottom, width, height: room above for the title


def _table_figure(header: list[str], cells: list[list[str]], colours: list[list[str]]) -> Figure:
    """A table as a figure: the largest type that fits, a bold header, coloured cells, each
    row as tall as its tallest cell and each column as wide as its widest."""
    fig = plt.figure()
    ax = fig.add_axes(TABLE_AREA)  # a fixed area: cell heights are fractions of it
    ax.axis("off")
    table = ax.table(
        cellText=cells, colLabels=header, cellColours=colours, cellLoc="center", loc="center"
    )
    table.auto_set_font_size(False)
    lines = [max(str(text).count("\n") + 1 for text in row) for row in [header, *cells]]
    area_pt = ax.get_window_extent().height * 72 / fig.dpi

    def set_size(size: float) -> None:
        table.set_fontsize(size)
        for (row, _col), cell in table.get_celld().items():
            cell.set_height((lines[row] * 1.2 + 1.0) * size / area_pt)
        table.auto_set_column_width(list(range(len(header))))

    # Widths and heights grow with the type size: measure once, then take the size that fits.
    set_size(20)
    box, room = table.get_window_extent(fig.canvas.get_renderer()), ax.get_window_extent()
    set_size(min(26.0, 20 * min(room.width / box.width, room.height / box.height)))
    for (row, _col), cell in table.get_celld().items():
        cell.set_edgecolor("#888888")
        if row == 0:
            cell.set_text_props(fontweight="bold")
            cell.set_facecolor("#EEEEEE")
    return fig


BUILDERS: dict[str, tuple[Callable[[Dataset, pd.DataFrame], Built], str | None]] = {
    "ready_time": (ready_time, "speed"),
    "size_breakdown": (size_breakdown, "size"),
    "memory": (memory, "density"),
    "density": (density, "density"),
    "boot_phases": (boot_phases, "speed"),
    "kernel_table": (kernel_table, "kernel"),
    "compat_matrix": (compat_matrix, "compat"),
}


def charts_for(claim: str, made: list[Chart]) -> Iterator[Chart]:
    """The charts that illustrate a claim, in BUILDERS order."""
    return (c for c in made if c.claim == claim)
