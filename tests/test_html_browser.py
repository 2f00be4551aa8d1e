"""report.html and compare.html in a real browser: Debian's headless Chromium opens the
committed real run's report and a 20-host comparison at 1280x800 and 390x844.

Each page must show something, never scroll the page sideways (tables scroll in their own
box), draw every chart with a non-zero box and fetch nothing: DevTools' Network events (failed
requests included) and the Performance API's resource entries are the requests the page made,
and a self-contained page makes none. Markup in host
ids, details and file names must render as text and run nothing. A missing Chromium is a skip
here and a failure under CI=true (scripts/setup-host.sh --tests installs it).
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import engine_missing
from helpers import browser
from helpers.pages import HOSTILE_HOST, IMG, SCRIPT, hostile_run, lab
from helpers.reports import REAL_RUN
from PIL import Image

from bench.cli.reading import write_comparison, write_report

# Set to a folder to keep the screenshots (they are in pytest's tmp folder otherwise).
SHOTS = os.environ.get("VMBENCH_SCREENSHOTS")


@pytest.fixture(scope="module")
def chromium() -> Iterator[browser.Browser]:
    why = browser.missing()
    if why:
        engine_missing(f"chromium: {why}")
    with browser.chromium() as b:
        yield b


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pages")
    write_report([REAL_RUN], root / "report")
    write_comparison(lab(root / "lab", 20), root / "compare")
    return {"report": root / "report" / "report.html", "compare": root / "compare" / "compare.html"}


def not_blank(png: Path) -> bool:
    """More than a background: many colours in the screenshot."""
    with Image.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000) or []
    return len(colours) > 50


@pytest.mark.parametrize("size", ["desktop", "phone"])
@pytest.mark.parametrize("name", ["report", "compare"])
def test_page_in_chromium(
    chromium: browser.Browser, pages: dict[str, Path], name: str, size: str, tmp_path: Path
) -> None:
    page = pages[name]
    probe = chromium.open(page, size)
    shot = chromium.screenshot(tmp_path / f"{name}-{size}.png")
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(SHOTS) / shot.name)
    width, _height = browser.SIZES[size]
    assert probe["location"] == page.resolve().as_uri()
    assert probe["clientWidth"] == width
    assert probe["bodyText"] > 2000 and not_blank(shot)
    assert probe["scrollWidth"] <= probe["clientWidth"], "the page scrolls sideways"
    assert probe["requests"] == [] and probe["resources"] == [], "the page fetched something"
    assert probe["scripts"] == 0 and probe["thWithoutScope"] == 0
    charts = probe["charts"]
    assert len(charts) >= (7 if name == "report" else 1)
    for chart in charts:
        assert chart["width"] > 100 and chart["height"] > 50, chart
        assert chart["label"] and chart["title"] == chart["label"], chart
    levels = probe["headings"]
    assert levels[0] == 1 and all(b - a <= 1 for a, b in itertools.pairwise(levels))


def test_markup_in_data_renders_as_text_and_runs_nothing(
    chromium: browser.Browser, tmp_path: Path
) -> None:
    hostile = hostile_run(tmp_path / "in")
    write_report([hostile], tmp_path / "r")
    write_comparison([hostile, *lab(tmp_path / "lab", 1)], tmp_path / "c")
    for page in (tmp_path / "r" / "report.html", tmp_path / "c" / "compare.html"):
        probe = chromium.open(page, "desktop")
        assert chromium.alerts() is None
        text = chromium.driver.execute_script("return document.body.innerText")
        assert SCRIPT in text and IMG in text  # shown as the characters they are
        found = chromium.driver.execute_script(
            "return [document.images.length, document.scripts.length,"
            " [...document.querySelectorAll('[onerror]')].length]"
        )
        assert found == [0, 0, 0]
        assert probe["requests"] == []  # the img was never created, so x was never fetched
        details = chromium.driver.execute_script(
            "return [...document.querySelectorAll('summary code')].map(c => c.textContent)"
        )
        if page.name == "compare.html":
            assert HOSTILE_HOST in details
