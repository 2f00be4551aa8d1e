"""Which vmbench runs are alive right now, as every user of the machine sees it.

The Docker daemon, libvirt and the process table are shared by every user of a lab machine,
so a run's liveness cannot live only in its own user's cache. A run says who it is (``Owner``:
owner uid, pid, the process's start time, the boot id) in three places: a record in a
machine-wide folder (``live_dir``) and one in its own cache while it runs, and the same words
on everything it starts in a shared engine (docker and podman labels, the libvirt domain's
description, the qemu process's environment). ``vmbench clean``, whoever runs it, checks those
words against the live process (psutil): a pid that died, was reused by another process or
belongs to an earlier boot is not a live run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.guests.cache import cache_root

OWNER_LABEL = "vmbench.owner"  # docker and podman containers
OWNER_ENV = "VMBENCH_OWNER"  # the qemu process; the Vagrantfile's domain description
LIVE_DIR_ENV = "VMBENCH_LIVE_DIR"
DEFAULT_LIVE_DIR = Path("/tmp/vmbench-live")  # every user's: mode 1777, like /tmp
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
# Process start times are whole clock ticks after boot; two readings agree well within this.
START_TOLERANCE_S = 0.05
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_OWNER = re.compile(r"^uid=(\d+) pid=(\d+) start=(\d+(?:\.\d+)?) boot=([0-9a-f-]*)$")


@dataclass(frozen=True)
class Owner:
    """The process of a run: whose it is and how to tell it from a later process."""

    uid: int
    pid: int
    start_s: float  # the process's start, seconds since the epoch (psutil create_time)
    boot_id: str

    def text(self) -> str:
        return f"uid={self.uid} pid={self.pid} start={self.start_s:.2f} boot={self.boot_id}"

    @classmethod
    def parse(cls, text: str | None) -> Owner | None:
        found = _OWNER.match((text or "").strip())
        if not found:
            return None
        uid, pid, start, boot = found.groups()
        return cls(int(uid), int(pid), float(start), boot)

    def alive(self) -> bool:
        """This very process still runs (same boot, same pid, same start time)."""
        if self.boot_id != boot_id():
            return False
        try:
            started = psutil.Process(self.pid).create_time()
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:  # cannot tell (e.g. /proc mounted hidepid): leave it be
            return True
        return abs(started - self.start_s) < START_TOLERANCE_S

    @property
    def user(self) -> str:
        """The owner's login name (its uid if it has none any more)."""
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return f"uid {self.uid}"


@functools.cache
def boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def me() -> Owner:
    """This process as a run's owner."""
    pid = os.getpid()
    return Owner(os.geteuid(), pid, round(psutil.Process(pid).create_time(), 2), boot_id())


def owner_labels() -> dict[str, str]:
    """What a run's containers carry besides the run id: whose run, and how to tell it lives."""
    return {OWNER_LABEL: me().text()}


def live_dir() -> Path:
    """The machine-wide folder of live runs' records (``$VMBENCH_LIVE_DIR`` overrides)."""
    return Path(os.environ.get(LIVE_DIR_ENV) or DEFAULT_LIVE_DIR)


def _own_record(run_id: str) -> Path:
    return cache_root() / "run" / f"{run_id}.alive"


def _shared_record(run_id: str) -> Path:
    return live_dir() / run_id


def _shared_folder_ok(folder: Path) -> bool:
    """The machine-wide folder, made if absent, is one to write records into safely: a real
    folder (not a symlink someone planted in /tmp), and sticky where others may write (nobody
    removes another's record). Whoever ran first made it; it serves every user."""
    with contextlib.suppress(FileExistsError):
        old_umask = os.umask(0)
        try:
            folder.mkdir(mode=0o1777)
        finally:
            os.umask(old_umask)
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode):
        return False
    if st.st_mode & (stat.S_IWOTH | stat.S_IWGRP):
        return bool(st.st_mode & stat.S_ISVTX)
    return st.st_uid == os.geteuid()


def _write(path: Path, text: str) -> bool:
    """Write a record; False where the folder cannot be made or written (never fatal)."""
    try:
        if path.parent == live_dir():
            if not _shared_folder_ok(path.parent):
                return False
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)  # an earlier attempt's (--resume): ours, and dead
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
    except OSError:
        return False
    return True


def _read(path: Path) -> str:
    """A record's text; "" for anything that is not a small regular file (a FIFO planted in
    the shared folder must not hang every user's clean)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, 512).decode("ascii", errors="replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold(run_id: str) -> Iterator[None]:
    """Mark ``run_id`` alive, for every user of the machine, until the block ends. A process
    that dies without leaving the block (kill -9) leaves records that no longer check out."""
    if not _RUN_ID.match(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    text = me().text()
    written = [p for p in (_own_record(run_id), _shared_record(run_id)) if _write(p, text)]
    try:
        yield
    finally:
        for path in written:
            path.unlink(missing_ok=True)


def owner_of(run_id: str) -> Owner | None:
    """The owner a run recorded (machine-wide, else in this user's cache), alive or not."""
    if not _RUN_ID.match(run_id):
        return None
    for path in (_shared_record(run_id), _own_record(run_id)):
        owner = Owner.parse(_read(path))
        if owner is not None:
            return owner
    return None


def is_alive(run_id: str, owner_text: str | None = None) -> bool:
    """Run ``run_id`` is going on somewhere on this machine, by its records or by the owner
    words ``owner_text`` found on one of its things."""
    for owner in (Owner.parse(owner_text), owner_of(run_id)):
        if owner is not None and owner.alive():
            return True
    return False


def recorded_runs() -> set[str]:
    """Run ids with a record here, live or left by a killed run."""
    ids: set[str] = set()
    for folder, suffix in ((live_dir(), ""), (cache_root() / "run", ".alive")):
        with contextlib.suppress(OSError):
            ids |= {
                p.name.removesuffix(suffix)
                for p in folder.iterdir()
                if p.is_file() and p.name.endswith(suffix) and _RUN_ID.match(p.name)
            }
    return ids


def alive_runs() -> set[str]:
    """Every run alive on this machine that left a record, whoever runs it."""
    return {run_id for run_id in recorded_runs() if is_alive(run_id)}


def forget_dead(run_id: str) -> None:
    """Remove the records of run ``run_id`` once it is known dead (those this user may)."""
    if is_alive(run_id) or not _RUN_ID.match(run_id):
        return
    for path in (_shared_record(run_id), _own_record(run_id)):
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
