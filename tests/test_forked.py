"""Work in forked processes (bench/forked.py): the same results, in order, as done here; a
forked process never forks again; a lab's claims are the same table either way."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers.reports import REAL_RUN, SPECTRUM_RUN

from bench import forked
from bench.analysis import model

ROOT = Path(__file__).resolve().parent.parent
EMULATION_RUN = REAL_RUN.parents[1] / "emulation-run" / "results.csv"  # TCG caches measured


def pid_and_square(n: int) -> tuple[int, int]:
    return os.getpid(), n * n


def test_items_are_done_in_other_processes_and_come_back_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(forked, "PROCESSES", 2)
    done = forked.forked_map(pid_and_square, list(range(40)))
    assert [square for _, square in done] == [n * n for n in range(40)]
    assert os.getpid() not in {pid for pid, _ in done}
    monkeypatch.setattr(forked, "PROCESSES", 1)
    assert {pid for pid, _ in forked.forked_map(pid_and_square, [1, 2, 3])} == {os.getpid()}


def inner_pids(_: int) -> set[int]:
    return {pid for pid, _ in forked.forked_map(pid_and_square, list(range(6)))}


def test_a_forked_process_does_its_own_items_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool's worker may not have children: there forked_map runs in the worker."""
    monkeypatch.setattr(forked, "PROCESSES", 2)
    for pids in forked.forked_map(inner_pids, [0, 1]):
        assert len(pids) == 1 and os.getpid() not in pids


def as_host(csv_path: Path, host_id: str, tmp_path: Path) -> Path:
    """A copy of a results CSV as if host ``host_id`` had made it."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = [row | {"host_id": host_id} for row in reader]
    out = tmp_path / host_id / "results.csv"
    out.parent.mkdir()
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def test_a_labs_claims_and_memory_ratios_are_the_same_forked_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [as_host(REAL_RUN, "lab-a", tmp_path), as_host(SPECTRUM_RUN, "lab-b", tmp_path)]
    paths.append(as_host(EMULATION_RUN, "lab-c", tmp_path))

    def sections(processes: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        monkeypatch.setattr(forked, "PROCESSES", processes)
        a = model.analyse(paths)
        return a.claims, a.memory, a.without_cache

    here, there = sections(1), sections(2)
    assert set(here[0].host_id) == {"lab-a", "lab-b", "lab-c"} and len(here[2]) > 0
    for mine, theirs in zip(here, there, strict=True):
        pd.testing.assert_frame_equal(mine, theirs)


def test_workers_end_quietly_under_a_runs_signal_handlers(tmp_path: Path) -> None:
    """A run routes SIGTERM into KeyboardInterrupt (bench.signals); a pool ends its workers
    with SIGTERM. A worker must not inherit that handler: each would print a traceback
    (seen at the end of a run, when its summary table is computed)."""
    code = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "from bench import forked, signals\n"
        "from test_forked import pid_and_square\n"
        "signals.install(); forked.PROCESSES = 2\n"
        "for _ in range(30): forked.forked_map(pid_and_square, list(range(4)))\n"
        "print('done')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr
