"""Clocks, the ready-marker watcher, the psutil memory sampler and file sizes.

All times come from ``time.perf_counter_ns`` (monotonic, host-side). The watcher stamps a line
in the thread that reads it, the moment its bytes arrive, so no polling interval is added.
"""

from __future__ import annotations

import contextlib
import ctypes
import gzip
import os
import re
import select
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

READY = "VMBENCH READY"
RESULT = "VMBENCH RESULT"
DONE = "VMBENCH DONE"
# Workload ``cpu``: the guest prints these around its fixed CPU-bound job.
WORK_START = "VMBENCH WORK START"
WORK_END = "VMBENCH WORK END"
_WORD = re.compile(r"(\w+)=(\S+)")
# A protocol line is its marker and then only key=value words, so a line that merely mentions
# the marker (a systemd status line naming the workload's unit, say) never counts as READY.
_PROTOCOL_LINE = {
    marker: re.compile(re.escape(marker) + r"(?:[ \t]+\w+=\S*)*[ \t]*$")
    for marker in (READY, RESULT, DONE, WORK_START, WORK_END)
}


def is_marker_line(marker: str, text: str) -> bool:
    """Does ``text`` carry ``marker``? Protocol markers must end the line with only key=value
    words after them (anything may precede them: SeaBIOS escape codes); other markers (a
    user-named box's own readiness text) match anywhere."""
    pattern = _PROTOCOL_LINE.get(marker)
    return pattern.search(text) is not None if pattern else marker in text


def now_ns() -> int:
    return time.perf_counter_ns()


def seconds_between(start_ns: int, end_ns: int) -> float:
    return (end_ns - start_ns) / 1e9


@dataclass(frozen=True)
class ConsoleLine:
    t_ns: int
    text: str

    def fields(self) -> dict[str, str]:
        """key=value words after a protocol marker (matched anywhere: BIOS escape codes precede it)."""
        for marker in (READY, RESULT, DONE, WORK_START, WORK_END):
            at = self.text.find(marker)
            if at >= 0:
                return dict(_WORD.findall(self.text[at + len(marker) :]))
        return {}


# A line ends at a newline, or where a full-screen program (memtest86+) moves the cursor to
# another row: its screen comes as rows, each begun by ESC[<row>;<col>H, never a newline.
_LINE_END = re.compile(rb"\n|(?=\x1b\[\d+;\d+H)")


