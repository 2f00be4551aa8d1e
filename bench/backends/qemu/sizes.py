"""The size rows of a qemu guest: the files a direct kernel boot needs, or the boot disk
(and the UEFI variable store) a firmware boot needs, each also gzip-compressed."""

from __future__ import annotations

import contextlib
from pathlib import Path

from bench.backends.base import SizeRecord
from bench.backends.qemu.argv import ovmf_files
from bench.guests import Guest
from bench.guests.bootdisk import BootDisk
from bench.run.measure import file_chunks, gzip_bytes


def kernel_boot_sizes(guest: Guest) -> list[SizeRecord]:
    """What a direct kernel boot needs: kernel, initramfs and (debian) the ext4 disk."""
    sizes = [SizeRecord("kernel_bytes", guest.kernel.vmlinuz.stat().st_size, "kernel")]
    parts = [guest.kernel.vmlinuz]
    if guest.initramfs is not None:
        sizes.append(SizeRecord("initramfs_bytes", guest.initramfs.stat().st_size, "initramfs"))
        parts.append(guest.initramfs)
    if guest.disk is not None:
        sizes.append(
            SizeRecord(
                "disk_bytes",
                guest.disk.stat().st_blocks * 512,
                "disk",
                f"allocated; virtual_bytes={guest.disk.stat().st_size}",
            )
        )
        parts.append(guest.disk)
    total = sum(p.stat().st_blocks * 512 if p == guest.disk else p.stat().st_size for p in parts)
    what = "kernel" + ("+initramfs" if guest.initramfs else "") + ("+disk" if guest.disk else "")
    sizes.append(SizeRecord("image_bytes", total, "vm-boot-files", what))
    sizes.append(
        SizeRecord(
            "image_compressed_bytes",
            sum(_compressed_size(p) for p in parts),
            "vm-boot-files",
            "gzip -6 of each file",
        )
    )
    return sizes


def disk_boot_sizes(guest: Guest, bootdisk: BootDisk) -> list[SizeRecord]:
    """What a disk boot needs: the boot disk (bootloader, kernel, initramfs and root file
    system inside it) and, for UEFI, the VM's own variable store. The firmware code itself
    (SeaBIOS, OVMF_CODE) ships with the hypervisor, like qemu's binary, and is not counted."""
    inside = "kernel, " + ("initramfs, " if guest.initramfs else "") + "bootloader"
    inside += ", root file system" if guest.disk else ""
    sizes = [
        SizeRecord(
            "disk_bytes",
            bootdisk.allocated_bytes,
            "boot-disk",
            f"allocated; virtual_bytes={bootdisk.virtual_bytes}; {bootdisk.meta['partitions']};"
            f" holds {inside}",
        ),
        SizeRecord(
            "bootloader_bytes",
            bootdisk.bootloader_bytes,
            "bootloader",
            f"{bootdisk.bootloader.name}; inside disk_bytes",
        ),
    ]
    total, compressed = bootdisk.allocated_bytes, _compressed_size(bootdisk.path)
    if bootdisk.firmware == "uefi":
        _code, variables = ovmf_files()
        sizes.append(
            SizeRecord(
                "firmware_vars_bytes",
                variables.stat().st_size,
                "firmware-vars",
                f"{variables.name}: the VM's own UEFI variable store",
            )
        )
        total += variables.stat().st_size
        # 0.5 MiB, read from the system's firmware folder: compressed each time, never cached
        # beside it.
        compressed += gzip_bytes(file_chunks(variables))
    what = "boot disk" + (" + UEFI variable store" if bootdisk.firmware == "uefi" else "")
    sizes.append(SizeRecord("image_bytes", total, "vm-boot-files", what))
    sizes.append(
        SizeRecord("image_compressed_bytes", compressed, "vm-boot-files", "gzip -6 of each file")
    )
    return sizes


def _compressed_size(path: Path) -> int:
    """gzip size of a boot file, cached beside it (the kernel is already compressed: ~same)."""
    record = path.with_name(f".{path.name}.gz-size")
    stamp = f"{path.stat().st_size}:{path.stat().st_mtime_ns}"
    if record.exists():
        saved_stamp, _, saved = record.read_text().partition(" ")
        if saved_stamp == stamp:
            return int(saved)
    size = gzip_bytes(file_chunks(path))
    with contextlib.suppress(OSError):
        record.write_text(f"{stamp} {size}")
    return size
