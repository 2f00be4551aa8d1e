"""The fact claims as tables drawn as figures: which kernel each guest reported, and which
guest architectures each engine ran (natively, emulated, or refused)."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from bench.analysis.model import Analysis
from bench.render.charts.axes import engine_name
from bench.render.charts.palette import OUTCOME_COLOURS
from bench.render.charts.save import Built
from bench.render.charts.titles import fact_title
from bench.units import ACCEL_SUFFIX, engine_label


def kernel_table(a: Analysis) -> Built:
    """Engine | guest | kernel the guest reported | host kernel | same?, one row per kernel."""
    kernels = a.kernels
    if kernels.empty:
        return "no kernel_matches_host rows"
    multi = a.dataset.multi_host
    header = [
        *(["host"] if multi else []),
        "engine",
        "guest",
        "kernel the guest\nreported",
        "host kernel",
        "same?",
    ]
    cells, colours = [], []
    for r in kernels.itertuples(index=False):
        guests = textwrap.fill(", ".join(r.guests), 24, break_on_hyphens=False)
        row = [r.host_id] * multi + [
            engine_label(r.backend, r.accel, "\n"),
            guests,
            r.guest_kernel,
            r.host_kernel,
            "yes" if r.same else "no",
        ]
        cells.append(row)
        colour_same = OUTCOME_COLOURS["native"] if r.same else OUTCOME_COLOURS["emulated"]
        colours.append(["white"] * (len(row) - 1) + [colour_same])
    fig = table_figure(header, cells, colours)
    title = fact_title(
        a.claims,
        "kernel",
        "Containers report the host's kernel; each VM boots its own",
        "Which kernel each guest reported",
    )
    return fig, title


def compat_matrix(a: Analysis) -> Built:
    """Guest (architecture or OS) x engine: booted natively, emulated, or exec format error."""
    outcomes = a.compat
    if outcomes.empty:
        return "no runs_foreign_arch or runs_foreign_os rows"
    multi = a.dataset.multi_host
    outcomes = outcomes.assign(
        engine=[engine_name(e, b) for e, b in zip(outcomes.engine, outcomes.boot, strict=True)],
        label=[
            f"{h}: {arch}" if multi else arch
            for h, arch in zip(outcomes.host_id, outcomes.arch, strict=True)
        ],
        text=[cell_text(r) for r in outcomes.itertuples(index=False)],
    )
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
    fig = table_figure(["guest: architecture or OS", *engines], cells, colours)
    title = fact_title(
        a.claims,
        "compat",
        _compat_finding(outcomes),
        "Which guest architectures and systems each engine ran",
    )
    return fig, title


def cell_text(r) -> str:
    """What a compat cell says: how the engine ran (or refused) that architecture."""
    if r.native:
        if r.kind in ("container", "system-container"):
            return "runs natively\n(host kernel)"
        if r.accel == "tcg":
            return "emulated (TCG)\nown kernel"
        return f"booted natively\n({ACCEL_SUFFIX.get(r.accel, r.accel)}, own kernel)"
    if r.other_os and r.ran:  # a VM boots it (its banner showed); a container engine should not
        if r.kind in ("container", "system-container"):
            return "ran\n(see the row's detail)"
        if r.accel == "tcg":
            return "booted (TCG)\nits own system"
        return f"booted ({ACCEL_SUFFIX.get(r.accel, r.accel)})\nits own system"
    if r.ran:
        if r.user_mode:
            return "emulated\n(qemu-user, host kernel)"
        how = "TCG" if r.accel == "tcg" else ACCEL_SUFFIX.get(r.accel, r.accel)
        return f"emulated ({how})\nown kernel"
    return "exec format error" if r.exec_format_error else "did not run"


def _compat_finding(outcomes: pd.DataFrame) -> str:
    foreign = outcomes[~outcomes.native.astype(bool)]
    other_os = foreign.other_os.astype(bool)
    arch, systems = foreign[~other_os], foreign[other_os]
    refused = foreign[foreign.outcome == "refused"]
    if len(refused) and refused.exec_format_error.astype(bool).all():
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


def table_figure(header: list[str], cells: list[list[str]], colours: list[list[str]]) -> Figure:
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
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg's, always here
    box, room = table.get_window_extent(renderer), ax.get_window_extent()
    set_size(min(26.0, 20 * min(room.width / box.width, room.height / box.height)))
    for (row, _col), cell in table.get_celld().items():
        cell.set_edgecolor("#888888")
        if row == 0:
            cell.set_text_props(fontweight="bold")
            cell.set_facecolor("#EEEEEE")
    return fig
