"""One qemu process: started in a session of its own, its console read from stdout, killed by
its own pid, its pid file removed with it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.backends.base import BackendError, Instance
from bench.run import liveness, smaps
from bench.run.measure import ConsoleWatcher, fd_chunks, process_memory

RUN_ENV = "VMBENCH_RUN"  # in a qemu's environment: the run that started it


class QemuInstance(Instance):
    def __init__(
        self,
        argv: list[str],
        accel: str,
        pidfile: Path | None,
        options: dict[str, Any],
        bootloader_markers: tuple[str, ...] = (),
    ) -> None:
        self.argv = argv
        self.bootloader_markers = bootloader_markers
        self.accel = accel
        self.pidfile = pidfile
        self.options = options
        self.proc: subprocess.Popen | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)

    def start(self, deadline_ns: int) -> None:
        """Starts qemu and returns: the trial waits for READY until ``deadline_ns``."""
        if self.pidfile is not None:
            self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.proc = subprocess.Popen(
                self.argv,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                start_new_session=True,  # a Ctrl-C on the terminal reaches the harness, not qemu
            )
        except OSError as e:
            raise BackendError(f"qemu: cannot start {self.argv[0]}: {e.strerror}") from None
        assert self.proc.stdout is not None
        self.console = ConsoleWatcher(
            fd_chunks(self.proc.stdout.fileno()),
            keep_markers=self.bootloader_markers,
        )

    def _env(self) -> dict[str, str]:
        """Whose run this qemu is, for every user's `vmbench clean` (bench/run/liveness.py)."""
        env = {**os.environ, liveness.OWNER_ENV: liveness.me().text()}
        if self.pidfile is not None:
            env[RUN_ENV] = self.pidfile.parent.name  # run_dir(run_id)
        return env

    def memory(self, full: bool = True) -> dict[str, int]:
        """RSS; on a full tick USS, PSS and PSS by what holds it (bench/run/smaps.py)."""
        if self.proc is None:
            return {}
        own = process_memory([self.proc.pid], full)
        if not own.processes:
            return {}
        sample, why = smaps.hypervisor_split(self.proc.pid, own.sample(full))
        if full:  # what the latest full tick found (before qemu maps its RAM: no split yet)
            self.memory_note = why
        return sample

    def wait_exited(self, timeout_s: float) -> bool:
        if self.proc is None:
            return False
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stderr_tail(self) -> str:
        self._stderr.seek(0)
        return " ".join(self._stderr.read().decode(errors="replace").split())[-300:]

    def _teardown(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()  # its own pid, never by name
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if self.pidfile is not None:
            self.pidfile.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # the run's folder goes with its last VM
                self.pidfile.parent.rmdir()
        self._stderr.close()

    def describe(self) -> str:
        return f"machine={self.options['machine']} memory_mib={self.options['memory_mib']}"
