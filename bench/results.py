"""The results CSV: one row per measured value, appended and flushed per trial.

The schema is the contract between the measuring side (runner, backends) and the reading
side (report, charts, compare): a CSV written on one host must be readable on any other.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from bench.errors import VmbenchError
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
    "kind",
)

PHASES = ("build", "cold", "warm", "warmup")
STATUSES = ("ok", "failed", "timeout", "interrupted", "unsupported")
# none: a container (no hypervisor); unknown: a VM whose accelerator is not known, which
# reports never count as proven hardware virtualization.
ACCELS = ("kvm", "tcg", "virtualbox", "hvf", "none", "unknown")
# Where an engine sits on the isolation spectrum (docs/architecture.md); the claims compare the
# container kind with the vm kind.
KINDS = ("container", "system-container", "microvm", "vm")

# metric -> SI unit. Extend, never rename: CSVs from other hosts depend on these names.
METRIC_UNITS: dict[str, str] = {
    "ready_s": "s",
    "exit_s": "s",
    "guest_uptime_s": "s",
    "up_returned_s": "s",
    "build_s": "s",
    "import_s": "s",
    "all_ready_s": "s",
    # A VM booted through firmware and a bootloader (qemu boot = "bios" | "uefi"), host clock:
    # launch -> the bootloader's first output, then -> the kernel's start (READY less uptime).
    "firmware_s": "s",
    "bootloader_s": "s",
    # Workload ``cpu``: host clock between the guest's VMBENCH WORK START and END lines,
    # a fixed CPU-bound job (the emulator's slowdown, VM over container).
    "cpu_work_s": "s",
    "rss_bytes": "B",
    "uss_bytes": "B",
    "pss_bytes": "B",
    # A VM's pss_bytes by what holds it (bench/run/smaps.py), from the same samples: its
    # guest RAM, the TCG translation cache (0 under KVM) and the rest of the hypervisor.
    "vm_ram_pss_bytes": "B",
    "tcg_cache_pss_bytes": "B",
    "vmm_pss_bytes": "B",
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
    "bootloader_bytes": "B",  # the bootloader's own files in a boot disk (in disk_bytes too)
    "firmware_vars_bytes": "B",  # a UEFI VM's own variable store (OVMF_VARS)
    "rootfs_bytes": "B",
    "kernel_matches_host": "bool",
    "runs_foreign_arch": "bool",
    # A system that is not Linux (memtest86+, detail os=...): 1 where it ran, 0 where the
    # engine refused it (exec format error, in the engine's own words).
    "runs_foreign_os": "bool",
    # A trial that produced no number still leaves a row, with this metric and a status.
    "trial": "",
    # The host around each trial (bench/run/hostload.py), beside its measurements: the 1-min
    # load average at its end; the CPU other processes than this run's (and its engine's
    # daemons) used during it, in % of all cores (/proc/stat less ours); the share of its
    # time some task waited for a CPU (/proc/pressure/cpu, where the kernel has PSI); the
    # CPU time the hypervisor took from this host, if it is a VM (steal, % of all cores).
    "host_load_1m": "",
    "host_other_cpu_pct": "%",
    "host_cpu_pressure_pct": "%",
    "host_steal_pct": "%",
    # repetitions = "auto" (and a time budget): per engine of a block (trial 0), the measured
    # trials it got; detail: stopped=target-reached|max-reached|budget-over, ci_pct=...
    "repetitions": "",
}


# --- declared facts: the key=value words of the ``detail`` column ----------------------------


@dataclass(frozen=True)
class DetailKey:
    """A fact a row carries in its ``detail`` as ``key=value``: declared here once, so the
    writers (runner, trials, engines) and the readers (dataset, claims, charts) agree on it.

    ``column``: the dataset parses it into a typed column of that name (a fact every row of
    a kind has); the others stay in the row's parsed ``facts``."""

    name: str
    type: type  # str, int or float: what parse_detail returns for its value
    meaning: str
    column: bool = False


DETAIL_KEYS: dict[str, DetailKey] = {
    key.name: key
    for key in (
        DetailKey(
            "workload", str, "what the guest ran (ready, idle, ...): every trial's rows", True
        ),
        DetailKey("boot", str, "how a VM booted: kernel, bios, uefi or disk", True),
        DetailKey("guest_init", str, "the guest's PID 1 as its READY line names it", True),
        DetailKey("guest_kernel", str, "the kernel release the guest reported", True),
        DetailKey("host_kernel", str, "the host's kernel release beside it", True),
        DetailKey("guest_arch", str, "the architecture a foreign-arch guest was built for", True),
        DetailKey("host_arch", str, "the host's architecture (dpkg name: amd64, arm64)", True),
        DetailKey("shim", str, "the process a shim_pss_bytes row measured (conmon, ...)", True),
        DetailKey("readiness", str, "what READY means: serial-marker or ssh-reachable", True),
        DetailKey("marker", str, "banner: READY is another system's boot banner", True),
        DetailKey("os", str, "the system a guest that is not Linux boots (memtest86+)", True),
        DetailKey("artefact", str, "which file a size row measured (kernel, disk, ...)", True),
        DetailKey("instance", str, "k/n: the k-th of n instances started together"),
        DetailKey("arch", str, "the architecture the guest's uname -m reported"),
        DetailKey("kernel", str, "the kernel a foreign-arch guest reported"),
        DetailKey("memory_mib", int, "the guest RAM a VM was given (MiB)"),
        DetailKey("machine", str, "the qemu machine type and its options"),
        DetailKey("provider", str, "Vagrant's provider (libvirt, virtualbox)"),
        DetailKey("box", str, "the Vagrant box a trial booted"),
        DetailKey("domain_type", str, "libvirt's domain type (kvm, qemu)"),
        DetailKey("container", str, "the container's short id"),
        DetailKey("runs", str, "what a container runs as PID 1"),
        DetailKey("tag", str, "the container image's tag"),
        DetailKey("podman_flags", str, "extra flags podman needed on this host"),
        DetailKey("virtual_bytes", int, "a disk image's virtual size"),
        DetailKey("scenario_guest", str, "the guest a scenario planned (a resumed run's check)"),
        DetailKey("banner", str, "another system's banner, quoted (its first word as a fact)"),
        # A repetitions row (repetitions = "auto", a time budget): why its group stopped.
        DetailKey("stopped", str, "target-reached, max-reached or budget-over"),
        DetailKey("target_ci_pct", float, "the scenario's target: CI within this % of the median"),
        DetailKey("ci_pct", str, "metric:% of each group, how far its median's CI reaches"),
    )
}
# A value may end a clause ("boot=disk: ...", "(arch=aarch64)"): that punctuation is not part
# of it.
_VALUE_END = ":;,)"


