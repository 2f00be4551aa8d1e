"""A microVM: QEMU's ``microvm`` machine booting the guest's kernel and initramfs.

Firecracker's class of VM, with QEMU's machinery: no PCI bus (``pcie=off``, the kernel told
``pci=off``), virtio-mmio for any device, an ISA serial port for the console (``ttyS0``), no
firmware beyond QEMU's minimal boot code. Its own kernel, like any VM; only the machine
differs from the ``qemu`` engine (this package's ``backend``), whose command line, memory
reading and cleanup it reuses.

Under TCG the microvm kernel hangs in about one boot of five while it calibrates the TSC;
``tsc_early_khz`` (the host's TSC rate: under TCG the guest reads the host's TSC) skips that.

Only guests that boot from their initramfs run here (``busybox``): the debian guests' disk is
a virtio-pci block device and their initramfs loads no virtio_mmio driver.
Firecracker and Cloud Hypervisor need KVM; see the README for them as the next engines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.backends.base import HOST_ARCH, BackendUnsupported, Prepared
from bench.backends.qemu.backend import QemuBackend, QemuImage
from bench.guests import Guest

# No PCI, the ISA serial port on (QEMU 7.2's defaults, said explicitly), ACPI as by default.
MACHINE = "microvm,pcie=off,isa-serial=on"
KERNEL_ARGS = "pci=off"


def host_tsc_khz(cpuinfo: str) -> int:
    """The host's TSC rate in kHz from a ``/proc/cpuinfo`` text (``cpu MHz`` of the first
    CPU; with ``constant_tsc`` the TSC ticks at that rate). The kernel refines it later;
    it only has to be close enough for early boot."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "cpu MHz":
            return round(float(value) * 1000)
    raise BackendUnsupported("qemu-microvm: /proc/cpuinfo names no 'cpu MHz' (TSC rate)")


class QemuMicrovmBackend(QemuBackend):
    """A minimal-device VM: its own kernel, no PCI, virtio-mmio, ISA serial."""

    name = "qemu-microvm"
    kind = "microvm"
    options = {  # noqa: RUF012 (a declaration, never mutated)
        key: option
        for key, option in QemuBackend.options.items()
        if key in ("memory_mib", "cpus", "accel", "tb_size_mib")
    }
    estimate_mib = 128  # the same hypervisor as the qemu engine

    @classmethod
    def settings(cls, given: dict[str, Any]) -> dict[str, Any]:
        """The qemu engine's settings with this machine, a direct kernel boot, and the words
        the microvm kernel needs."""
        tsc_khz = host_tsc_khz(Path("/proc/cpuinfo").read_text())
        return {
            **super().settings(given),
            "machine": MACHINE,
            "boot": "kernel",
            "kernel_args": f"{KERNEL_ARGS} tsc_early_khz={tsc_khz}",
        }

    def prepare(self, guest: Guest, options: dict[str, Any]) -> Prepared[QemuImage]:
        if guest.arch != "amd64" or HOST_ARCH != "amd64":
            raise BackendUnsupported(
                f"{self.name}: QEMU's microvm machine is x86-64 only (guest {guest.name})"
            )
        if guest.disk is not None:
            raise BackendUnsupported(
                f"{self.name}: guest {guest.name} boots from a virtio-pci disk; a microvm has no "
                "PCI (its initramfs would need virtio_mmio): use busybox"
            )
        return super().prepare(guest, self.settings(options))
