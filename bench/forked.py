"""One function over many items in forked processes: the charts of a report, the claims of a
lab's hosts. Each is independent of the others and a 2-core lab machine has a core idle.

Forked processes inherit the function and the items (an analysis, a dataset), so nothing but
the results crosses between processes, and nothing computed before the fork is computed again.
Linux only (fork is Linux's to trust with numpy and matplotlib), and never from inside a
forked process: there, and on one CPU, the items are done here, in order.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_PROCESSES = 4
# How many processes at once (None: one per CPU this process may use, up to MAX_PROCESSES).
# Tests set 1 to count calls in their own process.
PROCESSES: int | None = None


def processes() -> int:
    """How many processes forked_map would use here."""
    if multiprocessing.current_process().daemon:  # a pool's worker may not fork again
        return 1
    if PROCESSES is not None:
        return PROCESSES
    if not sys.platform.startswith("linux"):
        return 1
    return min(MAX_PROCESSES, len(os.sched_getaffinity(0)))


def forked_map(function: Callable[[Item], Result], items: Sequence[Item]) -> list[Result]:
    """[function(item) for item in items], in order; in forked processes where there are
    several CPUs and several items."""
    count = min(len(items), processes())
    if count < 2:
        return [function(item) for item in items]
    global _WORK
    _WORK = (function, items)
    try:
        with multiprocessing.get_context("fork").Pool(count, _worker_signals) as pool:
            chunk = max(1, len(items) // (count * 4))  # a few chunks each: the loads even out
            results = pool.map(_run, range(len(items)), chunksize=chunk)
            # Done: the workers end on their own. Leaving the block would send them SIGTERM,
            # which one still starting up would meet with a run's handlers (see below).
            pool.close()
            pool.join()
        return results
    finally:
        _WORK = None


_WORK: tuple[Callable[[Any], Any], Sequence[Any]] | None = None  # what a forked process runs


def _worker_signals() -> None:
    """A worker leaves Ctrl-C to its parent and ends quietly when the pool ends it: it must
    not keep a run's handlers (bench.signals), which turn SIGTERM into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run(index: int) -> Any:
    assert _WORK is not None
    function, items = _WORK
    return function(items[index])
