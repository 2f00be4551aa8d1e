"""The append-only writer: whole trials per write, fsynced, a half line left by a crash cut
back, a failed write cut back too, so the file always ends with a whole row."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path

from bench.errors import VmbenchError
from bench.results.reader import ResultsSchemaError, check_header
from bench.results.schema import COLUMNS, Row
from bench.signals import shielded


class ResultsWriteError(VmbenchError):
    """Rows could not be written (disk full, ...); what was written before is kept intact."""

    def __init__(self, path: Path, error: OSError | str) -> None:
        self.errno = error.errno if isinstance(error, OSError) else None
        reason = error.strerror or error if isinstance(error, OSError) else error
        super().__init__(f"cannot write results to {path}: {reason}")


class ResultWriter:
    """Appends whole trials to a CSV so a crash loses at most the trial in flight.

    Each trial is written with one ``write`` call and fsynced; a file that a previous crash
    left with a half line is cut back to its last complete line before appending. A write
    that fails half-way (ENOSPC) is cut back too, so the file always ends with a whole row.
    Rows appended to a CSV an older version started follow that file's header.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            _cut_partial_line(self.path)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._columns = COLUMNS if new else _columns_of(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if new:
            self._write_text(_to_csv_text([list(COLUMNS)]))

    def write(self, rows: Iterable[Row]) -> None:
        text = _to_csv_text(row.as_csv(self._columns) for row in rows)
        if text:
            self._write_text(text)

    def _write_text(self, text: str) -> None:
        data = text.encode("utf-8")
        with shielded():  # a Ctrl-C lands before or after a trial's rows, never inside them
            good = os.fstat(self._fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
                os.fsync(self._fd)
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, good)  # keep only whole rows
                raise ResultsWriteError(self.path, e) from None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _to_csv_text(rows: Iterable[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows(rows)
    return buffer.getvalue()


def _columns_of(path: Path) -> tuple[str, ...]:
    """The known columns of an existing CSV's header, in its order."""
    # utf-8-sig: a CSV saved by a spreadsheet may start with a byte-order mark.
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        header = next(csv.reader(f), [])
    try:
        known = check_header(path, header)
    except ResultsSchemaError as e:
        raise ResultsWriteError(path, str(e).removeprefix(f"{path}: ")) from None
    if len(known) != len(header):
        unknown = ", ".join(c for c in header if c not in known)
        raise ResultsWriteError(
            path, f"its header has columns this vmbench does not know: {unknown}"
        )
    return tuple(header)


def _cut_partial_line(path: Path) -> None:
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)
