"""The qemu command line: direct kernel boot, or firmware and a boot disk; no NIC, the serial
console on stdout, the workload on the kernel's command line or in the SMBIOS serial."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.backends.base import BackendError
from bench.backends.kvm import HEADLESS, Machine, kernel_append
from bench.guests import Guest
from bench.guests.bootdisk import FIRMWARES, BootDisk, workload_serial

BOOT_MODES = ("kernel", *FIRMWARES)
# The TCG translation buffer's size, said explicitly (QEMU 7.2's own default for a system
# emulator): a known mapping in smaps on every host, whatever its QEMU's default.
TB_SIZE_MIB = 1024
# Guest RAM as a named memfd backend, so smaps shows it as one mapping (bench/run/smaps.py).
RAM_BACKEND = "vmbench-ram"
# Debian's OVMF (package ovmf): firmware code and the template of a VM's variable store.
OVMF_FILES = (
    (Path("/usr/share/OVMF/OVMF_CODE_4M.fd"), Path("/usr/share/OVMF/OVMF_VARS_4M.fd")),
    (Path("/usr/share/OVMF/OVMF_CODE.fd"), Path("/usr/share/OVMF/OVMF_VARS.fd")),
)


def qemu_argv(
    guest: Guest,
    machine: Machine,
    accel: str,
    workload: str,
    options: dict[str, Any],
    name: str,
    pidfile: Path | None,
    bootdisk: BootDisk | None = None,
) -> list[str]:
    """The qemu command line: direct kernel boot, or through firmware from ``bootdisk``;
    ``options`` complete (``QemuBackend.settings``)."""
    accel_arg = accel
    if accel == "tcg" and options.get("tb_size_mib"):
        accel_arg = f"tcg,tb-size={int(options['tb_size_mib'])}"
    # kernel_args: an engine's own words (qemu-microvm's)
    append = kernel_append(guest, machine, workload, str(options.get("kernel_args", "")))
    argv = [
        machine.binary,
        "-name",
        name,
        *machine.args(str(options["machine"])),
        "-accel",
        accel_arg,
        "-m",
        str(int(options["memory_mib"])),
        "-object",
        f"memory-backend-memfd,id={RAM_BACKEND},size={int(options['memory_mib'])}M",
        "-machine",
        f"memory-backend={RAM_BACKEND}",
        "-smp",
        str(int(options["cpus"])),
        *HEADLESS,
    ]
    if bootdisk is not None:
        argv += disk_boot_args(bootdisk, workload)
    else:
        argv += ["-kernel", str(guest.kernel.vmlinuz)]
        if guest.initramfs is not None:  # None: a system in one file (memtest86+)
            argv += ["-initrd", str(guest.initramfs)]
        argv += ["-append", append]
        if guest.disk is not None:
            # snapshot=on: writes go to a temporary overlay, the cached image never changes.
            argv += ["-drive", f"file={guest.disk},format=raw,if=virtio,snapshot=on"]
    if pidfile is not None:
        argv += ["-pidfile", str(pidfile)]
    return argv


def disk_boot_args(bootdisk: BootDisk, workload: str) -> list[str]:
    """Firmware, the boot disk and the workload (SMBIOS system serial) for a disk boot.

    BIOS is QEMU's own SeaBIOS; UEFI is Debian's OVMF with a variable store of the VM's own.
    Both the disk and the variable store are opened with snapshot=on: the VM's writes go to a
    temporary overlay, so every instance starts from the same bytes.
    """
    argv = []
    if bootdisk.firmware == "uefi":
        code, variables = ovmf_files()
        argv += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}"]
        argv += ["-drive", f"if=pflash,format=raw,unit=1,snapshot=on,file={variables}"]
    argv += ["-drive", f"file={bootdisk.path},format=raw,if=virtio,snapshot=on"]
    argv += ["-smbios", f"type=1,serial={workload_serial(workload)}"]
    return argv


def ovmf_files() -> tuple[Path, Path]:
    """OVMF's code and variable-store template, or BackendError naming the package."""
    for code, variables in OVMF_FILES:
        if code.is_file() and variables.is_file():
            return code, variables
    raise BackendError("qemu: boot = 'uefi' needs OVMF; sudo apt-get install ovmf")
