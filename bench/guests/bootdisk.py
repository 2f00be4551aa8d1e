"""Bootable disks: a guest's kernel, initramfs and root filesystem behind firmware and a bootloader.

Direct kernel boot skips what every real VM goes through. A boot disk holds the same kernel,
initramfs and (debian guests) ext4 root filesystem as the guest's direct-boot files:

- ``bios``: an MBR disk. Partition 1 is FAT16, marked active, with syslinux (Debian's
  ``syslinux`` and ``syslinux-common``: its MBR code, ``ldlinux.sys``, ``ldlinux.c32``), the
  kernel and the initramfs. The bootloader and the kernel both use the serial console ttyS0.
- ``uefi``: a GPT disk. Partition 1 is the EFI system partition (FAT32) with GRUB as
  ``EFI/BOOT/BOOTX64.EFI`` (``grub-mkimage`` from Debian's ``grub-efi-amd64-bin`` modules, its
  config built in), the kernel and the initramfs.
- partition 2 (debian guests only) is the guest's ext4 image, byte for byte; the initramfs
  finds it by its label.
- a system that is not Linux (memtest86+) is its kernel file alone, no initramfs, with its
  own command line (its serial console): syslinux starts its ``.bin`` (Linux boot protocol),
  GRUB its ``.efi`` (a UEFI application, which OVMF alone would start with no command line,
  so without a serial console).

Everything is built from image files by a regular user: partitions are made as separate files
(``mkfs.vfat``, ``syslinux --install`` and ``mcopy`` through mtools, never mounted) and written
into the disk at their offsets, the partition table by ``sfdisk`` on the image. No loop device.

The kernel command line is fixed in the bootloader's config, so the workload (ready / idle) is
chosen per instance through SMBIOS: the system serial number (type 1) reads
``VMBENCH_WORKLOAD=<name>``. QEMU (``-smbios type=1,serial=...``), libvirt (``<sysinfo>``,
vagrant-libvirt's ``sysinfo``) and VirtualBox (``DmiSystemSerial`` extradata) all set it, and
the guest reads it from ``/sys/class/dmi/id/product_serial`` (the cloud kernel has
CONFIG_DMIID=y).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from bench.guests import tool
from bench.guests.cache import cache_root, cached_build, content_key
from bench.guests.debian import ROOT_LABEL
from bench.guests.debs import DebError, HostToolMissing

if TYPE_CHECKING:
    from bench.guests import Guest

BUILD_VERSION = "1"
FIRMWARES = ("bios", "uefi")
SECTOR = 512
MIB = 1 << 20
# The channel a disk boot's workload comes through (see the module docstring).
WORKLOAD_SERIAL = "VMBENCH_WORKLOAD={workload}"
SYSLINUX_MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")
GRUB_EFI_MODULES = Path("/usr/lib/grub/x86_64-efi")
# GRUB modules built into BOOTX64.EFI: partition table, file system, the Linux loader, serial,
# echo (its hand-off line).
GRUB_MODULES = ("part_gpt", "fat", "linux", "serial", "terminal", "echo", "boot")
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX_FS_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"


@dataclass(frozen=True)
class Bootloader:
    """A bootloader, the Debian packages it comes from, and the two lines it prints on the
    serial console that bound its share of a boot (the boot phases, bench.run.trial)."""

    name: str
    packages: tuple[str, ...]
    banner: str  # in its first line of output: firmware_s ends, bootloader_s starts
    handoff: str  # in its last line, once kernel and initramfs are loaded: bootloader_s ends

    @property
    def markers(self) -> tuple[str, str]:
        return (self.banner, self.handoff)


# GRUB prints this (an echo in its built-in config) right before it starts the kernel.
GRUB_HANDOFF = "grub: starting the kernel"
BOOTLOADERS = {
    # syslinux's own lines: its banner, and "Loading /initrd.gz...ok" when all is loaded.
    "bios": Bootloader(
        "syslinux", ("syslinux", "syslinux-common"), "SYSLINUX ", "Loading /initrd.gz"
    ),
    "uefi": Bootloader(
        "grub", ("grub-efi-amd64-bin", "grub-common"), "Welcome to GRUB!", GRUB_HANDOFF
    ),
}


class BootDiskError(DebError):
    """A tool that builds the disk is missing or failed; the message names it and the fix."""


@dataclass(frozen=True)
class BootDisk:
    guest: str
    arch: str
    firmware: str  # bios | uefi
    path: Path  # raw disk image (sparse)
    bootloader: Bootloader
    bootloader_bytes: int  # the bootloader's own files in the disk (MBR code included)
    build_s: float
    built_now: bool
    meta: dict

    @property
    def virtual_bytes(self) -> int:
        return self.path.stat().st_size

    @property
    def allocated_bytes(self) -> int:
        return self.path.stat().st_blocks * 512


def kernel_command_line(guest: Guest, console: str = "ttyS0") -> str:
    """What the bootloader passes to the kernel: the same words as a direct kernel boot, less
    the workload (SMBIOS carries it) and, for a disk guest, where the root filesystem is."""
    if guest.own_command_line(console):
        return guest.own_command_line(console)
    words = [f"console={console}", "quiet", "panic=-1", guest.boot_args]
    if guest.disk is not None:
        words.append(f"VMBENCH_ROOT=LABEL={ROOT_LABEL}")
    return " ".join(w for w in words if w)


def build_bootdisk(guest: Guest, firmware: str) -> BootDisk:
    """The cached boot disk of ``guest`` for ``firmware`` (built on first use)."""
    if firmware not in FIRMWARES:
        raise ValueError(f"firmware must be one of {', '.join(FIRMWARES)}, got {firmware!r}")
    if guest.arch != "amd64":
        raise BootDiskError(f"boot disks are built for amd64 guests only, not {guest.arch}")
    bootloader = BOOTLOADERS[firmware]
    boot_files = _boot_files(guest, firmware)
    if guest.initramfs is None and firmware == "bios":
        # No initramfs: syslinux's last line before the kernel runs is the kernel's loading.
        bootloader = replace(bootloader, handoff=f"Loading /{next(iter(boot_files))}")
    versions = {p: _package_version(p) for p in (*bootloader.packages, "mtools", "dosfstools")}
    config = _bootloader_config(firmware, guest, boot_files)
    key = content_key(
        [
            BUILD_VERSION,
            firmware,
            guest.folder.name,  # itself a content key of the guest's tree and initramfs
            guest.kernel.package.spec,
            config,
            " ".join(GRUB_MODULES) if firmware == "uefi" else "",
            *(f"{p}={v}" for p, v in sorted(versions.items())),
        ]
    )
    folder = cache_root() / "guests" / f"{guest.name}-{guest.arch}-{firmware}-{key}"

    def build(tmp: Path) -> dict:
        layout = _layout(firmware, boot_files, guest.disk)
        part = tmp / "boot.fat"
        bootloader_bytes = _make_boot_partition(firmware, part, layout, config, boot_files, key)
        disk = tmp / "disk.img"
        with open(disk, "wb") as f:
            f.truncate(layout.total_bytes)
        _partition(disk, firmware, layout, key)
        _copy_sparse(part, disk, layout.boot_start)
        part.unlink()
        if guest.disk is not None:
            _copy_sparse(guest.disk, disk, layout.root_start)
        if firmware == "bios":
            _write_mbr_code(disk)
        return {
            "package": f"{bootloader.name} "
            + " ".join(f"{p}={v}" for p, v in versions.items() if p in bootloader.packages),
            "guest": guest.name,
            "guest_folder": guest.folder.name,
            "arch": guest.arch,
            "firmware": firmware,
            "bootloader": bootloader.name,
            "bootloader_bytes": bootloader_bytes,
            "kernel_command_line": kernel_command_line(guest),
            "partitions": layout.describe(),
        }

    entry = cached_build(folder, build)
    return BootDisk(
        guest=guest.name,
        arch=guest.arch,
        firmware=firmware,
        path=entry.folder / "disk.img",
        bootloader=bootloader,
        bootloader_bytes=int(entry.meta["bootloader_bytes"]),
        build_s=entry.build_s,
        built_now=entry.built_now,
        meta=entry.meta,
    )


def workload_serial(workload: str) -> str:
    """The SMBIOS system serial number that selects ``workload`` in a disk-booted guest."""
    if not re.fullmatch(r"[a-z0-9-]+", workload):
        raise ValueError(f"workload names are [a-z0-9-]+, got {workload!r}")
    return WORKLOAD_SERIAL.format(workload=workload)


@dataclass(frozen=True)
class _Layout:
    firmware: str
    boot_start: int
    boot_bytes: int
    root_start: int
    root_bytes: int  # 0: no root partition (the initramfs is the whole userland)
    total_bytes: int

    def describe(self) -> str:
        parts = [f"1: {'esp' if self.firmware == 'uefi' else 'boot'} fat {self.boot_bytes}"]
        if self.root_bytes:
            parts.append(f"2: root ext4 {self.root_bytes}")
        return ("gpt" if self.firmware == "uefi" else "mbr") + "; " + "; ".join(parts)


def _layout(firmware: str, boot_files: dict[str, Path], root: Path | None) -> _Layout:
    """Partition 1 at 1 MiB sized for the boot files with room to spare, the root after it."""
    payload = sum(p.stat().st_size for p in boot_files.values())
    floor = 64 * MIB if firmware == "uefi" else 32 * MIB  # FAT32 needs 65525 clusters
    boot_bytes = max(floor, _round_up(int(payload * 1.25) + 8 * MIB, MIB))
    root_bytes = _round_up(root.stat().st_size, MIB) if root is not None else 0
    root_start = MIB + boot_bytes
    tail = MIB if firmware == "uefi" else 0  # the backup GPT at the end of the disk
    return _Layout(
        firmware, MIB, boot_bytes, root_start, root_bytes, root_start + root_bytes + tail
    )


def _boot_files(guest: Guest, firmware: str) -> dict[str, Path]:
    """Name in the boot partition -> file: the kernel (a system's own file under its own
    name) and the initramfs, if the guest has one."""
    kernel = guest.boot_file(firmware)
    files = {(kernel.name if guest.os else "vmlinuz"): kernel}
    if guest.initramfs is not None:
        files["initrd.gz"] = guest.initramfs
    return files


def _bootloader_config(firmware: str, guest: Guest, boot_files: dict[str, Path]) -> str:
    cmdline = kernel_command_line(guest)
    kernel = next(iter(boot_files))
    initrd = "initrd.gz" in boot_files
    if firmware == "bios":
        # syslinux hides its "Loading ..." lines when the command line says "quiet", and the
        # last of them marks its hand-off to the kernel. The same quiet in other words: the
        # kernel's console log level 4, and systemd's status output only on errors (what
        # both make of "quiet").
        cmdline = cmdline.replace("quiet", "loglevel=4 systemd.show_status=error")
        return (
            "SERIAL 0 115200\n"
            "PROMPT 0\n"
            "TIMEOUT 0\n"
            "DEFAULT vmbench\n"
            "LABEL vmbench\n"
            f"  LINUX /{kernel}\n"
            + ("  INITRD /initrd.gz\n" if initrd else "")
            + f"  APPEND {cmdline}\n"
        )
    # Built into BOOTX64.EFI; GRUB sets $root to the partition it was loaded from.
    return (
        "serial --unit=0 --speed=115200\n"
        "terminal_input serial\n"
        "terminal_output serial\n"
        f"linux /{kernel} {cmdline}\n"
        + ("initrd /initrd.gz\n" if initrd else "")
        + f"echo {GRUB_HANDOFF}\n"
        "boot\n"
    )


def _make_boot_partition(
    firmware: str,
    image: Path,
    layout: _Layout,
    config: str,
    boot_files: dict[str, Path],
    key: str,
) -> int:
    """The FAT file system of partition 1, as a file; returns the bootloader's bytes in it."""
    with open(image, "wb") as f:
        f.truncate(layout.boot_bytes)
    fat = (
        ["-F", "32", "-s", "1", "-n", "EFI"] if firmware == "uefi" else ["-F", "16", "-n", "VMBOOT"]
    )
    _run(
        [
            _tool("mkfs.vfat", "dosfstools"),
            *fat,
            "-i",
            key[:8],
            "-h",
            str(layout.boot_start // SECTOR),  # hidden sectors: where the partition starts
            "--invariant",
            str(image),
        ]
    )
    work = image.parent / "boot-files"
    work.mkdir()
    if firmware == "bios":
        # syslinux writes ldlinux.sys (and ldlinux.c32) through mtools and patches the FAT boot
        # sector to load it: no mount.
        _run([_tool("syslinux", "syslinux"), "--install", str(image)])
        (work / "syslinux.cfg").write_text(config)
        _mcopy(image, work / "syslinux.cfg", "/syslinux.cfg")
        # Its MBR code (440 bytes), the FAT boot sector it patched, its two files, its config.
        loader_bytes = 440 + SECTOR + len(config.encode())
        loader_bytes += _fat_file_bytes(image, ("LDLINUX.SYS", "LDLINUX.C32"))
    else:
        (work / "grub.cfg").write_text(config)
        efi = work / "BOOTX64.EFI"
        _run(
            [
                _tool("grub-mkimage", "grub-common"),
                "-O",
                "x86_64-efi",
                "-d",
                str(_need_dir(GRUB_EFI_MODULES, "grub-efi-amd64-bin")),
                "-p",
                "/EFI/BOOT",
                "-c",
                str(work / "grub.cfg"),
                "-o",
                str(efi),
                *GRUB_MODULES,
            ]
        )
        _run([_tool("mmd", "mtools"), "-i", str(image), "::/EFI", "::/EFI/BOOT"], env=_MTOOLS_ENV)
        _mcopy(image, efi, "/EFI/BOOT/BOOTX64.EFI")
        loader_bytes = efi.stat().st_size
    for name, source in boot_files.items():
        _mcopy(image, source, f"/{name}")
    shutil.rmtree(work)
    return loader_bytes


# mtools refuses images whose geometry it does not like unless told not to check.
_MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1"}


def _mcopy(image: Path, source: Path, target: str) -> None:
    _run(
        [_tool("mcopy", "mtools"), "-m", "-i", str(image), str(source), f"::{target}"],
        env=_MTOOLS_ENV,
    )


def _fat_file_bytes(image: Path, names: tuple[str, ...]) -> int:
    """Sum of the sizes of ``names`` in the FAT image's root folder (hidden files included)."""
    listing = _run([_tool("mdir", "mtools"), "-a", "-i", str(image), "::/"], env=_MTOOLS_ENV)
    total = 0
    for line in listing.splitlines():
        words = line.split()
        if len(words) >= 3 and f"{words[0]}.{words[1]}".upper() in names and words[2].isdigit():
            total += int(words[2])
    return total


def _partition(disk: Path, firmware: str, layout: _Layout, key: str) -> None:
    """Write the partition table with sfdisk (ids derived from the cache key: reproducible)."""
    start, size = layout.boot_start // SECTOR, layout.boot_bytes // SECTOR
    root = (layout.root_start // SECTOR, layout.root_bytes // SECTOR)
    if firmware == "bios":
        lines = ["label: dos", f"label-id: 0x{key[:8]}", "unit: sectors"]
        lines.append(f"start={start}, size={size}, type=e, bootable")  # FAT16 (LBA)
        if layout.root_bytes:
            lines.append(f"start={root[0]}, size={root[1]}, type=83")
    else:
        ids = [uuid.uuid5(uuid.NAMESPACE_URL, f"vmbench:{key}:{n}") for n in range(3)]
        lines = ["label: gpt", f"label-id: {ids[0]}", "unit: sectors"]
        lines.append(f'start={start}, size={size}, type={ESP_TYPE}, uuid={ids[1]}, name="EFI"')
        if layout.root_bytes:
            lines.append(
                f'start={root[0]}, size={root[1]}, type={LINUX_FS_TYPE}, uuid={ids[2]}, name="root"'
            )
    _run(
        [_tool("sfdisk", "fdisk"), "--quiet", "--no-reread", "--no-tell-kernel", str(disk)],
        stdin="\n".join(lines) + "\n",
    )


def _write_mbr_code(disk: Path) -> None:
    """syslinux's MBR code: the first 440 bytes, before the disk signature and partition table."""
    code = _need_file(SYSLINUX_MBR, "syslinux-common").read_bytes()[:440]
    with open(disk, "r+b") as f:
        f.write(code)


def _copy_sparse(source: Path, target: Path, offset: int) -> None:
    """Copy ``source`` into ``target`` at ``offset``, only its data extents (holes stay holes)."""
    with open(source, "rb") as src, open(target, "r+b") as dst:
        end = os.fstat(src.fileno()).st_size
        pos = 0
        while pos < end:
            try:
                data = os.lseek(src.fileno(), pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole remains
                break
            hole = os.lseek(src.fileno(), data, os.SEEK_HOLE)
            src.seek(data)
            dst.seek(offset + data)
            remaining = hole - data
            while remaining:
                chunk = src.read(min(remaining, 4 * MIB))
                dst.write(chunk)
                remaining -= len(chunk)
            pos = hole


def _round_up(value: int, unit: int) -> int:
    return (value + unit - 1) // unit * unit


def _package_version(package: str) -> str:
    try:
        out = tool.run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        out = None
    if out is None or out.returncode != 0 or not out.stdout:
        raise HostToolMissing(
            f"Debian package {package} is not installed: boot disks need it (make setup installs it)"
        )
    return out.stdout.strip()


def _tool(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        raise HostToolMissing(f"{name} not found: install Debian's {package} (make setup does)")
    return found


def _need_file(path: Path, package: str) -> Path:
    if not path.is_file():
        raise HostToolMissing(f"{path} not found: install Debian's {package} (make setup does)")
    return path


def _need_dir(path: Path, package: str) -> Path:
    if not path.is_dir():
        raise HostToolMissing(f"{path} not found: install Debian's {package} (make setup does)")
    return path


def _run(argv: list[str], stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    try:
        proc = tool.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired:
        raise BootDiskError(f"{Path(argv[0]).name} took longer than 300 s") from None
    if proc.returncode != 0:
        last = (
            proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"]
        )[-1]
        raise BootDiskError(f"{Path(argv[0]).name} failed while building a boot disk: {last}")
    return proc.stdout
