"""The slide deck: title + one slide per claim + methodology, charts placed, verdicts shown."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pptx import Presentation
from pptx.enum.shapes import MSO_SHAPE_TYPE
from report_fixtures import full_host, host_meta, write_csv

from bench.claims import CLAIMS
from bench.slides import write_deck


def slide_text(slide: object) -> str:
    return "\n".join(s.text_frame.text for s in slide.shapes if s.has_text_frame)


def pictures(slide: object) -> int:
    return sum(s.shape_type == MSO_SHAPE_TYPE.PICTURE for s in slide.shapes)


@pytest.fixture(scope="module")
def deck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("deck")
    a = write_csv(tmp / "a" / "results.csv", full_host("lab-kvm"), host_meta("lab-kvm"))
    b = write_csv(
        tmp / "b" / "results.csv",
        full_host("laptop-tcg", accel="tcg", vms=("qemu",)),
        host_meta("laptop-tcg", cpu="AMD EPYC 7B13"),
    )
    return write_deck([a, b], tmp / "out" / "deck.pptx")


def test_deck_has_title_claims_and_methodology(deck: Path) -> None:
    prs = Presentation(str(deck))
    slides = list(prs.slides)
    assert len(slides) == 1 + len(CLAIMS) + 1
    assert prs.slide_width / prs.slide_height == pytest.approx(16 / 9, rel=0.01)
    title = slide_text(slides[0])
    assert "lab-kvm" in title and "laptop-tcg" in title and "AMD EPYC 7B13" in title
    for slide, claim in zip(slides[1:-1], CLAIMS, strict=True):
        assert slide_text(slide).startswith(CLAIMS[claim])
    assert "TCG" in slide_text(slides[-1])


def test_claim_slides_carry_chart_and_verdict(deck: Path) -> None:
    slides = dict(zip(CLAIMS, list(Presentation(str(deck)).slides)[1:-1], strict=True))
    for claim in ("size", "speed", "density"):
        assert pictures(slides[claim]) == 1, claim
    for claim in ("kernel", "compat"):
        assert pictures(slides[claim]) == 0, claim
    speed = slide_text(slides["speed"])
    assert "SUPPORTED" in speed and "laptop-tcg" in speed and "TCG" in speed
    assert "kernel_matches_host" in slide_text(slides["kernel"])  # evidence, no chart


def test_deck_charts_written_beside_it(deck: Path) -> None:
    charts_dir = deck.parent / "deck-charts"
    assert (charts_dir / "ready_time.png").stat().st_size > 0


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice not installed")
def test_libreoffice_opens_the_deck(deck: Path, tmp_path: Path) -> None:
    env = dict(os.environ, HOME=str(tmp_path))  # a fresh, writable LibreOffice profile
    subprocess.run(
        ["soffice", "--headless", "--convert-to", "pdf", "--outdir", str(tmp_path), str(deck)],
        check=True,
        timeout=240,
        env=env,
        capture_output=True,
    )
    pdf = (tmp_path / "deck.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
    assert pages == 1 + len(CLAIMS) + 1
