"""Outputs safe to open: CSV cells that a spreadsheet would run as formulas are neutralised
(OWASP CSV injection), whatever the input CSV held. Each case is the committed default-suite
run with its host id and guest changed to hostile text."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from helpers.reports import REAL_RUN

from bench.cli import main
from bench.render.tables import FORMULA_STARTS, neutral_cell

FORMULA = '=HYPERLINK("http://example.invalid/x","click")'


def hostile_copy(folder: Path, **columns: str) -> Path:
    """The committed run with every row's ``columns`` set to the given text."""
    folder.mkdir(parents=True)
    meta = json.loads((REAL_RUN.parent / "host.json").read_text())
    (folder / "host.json").write_text(json.dumps(meta))
    with open(REAL_RUN, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(folder / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({**r, **columns} for r in rows)
    return folder / "results.csv"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def cells(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as f:
        return [cell for record in csv.reader(f) for cell in record]


def test_a_cell_is_neutralised_unless_it_is_a_number() -> None:
    assert neutral_cell(FORMULA) == "'" + FORMULA
    for start in FORMULA_STARTS:
        assert neutral_cell(start + "cmd|' /C calc'!A0") == "'" + start + "cmd|' /C calc'!A0"
    assert neutral_cell("-1.5") == "-1.5"
    assert neutral_cell("+3e5") == "+3e5"
    assert neutral_cell(-1.5) == -1.5
    assert neutral_cell("lab-01") == "lab-01"


def test_every_output_csv_neutralises_a_formula_in_the_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = hostile_copy(tmp_path / "a", host_id=FORMULA, guest="@SUM(1+1)*cmd")
    second = hostile_copy(tmp_path / "b", host_id="-2+3+cmd|' /C calc'!A0")
    assert main(["report", str(first), "--out", str(tmp_path / "report")]) == 0
    assert main(["compare", str(first), str(second), "--out", str(tmp_path / "cmp")]) == 0
    written = sorted((tmp_path / "report").glob("*.csv")) + sorted((tmp_path / "cmp").glob("*.csv"))
    names = {p.name for p in written}
    assert {"summary.csv", "claims.csv", "spectrum.csv", "ratios.csv"} <= names
    seen_formula = seen_negative = False
    for path in written:
        for cell in cells(path):
            if cell.startswith(FORMULA_STARTS):
                assert _is_number(cell), f"{path.name}: formula cell {cell!r}"
                seen_negative |= cell.startswith("-")
            seen_formula |= cell == "'" + FORMULA
    assert seen_formula  # the hostile host id is there, neutralised
    assert seen_negative  # a negative number (host_used_delta_bytes) stays a number
    with open(tmp_path / "report" / "summary.csv", encoding="utf-8") as f:
        assert {r["guest"] for r in csv.DictReader(f)} == {"'@SUM(1+1)*cmd"}
    capsys.readouterr()


HOSTILE_HOST = "lab\n### evil <script>alert(1)</script> | x \x1b[31mred\x1b[0m\x07"


def test_markdown_and_terminal_show_input_text_as_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from markdown_it import MarkdownIt

    csv_path = hostile_copy(tmp_path / "a", host_id=HOSTILE_HOST, guest="<img src=x onerror=1>")
    other = hostile_copy(tmp_path / "b", host_id="b|c\r\n<b>bold</b>")
    assert main(["report", str(csv_path), "--out", str(tmp_path / "report")]) == 0
    assert main(["compare", str(csv_path), str(other), "--out", str(tmp_path / "cmp")]) == 0
    assert main(["slides", str(csv_path), "--out", str(tmp_path / "deck.pptx")]) == 0
    printed = capsys.readouterr()
    for stream in (printed.out, printed.err):
        assert "\x1b" not in stream and "\x07" not in stream  # no ESC sequence, no bell
    assert "red" in printed.out  # the host id is shown, without its control characters
    for md_path in (tmp_path / "report" / "report.md", tmp_path / "cmp" / "compare.md"):
        md = md_path.read_text(encoding="utf-8")
        tokens = MarkdownIt("commonmark").enable("table").parse(md)
        kinds = {t.type for t in tokens} | {c.type for t in tokens for c in t.children or []}
        assert not kinds & {"html_block", "html_inline"}, md_path.name  # no raw HTML
        headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
        assert not [h for h in headings if h.startswith("evil")], md_path.name
        assert "\x1b" not in md
    report_md = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    host_headings = [line for line in report_md.splitlines() if line.startswith("### ")]
    assert host_headings == ["### `lab ### evil <script>alert(1)</script> | x  [31mred [0m `"]
