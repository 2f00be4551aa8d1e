"""Charts: written as PNG and SVG, not blank, 16:9, and titled with the finding."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from report_fixtures import full_host, ready_rows, write_csv

from bench import charts
from bench.claims import evaluate
from bench.dataset import load

EXPECTED_TITLES = {
    "ready_time": "Containers reach ready",
    "size_breakdown": "Container images are",
    "memory": "A VM's processes use",
    "density": "Each extra VM costs",
    "boot_phases": "vagrant up:",
}


def draw(tmp_path: Path, rows: list) -> tuple[list[charts.Chart], list[str]]:
    ds = load([write_csv(tmp_path / "results.csv", rows)])
    return charts.make_charts(ds, evaluate(ds), tmp_path / "charts")


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
    assert chart.title.startswith(EXPECTED_TITLES[name])
    first_words = " ".join(chart.title.split()[:4])
    assert first_words in svg_text(chart.svg)


def test_tcg_is_named_in_the_speed_title(full_charts: list[charts.Chart]) -> None:
    ready = next(c for c in full_charts if c.name == "ready_time")
    assert "TCG" in ready.title


def test_charts_without_data_are_skipped_with_a_reason(tmp_path: Path) -> None:
    rows = ready_rows("h", "docker", [0.5, 0.6, 0.5]) + ready_rows("h", "qemu", [5, 5.2, 5.1])
    made, notes = draw(tmp_path, rows)
    assert [c.name for c in made] == ["ready_time"]
    assert len(notes) == 4 and all("skipped" in n for n in notes)
    assert any("size" in n for n in notes)


def test_refuted_speed_title_says_so(tmp_path: Path) -> None:
    made, _ = draw(tmp_path, full_host("h", container_ready=5, vm_ready=1, vms=("qemu",)))
    ready = next(c for c in made if c.name == "ready_time")
    assert ready.title.startswith("VMs reached ready")


def test_backend_colours_are_fixed_and_distinct() -> None:
    known = [charts.colour(b) for b in ("docker", "podman", "qemu", "vagrant")]
    assert len(set(known)) == 4
    assert charts.colour("firecracker") == charts.colour("firecracker")
    assert charts.colour("firecracker") not in known


def test_log_axis_labels_are_plain_numbers(full_charts: list[charts.Chart]) -> None:
    """A slide shows "0.5" and "5", never "5 x 10^-1" (mathtext) on a log axis."""
    ready = next(c for c in full_charts if c.name == "ready_time")
    numbers = [w for w in svg_text(ready.svg).split() if re.fullmatch(r"\d+(\.\d+)?", w)]
    # mathtext labels ("2 x 10^-1") are drawn as paths, not text: only plain ones are counted
    assert len(numbers) >= 3, numbers


def test_density_chart_leaves_out_guests_measured_at_one_size(tmp_path: Path) -> None:
    from report_fixtures import row

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
