"""The reader's gate: a value no measurement can have, or a field no vmbench writes, is a
malformed line (skipped, one warning naming file, line and column), never a crash or a
verdict such as "-inf TiB". Each case is a line of the committed default-suite run, changed."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.reports import REAL_RUN

from bench.analysis.dataset import load
from bench.results import MAX_FIELD_CHARS, read_results

HEADER = REAL_RUN.read_text().splitlines()[0].split(",")


def first_line_number(path: Path, **where: str) -> int:
    """The 1-based line number of the first row matching ``where`` (single-line rows)."""
    with open(path, newline="") as f:
        for number, row in enumerate(csv.DictReader(f), start=2):
            if all(row[k] == v for k, v in where.items()):
                return number
    raise AssertionError(f"no row with {where}")


def changed_copy(tmp_path: Path, line: int, **changes: str) -> Path:
    """A copy of the committed run (with its host.json) whose ``line`` has ``changes``."""
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(REAL_RUN.parent / "host.json", folder / "host.json")
    with open(REAL_RUN, newline="") as f:
        records = list(csv.reader(f))
    for column, value in changes.items():
        records[line - 1][HEADER.index(column)] = value
    path = folder / "results.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(records)
    return path


CASES = {
    "inf in a VM's PSS": ({"backend": "qemu", "metric": "pss_bytes"}, {"value": "inf"}, "value"),
    "nan ready time": ({"backend": "qemu", "metric": "ready_s"}, {"value": "nan"}, "value"),
    "1e308 ready time": ({"backend": "docker", "metric": "ready_s"}, {"value": "1e308"}, "value"),
    "1e308 image size": ({"metric": "image_bytes"}, {"value": "1e308"}, "value"),
    "negative size": ({"metric": "image_bytes"}, {"value": "-5"}, "value"),
    "fact of 7": ({"metric": "kernel_matches_host"}, {"value": "7"}, "value"),
    "10^23 instances": ({"metric": "pss_bytes"}, {"instances": "1" + "0" * 23}, "instances"),
    "negative trial": ({"metric": "ready_s"}, {"trial": "-1"}, "trial"),
    "over-long detail": ({"metric": "ready_s"}, {"detail": "x" * 131_073}, "unreadable"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_value_no_measurement_has_is_one_skipped_line(tmp_path, case):
    where, changes, named = CASES[case]
    line = first_line_number(REAL_RUN, **where)
    path = changed_copy(tmp_path, line, **changes)
    results = read_results(path)
    assert [b.line for b in results.bad] == [line]
    assert named in results.bad[0].reason
    assert len(results.rows) == len(read_results(REAL_RUN).rows) - 1


def test_report_of_bad_values_warns_once_and_draws_everything(tmp_path):
    """inf, 1e308 and a negative size at once: exit 0, the three lines named, every chart
    drawn, no traceback and no numpy RuntimeWarning on stderr."""
    inf_line = first_line_number(REAL_RUN, backend="qemu", metric="pss_bytes")
    path = changed_copy(tmp_path, inf_line, value="inf")
    huge = first_line_number(path, metric="ready_s", backend="docker")
    negative = first_line_number(path, metric="image_bytes")
    records = list(csv.reader(path.open(newline="")))
    records[huge - 1][HEADER.index("value")] = "1e308"
    records[negative - 1][HEADER.index("value")] = "-1"
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(records)
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "bench.cli", "report", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "RuntimeWarning" not in done.stderr
    for line in (inf_line, huge, negative):
        assert done.stderr.count(f"{path}:{line}: skipped:") == 1, done.stderr
    report = (out / "report.md").read_text()
    verdicts = report.split("## Warnings")[0]
    assert not re.search(r"(?<![a-z])-?inf(?![a-z])|\bnan\b", verdicts)  # no "-inf TiB"
    assert (out / "memory.png").is_file() and (out / "ready_time.png").is_file()


def test_the_field_limit_is_the_gate_not_the_csv_module_default(tmp_path):
    """A detail just under the gate reads; the csv module's own default (131,072) is not what
    decides."""
    line = first_line_number(REAL_RUN, metric="ready_s")
    path = changed_copy(tmp_path, line, detail="y" * (MAX_FIELD_CHARS - 1))
    assert read_results(path).bad == []
    assert len(load([path]).rows) == len(load([REAL_RUN]).rows)
