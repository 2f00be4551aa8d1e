"""Debian packages as build inputs: resolve a version, download the .deb, extract it.

Packages are downloaded (``apt-get download``) and unpacked (``dpkg-deb -x``), never
installed, so a guest's kernel and busybox come from the archive, not from the host's state.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.errors import VmbenchError
from bench.guests import tool


class DebError(VmbenchError, RuntimeError):
    pass


class HostToolMissing(DebError):
    """This host lacks a program or privilege that building guests needs (apt-get,
    debootstrap, cpio, root): set-up is incomplete, not a fault of the build. ``cause`` and
    ``fix`` stay apart for doctor; the message joins them."""

    def __init__(self, cause: str, fix: str = "") -> None:
        super().__init__(f"{cause}; fix: {fix}" if fix else cause)
        self.cause, self.fix = cause, fix


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    arch: str

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.arch}={self.version}"


def _apt(argv: list[str], cwd: Path | None = None, timeout: float = 600) -> str:
    if not shutil.which(argv[0]):
        raise HostToolMissing(
            f"{argv[0]} not found: vmbench builds guests from Debian packages (apt)"
        )
    try:
        out = tool.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DebError(f"{' '.join(argv)} took longer than {timeout:.0f} s") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise DebError(f"{' '.join(argv)} failed: {last}")
    return out.stdout


def candidate(name: str, arch: str) -> Package:
    """The version apt would download for ``name`` on ``arch``."""
    text = _apt(["apt-cache", "show", "--no-all-versions", f"{name}:{arch}"])
    match = re.search(r"^Version: (\S+)", text, re.MULTILINE)
    if not match:
        raise DebError(
            f"apt knows no package {name}:{arch}; run 'apt-get update'"
            + (f" after 'dpkg --add-architecture {arch}'" if arch != host_arch() else "")
        )
    return Package(name, match.group(1), arch)


def kernel_package(arch: str) -> Package:
    """The versioned kernel package that linux-image-cloud-<arch> depends on."""
    flavour = f"linux-image-cloud-{arch}"
    text = _apt(["apt-cache", "show", "--no-all-versions", f"{flavour}:{arch}"])
    match = re.search(r"^Depends: (linux-image-[^\s,(]+)", text, re.MULTILINE)
    if not match:
        raise DebError(f"{flavour} names no kernel package; run 'apt-get update'")
    return candidate(match.group(1), arch)


def host_arch() -> str:
    return _apt(["dpkg", "--print-architecture"]).strip()


def download(package: Package, dest: Path) -> Path:
    """The .deb for ``package`` in ``dest`` (downloaded once, then reused)."""
    dest.mkdir(parents=True, exist_ok=True)
    existing = _find_deb(package, dest)
    if existing:
        return existing
    # Into a private folder first: an interrupted download must not leave a truncated .deb
    # under its final name (the next run would take it as complete), and two runs fetching
    # the same package must not write one file at once.
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=dest))
    try:
        _apt(["apt-get", "download", "-q", package.spec], cwd=partial)
        found = _find_deb(package, partial)
        if not found:
            raise DebError(f"apt-get download {package.spec} left no .deb in {partial}")
        os.replace(found, dest / found.name)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return dest / found.name


def _find_deb(package: Package, folder: Path) -> Path | None:
    version = package.version.split(":")[-1]
    for deb in folder.glob(f"{package.name}_*_{package.arch}.deb"):
        if deb.name.split("_")[1].replace("%3a", ":").split(":")[-1] == version:
            return deb
    return None


def extract(deb: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    _apt(["dpkg-deb", "-x", str(deb), str(dest)])
    return dest
