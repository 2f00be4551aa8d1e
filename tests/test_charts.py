"""Charts: written as PNG and SVG, 16:9, titled with the finding, and no text that collides.

text_collisions asks matplotlib's renderer where each text landed; test_real_run.py applies it
to every chart of a real run.
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers.reports import MIB, full_host, ready_rows, row, write_csv
from matplotlib.collections import PathCollection

from bench.analysis.model import analyse
from bench.render import charts
from bench.render.charts.palette import EXTRA_COLOURS, host_linestyle

EXPECTED_TITLES = {
    "ready_time": "Containers reach ready",
    "size_breakdown": "Container images are",
    "memory": "One VM uses",
    "density": "Each extra VM costs",
    "boot_phases": "vagrant: ",
    "kernel_table": "Containers report the host's kernel",
    "compat_matrix": "A VM ran the arm64 guest under emulation",
}


def draw(tmp_path: Path, rows: list) -> tuple[list[charts.Chart], list[str]]:
    a = analyse([write_csv(tmp_path / "results.csv", rows)])
    drawing = charts.draw_all(a, tmp_path / "charts", sections=False)
    return drawing.charts, drawing.notes


def figure(csv: Path, name: str) -> tuple[plt.Figure, str]:
    """Chart `name` of a CSV as draw_all draws it (style and title), not yet saved."""
    builder, _claim = charts.BUILDERS[name]
    with charts.slide_style():
        built = charts.titled(builder(analyse([csv])))
    assert not isinstance(built, str), built
    return built


def svg_text(path: Path) -> str:
    """The visible text of an SVG written with svg.fonttype = none."""
    return " ".join(re.findall(r"<text[^>]*>([^<]*)</text>", path.read_text()))


@pytest.fixture(scope="module")
def full_charts(tmp_path_factory: pytest.TempPathFactory) -> list[charts.Chart]:
    made, notes = draw(tmp_path_factory.mktemp("full"), full_host("h", accel="tcg"))
    assert notes == []
    return made


def test_every_chart_is_drawn(full_charts: list[charts.Chart]) -> None:
    assert [c.name for c in full_charts] == list(EXPECTED_TITLES)


@pytest.mark.parametrize("name", list(EXPECTED_TITLES))
def test_chart_is_non_blank_16_9_with_expected_title(
    full_charts: list[charts.Chart], name: str
) -> None:
    chart = next(c for c in full_charts if c.name == name)
    pixels = mpimg.imread(chart.png)
    height, width = pixels.shape[:2]
    assert width / height == pytest.approx(16 / 9, rel=0.01)
    assert width >= 2600  # 13.33 in at 200 dpi
    assert float(np.var(pixels[..., :3])) > 0.005, "chart looks blank"
    assert chart.title.startswith(EXPECTED_TITLES[name]), chart.title
    first_words = " ".join(chart.title.split()[:4])
    assert first_words in svg_text(chart.svg)


@pytest.mark.parametrize(
    "name", ["ready_time", "size_breakdown", "memory", "density", "kernel_table", "compat_matrix"]
)
def test_tcg_vms_are_labelled_emulated_in_the_chart(
    full_charts: list[charts.Chart], name: str
) -> None:
    text = svg_text(next(c for c in full_charts if c.name == name).svg)
    assert "emulated (TCG)" in text


def test_tcg_is_named_in_the_speed_title(full_charts: list[charts.Chart]) -> None:
    ready = next(c for c in full_charts if c.name == "ready_time")
    assert "TCG" in ready.title


def test_charts_without_data_are_skipped_with_a_reason(tmp_path: Path) -> None:
    rows = ready_rows("h", "docker", [0.5, 0.6, 0.5]) + ready_rows("h", "qemu", [5, 5.2, 5.1])
    made, notes = draw(tmp_path, rows)
    assert [c.name for c in made] == ["ready_time"]
    assert len(notes) == len(charts.BUILDERS) - 1 and all("skipped" in n for n in notes)
    assert any("size" in n for n in notes)


def test_refuted_speed_title_says_so(tmp_path: Path) -> None:
    made, _ = draw(tmp_path, full_host("h", container_ready=5, vm_ready=1, vms=("qemu",)))
    ready = next(c for c in made if c.name == "ready_time")
    assert ready.title.startswith("VMs reached ready")


def test_backend_colours_are_fixed_distinct_and_the_same_in_every_process() -> None:
    known = [charts.colour(b) for b in ("docker", "podman", "qemu", "vagrant")]
    assert len(set(known)) == 4
    unknown = {b: charts.colour(b) for b in ("firecracker", "lxc", "kata", "gvisor")}
    assert not set(unknown.values()) & set(known)
    assert set(unknown.values()) <= set(EXTRA_COLOURS)
    # Python's own hash() differs between processes; a chart's colours must not.
    code = f"from bench.render import charts; print([charts.colour(b) for b in {list(unknown)!r}])"
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.strip() == str(list(unknown.values()))


def test_host_line_styles_never_run_out() -> None:
    styles = [host_linestyle(i) for i in range(200)]
    assert len({str(s) for s in styles}) == 200


def test_log_axis_labels_are_plain_numbers(full_charts: list[charts.Chart]) -> None:
    """A slide shows "0.5" and "5", never "5 x 10^-1" (mathtext) on a log axis."""
    ready = next(c for c in full_charts if c.name == "ready_time")
    numbers = [w for w in svg_text(ready.svg).split() if re.fullmatch(r"\d+(\.\d+)?", w)]
    # mathtext labels ("2 x 10^-1") are drawn as paths, not text: only plain ones are counted
    assert len(numbers) >= 3, numbers


def density_rows(hosts: int, sizes: tuple[int, ...] = (1, 2, 4)) -> list:
    return [
        row(
            f"h{h:02d}",
            b,
            "pss_bytes",
            per * n * (1 + h / 100),
            instances=n,
            scenario="density",
            accel=accel,
        )
        for h in range(hosts)
        for b, per, accel in (("docker", 2 * MIB, "none"), ("qemu", 200 * MIB, "tcg"))
        for n in sizes
    ]


def test_density_is_linear_with_every_measured_point(tmp_path: Path) -> None:
    rows = density_rows(1, (1, 2, 4, 8, 16, 32))
    fig, _title = figure(write_csv(tmp_path / "r.csv", rows), "density")
    ax = fig.axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("linear", "linear")
    points = sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))
    assert points == len(rows)
    for line in ax.get_lines():  # a fit is a straight segment over the measured sizes
        assert len(line.get_xdata()) == 2
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("qemu, emulated (TCG): +200.0 MiB per instance" in t for t in labels), labels
    plt.close(fig)


def test_density_with_fifty_hosts_draws_and_sums_up_the_legend(tmp_path: Path) -> None:
    fig, _title = figure(write_csv(tmp_path / "r.csv", density_rows(50)), "density")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == [
        "docker (50 hosts): +2.0 MiB to 3.0 MiB per instance",
        "qemu (50 hosts): +200.0 MiB to 298.0 MiB per instance",
    ]
    assert len(fig.axes[0].get_lines()) == 100  # a fitted line per host and engine
    plt.close(fig)


def test_density_chart_leaves_out_guests_measured_at_one_size(tmp_path: Path) -> None:
    rows = [
        row("h", b, "pss_bytes", per * n, instances=n, scenario="density")
        for b, per in (("docker", 2e6), ("qemu", 2e8))
        for n in (1, 2, 4)
    ]
    rows += [
        row("h", b, "pss_bytes", 5e6, guest="debian", scenario="debian") for b in ("docker", "qemu")
    ]
    made, _notes = draw(tmp_path, rows)
    density = next(c for c in made if c.name == "density")
    text = svg_text(density.svg)
    assert "debian" not in text  # a single N has no slope: no empty facet for it
    assert "per instance" in text


def test_memory_counts_the_shim_in_the_title_ratio(full_charts: list[charts.Chart]) -> None:
    memory = next(c for c in full_charts if c.name == "memory")
    # full_host: container 1 MiB PSS + 6 MiB shim, VM 200 MiB: 200 / 7, not 200 / 1
    assert memory.title.startswith(f"One VM uses {200 / 7:.0f}x the memory of one container")
    assert "7.0 MiB = 1.0 MiB + 6.0 MiB shim" in svg_text(memory.svg)


def test_memory_draws_a_vm_whose_rows_name_their_boot_mode(tmp_path: Path) -> None:
    """Rows of an engine with image options say boot=kernel; the footprint derived from them
    has its trial's boot mode too, or the VM's footprint and its own PSS fall in two groups:
    an empty median (numpy's 'Mean of empty slice') and no bar, only 'n/a'."""
    boot = {"detail": "workload=idle boot=kernel median of 21 samples at 20 Hz"}
    rows = [
        row("h", "docker", "pss_bytes", 1.0 * MIB),
        row("h", "docker", "shim_pss_bytes", 6.0 * MIB),
        *(
            row("h", "qemu", "pss_bytes", v * MIB, trial=t, **boot)
            for t, v in enumerate([190, 210])
        ),
    ]
    a = analyse([write_csv(tmp_path / "results.csv", rows)])
    ds = a.dataset
    footprints = ds.rows[(ds.rows.metric == "footprint_bytes") & (ds.rows.backend == "qemu")]
    assert set(footprints.boot) == {"kernel"}
    with warnings.catch_warnings(), charts.slide_style():
        warnings.simplefilter("error")  # an empty median would raise here
        fig, _title = charts.titled(charts.memory(a))
    [ax] = fig.axes
    widths = sorted(round(p.get_width(), 1) for p in ax.patches if p.get_width() > 0)
    texts = [t.get_text() for t in ax.texts]
    plt.close(fig)
    assert widths == [1.0, 6.0, 200.0]  # docker's PSS and shim, qemu's median PSS
    assert "n/a" not in texts and "200.0 MiB" in texts


def test_memory_names_each_engines_shim_from_its_rows(tmp_path: Path) -> None:
    """podman's shim is conmon, Docker's containerd-shim: each engine writes the name on its
    shim_pss_bytes rows and the chart reads it there, never from a list of engines."""

    def shim(backend: str, name: str, mib: float) -> object:
        detail = f"workload=idle shim={name} median of 21 samples at 20 Hz"
        return row("h", backend, "shim_pss_bytes", mib * MIB, detail=detail)

    rows = [
        row("h", "docker", "pss_bytes", 1.0 * MIB),
        shim("docker", "containerd-shim", 6.0),
        row("h", "podman", "pss_bytes", 1.0 * MIB),
        shim("podman", "conmon", 1.5),
        row("h", "qemu", "pss_bytes", 200 * MIB),
    ]
    made, notes = draw(tmp_path, rows)
    memory = next(c for c in made if c.name == "memory")
    text = svg_text(memory.svg)
    assert "7.0 MiB = 1.0 MiB + 6.0 MiB containerd-shim" in text
    assert "2.5 MiB = 1.0 MiB + 1.5 MiB conmon" in text
    assert "its shim (conmon, containerd-shim)" in text
    assert not [n for n in notes if n.startswith("chart memory")]


# --- the layout check, and that it can fail -------------------------------------------------


def test_text_collisions_finds_overlap_legend_and_overflow() -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.text(0.5, 0.5, "first label", transform=ax.transAxes)
    ax.text(0.52, 0.5, "second label", transform=ax.transAxes)
    ax.text(0.1, 0.2, "two\nlines", transform=ax.transAxes)
    ax.text(0.1, 0.24, "under them", transform=ax.transAxes)
    ax.text(1.3, 0.5, "far outside", transform=ax.transAxes)
    ax.plot([0, 1], [0, 1], label="a line")
    ax.legend(loc="upper left")
    ax.text(0.02, 0.95, "hidden", transform=ax.transAxes)
    found = charts.text_collisions(fig)
    plt.close(fig)
    assert "'first label' overlaps 'second label'" in found
    assert "'far outside' leaves the figure" in found
    assert "'two lines' overlaps 'under them'" in found  # a label of several lines counts too
    assert "'hidden' is under a legend" in found


def test_saving_a_chart_reports_its_crowded_text(tmp_path: Path) -> None:
    """The check draw_all relies on: recorded while the PNG is drawn, no second drawing."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.text(0.5, 0.5, "first label", transform=ax.transAxes)
    ax.text(0.52, 0.5, "second label", transform=ax.transAxes)
    chart = charts.save_chart((fig, "A title"), tmp_path, "crowded", None)
    assert "'first label' overlaps 'second label'" in chart.crowded
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    ax.text(0.1, 0.5, "alone", transform=ax.transAxes)
    assert charts.save_chart((fig, "A title"), tmp_path, "calm", None).crowded == ()


def test_text_collisions_ignores_ticks_that_are_not_drawn() -> None:
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    ax.set_xticks([-10, 0, 1, 10])  # -10 and 10 fall outside the view: never drawn
    ax.set_xlim(-0.5, 1.5)
    assert charts.text_collisions(fig) == []
    plt.close(fig)
