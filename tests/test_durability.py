"""No lost data, no skipped cleanup: the results writer, the signal shield, the cache lock.

Unit tests: they fake one boundary each (a failing ``os.write``, a signal sent to ourselves)
and check the logic on the other side of it.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
from helpers.rows import result_row

from bench import signals
from bench.guests.cache import cached_build
from bench.results import ResultsWriteError, ResultWriter, Row, read_rows


def _row(trial: int, detail: str = "workload=ready") -> Row:
    return result_row(run_id="run1", host_id="host", trial=trial, detail=detail)


@pytest.fixture
def restore_signals():
    saved = {s: signal.getsignal(s) for s in signals.SIGNALS}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_disk_full_mid_write_keeps_whole_rows(tmp_path, monkeypatch):
    path = tmp_path / "results.csv"
    writer = ResultWriter(path)
    writer.write([_row(1), _row(1)])
    real_write = os.write

    def half_then_enospc(fd, data):
        if fd == writer._fd and len(data) > 10:
            real_write(fd, bytes(data[: len(data) // 2]))  # the disk fills mid-row
            monkeypatch.setattr(os, "write", _enospc)
            return len(data) // 2
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", half_then_enospc)
    with pytest.raises(ResultsWriteError, match="No space left on device"):
        writer.write([_row(2), _row(2), _row(2)])
    monkeypatch.setattr(os, "write", real_write)
    writer.close()
    assert path.read_bytes().endswith(b"\n")
    rows, bad = read_rows(path)
    assert bad == []
    assert [r["trial"] for r in rows] == ["1", "1"]  # what was written before is all there


def _enospc(fd, data):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_on_a_real_tiny_filesystem(tmp_path):
    """A 4 KiB tmpfs: the write that does not fit fails, every row before it reads back."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the fake-boundary test covers the logic)")
    import subprocess

    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(mnt)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        path = mnt / "results.csv"
        written = 0
        with ResultWriter(path) as writer, pytest.raises(ResultsWriteError, match="No space"):
            for trial in range(1, 1000):
                writer.write([_row(trial, "workload=ready " + "x" * 300)] * 3)
                written = trial
        assert written > 0
        rows, bad = read_rows(path)
        assert bad == []
        assert len(rows) == 3 * written
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_half_line_from_a_crash_is_cut_before_appending(tmp_path):
    path = tmp_path / "results.csv"
    with ResultWriter(path) as writer:
        writer.write([_row(1)])
    with open(path, "a") as f:
        f.write("run1,host,s,busybox,docker,none,1,2,warm,ready_s,0.2")  # killed mid-line
    with ResultWriter(path) as writer:
        writer.write([_row(3)])
    rows, bad = read_rows(path)
    assert bad == []
    assert [r["trial"] for r in rows] == ["1", "3"]


def test_second_interrupt_does_not_skip_cleanup(restore_signals, capfd):
    signals.install()
    with pytest.raises(KeyboardInterrupt):  # the first Ctrl-C stops the run...
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    capfd.readouterr()
    # ...and while it cleans up, more Ctrl-C and SIGTERM raise nothing (a raise here would end
    # this test with KeyboardInterrupt): each one only prints the note.
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.05)
    assert capfd.readouterr().err == signals.NOTE.decode() * 2
    assert signals.interrupted()


def test_signal_inside_a_shielded_section_waits_for_its_end(restore_signals):
    signals.install()
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with signals.shielded():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            steps.append("stopped")
            os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C during the stop
            steps.append("removed")
        steps.append("not reached")
    assert steps == ["stopped", "removed"]


def test_shield_works_without_the_cli_handler(restore_signals):
    signal.signal(signal.SIGINT, signal.default_int_handler)
    steps = []
    with pytest.raises(KeyboardInterrupt), signals.shielded():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        steps.append("stopped")
    assert steps == ["stopped"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _build_in_child(folder: str, log: str) -> None:
    def build(tmp: Path) -> dict:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # long enough that the other process arrives while this one builds
        (tmp / "artefact").write_text("built")
        return {}

    entry = cached_build(Path(folder), build)
    assert (entry.folder / "artefact").read_text() == "built"


def test_two_processes_build_a_cache_entry_once(tmp_path):
    folder, log = tmp_path / "guests" / "g-1", tmp_path / "builds.log"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_build_in_child, args=(str(folder), str(log))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(log.read_text().split()) == 1  # one build; the others waited and reused it
    assert sorted(p.name for p in folder.parent.iterdir() if not p.name.endswith(".lock")) == [
        "g-1"
    ]
