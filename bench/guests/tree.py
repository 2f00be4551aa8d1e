"""A guest's root tree as a tar, as a folder and as an ext4 image, with the guest's owners.

The tar is what moves between build steps and what docker imports. The folder exists only
while a build step runs as root (on the host, or in a user namespace: see userns.py), because
a regular user cannot keep files that belong to root. Device nodes are never created in the
folder (a user namespace may not mknod): they go from tar to tar, and into the ext4 image with
debugfs, so both builders take one path.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

from bench.guests import tool
from bench.guests.debs import DebError, HostToolMissing

# Our own builder's output, a whole root tree: absolute symlinks, setuid bits and owners are
# what it must keep (Pythons with extraction filters would otherwise warn or strip them).
_TRUSTED: dict[str, Any] = (
    {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
)


def extract(tar_path: Path, dest: Path) -> list[tarfile.TarInfo]:
    """Unpack ``tar_path`` into ``dest`` with numeric owners, modes and times; return the
    device nodes, which are left out (see the module docstring)."""
    devices: list[tarfile.TarInfo] = []
    with tarfile.open(tar_path) as tar:
        members: list[tarfile.TarInfo] = []
        for member in tar:
            (devices if member.ischr() or member.isblk() else members).append(member)
        tar.extractall(dest, members=members, numeric_owner=True, **_TRUSTED)
    return devices


def write_tar(tree: Path, out: Path, devices: list[tarfile.TarInfo]) -> None:
    """A tar of ``tree`` plus ``devices``: names sorted, numeric owners only (no user or group
    names), hard links kept, so its bytes depend only on the tree."""
    extra = {_normal(d.name): d for d in devices}
    names = [*_relative_names(tree), *extra]
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(set(names), key=lambda n: n.split("/")):
            if name in extra:
                info = extra[name]
                info.name, info.uname, info.gname = name, "", ""
                tar.addfile(info)
                continue
            path = tree / name if name != "." else tree
            tar.add(path, arcname=name, recursive=False, filter=_numeric)


def add_device_nodes(disk: Path, devices: list[tarfile.TarInfo]) -> None:
    """Create ``devices`` in the ext4 image ``disk`` with their modes, owners and times."""
    if not devices:
        return
    debugfs = shutil.which("debugfs") or shutil.which("debugfs", path="/usr/sbin:/sbin")
    if debugfs is None:
        raise HostToolMissing("debugfs not found: install Debian's e2fsprogs (make setup does)")
    commands = []
    for device in devices:
        path = "/" + _normal(device.name).removeprefix("./")
        if any(c.isspace() or c in "\"'\\" for c in path):
            raise DebError(f"device node {path!r}: debugfs cannot name it")
        kind = "c" if device.ischr() else "b"
        file_type = 0o020000 if device.ischr() else 0o060000
        parent, _, base = path.rpartition("/")
        commands += [
            # mknod links its name into the current directory as it is, slashes and all.
            f"cd {parent or '/'}",
            f"mknod {base} {kind} {device.devmajor} {device.devminor}",
            f"set_inode_field {path} mode 0{file_type | device.mode:o}",
            f"set_inode_field {path} uid {device.uid}",
            f"set_inode_field {path} gid {device.gid}",
            *(f"set_inode_field {path} {t} @{int(device.mtime)}" for t in ("atime", "mtime")),
        ]
    proc = tool.run(
        [debugfs, "-w", "-f", "-", str(disk)],
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    # debugfs exits 0 whatever its commands did; its complaints go to stderr after its banner.
    complaints = [line for line in proc.stderr.splitlines() if not line.startswith("debugfs ")]
    if proc.returncode != 0 or complaints:
        raise DebError(f"debugfs could not add device nodes to {disk}: {' '.join(complaints)}")


def _numeric(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uname = info.gname = ""
    return info


def _normal(name: str) -> str:
    """``./dev/null``, ``dev/null`` and ``./dev/null/`` all as ``./dev/null``."""
    name = name.rstrip("/").removeprefix("./")
    return f"./{name}" if name not in ("", ".") else "."


def _relative_names(tree: Path) -> list[str]:
    names = ["."]
    for root, dirs, files in os.walk(tree):
        rel = os.path.relpath(root, tree)
        prefix = "./" if rel == "." else f"./{rel}/"
        names.extend(prefix + n for n in dirs + files)
    return names
