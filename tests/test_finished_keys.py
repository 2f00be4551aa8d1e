"""Resuming, in-process: which planned trials a run's own CSV already holds (``finished_keys``).

A run is made with scripted backends (the engine boundary faked; the runner, the trial and the
CSV writer are the real ones) and stopped by a Ctrl-C in one trial. What ``finished_keys``
reads back from that CSV must be exactly the trials that ended, so a resumed run does the rest
and nothing twice. The subprocess version with Docker is in test_interrupts.py.
"""

from __future__ import annotations

import pytest

from bench.backends.base import Availability, Backend, Instance, Prepared, SizeRecord
from bench.guests import Guest
from bench.results import ResultWriter, read_rows
from bench.run import runner as runner_mod
from bench.run.measure import ConsoleWatcher
from bench.run.runner import RunConfig, Runner, finished_keys, plan, trial_key
from bench.run.scenario import load

READY_DONE = [b"VMBENCH READY uptime=1.0 kernel=k arch=x86_64\n", b"VMBENCH DONE\n"]
FAILS_ON, STOPPED_ON = ("docker", 2), ("qemu", 3)  # (backend, its n-th trial)


class ScriptedInstance(Instance):
    def __init__(self, lines: list[bytes], accel: str) -> None:
        self.lines, self.accel = lines, accel

    def start(self, deadline_ns: int) -> None:
        self.console = ConsoleWatcher(iter(self.lines))

    def memory(self, full: bool = True) -> dict[str, int]:
        return {"rss_bytes": 2000}

    def wait_exited(self, timeout_s: float) -> bool:
        return True

    def _teardown(self) -> None:
        pass


class ScriptedBackend(Backend):
    """Each trial READY+DONE, except one that ends before READY (failed) and one Ctrl-C."""

    def __init__(self, name: str, usable: bool = True) -> None:
        self.name, self.usable, self.created = name, usable, 0

    def availability(self) -> Availability:
        return Availability(self.usable, "scripted", "" if self.usable else "none")

    def prepare(self, guest, options) -> Prepared:
        return Prepared(
            guest=guest,
            sizes=[SizeRecord("image_bytes", 123.0, "img")],
            build_s=0.0,
            built_now=False,
            handle=None,
        )

    def create(self, prepared, spec) -> Instance:
        self.created += 1
        if (self.name, self.created) == STOPPED_ON:
            raise KeyboardInterrupt
        lines = [] if (self.name, self.created) == FAILS_ON else READY_DONE
        return ScriptedInstance(lines, "none" if self.name == "docker" else "tcg")


@pytest.fixture
def interrupted_run(tmp_path, monkeypatch):
    """A run of docker, qemu and an unusable vagrant, stopped by Ctrl-C in qemu's 3rd trial."""
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        '[scenario]\nname = "t"\nguests = ["busybox"]\nworkloads = ["ready"]\n'
        'backends = ["docker", "qemu", "vagrant"]\nrepetitions = 4\nwarmup = 1\ntimeout_s = 2\n'
    )
    [s] = load(scenario)
    meta = {"rootfs_bytes": 1}
    guest = Guest("busybox", "amd64", tmp_path, tmp_path, None, tmp_path / "i", meta=meta)  # type: ignore[arg-type]
    backends = {"docker": ScriptedBackend("docker"), "qemu": ScriptedBackend("qemu")}
    backends["vagrant"] = ScriptedBackend("vagrant", usable=False)
    monkeypatch.setattr(runner_mod, "build_guest", lambda name: guest)
    monkeypatch.setattr(runner_mod, "make_backend", lambda name: backends[name])
    csv = tmp_path / "results.csv"
    config = RunConfig("run1", "host1")
    with ResultWriter(csv) as writer, pytest.raises(KeyboardInterrupt):
        Runner(config, writer).run([s])
    rows, bad = read_rows(csv)
    assert bad == []
    return s, config, rows


def test_finished_keys_are_the_trials_that_ended_and_the_builds(interrupted_run):
    scenario, _config, rows = interrupted_run
    planned = list(plan(scenario))
    stop = next(
        i for i, t in enumerate(planned) if (t.backend, t.trial) == STOPPED_ON
    )  # trial numbers count every trial of a backend, warmups included
    ended = {trial_key(t) for t in planned[:stop] if t.backend != "vagrant"}
    builds = {("t", "busybox", b, 1, 0, "") for b in ("docker", "qemu")}
    assert finished_keys(rows) == ended | builds
    statuses = {r["status"] for r in rows if r["metric"] == "trial"}
    assert statuses == {"failed", "interrupted", "unsupported"}  # each kind was written


def test_a_resumed_run_does_the_rest_and_nothing_twice(interrupted_run, tmp_path):
    scenario, config, rows = interrupted_run
    planned = list(plan(scenario))
    with ResultWriter(tmp_path / "resumed.csv") as writer:
        pending = Runner(config, writer, done=finished_keys(rows)).pending([scenario])
    stop = next(i for i, t in enumerate(planned) if (t.backend, t.trial) == STOPPED_ON)
    unsupported = [t for t in planned[:stop] if t.backend == "vagrant"]
    assert pending == unsupported + planned[stop:]
    failed = planned.index(next(t for t in planned if (t.backend, t.trial) == FAILS_ON))
    assert (
        failed < stop and planned[failed] not in pending
    )  # a failed trial is an outcome: not run again
