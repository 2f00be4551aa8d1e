"""The qemu engine: a VM booted straight from the guest's kernel and initramfs (or through
firmware from its boot disk), no NIC, serial console on a pipe.

KVM is used only when a probe boot proves it works (bench.backends.kvm); otherwise TCG, and
every row says which one ran. A run's qemu pid files live in ``run_dir``, so ``vmbench clean``
finds what a crash left.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.backends.base import (
    HOST_ARCH,
    Availability,
    Backend,
    BackendError,
    BackendUnsupported,
    Instance,
    LaunchSpec,
    Prepared,
    command_version,
)
from bench.backends.kvm import (
    MACHINES,
    Machine,
    host_machine,
    kvm_access,
    kvm_status,
    kvm_works,
    qemu_version,
)
from bench.backends.qemu.argv import BOOT_MODES, TB_SIZE_MIB, qemu_argv
from bench.backends.qemu.instance import RUN_ENV, QemuInstance
from bench.backends.qemu.sizes import disk_boot_sizes, kernel_boot_sizes
from bench.guests import Guest
from bench.guests.bootdisk import BootDisk, build_bootdisk
from bench.guests.cache import cache_root
from bench.guests.debs import DebError
from bench.run import liveness
from bench.run.options import CPUS, MEMORY_MIB, Option, one_of, whole_in


def run_dir(run_id: str) -> Path:
    """Where a run keeps its qemu pid files, so ``vmbench clean`` can find what a crash left."""
    return cache_root() / "run" / run_id


@dataclass(frozen=True, kw_only=True)
class QemuImage:
    """What ``prepare`` found for a guest: the machine that boots its architecture, the
    accelerator, and the boot disk (None: a direct kernel boot)."""

    machine: Machine
    accel: str  # kvm | tcg
    bootdisk: BootDisk | None


class QemuBackend(Backend[QemuImage]):
    """A VM booted straight from the guest's kernel and initramfs (or disk): its own kernel."""

    name = "qemu"
    kind = "vm"
    options = {  # noqa: RUF012 (a declaration, never mutated)
        "memory_mib": MEMORY_MIB,
        "cpus": CPUS,
        "machine": Option(one_of(("pc", "q35")), "pc", "QEMU machine type"),
        "accel": Option(
            one_of(("auto", "kvm", "tcg")), "auto", "auto: KVM where a probe boot works, else TCG"
        ),
        "tb_size_mib": Option(
            whole_in(0, 4096),
            TB_SIZE_MIB,
            "TCG translation buffer in MiB (0: QEMU's own default, unsaid)",
        ),
        "boot": Option(
            one_of(BOOT_MODES),
            "kernel",
            "kernel: direct kernel boot; bios / uefi: the guest's boot disk through SeaBIOS / "
            "OVMF and a bootloader, as real VMs boot",
        ),
    }
    image_options = ("boot",)
    detail_options = ("boot",)
    # Beyond memory_mib: the hypervisor's own memory (a TCG qemu: a ~42 MiB translation
    # buffer + ~50 MiB of its own).
    estimate_mib = 128

    def availability(self) -> Availability:
        machine = host_machine()
        binary = shutil.which(machine.binary)
        if not binary:
            return Availability(
                False,
                f"{machine.binary} not found",
                f"sudo apt-get install {machine.package}",
                never_ran=True,
            )
        _cause, fix = kvm_access()
        return Availability(
            True, f"{qemu_version(binary)}; {kvm_status(binary)}", f"for KVM: {fix}" if fix else ""
        )

    def versions(self) -> dict[str, str | None]:
        return {"qemu": command_version([host_machine().binary, "--version"], r"version ([\d.]+)")}

    def prepare(self, guest: Guest, options: dict[str, Any]) -> Prepared[QemuImage]:
        options = self.settings(options)
        machine = _machine_for(guest.arch)
        accel = _choose_accel(guest, machine, options)
        boot = options["boot"]
        if boot == "kernel":
            sizes, bootdisk = kernel_boot_sizes(guest), None
        else:
            bootdisk = _bootdisk(guest, boot)
            sizes = disk_boot_sizes(guest, bootdisk)
        built_now = bootdisk is not None and bootdisk.built_now
        return Prepared(
            guest=guest,
            sizes=sizes,
            build_s=bootdisk.build_s if bootdisk is not None and built_now else 0.0,
            built_now=built_now,
            handle=QemuImage(machine=machine, accel=accel, bootdisk=bootdisk),
            accel=accel,
        )

    def create(self, prepared: Prepared[QemuImage], spec: LaunchSpec) -> Instance:
        machine, accel, bootdisk = (
            prepared.handle.machine,
            prepared.handle.accel,
            prepared.handle.bootdisk,
        )
        pidfile = run_dir(spec.run_id) / f"{spec.name}.pid"
        options = self.settings(spec.options)
        argv = qemu_argv(
            prepared.guest, machine, accel, spec.workload, options, spec.name, pidfile, bootdisk
        )
        markers = bootdisk.bootloader.markers if bootdisk is not None else ()
        return QemuInstance(argv, accel, pidfile, options, bootloader_markers=markers)

    def cleanup_run(self, run_id: str) -> list[str]:
        removed = []
        folder = run_dir(run_id)
        killed: set[int] = set()
        for pidfile in sorted(folder.glob("*.pid")):
            name = pidfile.stem
            with contextlib.suppress(OSError, ValueError):
                pid = int(pidfile.read_text().split()[0])
                if _is_our_qemu(pid, name):
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                    removed.append(f"qemu pid {pid} ({name})")
            pidfile.unlink(missing_ok=True)
        # A qemu killed -9 before it wrote its pid file is still named after the run.
        for pid, name in _qemus_of_run(run_id):
            if pid not in killed:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                    removed.append(f"qemu pid {pid} ({name})")
        with contextlib.suppress(OSError):
            folder.rmdir()
        return removed

    def leftover_run_ids(self) -> set[str]:
        folder = run_dir("x").parent
        ids = {p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set()
        return ids | set(_running_qemus())

    def run_owners(self) -> dict[str, str]:
        return {run: owner for run, owner in _running_qemus().items() if owner}


def _bootdisk(guest: Guest, firmware: str) -> BootDisk:
    if guest.arch != "amd64":
        raise BackendUnsupported(
            f"qemu: boot = {firmware!r} needs an amd64 guest (boot disks are built for amd64)"
        )
    try:
        return build_bootdisk(guest, firmware)
    except DebError as e:
        raise BackendError(f"qemu: the {firmware} boot disk of {guest.name}: {e}") from None


def _machine_for(arch: str) -> Machine:
    if arch not in MACHINES:
        raise BackendError(f"qemu: no machine known for guest architecture {arch}")
    machine = MACHINES[arch]
    if not shutil.which(machine.binary):
        raise BackendError(
            f"qemu: {machine.binary} not found; sudo apt-get install {machine.package}"
        )
    return machine


def _choose_accel(guest: Guest, machine: Machine, options: dict[str, Any]) -> str:
    wanted = str(options.get("accel", "auto"))
    if guest.arch != HOST_ARCH:
        return "tcg"  # a foreign architecture is always emulated
    if wanted == "tcg":
        return "tcg"
    works, why = kvm_works(guest, machine)
    if works:
        return "kvm"
    if wanted == "kvm":
        raise BackendError(f"qemu: accel = 'kvm' was asked for but KVM does not work here: {why}")
    return "tcg"


def _is_our_qemu(pid: int, name: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(b"qemu-system" in part for part in cmdline[:1]) and name.encode() in cmdline


def _running_qemus() -> dict[str, str]:
    """Run id -> owner words of the qemu processes vmbench started that this user may stop:
    their own, or everyone's for root (from each process's environment)."""
    uid = os.geteuid()
    found: dict[str, str] = {}
    for proc in psutil.process_iter(["name", "uids"]):
        if "qemu-system" not in (proc.info.get("name") or ""):
            continue
        if uid != 0 and (proc.info.get("uids") is None or proc.info["uids"].real != uid):
            continue
        with contextlib.suppress(psutil.Error):
            env = proc.environ()
            if env.get(RUN_ENV):
                found[env[RUN_ENV]] = env.get(liveness.OWNER_ENV, "")
    return found


def _qemus_of_run(run_id: str) -> list[tuple[int, str]]:
    """qemu processes whose ``-name`` starts with ``vmbench-<run_id>-`` (run ids are unique)."""
    prefix = f"vmbench-{run_id}-"
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        argv = proc.info.get("cmdline") or []
        if not argv or "qemu-system" not in os.path.basename(argv[0]):
            continue
        for flag, value in itertools.pairwise(argv):
            if flag == "-name" and value.startswith(prefix):
                found.append((proc.info["pid"], value))
    return found
