"""An initramfs from a tree: a newc cpio archive (Debian's cpio), gzip-compressed."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

from bench.guests import tool
from bench.guests.debs import HostToolMissing


def write_initramfs(tree: Path, out: Path) -> Path:
    """Archive ``tree`` as root-owned files, sorted so the bytes depend only on the content."""
    if not shutil.which("cpio"):
        raise HostToolMissing("cpio not found: install Debian's cpio package (make setup does)")
    names = sorted(_relative_paths(tree))
    listing = "".join(f"{name}\n" for name in names).encode()
    proc = tool.run(
        ["cpio", "--create", "--format=newc", "--owner=0:0", "--reproducible", "--quiet"],
        cwd=tree,
        input=listing,
        capture_output=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"cpio failed: {proc.stderr.decode(errors='replace').strip()}")
    with gzip.GzipFile(out, "wb", compresslevel=9, mtime=0) as gz:
        gz.write(proc.stdout)
    return out


def _relative_paths(tree: Path) -> list[str]:
    names = []
    for root, dirs, files in os.walk(tree):
        rel = os.path.relpath(root, tree)
        if rel != ".":
            names.append(rel)
        names.extend(os.path.join(rel, n) if rel != "." else n for n in files)
        names.extend(
            os.path.join(rel, d) if rel != "." else d
            for d in dirs
            if os.path.islink(os.path.join(root, d))
        )
    return names
