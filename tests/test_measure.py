import os
import subprocess
import sys
import threading
import time

from bench.run.measure import (
    READY,
    ConsoleLine,
    ConsoleWatcher,
    MemorySampler,
    allocated_bytes,
    apparent_bytes,
    fd_chunks,
    gzip_bytes,
    is_marker_line,
    now_ns,
    process_memory,
)


def test_marker_found_mid_line_after_escape_codes():
    chunks = [
        b"\x1b[2J\x1b[01;01HSeaBIOS ",
        b"VMBENCH READY uptime=1.5 kernel=6.1 arch=x86_64\r\n",
        b"tail",
    ]
    watcher = ConsoleWatcher(iter(chunks))
    line = watcher.wait_for(READY, now_ns() + 2_000_000_000)
    assert line is not None
    assert line.fields() == {"uptime": "1.5", "kernel": "6.1", "arch": "x86_64"}
    assert watcher.wait_for("tail", now_ns() + 1_000_000_000).text == "tail"  # flushed at EOF


def test_a_line_that_only_mentions_the_marker_is_not_ready():
    # systemd prints a unit's Description in its status lines; the guest's READY comes later.
    chunks = [
        b"[  OK  ] Started vmbench workload (prints VMBENCH READY on the console).\n",
        b"VMBENCH READY is what we wait for\n",
        b"VMBENCH READY uptime=9.1 kernel=6.1 arch=x86_64 init=systemd\n",
    ]
    watcher = ConsoleWatcher(iter(chunks))
    line = watcher.wait_for(READY, now_ns() + 2_000_000_000)
    assert line is not None
    assert line.fields()["uptime"] == "9.1"
    assert is_marker_line(READY, "VMBENCH READY") and not is_marker_line(READY, "VMBENCH READYX")
    assert is_marker_line("Machine booted and ready!", "==> default: Machine booted and ready!")


def test_wait_returns_none_at_deadline_and_at_end_of_stream():
    release = threading.Event()

    def slow():
        release.wait(5)
        yield b"late\n"

    watcher = ConsoleWatcher(slow())
    start = time.monotonic()
    assert watcher.wait_for(READY, now_ns() + 200_000_000) is None
    assert time.monotonic() - start < 2
    release.set()
    assert watcher.wait_for(READY, now_ns() + 5_000_000_000) is None  # ended without marker
    assert watcher.ended
    assert "late" in watcher.tail()


def test_line_timestamp_is_when_bytes_arrived_not_when_asked():
    r, w = os.pipe()
    watcher = ConsoleWatcher(fd_chunks(r))
    os.write(w, b"VMBENCH READY uptime=0\n")
    written = now_ns()
    time.sleep(0.3)
    line = watcher.wait_for(READY, now_ns() + 1_000_000_000)
    os.close(w)
    assert line is not None
    assert line.t_ns - written < 100_000_000  # stamped on arrival, long before we asked
    os.close(r)


def test_result_lines_merge():
    watcher = ConsoleWatcher(iter([b"VMBENCH RESULT a=1 b=2\nVMBENCH RESULT b=3\n"]))
    watcher.wait_for("nothing", now_ns() + 500_000_000)
    assert watcher.results() == {"a": "1", "b": "3"}


def test_fields_of_non_protocol_line_empty():
    assert ConsoleLine(0, "hello a=b").fields() == {}


def test_process_memory_of_a_real_process_and_of_a_gone_one():
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; b = bytearray(64 << 20); time.sleep(30)"]
    )
    try:
        time.sleep(1.0)
        mem = process_memory([child.pid])
        assert mem.processes == 1
        assert mem.rss_bytes > 60 << 20
        assert 0 < mem.uss_bytes <= mem.rss_bytes
        assert mem.uss_bytes <= mem.pss_bytes <= mem.rss_bytes
    finally:
        child.kill()
        child.wait()
    assert process_memory([child.pid]).processes == 0


