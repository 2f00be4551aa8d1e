"""Latency of the ready-marker watcher: a child prints the marker with its own clock reading.

Run: .venv/bin/python benchmarks/watcher_latency.py [N]
Prints the distribution of (time the watcher stamped the line) - (time the child wrote it),
both CLOCK_MONOTONIC (perf_counter_ns on Linux). Target: median well under 1 ms.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from bench.run.measure import READY, ConsoleWatcher, fd_chunks, now_ns

CHILD = (
    "import sys, time\n"
    "for i in range(int(sys.argv[1])):\n"
    "    time.sleep(0.02)\n"
    "    sys.stdout.write(f'noise line {i}\\nVMBENCH READY t_ns={time.perf_counter_ns()}\\n')\n"
    "    sys.stdout.flush()\n"
)


def main(n: int = 200) -> None:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(n)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    watcher = ConsoleWatcher(fd_chunks(proc.stdout.fileno()), keep_lines=10 * n)
    proc.wait(timeout=60)
    watcher.wait_for("never", now_ns() + 2_000_000_000)
    with watcher._cond:
        lines = [ln for ln in watcher._lines if READY in ln.text]
    latencies_us = [(ln.t_ns - int(ln.fields()["t_ns"])) / 1000 for ln in lines]
    latencies_us.sort()
    print(f"watcher latency over {len(latencies_us)} markers (perf_counter_ns, child -> stamped):")
    print(f"  median {statistics.median(latencies_us):8.1f} us")
    print(f"  p95    {latencies_us[int(0.95 * len(latencies_us)) - 1]:8.1f} us")
    print(f"  max    {latencies_us[-1]:8.1f} us")
    print(
        f"  target < 1000 us median: {'met' if statistics.median(latencies_us) < 1000 else 'MISSED'}"
    )


if __name__ == "__main__":
    start = time.perf_counter()
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
    print(f"  ({time.perf_counter() - start:.1f} s)")
