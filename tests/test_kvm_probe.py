"""KVM or TCG: a probe boot decides, its answer is kept only while the host stays the same.

Unit tests fake the probe boot and /dev/kvm (a file in tmp_path) and test the choice and the
cache around them. The integration test runs the real probe on this machine's qemu.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from bench.backends import kvm
from bench.backends.base import BackendError
from bench.backends.qemu import backend as qemu_engine

DAY_S = 24 * 3600


class FakeProbe:
    """Stands in for the probe boot: says what a real one would, and counts the boots."""

    def __init__(self, works: bool, why: str) -> None:
        self.answer = (works, why)
        self.boots = 0

    def __call__(self, guest, machine) -> tuple[bool, str]:
        self.boots += 1
        return self.answer


@pytest.fixture
def host(cache_dir, tmp_path, monkeypatch):
    """A host with a usable /dev/kvm whose probe boot hangs (as here), and a qemu version."""
    device = tmp_path / "kvm"
    device.write_text("")
    device.chmod(0o660)
    monkeypatch.setattr(kvm, "KVM_DEVICE", device)
    state = SimpleNamespace(
        device=device,
        qemu="QEMU emulator version 7.2.22",
        probe=FakeProbe(False, "probe boot did not reach READY within 20 s"),
        record=cache_dir / "kvm-probe.json",
    )
    monkeypatch.setattr(kvm, "qemu_version", lambda binary: state.qemu)
    monkeypatch.setattr(kvm, "_probe_kvm_boot", state.probe)
    return state


GUEST = SimpleNamespace(arch=kvm.HOST_ARCH)
MACHINE = kvm.MACHINES.get(kvm.HOST_ARCH, kvm.MACHINES["amd64"])


def choose(options: dict | None = None, guest=GUEST) -> str:
    return qemu_engine._choose_accel(guest, MACHINE, options or {})


def age_record(record, seconds: float) -> None:
    data = json.loads(record.read_text())
    data["probed_at"] -= seconds
    record.write_text(json.dumps(data))


def test_failed_probe_means_tcg_and_is_remembered(host):
    assert choose() == "tcg"
    assert choose() == "tcg"
    assert host.probe.boots == 1  # the second choice read the record
    data = json.loads(host.record.read_text())
    assert data["works"] is False and "did not reach READY" in data["why"]
    assert data["host"]["qemu"] == host.qemu
    assert abs(data["probed_at"] - time.time()) < 60


def test_working_probe_means_kvm(host):
    host.probe.answer = (True, "probe boot reached READY")
    assert choose() == "kvm"
    assert choose({"accel": "kvm"}) == "kvm"
    assert host.probe.boots == 1


def test_kvm_asked_for_where_the_probe_failed_is_an_error_with_the_reason(host):
    with pytest.raises(BackendError, match="KVM does not work here: probe boot did not reach"):
        choose({"accel": "kvm"})


def test_tcg_asked_for_or_a_foreign_guest_never_probes(host):
    assert choose({"accel": "tcg"}) == "tcg"
    foreign = "arm64" if kvm.HOST_ARCH != "arm64" else "amd64"
    assert choose(guest=SimpleNamespace(arch=foreign)) == "tcg"
    assert host.probe.boots == 0


def test_no_usable_device_means_tcg_without_a_probe(host):
    host.device.chmod(0o000)
    if os.access(host.device, os.R_OK | os.W_OK):  # root reads any file: take it away instead
        host.device.unlink()
    assert choose() == "tcg"
    assert host.probe.boots == 0
    with pytest.raises(BackendError, match="missing or not accessible"):
        choose({"accel": "kvm"})


def test_a_probe_older_than_a_day_is_probed_again(host):
    choose()
    age_record(host.record, DAY_S - 3600)  # 23 h old: still holds
    choose()
    assert host.probe.boots == 1
    age_record(host.record, 2 * 3600)  # 25 h old: stale
    host.probe.answer = (True, "probe boot reached READY")
    assert choose() == "kvm"
    assert host.probe.boots == 2


@pytest.mark.parametrize("change", ["qemu", "kvm_device", "kernel", "boot_id"])
def test_a_changed_host_is_probed_again(host, change):
    assert choose() == "tcg"
    if change == "qemu":
        host.qemu = "QEMU emulator version 8.2.0"
    elif change == "kvm_device":
        host.device.chmod(0o666)
    else:  # the kernel or boot the record was made on is not this one
        data = json.loads(host.record.read_text())
        data["host"][change] = "something else"
        host.record.write_text(json.dumps(data))
    host.probe.answer = (True, "probe boot reached READY")
    assert choose() == "kvm"
    assert host.probe.boots == 2
    assert choose() == "kvm" and host.probe.boots == 2  # and the new answer is kept


def test_a_record_of_the_old_format_is_probed_again(host):
    host.record.parent.mkdir(parents=True)
    host.record.write_text(json.dumps({"boot:QEMU 7.2": [False, "hung"]}))
    choose()
    assert host.probe.boots == 1
    assert json.loads(host.record.read_text())["host"]["qemu"] == host.qemu


def test_doctor_says_when_kvm_was_probed_and_what_it_found(host):
    assert "not probed yet" in kvm.kvm_status("qemu")
    choose()
    probed_at = json.loads(host.record.read_text())["probed_at"]
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(probed_at))
    line = kvm.kvm_status("qemu")
    assert line.startswith(f"KVM last probed {when}: KVM does not work, TCG (probe boot did not")
    assert "holds until" in line
    host.qemu = "QEMU emulator version 8.2.0"
    assert "stale (qemu changed since): the next VM boot probes again" in kvm.kvm_status("qemu")
    host.device.unlink()
    assert kvm.kvm_status("qemu").startswith(f"no {host.device}")


def test_doctor_tells_absent_from_not_loaded_from_not_accessible(host, monkeypatch):
    """Three different problems, three different fixes; none of them needs a probe."""
    host.device.unlink()
    monkeypatch.setattr(kvm, "cpu_virtualization_flag", lambda: None)
    cause, fix = kvm.kvm_access()
    assert "shows no vmx or svm flag" in cause and "firmware" in fix
    monkeypatch.setattr(kvm, "cpu_virtualization_flag", lambda: "vmx")
    assert kvm.kvm_access() == (
        f"no {host.device} although the CPU has vmx: kvm_intel is not loaded",
        "sudo modprobe kvm_intel",
    )
    host.device.write_text("")
    host.device.chmod(0o600)
    monkeypatch.setattr(kvm.access, "may_open", lambda path: False)  # root may open anything
    cause, fix = kvm.kvm_access()
    assert cause.startswith(f"{host.device} (-rw------- ") and "refuses" in cause
    assert f"usermod -aG kvm {kvm.access.user()}" in fix and "log out and in again" in fix
    line = kvm.kvm_status("qemu")
    assert line == f"{cause}: TCG" and host.probe.boots == 0


@pytest.mark.integration
def test_real_probe_on_this_host(qemu_backend, busybox_guest, tmp_path, monkeypatch):
    """The real probe boot with this host's qemu and /dev/kvm, into an empty cache."""
    monkeypatch.setenv("VMBENCH_CACHE", str(tmp_path))
    machine = kvm.MACHINES[busybox_guest.arch]
    if not os.access(kvm.KVM_DEVICE, os.R_OK | os.W_OK):
        assert kvm.kvm_works(busybox_guest, machine) == (
            False,
            f"{kvm.KVM_DEVICE} missing or not accessible",
        )
        assert not (tmp_path / "kvm-probe.json").exists()
        return
    started = time.monotonic()
    works, why = kvm.kvm_works(busybox_guest, machine)
    probe_s = time.monotonic() - started
    if works:
        assert why == "probe boot reached READY"
    else:
        assert why.startswith("probe boot did not reach READY within")
    probe = kvm.last_kvm_probe()
    assert probe is not None and (probe.works, probe.why) == (works, why)
    assert probe.host == kvm.kvm_host_state(kvm.shutil.which(machine.binary))
    started = time.monotonic()
    assert kvm.kvm_works(busybox_guest, machine) == (works, why)
    assert time.monotonic() - started < min(probe_s, 5)  # the record, not a second boot
    assert kvm.kvm_status(machine.binary).startswith("KVM last probed ")


@pytest.mark.parametrize(
    ("arch", "binary"),
    [
        ("amd64", "qemu-system-x86_64"),
        ("arm64", "qemu-system-aarch64"),
        ("riscv64", "qemu-system-x86_64"),
    ],
)
def test_doctor_and_results_name_the_qemu_of_the_hosts_architecture(monkeypatch, arch, binary):
    """An arm64 host runs its guests with qemu-system-aarch64: that is the version recorded."""
    monkeypatch.setattr(kvm, "HOST_ARCH", arch)
    asked = []
    monkeypatch.setattr(qemu_engine, "command_version", lambda argv, pattern: asked.append(argv[0]))
    qemu_engine.QemuBackend().versions()
    assert kvm.host_machine().binary == binary and asked == [binary]


def test_one_probe_for_every_engine_that_runs_qemu():
    """Vagrant on libvirt asks the shared probe, never the qemu engine's module: importing
    it loads bench.backends.kvm and no module of the qemu package."""
    code = (
        "import sys, bench.backends.vagrant.prepare as v, bench.backends.kvm as k;"
        "print(v.kvm_works is k.kvm_works,"
        " sorted(m for m in sys.modules if m.startswith('bench.backends.qemu')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["True", "[]"]
