"""CPU cost of the memory sampler at 20 Hz on a real process (psutil memory_full_info).

Run: .venv/bin/python benchmarks/sampler_cost.py [seconds] [pid]
Without a pid it samples a child holding 256 MiB (a stand-in for a qemu process). Prints the
sampler thread's CPU time (process CPU time while sampling minus while idle) as a share of
one core. Target: under 2 %.
"""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from bench.run.measure import MemorySampler, process_memory


def cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


def main(seconds: float = 10.0, pid: int | None = None) -> None:
    child = None
    if pid is None:
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; b = bytearray(256 << 20); time.sleep(600)"]
        )
        pid = child.pid
        time.sleep(1.0)
    try:
        idle_start = cpu_seconds()
        time.sleep(seconds)
        idle = cpu_seconds() - idle_start
        start = cpu_seconds()
        t0 = time.perf_counter()
        with MemorySampler(lambda full: process_memory([pid], full).__dict__, hz=20.0) as sampler:
            time.sleep(seconds)
        wall = time.perf_counter() - t0
        busy = cpu_seconds() - start - idle
        share = 100 * busy / wall
        print(f"sampler at 20 Hz on pid {pid} for {wall:.1f} s: {len(sampler.samples)} samples")
        print(
            f"  CPU {busy * 1000:.0f} ms = {share:.2f} % of one core; "
            f"{busy / max(1, len(sampler.samples)) * 1e6:.0f} us per sample"
        )
        print(f"  target < 2 %: {'met' if share < 2 else 'MISSED'}")
    finally:
        if child is not None:
            child.kill()
            child.wait()


if __name__ == "__main__":
    main(
        float(sys.argv[1]) if len(sys.argv) > 1 else 10.0,
        int(sys.argv[2]) if len(sys.argv) > 2 else None,
    )
