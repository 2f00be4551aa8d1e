"""QEMU run directly: two engines, ``qemu`` (a PC or q35 machine, kernel or firmware boot) and
``qemu-microvm`` (QEMU's microvm machine), sharing one command line and one instance.

- ``argv``: the qemu command line (kernel boot, firmware and boot disk)
- ``instance``: one qemu process, its console and its memory
- ``sizes``: the size rows of what a boot needs
- ``backend``: the ``qemu`` engine (prepare, create, cleanup)
- ``microvm``: the ``qemu-microvm`` engine

The KVM probe and the table of qemu binaries live in ``bench.backends.kvm``, which Vagrant on
libvirt uses too.
"""

from __future__ import annotations

from bench.backends.qemu.argv import (
    BOOT_MODES,
    RAM_BACKEND,
    TB_SIZE_MIB,
    disk_boot_args,
    ovmf_files,
    qemu_argv,
)
from bench.backends.qemu.backend import QemuBackend, run_dir
from bench.backends.qemu.instance import QemuInstance
from bench.backends.qemu.microvm import QemuMicrovmBackend, host_tsc_khz

__all__ = [
    "BOOT_MODES",
    "RAM_BACKEND",
    "TB_SIZE_MIB",
    "QemuBackend",
    "QemuInstance",
    "QemuMicrovmBackend",
    "disk_boot_args",
    "host_tsc_khz",
    "ovmf_files",
    "qemu_argv",
    "run_dir",
]