class ConsoleWatcher:
    """Reads a guest console from a blocking chunk source in its own thread.

    ``chunks`` yields bytes as they arrive (a pipe, an attach stream, a growing file) and
    ends at end of stream. Lines are kept (bounded) for error messages.
    """

    def __init__(
        self, chunks: Iterable[bytes], keep_lines: int = 400, keep_markers: tuple[str, ...] = ()
    ) -> None:
        """``keep_markers``: besides the protocol lines, lines with these are never trimmed
        (e.g. the bootloader's lines, which the boot phases are timed from)."""
        self._chunks = chunks
        self._markers = ("VMBENCH ", *keep_markers)
        self._lines: list[ConsoleLine] = []
        self._keep = keep_lines
        self._cond = threading.Condition()
        self._eof = False
        self._error: str = ""
        self._thread = threading.Thread(target=self._pump, name="console-watcher", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        pending = b""
        try:
            for chunk in self._chunks:
                t_ns = now_ns()
                if not chunk:
                    continue
                pending += chunk
                *complete, pending = _LINE_END.split(pending)
                if any(complete):
                    self._add([ConsoleLine(t_ns, _clean(raw)) for raw in complete if raw])
        except Exception as e:  # a dying engine ends the stream; the runner reports it
            self._error = f"{type(e).__name__}: {e}"
        finally:
            if pending:
                self._add([ConsoleLine(now_ns(), _clean(pending))])
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def _add(self, lines: list[ConsoleLine]) -> None:
        with self._cond:
            self._lines.extend(lines)
            if len(self._lines) > self._keep * 2:
                # Keep the protocol (and marker) lines and the most recent output.
                proto = [ln for ln in self._lines if any(m in ln.text for m in self._markers)]
                self._lines = proto + [ln for ln in self._lines[-self._keep :] if ln not in proto]
            self._cond.notify_all()

    def wait_for(self, marker: str, deadline_ns: int) -> ConsoleLine | None:
        """The first line carrying ``marker``, or None at the deadline or end of stream."""
        with self._cond:
            while True:
                for line in self._lines:
                    if is_marker_line(marker, line.text):
                        return line
                remaining = (deadline_ns - now_ns()) / 1e9
                if self._eof or remaining <= 0:
                    return None
                self._cond.wait(timeout=remaining)

    @property
    def ended(self) -> bool:
        return self._eof

    def tail(self, n: int = 5) -> str:
        with self._cond:
            text = " | ".join(ln.text for ln in self._lines[-n:] if ln.text.strip())
        return (text + (f" | stream error: {self._error}" if self._error else ""))[-600:]

    def results(self) -> dict[str, str]:
        """All key=value pairs of the RESULT lines seen so far."""
        merged: dict[str, str] = {}
        with self._cond:
            for line in self._lines:
                if is_marker_line(RESULT, line.text):
                    merged.update(line.fields())
        return merged


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1bc")


def _clean(raw: bytes) -> str:
    return _ANSI.sub("", raw.decode("utf-8", errors="replace")).rstrip("\r")


def fd_chunks(fd: int, size: int = 65536) -> Iterable[bytes]:
    """Chunks from a file descriptor (pipe) as soon as the kernel has them."""
    while True:
        try:
            chunk = os.read(fd, size)
        except OSError:
            return
        if not chunk:
            return
        yield chunk


# inotify (Linux): wake the follower the moment a file in the watched folder is written.
_IN_MODIFY, _IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_CREATE = 0x2, 0x8, 0x80, 0x100
_IN_NONBLOCK, _IN_CLOEXEC = 0o4000, 0o2000000


def _inotify_folder(folder: Path) -> int | None:
    """An inotify fd watching ``folder`` for writes and new files, or None where unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    mask = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
    if libc.inotify_add_watch(fd, os.fsencode(folder), mask) < 0:
        os.close(fd)
        return None
    return fd


def follow_file(
    path: Path, stop: threading.Event, size: int = 65536, poll_s: float = 0.05
) -> Iterator[bytes]:
    """Bytes appended to ``path`` as they are written, until ``stop`` is set (then the rest).

    For a console that a hypervisor writes to a file (libvirt, VirtualBox). The file may not
    exist yet. An inotify watch on its folder wakes the reader on every write, so a line is
    seen well under a millisecond after it was written (benchmarks/follow_file_latency.py);
    where inotify is missing it falls back to reading every ``poll_s`` seconds.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wake = _inotify_folder(path.parent)  # watch first: no write can slip between read and wait
    handle = None
    try:
        while True:
            if handle is None:
                with contextlib.suppress(FileNotFoundError):
                    handle = open(path, "rb", buffering=0)  # noqa: SIM115 (closed below)
            chunk = handle.read(size) if handle is not None else b""
            if chunk:
                yield chunk
                continue
            if stop.is_set():
                while handle is not None and (rest := handle.read(size)):
                    yield rest  # written between the read above and the stop
                return
            if wake is None:
                time.sleep(poll_s)
                continue
            readable, _, _ = select.select([wake], [], [], poll_s)
            if readable:
                with contextlib.suppress(BlockingIOError):
                    while os.read(wake, 65536):  # drain the events; their content is not needed
                        pass
    finally:
        if handle is not None:
            handle.close()
        if wake is not None:
            os.close(wake)


# --- memory -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessMemory:
    rss_bytes: int
    uss_bytes: int
    pss_bytes: int
    processes: int
    # Processes whose USS and PSS this user may not read (another user's: a regular user and
    # a root-owned container); their RSS is in rss_bytes, their USS and PSS are not in the sums.
    denied: int = 0
    relayed: int = 0  # processes whose USS and PSS came through ``read_smaps``

    def sample(self, full: bool) -> dict[str, int]:
        """rss_bytes, and with ``full`` uss_bytes and pss_bytes, unless a process was denied:
        then their sums are a wrong number, not a small one (the rows say SMAPS_DENIED)."""
        sample = {"rss_bytes": self.rss_bytes}
        if full and not self.denied:
            sample |= {"uss_bytes": self.uss_bytes, "pss_bytes": self.pss_bytes}
        return sample


# Why a regular user's rows of a root-owned container (or libvirt's qemu) have no USS or PSS.
SMAPS_DENIED = (
    "no uss_bytes/pss_bytes: /proc/PID/smaps_rollup of another user's processes (the "
    "container's, root's) is readable by root only"
)
# Reads other users' /proc/PID/smaps_rollup on the caller's behalf: pids -> their texts.
SmapsRelay = Callable[[list[int]], dict[int, str]]


def process_memory(
    pids: Iterable[int], full: bool = True, read_smaps: SmapsRelay | None = None
) -> ProcessMemory:
    """RSS, and with ``full`` USS and PSS, summed over processes.

    ``full`` reads smaps_rollup (psutil.memory_full_info): the kernel walks the page tables,
    ~3 ms for a 256 MiB process. Without it only statm is read (RSS; USS and PSS are 0).
    A process that ends while it is read is left out rather than failing the sample. One of
    another user's, which only root may walk, gives its RSS (statm is world-readable) and its
    USS and PSS through ``read_smaps`` if given (else it is counted in ``denied``).
    """
    rss = uss = pss = count = 0
    denied: list[int] = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            try:
                info = process.memory_full_info() if full else process.memory_info()
            except psutil.AccessDenied:
                info = process.memory_info()
                denied.append(pid)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        rss += info.rss
        uss += getattr(info, "uss", 0)
        pss += getattr(info, "pss", 0)
        count += 1
    relayed = read_smaps(denied) if denied and read_smaps is not None else {}
    for text in relayed.values():
        more_uss, more_pss = smaps_rollup_bytes(text)
        uss, pss = uss + more_uss, pss + more_pss
    return ProcessMemory(rss, uss, pss, count, len(denied) - len(relayed), len(relayed))


def smaps_rollup_bytes(text: str) -> tuple[int, int]:
    """(USS, PSS) in bytes from a smaps_rollup text, as psutil computes them: USS is the sum
    of the Private_* lines (clean, dirty, hugetlb)."""
    uss = pss = 0
    for line in text.splitlines():
        if line.startswith("Private_"):
            uss += int(line.split()[1]) * 1024
        elif line.startswith("Pss:"):
            pss = int(line.split()[1]) * 1024
    return uss, pss


def mem_available_bytes() -> int:
    return psutil.virtual_memory().available


@dataclass
class MemorySampler:
    """Calls ``sample(full)`` at ``hz`` in a thread; the steady value of each metric is the median.

    ``sample`` returns a dict of metric -> bytes; a metric missing from a sample is skipped.
    ``full`` is true every ``full_every``-th tick: the costly metrics (USS, PSS from
    smaps_rollup) are read at hz/full_every, the cheap ones (RSS, cgroup usage) at hz, which
    keeps the sampler under 2 % of a core at 20 Hz (benchmarks/sampler_cost.py).
    """

    sample: Callable[[bool], dict[str, int]]
    hz: float = 20.0
    full_every: int = 10
    samples: list[dict[str, int]] = field(default_factory=list)
    error: str = ""

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)

    def _loop(self) -> None:
        period = 1.0 / self.hz
        next_at = time.monotonic()
        tick = 0
        while not self._stop.is_set():
            try:
                self.samples.append(self.sample(tick % self.full_every == 0))
                tick += 1
            except Exception as e:  # keep sampling; the runner reports the last error
                self.error = f"{type(e).__name__}: {e}"
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def medians(self) -> dict[str, float]:
        keys = {k for s in self.samples for k in s}
        return {k: statistics.median(s[k] for s in self.samples if k in s) for k in sorted(keys)}


