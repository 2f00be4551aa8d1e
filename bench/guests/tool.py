"""Build tools (apt-get, dpkg-deb, debootstrap, cpio, ...) run so that none outlives a stop.

``subprocess.run`` kills only the program it started when a timeout or Ctrl-C cuts the wait
short. Its helpers live on: ``dpkg-deb -x`` leaves its ``tar`` writing into a folder the
harness is removing, ``apt-get`` its download method, debootstrap its ``dpkg``. Here each tool
runs in a process group of its own (a Ctrl-C on the terminal reaches the harness, which
stops it) and the whole group is killed whenever the harness stops waiting.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any

import psutil

HELPER_EXIT_WAIT_S = 5.0


def run(
    argv: Sequence[str],
    *,
    input: str | bytes | None = None,
    timeout: float | None = None,
    capture_output: bool = False,
    **popen_kwargs: Any,
) -> subprocess.CompletedProcess:
    """``subprocess.run(argv, ..., check=False)`` whose tool and its children all stop with it.

    Raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds, like subprocess.run, once
    the tool and its helpers are dead.
    """
    if capture_output:
        popen_kwargs["stdout"] = popen_kwargs["stderr"] = subprocess.PIPE
    if input is not None:
        popen_kwargs["stdin"] = subprocess.PIPE
    proc = subprocess.Popen(list(argv), process_group=0, **popen_kwargs)
    try:
        stdout, stderr = proc.communicate(input, timeout=timeout)
    except BaseException:  # a timeout, Ctrl-C (KeyboardInterrupt), any error
        stop_group(proc)
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def stop_group(proc: subprocess.Popen) -> None:
    """SIGKILL every process in ``proc``'s group, reap ``proc``, wait for its helpers to die."""
    try:
        helpers = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        helpers = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.kill()  # in case the group refused: the tool itself is ours to kill
    proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    # The helpers are not our children, so we cannot reap them; dead (a zombie until init
    # reaps it) is enough. One in uninterruptible I/O dies when its I/O ends.
    deadline = time.monotonic() + HELPER_EXIT_WAIT_S
    while any(_running(p) for p in helpers) and time.monotonic() < deadline:
        time.sleep(0.02)


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
