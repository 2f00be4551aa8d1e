"""A running run is never cleaned, whoever cleans: its records and the owner words on its
things name a live process (uid, pid, start time, boot id), checked with psutil."""

import os
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


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


class FakeBackend:
    name = "fake"

    def __init__(self, removed_log, owners=None):
        self.removed_log = removed_log
        # run-dead: this user's run, killed (its container's labels name a process gone)
        mine = liveness.Owner(os.geteuid(), dead_pid(), 1.0, liveness.boot_id()).text()
        self.owners = {"run-dead": mine, **(owners or {})}

    def availability(self):
        return Availability(True, "fake")

    def leftover_run_ids(self):
        return {"run-live", *self.owners}

    def run_owners(self):
        return dict(self.owners)

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


def owner_words(uid: int, pid: int, start_s: float, boot: str | None = None) -> str:
    boot = liveness.boot_id() if boot is None else boot
    return liveness.Owner(uid, pid, start_s, boot).text()


def test_an_owner_is_alive_only_as_that_very_process():
    me = liveness.me()
    assert liveness.Owner.parse(me.text()) == me
    assert me.alive()
    assert me.uid == os.geteuid() and me.pid == os.getpid()
    # the same pid started at another time (a reused pid), or in an earlier boot: not alive
    assert not liveness.Owner(me.uid, me.pid, me.start_s - 5, me.boot_id).alive()
    assert not liveness.Owner(me.uid, me.pid, me.start_s, "0" * 8 + "-dead").alive()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not liveness.Owner(me.uid, child.pid, me.start_s, me.boot_id).alive()
    for junk in ("", "uid=0", "uid=x pid=1 start=1 boot=a", "uid=0 pid=1 start=1 boot=a; rm"):
        assert liveness.Owner.parse(junk) is None


def test_the_records_are_machine_wide_and_outlive_a_kill_9_harmlessly(cache_dir, tmp_path):
    child = hold_in_child("run-a")
    shared = tmp_path / "live" / "run-a"
    try:
        assert liveness.Owner.parse(shared.read_text()).pid == child.pid
        assert (cache_dir / "run" / "run-a.alive").is_file()
        assert liveness.alive_runs() == {"run-a"}
        assert liveness.owner_of("run-a").uid == os.geteuid()
    finally:
        child.kill()
        child.wait()
    assert shared.exists()  # kill -9: nothing removed it, and it names a dead process
    assert liveness.alive_runs() == set()
    liveness.forget_dead("run-a")
    assert not shared.exists() and not (cache_dir / "run" / "run-a.alive").exists()


def test_clean_leaves_another_users_live_run_and_their_leftovers_alone(cache_dir, monkeypatch):
    """Owner words on things (labels) decide, with no record in this user's cache at all."""
    me = liveness.me()
    other_uid = os.geteuid() + 4242
    dead = dead_pid()
    owners = {
        "run-theirs-live": owner_words(other_uid, me.pid, me.start_s),  # a live process
        "run-theirs-dead": owner_words(other_uid, dead, me.start_s),
        "run-mine-dead": owner_words(os.geteuid(), dead, me.start_s),
    }
    log: list[str] = []
    monkeypatch.setattr(cleanup, "engine_names", lambda: ("fake",))
    monkeypatch.setattr(cleanup, "make_backend", lambda name: FakeBackend(log, owners))
    report = cleanup.clean()
    assert "run-theirs-live" not in log and "ALL" not in log  # live: shared objects stay too
    assert report.running == ["run-theirs-live"]
    if os.geteuid() == 0:  # root removes everyone's leftovers and says whose they were
        assert sorted(log) == ["run-dead", "run-live", "run-mine-dead", "run-theirs-dead"]
        theirs = [line for line in report.removed if "run-theirs-dead" in line]
        assert theirs == [f"thing of run-theirs-dead (uid {other_uid}'s run)"]
    else:  # a regular user removes only their own runs' leftovers (run-live: no owner known)
        assert sorted(log) == ["run-dead", "run-mine-dead"]
        assert report.others == ["run-live", "run-theirs-dead"]
    named = cleanup.clean("run-theirs-live")  # asked for by name: still left alone
    assert named.running == ["run-theirs-live"] and named.removed == []
    assert "run-theirs-live" not in log


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


def test_the_shared_folder_cannot_be_turned_against_its_users(cache_dir, tmp_path, monkeypatch):
    """Another user may have made the folder in /tmp: a symlink to elsewhere gets no record
    (the run still runs, its own cache and labels say it lives); a FIFO named like a run id
    does not hang anyone's clean."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "planted"
    link.symlink_to(elsewhere)
    monkeypatch.setenv(liveness.LIVE_DIR_ENV, str(link))
    with liveness.hold("run-s"):
        assert list(elsewhere.iterdir()) == []
        assert liveness.is_alive("run-s")  # from this user's own record
    loose = tmp_path / "loose"  # others may write and remove records there: not used
    loose.mkdir()
    loose.chmod(0o777)
    monkeypatch.setenv(liveness.LIVE_DIR_ENV, str(loose))
    with liveness.hold("run-l"):
        assert list(loose.iterdir()) == []
    live = tmp_path / "live"
    live.mkdir()
    live.chmod(0o1777)
    monkeypatch.setenv(liveness.LIVE_DIR_ENV, str(live))
    with liveness.hold("run-k"):
        assert [p.name for p in live.iterdir()] == ["run-k"]
    os.mkfifo(live / "run-fifo")
    started = time.monotonic()
    assert liveness.owner_of("run-fifo") is None
    assert liveness.alive_runs() == set()
    assert time.monotonic() - started < 5


def test_vmbench_clean_says_which_runs_it_left_and_whose(cache_dir, monkeypatch, capsys):
    from bench.cli import main

    me = liveness.me()
    owners = {
        "run-theirs-live": owner_words(8484, me.pid, me.start_s),
        "run-theirs-dead": owner_words(8484, dead_pid(), me.start_s),
    }
    monkeypatch.setattr(os, "geteuid", lambda: 4242)  # a regular user of this machine
    monkeypatch.setattr(cleanup, "engine_names", lambda: ("fake",))
    monkeypatch.setattr(cleanup, "make_backend", lambda name: FakeBackend([], owners))
    assert main(["clean"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said == [
        "removed thing of run-dead",  # this user's own (uid 4242), its process gone
        "left alone: run run-theirs-live (uid 8484's) is still running",
        "left alone: run run-live has no owner recorded (an older vmbench made it); its "
        "owner's or root's `vmbench clean` removes it",
        "left alone: run run-theirs-dead is uid 8484's; its owner's or root's `vmbench clean` "
        "removes it",
    ]
