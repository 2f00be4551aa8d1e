"""How long `vmbench report` and `vmbench compare` take as a lab grows: 1, 5, 20, 50 hosts,
and `report` of one long run (--long N: the CSV's trials N times over, 400 is about 50 MB).

Builds N hosts from one real results CSV (default: the committed default-suite run) by
rewriting host_id and run_id, with host.json beside each. Each host's times and memory are
scaled by a small seeded factor (sizes and facts are kept), and every tenth host's VM start times are tripled, so the hosts are
not identical and the comparison has hosts that differ. Then it times the commands as a
user runs them: a fresh `python -m bench.cli` process each (interpreter start and imports
included), wall clock (time.perf_counter) and the CPU time of that process and its children
(user + system, getrusage), with the load average around each: on a 2-core machine shared
with other work the wall clock stretches with the load, the CPU time much less.

    .venv/bin/python benchmarks/reading_scale.py [--csv CSV] [--hosts 1,5,20,50] [--repeat 1]
                                                 [--long 400] [--prioritise]

Each line gives wall seconds, CPU seconds and the peak resident memory of the vmbench process
or of one of its forked processes (its rusage, from wait4). The targets: `report` of a 50 MB
CSV within 15 s and 500 MB, `compare` of 200 hosts within 30 s; benchmarks/README.md has the
numbers measured here.

--prioritise (root, Linux with autogroup scheduling) sets this session's autogroup to nice -20
while it measures, so the commands get the CPUs nearly to themselves on a machine others are
loading: it approximates a quiet machine, and slows everyone else meanwhile (for the length
of the benchmark, about a minute). The load average printed is the machine's, not ours.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CSV = ROOT / "tests" / "data" / "default-suite" / "results.csv"
VM_BACKENDS = ("qemu", "vagrant")


def build_host(source: Path, index: int, out_root: Path) -> Path:
    """Copy source as host lab-NN (its own host_id, run_id and host.json); returns the CSV."""
    host_id = f"lab-{index:02d}"
    rng = np.random.default_rng(index)
    factor = float(rng.lognormal(0.0, 0.05))
    slow_vm = index % 10 == 3
    with open(source, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    for row in rows:
        row["host_id"] = host_id
        row["run_id"] = f"20261127T000000Z-{host_id}"
        if row["value"] and row["phase"] != "build" and row["unit"] in ("s", "B"):
            value = float(row["value"]) * factor
            if slow_vm and row["metric"] == "ready_s" and row["backend"] in VM_BACKENDS:
                value *= 3
            row["value"] = repr(value)
    out = out_root / host_id / "results.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    meta_file = source.parent / "host.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    meta["hostname"] = host_id
    (out.parent / "host.json").write_text(json.dumps(meta, indent=2))
    return out


def build_long_run(source: Path, copies: int, out_root: Path) -> Path:
    """One host's CSV with every measured trial ``copies`` times (trial numbers shifted), as a
    long lab run writes it; build rows once."""
    with open(source, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    shift = 1 + max(int(r["trial"]) for r in rows)
    out = out_root / "long" / "results.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(r for r in rows if r["phase"] == "build")
        for k in range(copies):
            writer.writerows(
                {**r, "trial": str(int(r["trial"]) + k * shift)}
                for r in rows
                if r["phase"] != "build"
            )
    meta_file = source.parent / "host.json"
    if meta_file.is_file():
        (out.parent / "host.json").write_text(meta_file.read_text())
    return out


def timed(argv: list[str]) -> tuple[float, float, float, int, str]:
    """Wall seconds, CPU seconds (user + system) and peak RSS in MB of a fresh vmbench
    process, its exit code and its last stderr line."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.cli", *argv],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=ROOT,
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        err.seek(0)
        text = err.read().decode(errors="replace").strip()
    cpu = usage.ru_utime + usage.ru_stime
    last = text.splitlines()[-1] if text else ""
    return seconds, cpu, usage.ru_maxrss / 1024, proc.returncode, last


def measure(label: str, argv: list[str], repeat: int) -> None:
    runs, cpus, peaks = [], [], []
    for _ in range(repeat):
        load_before = os.getloadavg()[0]
        seconds, cpu, peak_mb, code, last = timed(argv)
        runs.append(seconds)
        cpus.append(cpu)
        peaks.append(peak_mb)
        if code != 0:
            print(f"{label}: exit {code}: {last}")
            return
    spread = f" (min {min(runs):.1f}, max {max(runs):.1f})" if repeat > 1 else ""
    print(
        f"{label:<22} {statistics.median(runs):6.1f} s wall{spread}, "
        f"{statistics.median(cpus):5.1f} s CPU, {max(peaks):6.0f} MB peak   "
        f"load before {load_before:.2f}, after {os.getloadavg()[0]:.2f}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="a real results CSV")
    parser.add_argument("--hosts", default="1,5,20,50", help="host counts to compare")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement")
    parser.add_argument("--keep", type=Path, help="build the hosts here and keep them")
    parser.add_argument(
        "--long", type=int, default=0, metavar="N", help="also report one run N times as long"
    )
    parser.add_argument("--prioritise", action="store_true", help="autogroup nice -20 (see above)")
    args = parser.parse_args()
    with prioritised(args.prioritise):
        return run(args)


@contextlib.contextmanager
def prioritised(wanted: bool) -> Iterator[None]:
    """This session's autogroup at nice -20 while measuring (if wanted), then back."""
    group = Path("/proc/self/autogroup")
    if not wanted:
        yield
        return
    before = group.read_text().split()[-1]
    group.write_text("-20")
    print(f"autogroup: {group.read_text().strip()} (was nice {before})")
    try:
        yield
    finally:
        group.write_text(before)


def run(args: argparse.Namespace) -> int:
    counts = [int(n) for n in args.hosts.split(",")]
    with tempfile.TemporaryDirectory(prefix="vmbench-reading-") as tmp:
        work = args.keep or Path(tmp)
        csvs = [build_host(args.csv, i, work / "hosts") for i in range(max(counts))]
        rows = args.csv.read_text(encoding="utf-8").count("\n") - 1
        print(f"source: {args.csv} ({rows} rows per host); cpus: {os.cpu_count()}")
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        measure(
            "report, 1 CSV", ["report", str(csvs[0]), "--out", str(work / "report")], args.repeat
        )
        if args.long:
            long_csv = build_long_run(args.csv, args.long, work)
            size_mb = long_csv.stat().st_size / 1e6
            measure(
                f"report, {args.long}x ({size_mb:.0f} MB)",
                ["report", str(long_csv), "--out", str(work / "report-long")],
                args.repeat,
            )
        for n in counts:
            out = work / f"compare-{n}"
            measure(
                f"compare, {n} host(s)",
                ["compare", *map(str, csvs[:n]), "--out", str(out)],
                args.repeat,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
