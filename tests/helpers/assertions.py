"""Assertions more than one test module makes."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path


def assert_phases_fit(values: dict[str, float]) -> None:
    """Both phases happened, and after the bootloader handed over there was room for the
    guest's uptime at READY: firmware_s + bootloader_s + guest_uptime_s is at most ready_s,
    give or take 15 % of it (the guest's clock under TCG on a loaded host runs a few % off).
    Less is expected: the kernel's decompression runs before the guest's clock starts."""
    assert values["firmware_s"] > 0 and values["bootloader_s"] > 0, values
    phases = values["firmware_s"] + values["bootloader_s"] + values["guest_uptime_s"]
    assert phases <= values["ready_s"] * 1.15, values


def tar_listing(path: Path) -> dict[str, tuple]:
    """name -> (type, mode, uid, gid, size, link or device); hard links as their target."""
    out: dict[str, tuple] = {}
    with tarfile.open(path) as tar:
        for m in tar:
            name = (
                "./" + m.name.removeprefix("./").rstrip("/") if m.name not in ("./", ".") else "."
            )
            if m.islnk():
                target = "./" + m.linkname.removeprefix("./")
                out[name] = out[target]
                continue
            kind = "d" if m.isdir() else "l" if m.issym() else "c" if m.ischr() else "f"
            extra = m.linkname if m.issym() else f"{m.devmajor},{m.devminor}" if m.ischr() else ""
            size = m.size if m.isreg() else 0
            out[name] = (kind, m.mode & 0o7777, m.uid, m.gid, size, extra)
    return out


def folder_listing(root: Path) -> dict[str, tuple]:
    """The same fields from a mounted or unpacked tree."""
    out = {".": _entry(root)}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath) / name
            out["./" + str(path.relative_to(root))] = _entry(path)
    return out


def _entry(path: Path) -> tuple:
    st = path.lstat()
    kind = {stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFCHR: "c"}.get(
        stat.S_IFMT(st.st_mode), "f"
    )
    extra = (
        os.readlink(path)
        if kind == "l"
        else f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}"
        if kind == "c"
        else ""
    )
    size = st.st_size if kind == "f" else 0
    return (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size, extra)


BUILDER_STATE = {
    "./run/mount",  # debootstrap: mount's utab folder from its own /proc mount
    "./var/lib/dpkg/available",  # debootstrap: dpkg's available file
    "./var/lib/dpkg/cmethopt",  # debootstrap
    "./var/log/bootstrap.log",  # debootstrap's log
    "./var/cache/apt/archives/lock",  # mmdebstrap: apt ran in the tree
    "./var/cache/apt/archives/partial",  # mmdebstrap: _apt 0700, as apt makes it
    "./var/lib/apt/extended_states",  # mmdebstrap: apt's auto-installed marks
    "./var/lib/dpkg/arch",  # mmdebstrap: dpkg's architecture list
    "./var/log/apt/eipp.log.xz",
    "./var/log/apt/history.log",
    "./var/log/apt/term.log",
    "./var/lib/dpkg/status",  # the same packages; Priority fields from different indexes
    "./var/lib/dpkg/status-old",
    "./var/cache/debconf/config.dat-old",
    "./var/cache/debconf/templates.dat-old",
    "./var/log/alternatives.log",
    "./var/log/dpkg.log",
}
