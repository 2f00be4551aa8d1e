"""qemu-microvm: QEMU's microvm machine (no PCI, ISA serial, tsc_early_khz), its own engine on
the qemu engine's machinery; one real boot to READY and one Ctrl-C mid-boot (TCG here)."""

from __future__ import annotations

import secrets
import signal
from pathlib import Path

import pytest
from conftest import usable_backend
from helpers.harness import alive, qemu_pids, wait_until
from helpers.scenarios import write_scenario

from bench.backends import engine
from bench.backends.base import BackendUnsupported, LaunchSpec
from bench.backends.kvm import MACHINES
from bench.backends.qemu import QemuMicrovmBackend, host_tsc_khz, qemu_argv
from bench.backends.qemu import run_dir as qemu_run_dir
from bench.guests import Guest
from bench.results import read_rows
from bench.run.trial import run_trial

HOST_KERNEL = Path("/proc/sys/kernel/osrelease").read_text().strip()
CPUINFO = "processor\t: 0\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 2596.132\nflags\t\t: tsc\n"


class FakeKernel:
    vmlinuz = Path("/k/vmlinuz")


def test_tsc_rate_is_read_from_cpuinfo():
    assert host_tsc_khz(CPUINFO) == 2596132
    with pytest.raises(BackendUnsupported, match="cpu MHz"):
        host_tsc_khz("processor\t: 0\n")


def test_its_own_engine_and_kind_without_the_vm_machine_options():
    cls = engine("qemu-microvm")
    assert cls is QemuMicrovmBackend and cls.kind == "microvm"
    assert "machine" not in cls.options and "memory_mib" in cls.options
    assert engine("qemu").kind == "vm"


def test_command_line_is_a_microvm_with_isa_serial_and_the_tsc_rate(tmp_path):
    guest = Guest("busybox", "amd64", tmp_path, tmp_path, FakeKernel(), tmp_path / "i.gz")  # type: ignore[arg-type]
    options = QemuMicrovmBackend.settings({})
    argv = qemu_argv(guest, MACHINES["amd64"], "tcg", "ready", options, "n", None)
    assert argv[argv.index("-machine") + 1] == "microvm,pcie=off,isa-serial=on"
    append = argv[argv.index("-append") + 1].split()
    assert "console=ttyS0" in append and "pci=off" in append
    [tsc] = [w for w in append if w.startswith("tsc_early_khz=")]
    assert int(tsc.partition("=")[2]) > 100_000  # a real rate in kHz, read from this host
    assert "-drive" not in argv


def test_a_guest_booting_from_a_pci_disk_is_unsupported(tmp_path):
    disk = tmp_path / "disk.img"
    guest = Guest("debian", "amd64", tmp_path, tmp_path, FakeKernel(), tmp_path / "i", disk)  # type: ignore[arg-type]
    with pytest.raises(BackendUnsupported, match="virtio-pci disk"):
        QemuMicrovmBackend().prepare(guest, {})


# --- integration: one real microvm boot, one Ctrl-C -------------------------------------------


@pytest.fixture(scope="module")
def microvm_backend():
    return usable_backend("qemu-microvm")


@pytest.mark.integration
def test_microvm_boots_its_own_kernel_to_ready(microvm_backend, busybox_guest):
    prepared = microvm_backend.prepare(busybox_guest, {})
    run_id = f"test-{secrets.token_hex(3)}"
    launch = LaunchSpec(
        run_id=run_id, name=f"vmbench-{run_id}-qemu-microvm", workload="ready", timeout_s=180
    )
    outcome = run_trial(microvm_backend, prepared, launch, 1.0, HOST_KERNEL)
    assert outcome.status == "ok", outcome.detail
    assert outcome.accel in ("kvm", "tcg")
    values = {m.metric: m.value for m in outcome.measurements}
    assert values["kernel_matches_host"] == 0
    assert 0 < values["guest_uptime_s"] < values["ready_s"]  # its own kernel's clock
    assert outcome.ready_fields["kernel"] != HOST_KERNEL
    [ready] = [m for m in outcome.measurements if m.metric == "ready_s"]
    assert "machine=microvm" in ready.detail
    assert not qemu_run_dir(run_id).exists()  # the VM and its pid file are gone


@pytest.mark.integration
def test_ctrl_c_while_the_microvm_boots_leaves_no_qemu(
    harness,
    tmp_path,
    microvm_backend,
    busybox_guest,
):
    scenario = write_scenario(tmp_path, "microvm", workloads=["ready"], backends=["qemu-microvm"])
    results = tmp_path / "results"
    proc = harness.start("run", str(scenario), results=results)
    run_id = harness.run_id(results)
    pids = wait_until(lambda: qemu_pids(run_id), 60, "qemu's pid file")
    assert all(alive(pid) for pid in pids)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(30)
    log = Path(proc.log_path).read_text()
    assert code == 130, log
    assert "Traceback" not in log, log
    assert not any(alive(pid) for pid in pids)
    assert not qemu_run_dir(run_id).exists()
    rows, bad = read_rows(results / run_id / "results.csv")
    assert bad == []
    [row] = [r for r in rows if r["status"] == "interrupted"]
    assert row["backend"] == "qemu-microvm" and row["kind"] == "microvm"
