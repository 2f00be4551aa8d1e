"""Fakes at the engine boundary, for the runner's logic (the real engines have their own tests)."""

from __future__ import annotations

import threading
from pathlib import Path

from bench.backends.base import Availability, Backend, Instance, Prepared, SizeRecord
from bench.guests import Guest
from bench.results import ResultWriter, read_rows
from bench.run import runner as runner_mod
from bench.run.measure import ConsoleWatcher
from bench.run.runner import RunConfig, Runner
from bench.run.scenario import load
from helpers.scenarios import write_scenario


def make_fake_guest(monkeypatch, tmp_path: Path) -> Guest:
    """A busybox guest that is never built: the runner's build_guest returns it."""
    guest = Guest("busybox", "amd64", tmp_path, tmp_path, None, tmp_path / "i", built_now=False)  # type: ignore[arg-type]
    monkeypatch.setattr(runner_mod, "build_guest", lambda name: guest)
    return guest


class FakeInstance(Instance):
    """Prints ``lines``; with the ``ready`` workload it then exits, with ``idle`` it prints
    no DONE and its console stays open until it is stopped, like a real guest."""

    def __init__(self, lines, accel, workload="ready"):
        self.lines = lines
        self.accel = accel
        self.workload = workload
        self.stopped = False
        self._gone = threading.Event()

    def start(self, deadline_ns):
        self.console = ConsoleWatcher(self._output())

    def _output(self):
        if self.workload == "ready":
            yield from self.lines
            return
        yield from (line for line in self.lines if b"VMBENCH DONE" not in line)
        if self.lines:  # a guest with no output at all is one that ended at once
            self._gone.wait()

    def memory(self, full=True):
        return {"pss_bytes": 1000, "rss_bytes": 2000, "uss_bytes": 900}

    def wait_exited(self, timeout_s):
        return True

    def _teardown(self):
        self.stopped = True
        self._gone.set()


class FakeBackend(Backend):
    def __init__(self, name, lines, built_now=True):
        self.name = name
        self.kind = "container" if name == "docker" else "vm"
        self.lines = lines
        self.built_now = built_now
        self.instances = []

    def availability(self):
        return Availability(True, "fake")

    def prepare(self, guest, options):
        return Prepared(
            guest=guest,
            sizes=[SizeRecord("image_bytes", 123.0, "img")],
            build_s=0.0,
            built_now=self.built_now,
            handle=None,
        )

    def create(self, prepared, spec):
        accel = "none" if self.name == "docker" else "tcg"
        instance = FakeInstance(self.lines, accel, spec.workload)
        self.instances.append(instance)
        return instance


OK_LINES = [b"VMBENCH READY uptime=1.0 kernel=guest-kernel arch=x86_64\n", b"VMBENCH DONE\n"]


def scenario_file(tmp_path: Path, extra: str = "") -> Path:
    """The fake runner's scenario: both workloads on docker and qemu, 3 repetitions, 1 warmup."""
    return write_scenario(
        tmp_path,
        "t",
        extra,
        filename="s.toml",
        workloads=["ready", "idle"],
        backends=["docker", "qemu"],
        repetitions=3,
        warmup=1,
        timeout_s=2,
        memory_sample_s=0.2,
    )


def run_with(tmp_path, monkeypatch, backends, scenario_path, config=None):
    monkeypatch.setattr(runner_mod, "make_backend", lambda name: backends[name])
    csv = tmp_path / "results.csv"
    with ResultWriter(csv) as writer:
        stats = Runner(config or RunConfig("run1", "host1"), writer).run(load(scenario_path))
    rows, bad = read_rows(csv)
    assert bad == []
    return stats, rows