def test_sampler_medians_and_rate():
    values = iter(range(1000))

    def sample(full):
        value = next(values)
        return {"x": value, "full": value} if full else {"x": value}

    with MemorySampler(sample, hz=50, full_every=5) as sampler:
        time.sleep(0.5)
    n = len(sampler.samples)
    assert 10 <= n <= 40
    assert sampler.medians()["x"] == (n - 1) / 2
    assert sum("full" in s for s in sampler.samples) == (n + 4) // 5  # ticks 0, 5, 10, ...


def test_sizes_of_sparse_file_and_tree(tmp_path):
    sparse = tmp_path / "disk.img"
    with open(sparse, "wb") as f:
        f.truncate(64 << 20)
        f.write(b"x" * 8192)
    assert apparent_bytes(sparse) == 64 << 20
    assert allocated_bytes(sparse) < 1 << 20
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"a" * 1000)
    assert apparent_bytes(tmp_path / "d") == 1000


def test_gzip_bytes_compresses_repetitive_data():
    assert gzip_bytes([b"a" * 100_000]) < 1000
    assert gzip_bytes([os.urandom(100_000)]) > 99_000


def test_another_users_process_gives_rss_and_is_counted_denied(monkeypatch):
    """A regular user may not walk root's page tables (smaps_rollup): RSS from statm, no
    USS/PSS in the sums, and the caller told so (not a 0 that looks measured)."""
    import os

    import psutil

    from bench.run.measure import process_memory

    def refuse(self):
        raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(psutil.Process, "memory_full_info", refuse)
    got = process_memory([os.getpid()], full=True)
    assert got.denied == 1 and got.processes == 1
    assert got.rss_bytes > 0 and got.pss_bytes == 0 and got.uss_bytes == 0
    assert process_memory([os.getpid()], full=False).denied == 0  # statm is for everyone
    # What every engine records from it: RSS only, never the partial USS/PSS sums.
    assert got.sample(full=True) == {"rss_bytes": got.rss_bytes}
    monkeypatch.undo()
    mine = process_memory([os.getpid()], full=True)
    assert set(mine.sample(full=True)) == {"rss_bytes", "uss_bytes", "pss_bytes"}
    assert mine.sample(full=True)["pss_bytes"] == mine.pss_bytes > 0
    assert set(mine.sample(full=False)) == {"rss_bytes"}


SMAPS_ROLLUP = """\
00400000-7fff40acb000 ---p 00000000 00:00 0                              [rollup]
Rss:                1372 kB
Pss:                 708 kB
Pss_Dirty:            52 kB
Shared_Clean:       1320 kB
Private_Clean:         0 kB
Private_Dirty:        52 kB
Private_Hugetlb:       4 kB
Swap:                  0 kB
"""


def test_smaps_rollup_counts_as_psutil_does():
    from bench.run.measure import smaps_rollup_bytes

    assert smaps_rollup_bytes(SMAPS_ROLLUP) == (56 * 1024, 708 * 1024)


def test_another_users_process_is_read_through_the_relay(monkeypatch):
    """What a regular user gets for root's container with the Docker helper: USS and PSS
    from the text it relays, RSS from statm; a pid it could not read stays denied."""
    import os

    import psutil

    from bench.run.measure import process_memory

    def refuse(self):
        raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(psutil.Process, "memory_full_info", refuse)
    me = os.getpid()
    got = process_memory([me], read_smaps=lambda pids: {pid: SMAPS_ROLLUP for pid in pids})
    assert (got.relayed, got.denied) == (1, 0)
    assert (got.uss_bytes, got.pss_bytes) == (56 * 1024, 708 * 1024) and got.rss_bytes > 0
    silent = process_memory([me], read_smaps=lambda pids: {})
    assert (silent.relayed, silent.denied, silent.pss_bytes) == (0, 1, 0)


def test_the_docker_helpers_answer_is_split_per_pid():
    """What the smaps helper container prints for 'pids': a header per pid, then its file;
    a pid it could not read (gone, or refused) has a header and no Pss line."""
    from bench.backends.smaps_reader import _split

    text = f"VMBENCH-SMAPS 12\n{SMAPS_ROLLUP}VMBENCH-SMAPS 13\nVMBENCH-SMAPS 14\n{SMAPS_ROLLUP}"
    found = _split(text.encode())
    assert sorted(found) == [12, 14] and found[12] == SMAPS_ROLLUP
