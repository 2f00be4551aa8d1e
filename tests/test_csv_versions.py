"""CSVs from other vmbench versions: older ones lack columns, newer ones add some.

Comparing hosts means comparing CSVs written months apart, so the reader accepts both and
says once what it adapted; it refuses only a CSV without a required column, naming it.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.reports import full_host, host_meta, write_csv

from bench.analysis.claims import evaluate
from bench.analysis.dataset import ReportInputError, load
from bench.results import (
    COLUMNS,
    REQUIRED_COLUMNS,
    ResultsSchemaError,
    ResultsWriteError,
    ResultWriter,
    Row,
    read_results,
)


def rewrite_columns(path: Path, drop: tuple[str, ...] = (), add: dict[str, str] | None = None):
    """Rewrite a CSV without some columns and with extra ones (inserted as the third)."""
    with open(path, newline="") as f:
        records = list(csv.DictReader(f))
    header = [c for c in COLUMNS if c not in drop]
    header[2:2] = list(add or {})
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, header, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows({**r, **(add or {})} for r in records)
    return path


def a_csv(tmp_path: Path, host: str = "lab1", name: str = "results.csv") -> Path:
    return write_csv(tmp_path / host / name, full_host(host), host_meta(host))


def test_older_csv_gets_defaults_and_one_warning_per_missing_column(tmp_path):
    path = rewrite_columns(a_csv(tmp_path), drop=("started_at", "kind", "unit"))
    read = read_results(path)
    assert read.bad == [] and read.missing == ["unit", "started_at", "kind"]
    ready = next(r for r in read.rows if r["metric"] == "ready_s")
    assert ready["started_at"] == "" and ready["kind"] == "" and ready["unit"] == "s"
    ds = load([path])
    about = [w for w in ds.warnings if "started_at" in w]
    assert len(about) == 1 and str(path) in about[0] and "older" in about[0]
    assert len([w for w in ds.warnings if "'kind'" in w]) == 1
    # The kind comes from the backend name, so the claims are judged as before.
    assert set(ds.rows.loc[ds.rows.backend == "docker", "kind"]) == {"container"}
    verdicts = evaluate(ds).set_index(["claim", "vm"]).verdict
    assert verdicts["speed", "qemu"] == "supported" and verdicts["kernel", "qemu"] == "supported"


def test_newer_csv_with_an_unknown_column_is_read_by_name_and_warned_once(tmp_path):
    original = read_results(a_csv(tmp_path, "lab2")).rows
    path = rewrite_columns(a_csv(tmp_path), add={"cpu_temp_c": "61.5"})
    read = read_results(path)
    assert read.bad == [] and read.unknown == ["cpu_temp_c"] and read.missing == []
    # Columns are matched by name: the extra third column shifts nothing.
    assert [r["value"] for r in read.rows] == [r["value"] for r in original]
    assert all(set(r) == set(COLUMNS) for r in read.rows)
    warnings = [w for w in load([path]).warnings if "cpu_temp_c" in w]
    assert len(warnings) == 1 and "ignored" in warnings[0] and str(path) in warnings[0]


def test_many_older_csvs_give_one_warning_not_one_per_file(tmp_path):
    paths = [rewrite_columns(a_csv(tmp_path, f"h{i}"), drop=("started_at",)) for i in range(6)]
    warnings = [w for w in load(paths).warnings if "started_at" in w]
    assert len(warnings) == 1 and "6 of 6 CSVs" in warnings[0]


@pytest.mark.parametrize("column", ["host_id", "value", "status"])
def test_missing_required_column_is_refused_naming_file_and_column(tmp_path, column):
    path = rewrite_columns(a_csv(tmp_path), drop=(column,))
    with pytest.raises(ResultsSchemaError) as caught:
        read_results(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: header has no column {column!r}")
    assert ",".join(REQUIRED_COLUMNS) in message
    with pytest.raises(ReportInputError, match=f"no column '{column}'"):
        load([a_csv(tmp_path, "lab2"), path])  # one bad file among good ones still refuses


def test_report_of_a_csv_without_a_required_column_is_one_line_exit_2(tmp_path):
    path = rewrite_columns(a_csv(tmp_path), drop=("metric",))
    result = subprocess.run(
        [sys.executable, "-m", "bench.cli", "report", str(path), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr == f"vmbench: {path}: header has no column 'metric': " + (
        "a vmbench results CSV needs the columns " + ",".join(REQUIRED_COLUMNS) + "\n"
    )
    assert not (tmp_path / "r").exists()


def test_kind_column_wins_over_the_backend_name_and_unknown_kinds_are_named(tmp_path):
    rows = full_host("lab1", vms=("qemu",))
    rows = [r if r.backend != "qemu" else Row(**{**r.__dict__, "kind": "microvm"}) for r in rows]
    rows.append(Row(**{**rows[0].__dict__, "backend": "warp", "kind": "unikernel"}))
    ds = load([write_csv(tmp_path / "results.csv", rows)])
    kinds = ds.rows.groupby("backend").kind.agg(set)
    assert kinds["qemu"] == {"microvm"} and kinds["docker"] == {"container"}
    assert any("kind 'unikernel'" in w for w in ds.warnings)
    # qemu declared itself a microvm, so no container-vs-vm claim can use it.
    assert set(ds.rows[ds.rows.kind == "vm"].backend) == set()


def test_writer_appends_to_an_older_csv_in_its_own_columns(tmp_path):
    path = rewrite_columns(a_csv(tmp_path), drop=("started_at", "kind"))
    before = len(read_results(path).rows)
    row = full_host("lab1")[0]
    with ResultWriter(path) as writer:
        writer.write([Row(**{**row.__dict__, "trial": 77, "kind": "container"})])
    read = read_results(path)
    assert read.bad == [] and len(read.rows) == before + 1
    assert read.rows[-1]["trial"] == "77" and read.rows[-1]["value"] == repr(row.value)


def test_writer_refuses_to_append_to_a_csv_of_a_newer_schema(tmp_path):
    path = rewrite_columns(a_csv(tmp_path), add={"cpu_temp_c": "61.5"})
    with pytest.raises(ResultsWriteError, match="cpu_temp_c"):
        ResultWriter(path)


def test_a_spreadsheet_saved_csv_with_crlf_and_a_byte_order_mark_is_read(tmp_path):
    path = a_csv(tmp_path)
    rows = read_results(path).rows
    text = path.read_text(encoding="utf-8").replace("\n", "\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    read = read_results(path)
    assert read.bad == [] and read.missing == [] and read.rows == rows
