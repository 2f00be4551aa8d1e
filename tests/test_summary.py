"""The one summarizer (summary.csv and the terminal table) and the one unit formatter."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from helpers.reports import full_host, row, write_csv
from rich.console import Console

from bench.analysis.dataset import load
from bench.analysis.summary import summarize
from bench.render.terminal import summary_table
from bench.units import accel_label, engine_label, human


def raw_values(path: Path, **match: str) -> np.ndarray:
    """Values of the CSV's ok rows matching every column=value given, read with csv alone."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [
            r
            for r in csv.DictReader(f)
            if r["status"] == "ok" and all(r[k] == v for k, v in match.items())
        ]
    return np.array([float(r["value"]) for r in rows])


@pytest.fixture(scope="module")
def fixture_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = full_host("h", accel="tcg")
    rows += [  # density rows at two sizes must not be pooled into one group
        row("h", "docker", "pss_bytes", v, instances=n, scenario="density", trial=t)
        for n, values in ((1, (2e6, 2.2e6)), (4, (8e6, 8.4e6)))
        for t, v in enumerate(values)
    ]
    return write_csv(tmp_path_factory.mktemp("summary") / "results.csv", rows)


def test_medians_and_counts_match_the_csv(fixture_csv: Path) -> None:
    summary = summarize(load([fixture_csv]))
    warm = summary[(summary.metric == "ready_s") & (summary.phase == "warm")]
    for backend in ("docker", "qemu"):
        expected = raw_values(fixture_csv, backend=backend, metric="ready_s", phase="warm")
        got = warm[warm.backend == backend].iloc[0]
        assert got.n == len(expected) == 10
        assert got["median"] == pytest.approx(np.median(expected))
        assert got["min"] == pytest.approx(expected.min())
        assert got.ci_low <= got["median"] <= got.ci_high
    assert "warmup" not in set(summary.phase)  # the 99 s warmup row is in no group
    assert warm[warm.backend == "qemu"].iloc[0].n_failed == 1  # the timeout row
    assert warm[warm.backend == "docker"].iloc[0].n_failed == 0


def test_instance_counts_are_separate_groups(fixture_csv: Path) -> None:
    summary = summarize(load([fixture_csv]))
    pss = summary[(summary.scenario == "density") & (summary.metric == "pss_bytes")]
    assert sorted(pss.instances) == [1, 4]
    assert pss[pss.instances == 4].iloc[0]["median"] == pytest.approx(8.2e6)


def test_terminal_table_is_the_same_summary(fixture_csv: Path) -> None:
    summary = summarize(load([fixture_csv]))
    table = summary_table(fixture_csv)
    assert table.row_count == len(summary)
    console = Console(width=220, record=True)
    console.print(table)
    text = console.export_text()
    assert "tcg (emulated)" in text
    qemu_ready = raw_values(fixture_csv, backend="qemu", metric="ready_s", phase="warm")
    assert human(float(np.median(qemu_ready)), "s") in text


def test_terminal_table_of_a_missing_file_says_why(tmp_path: Path) -> None:
    table = summary_table(tmp_path / "nope.csv")
    assert table.row_count == 0 and "no such results file" in str(table.caption)


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0, "B", "0 B"),
        (1023, "B", "1023 B"),
        (1024, "B", "1.0 KiB"),
        (1.5 * 1024**2, "B", "1.5 MiB"),
        (-3 * 1024**3, "B", "-3.0 GiB"),
        (5 * 1024**5, "B", "5120.0 TiB"),
        (0.2304, "s", "230 ms"),
        (-0.5, "s", "-500 ms"),
        (4.414, "s", "4.41 s"),
        (1.0, "bool", "1"),
        (3.0, "", "3"),
        (2.5, "Hz", "2.5 Hz"),
        (math.nan, "s", "n/a"),
        (None, "B", "n/a"),
    ],
)
def test_human_units(value: float | None, unit: str, text: str) -> None:
    assert human(value, unit) == text


def test_accelerator_labels_say_emulated() -> None:
    assert accel_label("tcg") == "tcg (emulated)"
    assert accel_label("kvm") == "kvm"
    assert "not proven" in accel_label("unknown")


@pytest.mark.parametrize(
    ("backend", "accel", "label"),
    [
        ("docker", "none", "docker"),
        ("qemu", "tcg", "qemu, emulated (TCG)"),
        ("qemu", "kvm", "qemu, KVM"),
        ("qemu", "unknown", "qemu, accelerator unknown"),
        ("qemu", "kvm,tcg", "qemu, KVM + emulated (TCG)"),
        ("vagrant", "virtualbox", "vagrant, VirtualBox"),
    ],
)
def test_engine_labels_name_how_the_engine_ran(backend: str, accel: str, label: str) -> None:
    assert engine_label(backend, accel) == label
