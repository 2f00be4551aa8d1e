"""Ctrl-C and SIGTERM: the first one stops the run, none can cut a cleanup short.

The first SIGINT/SIGTERM raises KeyboardInterrupt in the main thread, so the code that
started a container or VM unwinds through its ``with`` blocks and removes it. Later signals
only print a note: the run is already stopping, and a second Ctrl-C must not skip the
removal of what it started. Inside a ``shielded()`` section (stopping an instance, writing a
row) even the first signal waits until the section has finished.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

SIGNALS = (signal.SIGINT, signal.SIGTERM)
NOTE = (
    b"vmbench: stopping; removing what this run started (if it hangs: kill -9, then "
    b"vmbench clean)\n"
)


class _State:
    depth = 0  # nesting of shielded() sections
    pending = False  # a signal arrived inside a shielded section
    interrupted = False  # KeyboardInterrupt was already raised once
    saved: ClassVar[dict] = {}  # handlers install() replaced, for uninstall()


def _handler(signum: int, frame: object) -> None:
    if _State.interrupted or _State.depth > 0:
        if not _State.interrupted:
            _State.pending = True
        os.write(2, NOTE)
        return
    _State.interrupted = True
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT and SIGTERM through the handler above (the CLI calls this once per run)."""
    _State.depth, _State.pending, _State.interrupted = 0, False, False
    for signum in SIGNALS:
        previous = signal.signal(signum, _handler)
        if previous is not _handler:
            _State.saved[signum] = previous


def uninstall() -> None:
    """Put back the handlers install() replaced (``cli.main`` may run in-process, in tests)."""
    for signum, handler in _State.saved.items():
        if handler is not None:
            signal.signal(signum, handler)
    _State.saved = {}


def interrupted() -> bool:
    return _State.interrupted


@contextmanager
def shielded() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while the block runs; a held signal is raised once it is done."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are only delivered to the main thread
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    ours = all(h is _handler for h in previous.values())
    was_interrupted = _State.interrupted
    if not ours:  # used outside the CLI: a section of its own, with a fresh state
        _State.interrupted = False
        for signum in SIGNALS:
            signal.signal(signum, _handler)
    _State.depth += 1
    error: BaseException | None = None
    try:
        yield
    except BaseException as e:
        error = e
        raise
    finally:
        _State.depth -= 1
        if not ours:
            _State.interrupted = was_interrupted
            for signum, handler in previous.items():
                if handler is not None:
                    signal.signal(signum, handler)
        held = _State.pending and _State.depth == 0
        if held:
            _State.pending = False
            if not isinstance(error, KeyboardInterrupt):
                # The block is done: deliver the signal it held (the user asked to stop).
                _State.interrupted = ours
                raise KeyboardInterrupt from error
