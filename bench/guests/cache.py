"""A content-addressed build cache: build once per key, under a lock, published atomically.

Two runs building the same guest at once wait for each other instead of colliding; a build
that dies half-way leaves only a temporary folder that the next build removes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def cache_root() -> Path:
    """``$VMBENCH_CACHE``, else ``$XDG_CACHE_HOME/vmbench``, else ``~/.cache/vmbench``."""
    if os.environ.get("VMBENCH_CACHE"):
        return Path(os.environ["VMBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vmbench"


def content_key(parts: Iterable[str | bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()[:16]


@contextmanager
def file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock_handle(path) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_handle(path: Path):
    """The lock file, created if missing; read-only when another user of a shared cache
    created it (flock needs no write access)."""
    try:
        return open(path, "a")
    except PermissionError:
        return open(path)


@dataclass(frozen=True)
class CacheEntry:
    folder: Path
    built_now: bool
    build_s: float
    meta: dict


def cached_build(
    folder: Path, build: Callable[[Path], dict], meta_name: str = "meta.json"
) -> CacheEntry:
    """Return ``folder``, running ``build(tmp)`` first if it does not exist yet.

    ``build`` fills a temporary folder and returns metadata; the folder is renamed into place
    only when the build finished, so a present folder is always a complete one.
    """
    with file_lock(folder.parent / f".{folder.name}.lock"):
        if (folder / meta_name).exists():
            meta = json.loads((folder / meta_name).read_text())
            return CacheEntry(folder, False, float(meta.get("build_s", 0.0)), meta)
        tmp = folder.parent / f".{folder.name}.tmp"
        remove_tree(tmp)
        tmp.mkdir(parents=True)
        start = time.perf_counter()
        try:
            meta = dict(build(tmp))
        except BaseException:
            remove_tree(tmp)
            raise
        meta["build_s"] = round(time.perf_counter() - start, 3)
        (tmp / meta_name).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        return CacheEntry(folder, True, meta["build_s"], meta)


def remove_tree(path: Path) -> None:
    """Remove ``path``, also what a build killed inside a user namespace left there (files of
    subordinate ids, which only such a namespace can delete)."""
    shutil.rmtree(path, ignore_errors=True)
    if path.exists() and os.geteuid() != 0:
        from bench.guests import userns

        with contextlib.suppress(userns.UserNamespaceUnavailable):
            userns.remove_tree(path)
        shutil.rmtree(path, ignore_errors=True)