def parse_detail(detail: str) -> dict[str, str | int | float]:
    """The declared facts of a ``detail`` field, typed (``DETAIL_KEYS``): the one parser.

    Other words (free text, an error's reason) and keys this version does not declare are
    left out; a value that does not parse as its type is left out too, never guessed."""
    facts: dict[str, str | int | float] = {}
    for word in str(detail).split():
        key, sep, value = word.partition("=")
        declared = DETAIL_KEYS.get(key) if sep else None
        if declared is None or key in facts:
            continue
        value = value.rstrip(_VALUE_END)
        if declared.type is str:
            facts[key] = value
            continue
        try:
            facts[key] = declared.type(value)
        except ValueError:
            continue
    return facts


def detail_reason(detail: str) -> str:
    """A failed or unsupported trial's reason: its detail less the leading key=value words
    every row of the trial carries (workload=, boot=)."""
    words = str(detail).split()
    start = next((i for i, word in enumerate(words) if "=" not in word), len(words))
    return " ".join(words[start:])


def detail_word(key: str, value: object) -> str:
    """``key=value`` for a declared key (KeyError for one that is not): for the writers."""
    return f"{DETAIL_KEYS[key].name}={value}"


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
    kind: str = ""  # empty: the reading side derives it from the backend name

    def as_csv(self, columns: tuple[str, ...] = COLUMNS) -> list[str]:
        values = asdict(self)
        value = values["value"]
        values["value"] = "" if value is None else repr(float(value))
        values["detail"] = " ".join(str(values["detail"]).split())  # one line, always
        return [str(values[c]) for c in columns]


assert tuple(f.name for f in fields(Row)) == COLUMNS


def unit_of(metric: str) -> str:
    return METRIC_UNITS.get(metric, "")


# The reader's gate: what a value, a count and a field may be. A line outside these bounds is
# malformed (skipped, with one warning naming file, line and column), never a number that
# would turn a verdict into "-inf TiB" or crash a chart's axis.
MAX_FIELD_CHARS = 65_536  # a detail is one line of words; a longer field is not vmbench's
MAX_INSTANCES = 100_000  # instances running at once on one host
MAX_TRIAL = 1_000_000
MAX_VALUE = 1e18  # an exabyte, or 30 billion years: beyond it a number is not a measurement
SIGNED_METRICS = frozenset({"host_used_delta_bytes"})  # MemAvailable can grow during a trial


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
        known = _check_header(path, header)
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


@dataclass(frozen=True)
class OptionalColumn:
    """A column an older or hand-made CSV may lack: how each row is filled without it."""

    default: Callable[[dict[str, str]], str]  # the row (other columns read) -> the value
    filled_with: str  # how the missing column is filled, for the one warning that says so


# What a reader can do without: a CSV lacking one of these is read with the default ...
OPTIONAL_COLUMNS: dict[str, OptionalColumn] = {
    "unit": OptionalColumn(lambda row: unit_of(row["metric"]), "the metric's SI unit"),
    "detail": OptionalColumn(lambda row: "", "empty"),
    "started_at": OptionalColumn(lambda row: "", "empty (trial start times unknown)"),
    "kind": OptionalColumn(lambda row: "", "each backend's kind, derived from its name"),
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
    """The good rows of one CSV (as this version's COLUMNS), and what the reader had to adapt."""

    path: Path
    rows: list[dict[str, str]]
    bad: list[BadLine]
    missing: list[str]  # optional columns the file lacks (an older or hand-made CSV)
    unknown: list[str]  # columns this version does not know (a newer CSV): ignored


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
        known = _check_header(path, header)
        missing = [c for c in OPTIONAL_COLUMNS if c not in known]
        good: list[dict[str, str]] = []
        bad: list[BadLine] = []
        for record in _records(reader, path, bad):
            if len(record) != len(header):
                reason = (
                    f"expected {len(header)} fields (the header's columns), found {len(record)}"
                )
                bad.append(BadLine(path, reader.line_num, reason))
                continue
            row = {column: record[i] for column, i in known.items()}
            for column in missing:
                row[column] = OPTIONAL_COLUMNS[column].default(row)
            reason = _row_problem(row)
            if reason:
                bad.append(BadLine(path, reader.line_num, reason))
            else:
                good.append({c: row[c] for c in COLUMNS})
    unknown = [c for c in header if c not in COLUMNS]
    return ResultsFile(path, good, bad, missing, unknown)


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


def _check_header(path: Path, header: list[str]) -> dict[str, int]:
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


def _row_problem(row: dict[str, str]) -> str:
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
