"""bench.guests.tool: a build tool's helpers stop with it (real processes, no fakes).

A tool here is ``sh`` that starts a ``sleep`` in the background and waits: like dpkg-deb
with its tar, or apt-get with its download method, the helper is a grandchild of the harness.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from helpers.harness import alive

from bench.guests import tool


def tool_with_helper(pid_file: Path) -> list[str]:
    return ["sh", "-c", f'sleep 60 & echo $! > "{pid_file}"; wait']


def helper_pid(pid_file: Path) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        if text:
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"the tool never wrote {pid_file}")


def test_output_input_and_exit_status_as_subprocess_run():
    proc = tool.run(
        ["sh", "-c", "cat; echo oops >&2; exit 3"], input="hello", capture_output=True, text=True
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "hello", "oops\n")


def test_a_timeout_stops_the_tools_helpers_too(tmp_path):
    pid_file = tmp_path / "helper.pid"
    with pytest.raises(subprocess.TimeoutExpired):
        tool.run(tool_with_helper(pid_file), timeout=1, capture_output=True)
    assert not alive(helper_pid(pid_file))


def test_ctrl_c_stops_the_tools_helpers_too(tmp_path):
    pid_file = tmp_path / "helper.pid"

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            tool.run(tool_with_helper(pid_file), timeout=30)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not alive(helper_pid(pid_file))


def test_subprocess_run_alone_would_leave_the_helper(tmp_path):
    """Why the module exists: the same timeout through subprocess.run leaves sleep running."""
    pid_file = tmp_path / "helper.pid"
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run(tool_with_helper(pid_file), timeout=1, check=False)
    pid = helper_pid(pid_file)
    try:
        assert alive(pid)
    finally:
        psutil.Process(pid).kill()
