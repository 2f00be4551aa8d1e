"""How late does the console watcher see a line that a hypervisor appends to a log file?

The vagrant backend reads the guest's serial console from a file (libvirt, VirtualBox). This
writes lines to a file with their write time in them and reports, per line, the time from
``write`` returning to the ConsoleWatcher stamping the line. Run:

    python benchmarks/follow_file_latency.py [LINES]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.run.measure import ConsoleWatcher, follow_file, now_ns


def measure(lines: int = 300, gap_s: float = 0.003) -> list[float]:
    """Microseconds from write() to the watcher's stamp, one value per line."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "serial.log"
        stop = threading.Event()
        watcher = ConsoleWatcher(follow_file(path, stop), keep_lines=lines + 10)
        time.sleep(0.1)  # the file appears later, as libvirt's does
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for i in range(lines):
                os.write(fd, f"line {i} t={now_ns()}\n".encode())
                time.sleep(gap_s)
        finally:
            os.close(fd)
        deadline = now_ns() + 5 * 10**9
        watcher.wait_for(f"line {lines - 1} ", deadline)
        stop.set()
        seen = []
        for i in range(lines):
            line = watcher.wait_for(f"line {i} ", deadline)
            if line is None:
                raise SystemExit(f"line {i} was never seen")
            written = int(line.text.split("t=")[1])
            seen.append((line.t_ns - written) / 1000)
        return seen


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    us = sorted(measure(lines))
    p95 = us[int(0.95 * (len(us) - 1))]
    print(
        f"follow_file latency over {len(us)} lines: median {statistics.median(us):.0f} us, "
        f"p95 {p95:.0f} us, max {us[-1]:.0f} us"
    )


if __name__ == "__main__":
    main()
