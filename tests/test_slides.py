"""The slide deck: a slide per chart of each claim, verdicts under it, rendered by LibreOffice."""

from __future__ import annotations

import html
import re
import subprocess
from pathlib import Path

import pytest
from helpers.rendering import (
    assert_pages_drawn,
    assert_shapes_inside,
    assert_words_placed,
    pictures,
    render,
    slide_text,
)
from helpers.reports import full_host, host_meta, write_csv
from pptx import Presentation

from bench.analysis.claims import CLAIMS
from bench.analysis.model import analyse
from bench.render.emulation import PUBLISHED_FIGURES
from bench.render.slides import write_deck


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("deck")
    a = write_csv(tmp / "a" / "results.csv", full_host("lab-kvm"), host_meta("lab-kvm"))
    b = write_csv(
        tmp / "b" / "results.csv",
        full_host("laptop-tcg", accel="tcg", vms=("qemu",)),
        host_meta("laptop-tcg", cpu="AMD EPYC 7B13"),
    )
    return write_deck(analyse([a, b]), tmp / "out" / "deck.pptx")


def claim_slides(deck: Path) -> list[tuple[str, object]]:
    """(claim, slide) for every slide between the title and the methodology, but the
    published figures' (citations, on every deck)."""
    out = []
    for slide in list(Presentation(str(deck)).slides)[1:-1]:
        heading = slide_text(slide).split("\n")[0]
        if heading.startswith(PUBLISHED_FIGURES):
            continue
        claim = next(c for c, text in CLAIMS.items() if text == heading)
        out.append((claim, slide))
    return out


def test_deck_has_title_claim_slides_in_order_and_methodology(two_hosts: Path) -> None:
    prs = Presentation(str(two_hosts))
    slides = list(prs.slides)
    assert prs.slide_width / prs.slide_height == pytest.approx(16 / 9, rel=0.01)
    title = slide_text(slides[0])
    assert "lab-kvm" in title and "laptop-tcg" in title and "AMD EPYC 7B13" in title
    assert "qemu emulated (TCG)" in title  # the TCG host's VMs, named as emulated
    order = [claim for claim, _ in claim_slides(two_hosts)]
    assert order == sorted(order, key=list(CLAIMS).index)  # claims in CLAIMS order
    assert set(order) == set(CLAIMS)
    assert "TCG" in slide_text(slides[-1])


def test_every_claim_has_its_charts_and_verdicts(two_hosts: Path) -> None:
    by_claim: dict[str, list] = {}
    for claim, slide in claim_slides(two_hosts):
        by_claim.setdefault(claim, []).append(slide)
        assert len(pictures(slide)) == 1, claim
    # speed: ready time and boot phases; density: memory of one instance and the slopes
    assert {c: len(s) for c, s in by_claim.items()} == {
        "size": 1,
        "speed": 2,
        "kernel": 1,
        "density": 2,
        "compat": 1,
    }
    speed = slide_text(by_claim["speed"][0])
    assert "SUPPORTED" in speed and "laptop-tcg · qemu, emulated (TCG) vs docker" in speed
    assert "lab-kvm · qemu, KVM vs docker" in speed
    assert "TCG" in speed.split("\n")[-1]  # the caveat line under the verdicts


def test_memory_slide_lines_are_the_one_instance_comparison(two_hosts: Path) -> None:
    memory, slopes = [s for c, s in claim_slides(two_hosts) if c == "density"]
    memory_text, slope_text = slide_text(memory), slide_text(slopes)
    assert "with its shim" in memory_text and "SUPPORTED" not in memory_text
    assert "SUPPORTED" in slope_text
    # full_host: docker 1 MiB PSS + 6 MiB shim, qemu 200 MiB at one instance
    assert f"{200 / 7:.3g}x" in memory_text


def test_verdict_lines_fit_under_the_chart(two_hosts: Path) -> None:
    for claim, slide in claim_slides(two_hosts):
        lines = slide_text(slide).split("\n")[1:]
        assert 1 <= len(lines) <= 4, (claim, lines)  # up to 3 verdicts + a footer


def test_no_shape_lies_outside_the_slide(two_hosts: Path) -> None:
    assert_shapes_inside(two_hosts)


def test_libreoffice_renders_every_slide_with_every_word_in_place(
    two_hosts: Path, tmp_path: Path
) -> None:
    rendered = render(two_hosts, tmp_path)
    assert_pages_drawn(rendered)
    assert_words_placed(rendered)
    # The PDF's outline (bookmarks) holds every slide's title, as LibreOffice read it from
    # the title placeholders: what a table of contents, or a merged course deck, shows.
    xml = subprocess.run(
        ["pdftohtml", "-xml", "-i", "-stdout", str(tmp_path / f"{two_hosts.stem}.pdf")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    outline = [html.unescape(t) for t in re.findall(r'<item page="\d+">([^<]*)</item>', xml)]
    titles = [s.shapes.title.text_frame.text for s in Presentation(str(two_hosts)).slides]
    assert [re.sub(r" \(\d+\)$", "", t) for t in outline] == titles


def test_every_slide_has_its_title_in_a_title_placeholder(two_hosts: Path) -> None:
    """Outline view, slide sorter and screen readers read the title placeholder."""
    slides = list(Presentation(str(two_hosts)).slides)
    titles = [s.shapes.title for s in slides]
    assert all(t is not None and t.is_placeholder for t in titles)
    texts = [t.text_frame.text for t in titles]
    assert texts[0] == "Virtual machines vs containers, measured"
    assert texts[-1] == "How it was measured"
    assert set(texts[1:-1]) >= set(CLAIMS.values())
    assert all(texts), texts


# --- rendered by LibreOffice ----------------------------------------------------------------


def test_a_deck_alone_leaves_only_the_deck(two_hosts: Path) -> None:
    """A deck alone draws its charts in its temporary work: the deck holds the images, and
    nothing else (no chart files, no ``deck-charts`` folder) stays beside it."""
    assert [p.name for p in two_hosts.parent.iterdir()] == ["deck.pptx"]
    assert sum(len(pictures(s)) for s in Presentation(str(two_hosts)).slides) > 0
