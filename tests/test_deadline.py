"""The trial's deadline reaches every engine: the scenario's ``timeout_s`` travels in the
LaunchSpec, covers ``start`` (an engine whose start waits for the guest is given the deadline),
and Vagrant's ``boot_timeout`` follows it. The Vagrant integration test is in test_vagrant.py."""

from __future__ import annotations

import contextlib
import os
import time

import psutil
import pytest
from helpers.fakes import OK_LINES, FakeBackend, FakeInstance, run_with, scenario_file

from bench.backends.base import BackendTimeout, LaunchSpec, Prepared
from bench.backends.vagrant import VagrantBackend, VagrantImage, machine_env
from bench.guests import Guest
from bench.run.measure import now_ns
from bench.run.trial import run_trial


class SpecRecorder(FakeBackend):
    """The fake engine, remembering every LaunchSpec it was given."""

    def __init__(self, name, lines):
        super().__init__(name, lines)
        self.specs: list[LaunchSpec] = []

    def create(self, prepared, spec):
        self.specs.append(spec)
        return super().create(prepared, spec)


@pytest.mark.usefixtures("fake_guest")
def test_every_engine_is_given_the_scenarios_timeout(tmp_path, monkeypatch):
    backends = {"docker": SpecRecorder("docker", OK_LINES), "qemu": SpecRecorder("qemu", OK_LINES)}
    path = scenario_file(tmp_path, extra="[backend.qemu]\nmemory_mib = 128\n")
    path.write_text(path.read_text().replace("timeout_s = 2", "timeout_s = 7.5"))
    run_with(tmp_path, monkeypatch, backends, path)
    for backend in backends.values():
        assert backend.specs and {s.timeout_s for s in backend.specs} == {7.5}


class SlowStart(FakeInstance):
    """An instance whose start waits for its guest (as ``vagrant up`` does) and never sees
    it: it gives up at the deadline it is given, as a real engine must."""

    given_deadline_ns = 0

    def start(self, deadline_ns):
        SlowStart.given_deadline_ns = deadline_ns
        time.sleep(max(0.0, (deadline_ns - now_ns()) / 1e9))
        raise BackendTimeout("fake: still booting at the trial's deadline")


class SlowBackend(FakeBackend):
    def create(self, prepared, spec):
        instance = SlowStart(self.lines, "tcg", spec.workload)
        self.instances.append(instance)
        return instance


def prepared_fake(tmp_path) -> Prepared:
    guest = Guest("busybox", "amd64", tmp_path, tmp_path, None, tmp_path / "i")  # type: ignore[arg-type]
    return Prepared(guest=guest, sizes=[], build_s=0.0, built_now=False, handle=None)


def test_a_start_that_outlasts_the_deadline_is_a_timeout_after_timeout_s(tmp_path):
    backend = SlowBackend("qemu", OK_LINES)
    spec = LaunchSpec(run_id="r", name="vmbench-r-qemu-busybox-1", workload="ready", timeout_s=1.5)
    before = now_ns()
    outcome = run_trial(backend, prepared_fake(tmp_path), spec, 0.2, "host-kernel")
    took_s = (now_ns() - before) / 1e9
    assert outcome.status == "timeout", outcome.detail
    assert "still booting at the trial's deadline" in outcome.detail
    assert 1.5 <= took_s < 3.0
    # The deadline it was given: its start + timeout_s (to within the time create took).
    assert 0 <= SlowStart.given_deadline_ns - (before + int(1.5e9)) < int(0.5e9)
    assert backend.instances[0].stopped


def vagrant_image(tmp_path) -> VagrantImage:
    guest = Guest("busybox", "amd64", tmp_path, tmp_path, None, tmp_path / "i")  # type: ignore[arg-type]
    return VagrantImage(
        guest=guest,
        provider="virtualbox",  # create() then needs no libvirt pool
        provider_reason="asked for",
        box="vmbench-r-box-busybox-vbox",
        box_url="",
        readiness="serial",
        boot="disk",
        accel="virtualbox",
    )


@pytest.mark.parametrize(("timeout_s", "boot_timeout"), [(3, "3"), (2.2, "3"), (600, "600")])
def test_vagrants_boot_timeout_follows_the_trials_timeout(tmp_path, timeout_s, boot_timeout):
    """Was always 120 s whatever the scenario said (vagrant-box.toml asks for 600)."""
    image = vagrant_image(tmp_path)
    prepared = Prepared(
        guest=image.guest, sizes=[], build_s=0.0, built_now=False, handle=image, accel="virtualbox"
    )
    spec = LaunchSpec(
        run_id="r", name="vmbench-r-vagrant-busybox-1", workload="ready", timeout_s=timeout_s
    )
    instance = VagrantBackend().create(prepared, spec)
    assert machine_env(instance.settings)["VMBENCH_BOOT_TIMEOUT"] == boot_timeout


HANGING_VAGRANT = """#!/bin/sh
# Stands in for a `vagrant up` that never returns (a guest that never prints READY).
case "$1" in
  up) echo "Bringing machine 'default' up..."; echo $$ > "$TEST_UP_PIDFILE"; sleep 300 ;;
esac
exit 0
"""


def test_vagrant_up_still_running_at_the_deadline_is_killed_and_a_timeout(tmp_path, monkeypatch):
    """A stub `vagrant` whose `up` hangs: start gives up at the deadline, raises
    BackendTimeout, and the stub (its whole process group) is gone."""
    fake = tmp_path / "bin" / "vagrant"
    fake.parent.mkdir()
    fake.write_text(HANGING_VAGRANT)
    fake.chmod(0o755)
    pidfile = tmp_path / "up.pid"
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.setenv("VMBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TEST_UP_PIDFILE", str(pidfile))
    image = vagrant_image(tmp_path)
    prepared = Prepared(
        guest=image.guest, sizes=[], build_s=0.0, built_now=False, handle=image, accel="virtualbox"
    )
    spec = LaunchSpec(run_id="r", name="vmbench-r-vagrant-busybox-1", workload="ready", timeout_s=1)
    instance = VagrantBackend().create(prepared, spec)
    with instance:
        start = now_ns()
        with pytest.raises(BackendTimeout, match="had not returned at the trial's timeout"):
            instance.start(start + int(1.5e9))
        took_s = (now_ns() - start) / 1e9
        assert 1.5 <= took_s < 4
        up_pid = int(pidfile.read_text())
        assert not psutil.pid_exists(up_pid) or psutil.Process(up_pid).status() == "zombie"
        assert [p.pid for p in psutil.process_iter() if _group(p.pid) == up_pid] == []
    assert not instance.settings.workdir.exists()


def _group(pid: int) -> int | None:
    """The process group of a live (not zombie) process, else None."""
    with contextlib.suppress(OSError, psutil.Error):
        if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            return os.getpgid(pid)
    return None
