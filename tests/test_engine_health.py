"""An engine that dies mid-run: the runner's logic against a fake backend boundary (the real
daemon is killed in test_engine_faults.py)."""

from __future__ import annotations

import os

from helpers.fakes import OK_LINES, FakeBackend, run_with, scenario_file
from helpers.vagrant import settings

from bench.backends.base import BackendError
from bench.backends.vagrant import libvirt, machine_env

DOWN = "docker: the daemon at unix:///x.sock stopped answering; start it"


class DyingBackend(FakeBackend):
    """Launches ``alive`` instances, then refuses every create; ``engine_up`` says whether its
    health check finds the engine still there (a refused create with a live engine is possible)."""

    def __init__(self, name: str, alive: int, engine_up: bool = False) -> None:
        super().__init__(name, OK_LINES)
        self.alive = alive
        self.engine_up = engine_up
        self.creates = 0
        self.health_checks = 0

    def create(self, prepared, spec):
        self.creates += 1
        if self.creates > self.alive:
            raise BackendError(f"{self.name}: cannot create: connection refused")
        return super().create(prepared, spec)

    def health(self) -> str:
        self.health_checks += 1
        return "" if self.engine_up or self.creates <= self.alive else DOWN


def test_dead_engine_fails_its_remaining_trials_without_calling_it(
    tmp_path,
    monkeypatch,
    fake_guest,
):
    docker = DyingBackend("docker", alive=2)
    qemu = FakeBackend("qemu", OK_LINES)
    backends = {"docker": docker, "qemu": qemu}
    stats, rows = run_with(tmp_path, monkeypatch, backends, scenario_file(tmp_path))
    assert docker.creates == 3  # two ran, the third found it dead, the other five never asked
    assert docker.health_checks == 1
    assert stats.down == {"docker": f"{DOWN}; then `vmbench clean --run run1` removes what "
                                    "this run left there"}  # fmt: skip
    assert stats.failed == 6 and stats.exit_code() == 1
    failed = [r for r in rows if r["status"] == "failed" and r["metric"] == "trial"]
    assert len(failed) == 6 and {r["backend"] for r in failed} == {"docker"}
    assert all(DOWN in r["detail"] and "vmbench clean --run run1" in r["detail"] for r in failed)
    assert "(this trial: docker: cannot create: connection refused)" in failed[0]["detail"]
    assert len({r["trial"] for r in rows if r["backend"] == "qemu" and r["phase"] != "build"}) == 8
    assert {r["status"] for r in rows if r["backend"] == "qemu"} == {"ok"}


def test_a_failure_with_the_engine_still_up_does_not_stop_the_backend(
    tmp_path,
    monkeypatch,
    fake_guest,
):
    docker = DyingBackend("docker", alive=2, engine_up=True)
    backends = {"docker": docker, "qemu": FakeBackend("qemu", OK_LINES)}
    stats, _rows = run_with(tmp_path, monkeypatch, backends, scenario_file(tmp_path))
    assert stats.down == {}
    assert docker.creates == 8  # every trial still tried
    assert stats.failed == 6


def test_vagrant_talks_to_the_libvirtd_virsh_talks_to(tmp_path, monkeypatch):
    monkeypatch.delenv(libvirt.URI_VARIABLE, raising=False)
    # Root: the system daemon; a regular user: the one of the two that lets them in.
    expected = "qemu:///system" if os.geteuid() == 0 else libvirt.user_uri()
    assert libvirt.uri() == expected
    assert machine_env(settings(tmp_path))["LIBVIRT_DEFAULT_URI"] == expected
    monkeypatch.setenv(libvirt.URI_VARIABLE, "qemu+unix:///system?socket=/nowhere")
    assert libvirt.uri() == "qemu+unix:///system?socket=/nowhere"
    assert machine_env(settings(tmp_path))["LIBVIRT_DEFAULT_URI"] == libvirt.uri()
