"""Compatibility facts: whose kernel a guest runs on, whether a foreign architecture ran, and
whether a system that is not Linux ran (memtest86+).

All come from evidence the guest itself gives: the READY line's ``kernel=`` and ``arch=``
words, the other system's own banner on its console, or, when a binary cannot start at all,
the engine's ``exec format error``.
A container that runs a foreign binary through binfmt_misc + qemu-user is emulated in user
mode, not a shared kernel running foreign code, and the detail says so.
"""

from __future__ import annotations

import platform
from pathlib import Path

# Debian architecture -> what `uname -m` prints, and the binfmt_misc entry qemu-user registers.
UNAME_MACHINE = {"amd64": "x86_64", "arm64": "aarch64", "armhf": "armv7l", "i386": "i686"}
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
EXEC_FORMAT_ERROR = "exec format error"


def host_arch() -> str:
    """The host's Debian architecture name (``amd64``, ``arm64``), from ``uname -m``."""
    machine = platform.machine()
    for arch, uname in UNAME_MACHINE.items():
        if uname == machine:
            return arch
    return machine


def is_foreign(guest_arch: str) -> bool:
    return guest_arch != host_arch()


def kernel_fact(fields: dict[str, str], host_kernel: str) -> tuple[float, str] | None:
    """``kernel_matches_host``: 1 when the guest reports the host's kernel release, else 0."""
    if "kernel" not in fields:
        return None
    same = fields["kernel"] == host_kernel
    return (1.0 if same else 0.0), f"guest_kernel={fields['kernel']} host_kernel={host_kernel}"


def binfmt_emulator(guest_arch: str) -> str | None:
    """The qemu-user interpreter binfmt_misc runs this architecture's binaries with, if any."""
    machine = UNAME_MACHINE.get(guest_arch, guest_arch)
    entry = BINFMT_DIR / f"qemu-{machine}"
    try:
        lines = entry.read_text().splitlines()
    except OSError:
        return None
    if not lines or lines[0].strip() != "enabled":
        return None
    for line in lines:
        if line.startswith("interpreter "):
            return line.split(None, 1)[1].strip()
    return str(entry)


def foreign_arch_ran(guest_arch: str, fields: dict[str, str], container: bool) -> tuple[float, str]:
    """``runs_foreign_arch`` from a READY line: did the foreign guest report its own arch?"""
    reported = fields.get("arch", "?")
    expected = UNAME_MACHINE.get(guest_arch, guest_arch)
    ran = reported == expected
    detail = f"guest_arch={guest_arch} arch={reported} host_arch={host_arch()}"
    if not ran:
        detail += f" (expected arch={expected})"
    if container:
        emulator = binfmt_emulator(guest_arch)
        how = (
            f"user-mode emulation: binfmt_misc runs it with {emulator} on the host kernel"
            if emulator
            else "no binfmt_misc qemu-user entry found, yet it ran"
        )
        detail += f" kernel={fields.get('kernel', '?')} {how}"
    else:
        detail += (
            f" kernel={fields.get('kernel', '?')} system emulation: the guest boots its own kernel"
        )
    return (1.0 if ran else 0.0), detail


def foreign_arch_refused(guest_arch: str, evidence: str) -> tuple[float, str] | None:
    """``runs_foreign_arch`` = 0 when the engine's output shows the binary could not execute."""
    if EXEC_FORMAT_ERROR not in evidence.lower():
        return None
    binfmt = binfmt_emulator(guest_arch)
    if binfmt:
        note = f"; binfmt_misc has {binfmt} but it was not used"
    elif not (BINFMT_DIR / "status").exists():
        note = "; binfmt_misc is not mounted on this host: no user-mode emulation"
    else:
        machine = UNAME_MACHINE.get(guest_arch, guest_arch)
        note = f"; no enabled binfmt_misc qemu-{machine} entry: no user-mode emulation"
    return (
        0.0,
        f"guest_arch={guest_arch} host_arch={host_arch()} {EXEC_FORMAT_ERROR}: {evidence}{note}",
    )


def foreign_os_ran(os_name: str, banner: str, container: bool) -> tuple[float, str]:
    """``runs_foreign_os`` = 1: the system printed its own banner (``banner`` is that line)."""
    how = (
        "ran in a container: its banner came from the container's output"
        if container
        else "system emulation: the VM booted it in place of a Linux kernel"
    )
    return 1.0, f"os={os_name} marker=banner banner={' '.join(banner.split())[:80]!r} {how}"


def foreign_os_refused(os_name: str, evidence: str) -> tuple[float, str] | None:
    """``runs_foreign_os`` = 0 when the engine's own words show the host kernel could not
    execute the system's file; None when they do not (then it is a failure, not this fact)."""
    if EXEC_FORMAT_ERROR not in evidence.lower():
        return None
    return (
        0.0,
        f"os={os_name} host_arch={host_arch()} {EXEC_FORMAT_ERROR}: {evidence}; the host kernel "
        "cannot execute another system's boot image as a process",
    )
