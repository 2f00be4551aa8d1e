"""The real CLI in subprocesses, and what a test checks on the engines after it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

import bench
from bench.backends.qemu import run_dir as qemu_run_dir

REPO = Path(bench.__file__).resolve().parent.parent


class Harness:
    """Starts ``vmbench`` subprocesses and, whatever the test did, leaves nothing behind."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.procs: list[subprocess.Popen] = []
        self.run_ids: set[str] = set()

    def start(self, *args: str, env: dict | None = None, results: Path | None = None):
        results = results or self.tmp / "results"
        log = open(self.tmp / f"vmbench-{len(self.procs)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.cli", *args, "--results-dir", str(results)]
            if args and args[0] == "run"
            else [sys.executable, "-m", "bench.cli", *args],
            cwd=self.tmp,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
        proc.log_path = log.name  # type: ignore[attr-defined]
        log.close()
        self.procs.append(proc)
        return proc

    def run(self, *args: str, env: dict | None = None, timeout: float = 120):
        result = subprocess.run(
            [sys.executable, "-m", "bench.cli", *args],
            cwd=self.tmp,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return result

    def run_id(self, results: Path, timeout: float = 30) -> str:
        wait_until(lambda: results.is_dir() and any(results.iterdir()), timeout, "a run folder")
        (folder,) = list(results.iterdir())
        self.run_ids.add(folder.name)
        return folder.name

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()  # our own child, by its pid
                proc.wait(10)
        if self.run_ids:
            from bench.run.cleanup import clean

            for run_id in self.run_ids:
                clean(run_id)


def wait_until(condition, timeout: float, what: str, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def containers_of(client, run_id: str, helpers: bool = True) -> list:
    """The run's containers; without ``helpers``, only the measured ones (a regular user's run
    also has its smaps reader, bench/backends/smaps_reader.py)."""
    found = client.containers.list(all=True, filters={"label": f"vmbench.run={run_id}"})
    return [c for c in found if helpers or "vmbench.role" not in c.labels]


def qemu_pids(run_id: str, cache: Path | None = None) -> list[int]:
    folder = (cache / "run" / run_id) if cache else qemu_run_dir(run_id)
    pids = []
    for pidfile in folder.glob("*.pid") if folder.is_dir() else []:
        text = pidfile.read_text().split()
        if text:
            pids.append(int(text[0]))
    return pids
