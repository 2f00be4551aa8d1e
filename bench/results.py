"""The results CSV: one row per measured value, appended and flushed per trial.

The schema is the contract between the measuring side (runner, backends) and the reading
side (report, charts, compare): a CSV written on one host must be readable on any other.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from bench.signals import shielded

COLUMNS = (
    "run_id",
    "host_id",
    "scenario",
    "guest",
    "backend",
    "accel",
    "instances",
    "trial",
    "phase",
    "metric",
    "value",
    "unit",
    "status",
    "detail",
    "started_at",
)

PHASES = ("build", "cold", "warm", "warmup")
STATUSES = ("ok", "failed", "timeout", "interrupted", "unsupported")
ACCELS = ("kvm", "tcg", "virtualbox", "hvf", "none")

# metric -> SI unit. Extend, never rename: CSVs from other hosts depend on these names.
METRIC_UNITS: dict[str, str] = {
    "ready_s": "s",
    "exit_s": "s",
    "guest_uptime_s": "s",
    "up_returned_s": "s",
    "build_s": "s",
    "import_s": "s",
    "all_ready_s": "s",
    "rss_bytes": "B",
    "uss_bytes": "B",
    "pss_bytes": "B",
    "cgroup_bytes": "B",
    "shim_pss_bytes": "B",
    "host_used_delta_bytes": "B",
    # Derived by the report, never written by a run: pss_bytes + shim_pss_bytes of one trial.
    "footprint_bytes": "B",
    "image_bytes": "B",
    "image_compressed_bytes": "B",
    "kernel_bytes": "B",
    "initramfs_bytes": "B",
    "disk_bytes": "B",
    "rootfs_bytes": "B",
    "kernel_matches_host": "bool",
    "runs_foreign_arch": "bool",
    # A trial that produced no number still leaves a row, with this metric and a status.
    "trial": "",
}


# A run id names a folder under the results folder and under the cache: nothing that could
# climb out of it (no '/', no '..'), nothing a shell or a Docker label would choke on.
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_run_id(text: str) -> str:
    """``text`` if it is a safe run id, else ValueError saying what one looks like."""
    if not RUN_ID_RE.match(text) or ".." in text:
        raise ValueError(
            f"run id {text!r} is not valid: expected letters, digits, '.', '_' and '-' "
            "(like 20261127T015547Z-host-fcde), no '/' or '..'"
        )
    return text


@dataclass(frozen=True)
class Row:
    run_id: str
    host_id: str
    scenario: str
    guest: str
    backend: str
    accel: str
    instances: int
    trial: int
    phase: str
    metric: str
    value: float | None
    unit: str
    status: str = "ok"
    detail: str = ""
    started_at: str = ""

    def as_csv(self) -> list[str]:
        values = asdict(self)
        value = values["value"]
        values["value"] = "" if value is None else repr(float(value))
        values["detail"] = " ".join(str(values["detail"]).split())  # one line, always
        return [str(values[c]) for c in COLUMNS]


assert tuple(f.name for f in fields(Row)) == COLUMNS


def unit_of(metric: str) -> str:
    return METRIC_UNITS.get(metric, "")


class ResultsWriteError(Exception):
    """Rows could not be written (disk full, ...); what was written before is kept intact."""

    def __init__(self, path: Path, error: OSError) -> None:
        self.errno = error.errno
        super().__init__(f"cannot write results to {path}: {error.strerror or error}")


class ResultWriter:
    """Appends whole trials to a CSV so a crash loses at most the trial in flight.

    Each trial is written with one ``write`` call and fsynced; a file that a previous crash
    left with a half line is cut back to its last complete line before appending. A write
    that fails half-way (ENOSPC) is cut back too, so the file always ends with a whole row.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            _cut_partial_line(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if new:
            self._write_text(_to_csv_text([list(COLUMNS)]))

    def write(self, rows: Iterable[Row]) -> None:
        text = _to_csv_text(row.as_csv() for row in rows)
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


def _cut_partial_line(path: Path) -> None:
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


@dataclass(frozen=True)
class BadLine:
    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: skipped: {self.reason}"


def read_rows(path: Path) -> tuple[list[dict[str, str]], list[BadLine]]:
    """Read a results CSV, keeping good rows and naming every bad line.

    Tolerant by design: a truncated or hand-edited CSV still yields its good rows.
    """
    path = Path(path)
    good: list[dict[str, str]] = []
    bad: list[BadLine] = []
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(header) != COLUMNS:
            return [], [BadLine(path, 1, f"header is not the vmbench schema ({','.join(COLUMNS)})")]
        for record in reader:
            line = reader.line_num
            reason = _row_problem(record)
            if reason:
                bad.append(BadLine(path, line, reason))
            else:
                good.append(dict(zip(COLUMNS, record, strict=True)))
    return good, bad


def _row_problem(record: list[str]) -> str:
    if len(record) != len(COLUMNS):
        return f"expected {len(COLUMNS)} fields, found {len(record)}"
    row = dict(zip(COLUMNS, record, strict=True))
    if row["value"]:
        try:
            float(row["value"])
        except ValueError:
            return f"value {row['value']!r} is not a number"
    try:
        int(row["instances"])
        int(row["trial"])
    except ValueError:
        return "instances and trial must be whole numbers"
    if row["status"] not in STATUSES:
        return f"status {row['status']!r} is not one of {', '.join(STATUSES)}"
    if row["phase"] not in PHASES:
        return f"phase {row['phase']!r} is not one of {', '.join(PHASES)}"
    return ""
