"""What each engine needs on disk to boot the guest: stacked parts per engine, a panel per guest."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from bench.analysis.dataset import in_order
from bench.analysis.model import Analysis
from bench.render.charts.axes import (
    MIN_TICK_PT,
    READABLE_TICK_PT,
    TICK_PT,
    column_type,
    engine_name,
    group_columns,
    legend_below,
)
from bench.render.charts.palette import COMPONENT_STYLE, MIB, STYLE, colour
from bench.render.charts.save import Built
from bench.render.charts.titles import claim_title
from bench.units import engine_label, human


def size_breakdown(a: Analysis) -> Built:
    table = a.sizes
    if table.empty:
        return "no size rows (image_bytes, kernel_bytes, ...)"
    fig = plt.figure(layout="constrained")
    bars = table.guest.value_counts()
    for ax, guest, width_pt in _panels_by_bars(fig, bars[bars > 0]):  # not a category's 0
        _size_bars(ax, in_order(table[table.guest == guest]), a.dataset.multi_host, width_pt)
        ax.set_title(guest, fontsize=20)
    fig.supylabel("Bytes to boot the guest (MiB)")
    used = {name for segs in table.segments for name in segs}
    handles = [
        Patch(facecolor=fc, hatch=h, edgecolor="black", label=name)
        for name, (fc, h) in COMPONENT_STYLE.items()
        if name in used
    ]
    legend_below(fig, handles)
    title = claim_title(
        a.claims,
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
        for name, size in r.segments.items():
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
        + engine_label(engine_name(r.backend, r.boot), r.accel, "\n")
        for _, r in sub.iterrows()
    ]
    if column_type(labels, width_pt, TICK_PT) < READABLE_TICK_PT:  # narrow: a third line
        labels = [label.replace("emulated (TCG)", "emulated\n(TCG)") for label in labels]
    if column_type(labels, width_pt, TICK_PT) <= MIN_TICK_PT:  # narrower: the title says TCG
        labels = [label.replace("emulated\n(TCG)", "emulated") for label in labels]
    size = group_columns(ax, labels, width_pt)
    note_size = column_type(notes, width_pt, 16.0)
    if note_size < 11:  # many bars: the total alone (the gzip size is in report.md)
        notes = [note.split("\n")[0] for note in notes]
        note_size = column_type(notes, width_pt, 16.0)
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
