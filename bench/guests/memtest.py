"""The memtest guest: Debian's memtest86+, an x86 system that is not Linux and boots on its own.

The compatibility claim is about operating systems ("a VM runs any OS; a container needs a
compatible kernel"), and every other guest is Linux. memtest86+ is a standalone program that
a firmware or bootloader starts on bare (or virtual) hardware: ``memtest86+x64.bin`` is a
Linux boot-protocol image (direct kernel boot, syslinux), ``memtest86+x64.efi`` a UEFI
application (GRUB loads it). Neither is something a Linux kernel can execute as a process.

Built like the other guests: the package is downloaded and extracted, never installed, and
cached by its version. The same ``.bin`` is the whole container image (FROM scratch, as its
entrypoint), so a container engine is given exactly the bytes the VM boots.

Readiness is its own banner on the serial console (``Memtest86+ v6.10``), not the READY
line: it has no shell, no uptime and no workload, and the harness stops it right after the
banner (no memory test runs on).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from bench.guests import debs
from bench.guests.cache import cache_root, cached_build, content_key

BUILD_VERSION = "2"
PACKAGE = "memtest86+"
OS_NAME = "memtest86+"  # the system's name in rows (os=...) and the report
# The files the package ships for x86-64 (ia32 ones beside them are not used).
BIN = "memtest86+x64.bin"  # Linux boot protocol: qemu -kernel, syslinux
EFI = "memtest86+x64.efi"  # a UEFI application: GRUB's linux command on OVMF
# Where the container image has it, and what it runs.
ENTRYPOINT = (f"/{BIN}",)
# Its serial console, on its command line (it prints nothing there without one).
COMMAND_LINE = "console={console},115200"


def banner(version: str) -> str:
    """The text memtest prints first on its console, from the package version: 6.10-4 ->
    ``Memtest86+ v6.10``."""
    upstream = re.sub(r"^\d+:", "", version).split("-")[0]
    return f"Memtest86+ v{upstream}"


def build(arch: str) -> tuple[Path, dict]:
    """The cached extracted package: ``boot/`` with the .bin and .efi, ``rootfs/`` with the
    .bin alone (executable: a container engine gets to try it)."""
    if arch != "amd64":
        raise debs.DebError(f"guest memtest is built for amd64 only, not {arch}")
    package = debs.candidate(PACKAGE, arch)
    key = content_key([BUILD_VERSION, package.spec])
    folder = cache_root() / "guests" / f"memtest-{arch}-{key}"

    def make(tmp: Path) -> dict:
        deb = debs.download(package, cache_root() / "debs")
        unpacked = debs.extract(deb, tmp / "deb")
        boot = tmp / "boot"
        boot.mkdir()
        for name in (BIN, EFI):
            shipped = unpacked / "boot" / name
            if not shipped.is_file():
                raise debs.DebError(f"{deb.name} has no boot/{name}")
            shutil.copy2(shipped, boot / name)
        rootfs = tmp / "rootfs"
        rootfs.mkdir()
        shutil.copy2(boot / BIN, rootfs / BIN)
        (rootfs / BIN).chmod(0o755)
        shutil.rmtree(unpacked)
        return {
            "package": package.spec,
            "version": package.version,
            "arch": arch,
            "os": OS_NAME,
            "readiness": "banner",
            "ready_marker": banner(package.version),
            "entrypoint": list(ENTRYPOINT),
            "command_line": COMMAND_LINE,
            "uefi_kernel": f"boot/{EFI}",
        }

    entry = cached_build(folder, make)
    return entry.folder, {**entry.meta, "built_now": entry.built_now}
