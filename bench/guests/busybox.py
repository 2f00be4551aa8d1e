"""The busybox guest: a static busybox, the workload and an init script.

The same tree becomes a FROM-scratch container image and, with a kernel, a VM's initramfs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bench.guests import debs
from bench.guests.cache import cache_root, cached_build, content_key
from bench.guests.files import FILES_DIR, file_bytes
from bench.guests.initramfs import write_initramfs

BUILD_VERSION = "2"
# Applets the init and workload scripts call by name.
APPLETS = (
    "sh",
    "mount",
    "uname",
    "sleep",
    "poweroff",
    "cat",
    "echo",
    "mkdir",
    "ls",
    "dd",
    "md5sum",
)


def build_rootfs(arch: str) -> tuple[Path, dict]:
    """Cached busybox root filesystem (tree + initramfs.gz) for ``arch``."""
    package = debs.candidate("busybox-static", arch)
    scripts = [file_bytes("workload"), file_bytes("init")]
    key = content_key([BUILD_VERSION, package.spec, *scripts])
    folder = cache_root() / "guests" / f"busybox-{arch}-{key}"

    def build(tmp: Path) -> dict:
        deb = debs.download(package, cache_root() / "debs")
        unpacked = debs.extract(deb, tmp / "deb")
        rootfs = tmp / "rootfs"
        for sub in ("bin", "proc", "sys", "dev", "tmp", "vmbench"):
            (rootfs / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy2(unpacked / "bin" / "busybox", rootfs / "bin" / "busybox")
        for applet in APPLETS:
            os.symlink("busybox", rootfs / "bin" / applet)
        shutil.copy2(FILES_DIR / "workload", rootfs / "vmbench" / "workload")
        shutil.copy2(FILES_DIR / "init", rootfs / "init")
        shutil.rmtree(tmp / "deb")
        write_initramfs(rootfs, tmp / "initramfs.gz")
        return {"package": package.spec, "arch": arch}

    entry = cached_build(folder, build)
    return entry.folder, {**entry.meta, "built_now": entry.built_now}