# --- sizes --------------------------------------------------------------------------------


def allocated_bytes(path: Path) -> int:
    """Bytes a file or tree really occupies on disk (sparse files count what is allocated)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_blocks * 512
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                total += os.lstat(p).st_blocks * 512
    return total


def apparent_bytes(path: Path) -> int:
    """Sum of file lengths, as a tar or a layer would hold them."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(root, name)).st_size
    return total


def gzip_bytes(chunks: Iterable[bytes], level: int = 6) -> int:
    """Compressed size of a byte stream (what a user would download), without keeping it."""
    counter = _CountingSink()
    with gzip.GzipFile(fileobj=counter, mode="wb", compresslevel=level, mtime=0) as gz:
        for chunk in chunks:
            gz.write(chunk)
    return counter.count


def file_chunks(path: Path, size: int = 1 << 20) -> Iterable[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


class _CountingSink:
    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def tree_bytes(tree: Path) -> int:
    """Apparent size of a folder tree, each inode once (``du -s -b``): the userland's bytes."""
    return sum(st.st_size for st in _each_inode(tree))


def tree_allocated_bytes(tree: Path) -> int:
    """Bytes a folder tree occupies on disk, each inode once (``du -s``)."""
    return sum(st.st_blocks * 512 for st in _each_inode(tree))


def _each_inode(tree: Path) -> Iterable[os.stat_result]:
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(tree):
        for name in dirs + files:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                yield st
