"""Guests: one root-filesystem recipe each, built once and cached by content hash.

A backend turns a Guest into its own image (a container image, a kernel + initramfs, a box);
the userland files are the same bytes for every backend.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bench.guests import busybox, debian, debs, memtest
from bench.guests.cache import cache_root
from bench.guests.debs import DebError, HostToolMissing, host_arch
from bench.guests.kernel import KernelTree, kernel_tree
from bench.run.measure import READY, allocated_bytes, apparent_bytes, tree_bytes

__all__ = [
    "ARCHES",
    "GUEST_BUILDERS",
    "DebError",
    "Guest",
    "HostToolMissing",
    "build_guest",
    "built_guests",
    "host_arch",
    "split_guest_name",
]


@dataclass(frozen=True)
class Guest:
    name: str
    arch: str
    folder: Path
    rootfs: Path
    kernel: KernelTree
    initramfs: Path | None  # None: a system that boots from its kernel file alone (memtest)
    disk: Path | None = None
    # The tree as a tar with the guest's owners (docker imports it); None: only rootfs/.
    rootfs_tar: Path | None = None
    build_s: float = 0.0
    built_now: bool = False
    meta: dict = field(default_factory=dict)

    @property
    def rootfs_bytes(self) -> int:
        """Apparent bytes of the userland tree (the same files in every backend's image)."""
        if "rootfs_bytes" in self.meta:
            return int(self.meta["rootfs_bytes"])
        return tree_bytes(self.rootfs)

    @property
    def boot_args(self) -> str:
        """Kernel command line words this guest needs (besides console and workload)."""
        return str(self.meta.get("boot_args", ""))

    def own_command_line(self, console: str) -> str:
        """A system's own complete kernel command line (memtest: its serial console), or
        empty for a Linux guest (its command line is the engine's, with the workload)."""
        return str(self.meta.get("command_line", "")).format(console=console)

    def boot_file(self, firmware: str) -> Path:
        """The file a bootloader starts: the kernel, or under UEFI the system's own EFI
        application where it ships one (memtest86+x64.efi)."""
        efi = self.meta.get("uefi_kernel")
        return self.folder / efi if firmware == "uefi" and efi else self.kernel.vmlinuz

    @property
    def os(self) -> str:
        """The system it runs when that is not Linux (``memtest86+``), else empty."""
        return str(self.meta.get("os", ""))

    @property
    def ready_marker(self) -> str:
        """The console text that means it is up: the workload's READY line, or a system's own
        banner (``Memtest86+ v6.10``), which may appear anywhere in a line."""
        return str(self.meta.get("ready_marker") or READY)

    @property
    def readiness(self) -> str:
        """What decided it was up, for the rows: ``marker`` (READY) or ``banner``."""
        return str(self.meta.get("readiness", "marker"))

    @property
    def entrypoint(self) -> tuple[str, ...]:
        """What a container of it runs: the workload script, or the system's own file."""
        return tuple(self.meta.get("entrypoint", ("/bin/sh", "/vmbench/workload")))


def _build_busybox(arch: str) -> Guest:
    folder, meta = busybox.build_rootfs(arch)
    kernel = kernel_tree(arch)
    return Guest(
        name="busybox",
        arch=arch,
        folder=folder,
        rootfs=folder / "rootfs",
        kernel=kernel,
        initramfs=folder / "initramfs.gz",
        build_s=float(meta.get("build_s", 0.0)) + (kernel.build_s if kernel.built_now else 0.0),
        built_now=bool(meta.get("built_now")) or kernel.built_now,
        meta=meta,
    )


def _build_debian(name: str, arch: str) -> Guest:
    kernel = kernel_tree(arch)
    folder, meta = debian.build(name, arch, kernel)
    return Guest(
        name=name,
        arch=arch,
        folder=folder,
        rootfs=folder / "rootfs",
        kernel=kernel,
        initramfs=folder / "initramfs.gz",
        disk=folder / "disk.img",
        rootfs_tar=folder / "rootfs.tar",
        build_s=float(meta.get("build_s", 0.0)) + (kernel.build_s if kernel.built_now else 0.0),
        built_now=bool(meta.get("built_now")) or kernel.built_now,
        meta=meta,
    )


def _build_memtest(arch: str) -> Guest:
    """memtest86+: its kernel file is the whole system; no initramfs, no root file system
    (its rootfs/ holds the same file for a container image)."""
    folder, meta = memtest.build(arch)
    kernel = KernelTree(
        package=debs.Package(memtest.PACKAGE, meta["version"], arch),
        folder=folder,
        vmlinuz=folder / "boot" / memtest.BIN,
        release=meta["ready_marker"],
        build_s=0.0,
        built_now=False,
    )
    return Guest(
        name="memtest",
        arch=arch,
        folder=folder,
        rootfs=folder / "rootfs",
        kernel=kernel,
        initramfs=None,
        build_s=float(meta.get("build_s", 0.0)),
        built_now=bool(meta.get("built_now")),
        meta=meta,
    )


GUEST_BUILDERS = {
    "busybox": _build_busybox,
    "debian": lambda arch: _build_debian("debian", arch),
    "debian-systemd": lambda arch: _build_debian("debian-systemd", arch),
    "memtest": _build_memtest,
}


ARCHES = ("amd64", "arm64")  # Debian architecture names a guest can be built for


def split_guest_name(name: str) -> tuple[str, str | None]:
    """``busybox-arm64`` -> (``busybox``, ``arm64``); ``busybox`` -> (``busybox``, None)."""
    base, _, arch = name.rpartition("-")
    if base in GUEST_BUILDERS and arch in ARCHES:
        return base, arch
    return name, None


def build_guest(name: str, arch: str | None = None) -> Guest:
    """Build (or fetch from the cache) guest ``name`` for ``arch`` (default: the host's).

    A name ending in ``-<arch>`` (``busybox-arm64``) picks the architecture, so a scenario can
    list a foreign-architecture guest beside the native one.
    """
    base, named_arch = split_guest_name(name)
    if base not in GUEST_BUILDERS:
        raise ValueError(f"unknown guest {name!r}; known: {', '.join(sorted(GUEST_BUILDERS))}")
    return GUEST_BUILDERS[base](arch or named_arch or host_arch())


def built_guests() -> list[dict]:
    """What the cache holds: one dict per built guest folder (for ``vmbench guests``).

    ``artefacts`` maps each boot artefact to its bytes on disk (allocated, for sparse disks),
    and the root filesystem to the sum of its file lengths.
    """
    found = []
    for meta_file in sorted((cache_root() / "guests").glob("*/meta.json")):
        folder = meta_file.parent
        meta = json.loads(meta_file.read_text())
        artefacts = {}
        if (folder / "rootfs").is_dir():
            artefacts["rootfs"] = apparent_bytes(folder / "rootfs")
        elif "rootfs_bytes" in meta:
            artefacts["rootfs"] = int(meta["rootfs_bytes"])
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.startswith(".") and path.suffix != ".json":
                artefacts[path.name] = allocated_bytes(path)
        for path in sorted(folder.glob("boot/*")):  # a system's own boot files (memtest)
            artefacts[f"boot/{path.name}"] = path.stat().st_size
        found.append({"folder": str(folder), **meta, "artefacts": artefacts})
    return found
