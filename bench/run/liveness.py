"""Which vmbench runs are alive right now: each run holds an flock for as long as it runs.

``vmbench clean`` must never remove a running run's containers or VMs; a lock held by a live
process (released by the kernel when it dies, even by kill -9) says so without pids or names.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from bench.guests.cache import cache_root


def _lock_path(run_id: str) -> Path:
    return cache_root() / "run" / f"{run_id}.alive"


@contextlib.contextmanager
def hold(run_id: str) -> Iterator[None]:
    """Mark ``run_id`` alive until the block ends (or the process dies)."""
    path = _lock_path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
        path.unlink(missing_ok=True)


def is_alive(run_id: str) -> bool:
    path = _lock_path(run_id)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def alive_runs() -> set[str]:
    folder = cache_root() / "run"
    if not folder.is_dir():
        return set()
    return {p.stem for p in folder.glob("*.alive") if is_alive(p.stem)}
