"""A running run is never cleaned: its liveness lock says it is alive, even to another process."""

import subprocess
import sys
import time

import pytest

from bench.backends.base import Availability
from bench.run import cleanup, liveness

HOLDER = (
    "import sys, time\n"
    "from bench.run import liveness\n"
    "with liveness.hold(sys.argv[1]):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(60)\n"
)


def hold_in_child(run_id: str) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, run_id], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "held"
    return child


def test_lock_held_by_a_live_process_and_released_when_it_dies(cache_dir):
    child = hold_in_child("run-a")
    try:
        assert liveness.is_alive("run-a")
        assert liveness.alive_runs() == {"run-a"}
        assert not liveness.is_alive("run-b")
    finally:
        child.kill()  # like kill -9: the kernel drops the lock
        child.wait()
    time.sleep(0.1)
    assert not liveness.is_alive("run-a")
    assert liveness.alive_runs() == set()


class FakeBackend:
    def __init__(self, removed_log):
        self.removed_log = removed_log

    def availability(self):
        return Availability(True, "fake")

    def leftover_run_ids(self):
        return {"run-live", "run-dead"}

    def cleanup_run(self, run_id):
        self.removed_log.append(run_id)
        return [f"thing of {run_id}"]

    def cleanup_all(self):
        self.removed_log.append("ALL")
        return ["shared"]

    def close(self):
        pass


def test_clean_leaves_live_runs_and_shared_artefacts_alone(cache_dir, monkeypatch):
    log: list[str] = []
    monkeypatch.setattr(cleanup, "engine_names", lambda: ("fake",))
    monkeypatch.setattr(cleanup, "make_backend", lambda name: FakeBackend(log))
    child = hold_in_child("run-live")
    try:
        report = cleanup.clean()
        assert log == ["run-dead"]  # not the live run, and not the shared artefacts
        assert report.running == ["run-live"]
        assert report.removed == ["thing of run-dead"]
        refused = cleanup.clean("run-live")
        assert "still running" in refused.problems[0] and log == ["run-dead"]
        # a resumed run cleans its own earlier attempt although its lock is held (by itself)
        cleanup.clean("run-live", own_run="run-live")
        assert log[-1] == "run-live"
    finally:
        child.kill()
        child.wait()
    log.clear()
    cleanup.clean()
    assert sorted(log) == ["ALL", "run-dead", "run-live"]


class UnusableBackend(FakeBackend):
    def __init__(self, available: Availability):
        super().__init__([])
        self.available = available

    def availability(self):
        return self.available


@pytest.mark.parametrize(
    "available, said",
    [
        # a daemon that is down may hold a run's containers: clean says it could not look
        (Availability(False, "no Docker daemon runs", "start it"), True),
        # not installed, or never usable by this user: nothing of it can be left behind
        (Availability(False, "fake not found", "apt-get install fake", never_ran=True), False),
        (Availability(False, "rootless cgroup v1", "run as root", never_ran=True), False),
    ],
)
def test_clean_says_which_engines_it_could_not_check(cache_dir, monkeypatch, available, said):
    monkeypatch.setattr(cleanup, "engine_names", lambda: ("fake",))
    monkeypatch.setattr(cleanup, "make_backend", lambda name: UnusableBackend(available))
    report = cleanup.clean()
    assert report.removed == []
    expected = [f"fake: not checked: {available.reason}; fix: {available.fix}"] if said else []
    assert report.problems == expected
