"""Property: whatever a results CSV holds (random values, strings, lengths, encodings,
missing columns), `report`, `compare` and `slides` exit 0 or 2 and never print a traceback.

Each example starts from rows of the committed default-suite run and damages them; the
commands run in-process (bench.cli.main), so an exception is a test failure with its
traceback. A bounded, derandomised number of examples keeps it fast and repeatable."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import pytest
from helpers.reports import REAL_RUN
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.cli import main
from bench.results import COLUMNS, OPTIONAL_COLUMNS

with open(REAL_RUN, newline="", encoding="utf-8") as _f:
    BASE = list(csv.DictReader(_f))

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=40)
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["", "nan", "-inf", "1e308", "-0.0", "=1+1", "0x10", " 1 "]),
    TEXT,
)
CELL = st.one_of(VALUES, TEXT, st.integers(0, 70_000).map(lambda n: "x" * n))


@st.composite
def damaged_csv(draw: st.DrawFn) -> bytes:
    """Bytes of a results CSV: some real rows, some cells replaced, some columns gone, in
    some encoding."""
    start = draw(st.integers(0, len(BASE) - 1))
    rows = [dict(r) for r in BASE[start : start + draw(st.integers(1, 200))]]
    for _ in range(draw(st.integers(0, 12))):
        if rows:
            row = rows[draw(st.integers(0, len(rows) - 1))]
            row[draw(st.sampled_from(COLUMNS[:15]))] = draw(CELL)
    optional = [c for c in COLUMNS if c in OPTIONAL_COLUMNS]
    dropped = draw(
        st.one_of(
            st.just(set()),
            st.sets(st.sampled_from(optional), max_size=2),
            st.sets(st.sampled_from(COLUMNS), max_size=2),
        )
    )
    header = [c for c in BASE[0] if c not in dropped] + draw(st.lists(TEXT, max_size=2))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(header)
    writer.writerows([r.get(c, "") for c in header] for r in rows)
    text = buffer.getvalue()
    if draw(st.integers(0, 3)) == 0:  # a line cut short, as a crash leaves it
        text = text[: draw(st.integers(0, len(text)))]
    encoding = draw(st.sampled_from(["utf-8"] * 4 + ["utf-8-sig", "latin-1", "utf-16", "cp1252"]))
    return text.encode(encoding, errors="replace")


@settings(
    max_examples=16,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=damaged_csv(),
    other=damaged_csv(),
    command=st.sampled_from(["report", "compare", "slides"]),
)
def test_reading_commands_exit_0_or_2_on_any_csv(
    data: bytes, other: bytes, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        first, second = Path(tmp) / "a" / "results.csv", Path(tmp) / "b" / "results.csv"
        for path, content in ((first, data), (second, other)):
            path.parent.mkdir()
            path.write_bytes(content)
        if command == "compare":
            argv = ["compare", str(first), str(second), "--out", str(Path(tmp) / "cmp")]
        elif command == "slides":
            argv = ["slides", str(first), "--out", str(Path(tmp) / "deck.pptx")]
        else:
            argv = ["report", str(first), "--out", str(Path(tmp) / "report")]
        code = main(argv)
        printed = capsys.readouterr()
    assert code in (0, 2), (code, printed.err[-2000:])
    assert "Traceback" not in printed.out + printed.err
    if code == 2:  # refused in one line naming what is wrong
        errors = [
            line for line in printed.err.splitlines() if not line.startswith("vmbench: warning")
        ]
        assert len(errors) == 1 and errors[0].startswith("vmbench: "), printed.err[-2000:]
