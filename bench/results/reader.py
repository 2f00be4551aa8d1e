"""The tolerant reader: the good rows of a CSV written by any vmbench version, every bad line
named (file, line, column), defaults for the optional columns an older CSV lacks."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import VmbenchError
from bench.results.schema import COLUMNS, PHASES, STATUSES, unit_of

# The reader's gate: what a value, a count and a field may be. A line outside these bounds is
# malformed (skipped, with one warning naming file, line and column), never a number that
# would turn a verdict into "-inf TiB" or crash a chart's axis.
MAX_FIELD_CHARS = 65_536  # a detail is one line of words; a longer field is not vmbench's
MAX_INSTANCES = 100_000  # instances running at once on one host
MAX_TRIAL = 1_000_000
MAX_VALUE = 1e18  # an exabyte, or 30 billion years: beyond it a number is not a measurement
SIGNED_METRICS = frozenset({"host_used_delta_bytes"})  # MemAvailable can grow during a trial


@dataclass(frozen=True)
class OptionalColumn:
    """A column an older or hand-made CSV may lack: how each row is filled without it."""

    default: Callable[[str], str]  # the row's metric -> the value
    filled_with: str  # how the missing column is filled, for the one warning that says so


# What a reader can do without: a CSV lacking one of these is read with the default ...
OPTIONAL_COLUMNS: dict[str, OptionalColumn] = {
    "unit": OptionalColumn(unit_of, "the metric's SI unit"),
    "detail": OptionalColumn(lambda metric: "", "empty"),
    "started_at": OptionalColumn(lambda metric: "", "empty (trial start times unknown)"),
    "kind": OptionalColumn(lambda metric: "", "each backend's kind, derived from its name"),
}
# ... and what it needs from a CSV written by any vmbench version, old or new: the rest.
REQUIRED_COLUMNS = tuple(c for c in COLUMNS if c not in OPTIONAL_COLUMNS)


class ResultsSchemaError(VmbenchError, ValueError):
    """A CSV the reader refuses: its message names the file, the column and what was expected."""


@dataclass(frozen=True)
class BadLine:
    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: skipped: {self.reason}"


@dataclass
class ResultsFile:
    """The good rows of one CSV (as this version's COLUMNS), and what the reader had to adapt.

    Held by column, each column's equal texts one string: a long run's CSV repeats the same
    few hosts, engines and details on every line, and a row of dicts would hold each of them
    again (a 50 MB CSV took over 300 MB that way)."""

    path: Path
    columns: dict[str, list[str]]  # COLUMNS -> one text per good row
    bad: list[BadLine]
    missing: list[str]  # optional columns the file lacks (an older or hand-made CSV)
    unknown: list[str]  # columns this version does not know (a newer CSV): ignored

    def __len__(self) -> int:
        return len(self.columns[COLUMNS[0]])

    @property
    def rows(self) -> list[dict[str, str]]:
        """The good rows, one dict each (COLUMNS order)."""
        return [dict(zip(COLUMNS, values)) for values in zip(*self.columns.values())]


def read_results(path: Path) -> ResultsFile:
    """Read a results CSV written by any vmbench version, keeping good rows, naming bad lines.

    Tolerant by design: a truncated or hand-edited CSV still yields its good rows, an older
    one gets defaults for the optional columns it lacks, a newer one has its unknown columns
    ignored. Raises ResultsSchemaError when a required column is missing.
    """
    path = Path(path)
    # utf-8-sig: a CSV saved by a spreadsheet may start with a byte-order mark.
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise ResultsSchemaError(
                f"{path}: empty file: expected a vmbench results CSV with the header "
                + ",".join(COLUMNS)
            )
        known = check_header(path, header)
        missing = [c for c in OPTIONAL_COLUMNS if c not in known]
        good = _Columns(known)
        bad: list[BadLine] = []
        for record in _records(reader, path, bad):
            if len(record) != len(header):
                reason = (
                    f"expected {len(header)} fields (the header's columns), found {len(record)}"
                )
                bad.append(BadLine(path, reader.line_num, reason))
                continue
            reason = _row_problem({column: record[i] for column, i in good.checked.items()})
            if reason:
                bad.append(BadLine(path, reader.line_num, reason))
            else:
                good.add(record)
    unknown = [c for c in header if c not in COLUMNS]
    return ResultsFile(path, good.finished(), bad, missing, unknown)


class _Columns:
    """Good records gathered by column, each distinct text kept once (see ResultsFile); a
    batch of records at a time, turned into columns at once."""

    BATCH = 8192

    def __init__(self, known: dict[str, int]) -> None:
        self.known = known  # column -> its position in a record
        self.checked = {c: known[c] for c in CHECKED_COLUMNS}
        self.columns: dict[str, list[str]] = {c: [] for c in COLUMNS}
        self._seen: dict[str, dict[str, str]] = {c: {} for c in COLUMNS if c not in _UNIQUE}
        self._batch: list[list[str]] = []

    def add(self, record: list[str]) -> None:
        self._batch.append(record)
        if len(self._batch) >= self.BATCH:
            self._flush()

    def finished(self) -> dict[str, list[str]]:
        self._flush()
        return self.columns

    def _flush(self) -> None:
        if not self._batch:
            return
        by_position = list(zip(*self._batch, strict=True))
        metrics = by_position[self.known["metric"]]
        for column, values in self.columns.items():
            texts: Sequence[str]
            if column in self.known:
                texts = by_position[self.known[column]]
            else:  # an optional column the file lacks
                texts = [OPTIONAL_COLUMNS[column].default(metric) for metric in metrics]
            seen = self._seen.get(column)
            values.extend(texts if seen is None else [seen.setdefault(t, t) for t in texts])
        self._batch = []


_UNIQUE = ("value",)  # a measured value seldom repeats: nothing to share


def _records(reader: Any, path: Path, bad: list[BadLine]) -> Iterator[list[str]]:
    """The reader's records; a line the csv module refuses (a field over MAX_FIELD_CHARS, a
    NUL byte) is a bad line, and reading goes on with the next one."""
    csv.field_size_limit(MAX_FIELD_CHARS)
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            bad.append(BadLine(path, reader.line_num, f"unreadable line: {e}"))


def read_rows(path: Path) -> tuple[list[dict[str, str]], list[BadLine]]:
    """The good rows and the bad lines of a CSV; a refused header is one bad line (line 1)."""
    try:
        results = read_results(path)
    except ResultsSchemaError as e:
        return [], [BadLine(Path(path), 1, str(e).removeprefix(f"{path}: "))]
    return results.rows, results.bad


def check_header(path: Path, header: list[str]) -> dict[str, int]:
    """Known column -> its position in this file; ResultsSchemaError naming what is wrong."""
    doubled = sorted({c for c in header if header.count(c) > 1})
    if doubled:
        raise ResultsSchemaError(f"{path}: column {doubled[0]!r} appears more than once")
    absent = [c for c in REQUIRED_COLUMNS if c not in header]
    needs = "a vmbench results CSV needs the columns " + ",".join(REQUIRED_COLUMNS)
    if len(absent) == len(REQUIRED_COLUMNS):
        raise ResultsSchemaError(f"{path}: header is not a vmbench results CSV header: {needs}")
    if absent:
        what = f"column {absent[0]!r}" if len(absent) == 1 else "columns " + ", ".join(absent)
        raise ResultsSchemaError(f"{path}: header has no {what}: {needs}")
    return {c: header.index(c) for c in COLUMNS if c in header}


CHECKED_COLUMNS = ("metric", "value", "instances", "trial", "status", "phase")  # all required


def _row_problem(row: dict[str, str]) -> str:
    """Why a row (its CHECKED_COLUMNS) is malformed, or ''."""
    problem = _value_problem(row["metric"], row["value"])
    if problem:
        return problem
    for column, largest in (("instances", MAX_INSTANCES), ("trial", MAX_TRIAL)):
        try:
            number = int(row[column])
        except ValueError:
            return f"column {column}: {row[column][:40]!r} is not a whole number"
        if not 0 <= number <= largest:
            return f"column {column}: {number} is outside 0..{largest}"
    if row["status"] not in STATUSES:
        return f"status {row['status']!r} is not one of {', '.join(STATUSES)}"
    if row["phase"] not in PHASES:
        return f"phase {row['phase']!r} is not one of {', '.join(PHASES)}"
    return ""


def _value_problem(metric: str, text: str) -> str:
    """Why ``text`` cannot be ``metric``'s value ('' when it can): a finite number within
    MAX_VALUE, not negative for a time or a byte count, 0 or 1 for a fact."""
    if not text:
        return ""
    try:
        value = float(text)
    except ValueError:
        return f"column value: {text[:40]!r} is not a number"
    if not math.isfinite(value) or abs(value) > MAX_VALUE:
        return f"column value: {text[:40]} is not a finite measurement (metric {metric})"
    unit = unit_of(metric)
    if unit in ("s", "B") and value < 0 and metric not in SIGNED_METRICS:
        return (
            f"column value: {text[:40]} is negative, expected a time or size >= 0 (metric {metric})"
        )
    if unit == "bool" and value not in (0.0, 1.0):
        return f"column value: {text[:40]} is not 0 or 1 (metric {metric})"
    return ""
