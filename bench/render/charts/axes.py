"""What several charts share: group labels, rows and columns of groups in type that fits,
legends under the plot, plain-number log axes."""

from __future__ import annotations

import math
from typing import Any

import matplotlib.axis
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from bench.units import engine_label


def group_label(row: pd.Series, multi_host: bool, with_guest: bool = True) -> str:
    """'busybox · qemu' with the accelerator on a second line: 'emulated (TCG)'."""
    parts = [row.host_id] if multi_host else []
    if with_guest:
        parts.append(row.guest)
    parts.append(engine_name(row.backend, row.get("boot", "")))
    return engine_label(" · ".join(parts), row.accel, sep="\n")


def engine_name(backend: str, boot: str) -> str:
    """``qemu`` for a direct kernel boot (or no boot word), ``qemu bios`` for a disk boot."""
    return backend if boot in ("", "kernel") else f"{backend} {boot}"


def log_if_wide(axis: matplotlib.axis.Axis, values: np.ndarray, span: float = 20.0) -> None:
    v = values[values > 0]
    if len(v) and v.max() / v.min() > span:
        plain_log_axis(axis)


def plain_log_axis(axis: matplotlib.axis.Axis, decades_only: bool = False) -> None:
    """A log axis labelled with plain numbers at 1, 2, 5 x 10^k ("0.2", "5", not "2 x 10^-1"
    on a slide), or at 1 x 10^k only where a narrow axis spans many decades."""
    axis._set_axes_scale("log")  # type: ignore[attr-defined]  # the one call that scales either axis
    subs = (1.0,) if decades_only else (1.0, 2.0, 5.0)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda y, _pos: f"{y:g}"))
    axis.set_minor_formatter(NullFormatter())


ROWS_PT = 400.0  # height the group rows of a 7.5 in chart get, title and x axis taken off
TICK_PT = 17.0  # STYLE's tick label size
MIN_TICK_PT = 8.0
READABLE_TICK_PT = 11.0  # below this, a label takes another line rather than smaller type


def group_rows(ax: plt.Axes, labels: list[str], rows_pt: float = ROWS_PT) -> None:
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


def group_columns(ax: plt.Axes, labels: list[str], width_pt: float) -> float:
    """Groups left to right on the x axis, in type small enough that labels stay apart."""
    size = column_type(labels, width_pt, TICK_PT)
    ax.set_xticks(range(len(labels)), labels)
    ax.tick_params(axis="x", labelsize=size)
    return size


def column_type(texts: list[str], width_pt: float, largest: float) -> float:
    """The type size at which the widest of these texts fits its column (a character is
    ~0.6 em wide), between MIN_TICK_PT and largest."""
    widest = max(len(line) for text in texts for line in text.split("\n"))
    per_column = width_pt / max(len(texts), 1)
    return max(MIN_TICK_PT, min(largest, per_column / (0.65 * widest)))


def legend_below(fig: Figure, handles: list) -> int:
    """A legend under the plots in one row, or in as many rows as it needs to stay on the
    page (a boot-phase legend with Vagrant's wait and a disk boot's firmware has five).
    Returns its number of rows."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg's, always here
    for ncols in range(len(handles), 0, -1):
        legend = fig.legend(handles=handles, loc="outside lower center", ncols=ncols)
        if ncols == 1 or legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width:
            break
        legend.remove()
    return math.ceil(len(handles) / ncols)


LEGEND_ROW_PT = 28.0  # one more row of a legend at STYLE's legend.fontsize

END_LABEL: dict[str, Any] = {
    "textcoords": "offset points",
    "va": "center",
    "ha": "left",
    "fontsize": 16,
}
