"""A real unprivileged user for tests that run as root (CI): a lab user as issue 14 describes.

``throwaway_user`` creates one with useradd (its own home, subordinate ids, the groups asked
for), runs commands as it with runuser and a clean environment (nothing of root's: no
VMBENCH_CACHE, HOME is its own), and removes it afterwards with its processes, home and
subordinate ids. It runs vmbench from a venv it can read (``lab_venv``), because root's own
venv may sit under /root or use a Python only root can reach.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.guests import userns

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"  # what a lab user's `make venv` finds on Debian
USER_PATH = "/usr/local/bin:/usr/bin:/bin"  # a regular user's PATH: no sbin


@dataclass(frozen=True)
class LabUser:
    name: str
    uid: int
    home: Path
    venv: Path

    @property
    def cache(self) -> Path:
        return self.home / ".cache" / "vmbench"

    def run(
        self, argv: list[str], timeout: float = 600, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """``argv`` as this user, in its home, with a login-like environment of its own."""
        clean = {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "PATH": f"{self.venv}/bin:{USER_PATH}",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            **(env or {}),
        }
        pairs = [f"{k}={v}" for k, v in clean.items()]
        return subprocess.run(
            ["runuser", "-u", self.name, "--", "env", "-i", *pairs, *argv],
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def vmbench(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return self.run([str(self.venv / "bin" / "vmbench"), *args], timeout=timeout)

    def python(self, code: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return self.run([str(self.venv / "bin" / "python"), "-c", code], timeout=timeout)


def can_make_users() -> bool:
    return os.geteuid() == 0 and all(shutil.which(t) for t in ("useradd", "userdel", "runuser"))


@functools.cache
def lab_venv() -> Path:
    """A venv every user can read, with this checkout's vmbench installed from a copy (not
    editable: the checkout itself may be unreadable to others). Dependencies come from pip's
    cache after the first time."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    venv = Path("/var/tmp") / f"vmbench-lab-venv-{key}"
    python = str(venv / "bin" / "python")
    old_umask = os.umask(0o022)  # readable by everyone
    try:
        with tempfile.TemporaryDirectory(prefix="vmbench-lab-src-") as tmp:
            source = Path(tmp) / "vmbench"
            skip = shutil.ignore_patterns(
                ".git", ".venv*", "build", "*.egg-info", "__pycache__", ".*cache"
            )

            def ignore(folder: str, names: list[str]) -> set[str]:
                # Results folders at the top only: bench/results/ is the package's contract.
                top = {"results"} & set(names) if Path(folder) == REPO else set()
                return set(skip(folder, names)) | top

            shutil.copytree(REPO, source, ignore=ignore)
            if not (venv / "bin" / "python").exists():
                shutil.rmtree(venv, ignore_errors=True)
                _check([SYSTEM_PYTHON, "-m", "venv", str(venv)])
                _check([python, "-m", "pip", "install", "-q", str(source)], timeout=1200)
            # This checkout's code, every session (the dependencies stay).
            reinstall = ["--no-deps", "--force-reinstall", str(source)]
            _check([python, "-m", "pip", "install", "-q", *reinstall])
    finally:
        os.umask(old_umask)
    return venv


def _check(argv: list[str], timeout: float = 600) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed: {proc.stderr.strip()[-2000:]}")


@contextmanager
def throwaway_user(
    venv: Path, groups: tuple[str, ...] = (), subordinate_ids: bool = True
) -> Iterator[LabUser]:
    """A fresh user ``vmbt<hex>``; removed on exit with everything it started or owned."""
    name = f"vmbt{secrets.token_hex(3)}"
    argv = ["useradd", "--create-home", "--shell", "/bin/sh", name]
    if groups:
        argv[1:1] = ["--groups", ",".join(groups)]
    _check(argv)
    try:
        entry = pwd.getpwnam(name)
        user = LabUser(name, entry.pw_uid, Path(entry.pw_dir), venv)
        _set_subordinate_ids(name, subordinate_ids)
        yield user
    finally:
        _kill_processes_of(name)
        subprocess.run(["userdel", "--remove", name], capture_output=True, check=False)
        _drop_subordinate_lines(name)


def _set_subordinate_ids(name: str, wanted: bool) -> None:
    """useradd gives a range when /etc/subuid exists; make sure of it, or take it away."""
    has = userns.subordinate_range(userns.SUBUID, name, -1) is not None
    if wanted and not has:
        start = max(userns.free_range_start(userns.SUBUID), userns.free_range_start(userns.SUBGID))
        span = f"{start}-{start + userns.MIN_RANGE - 1}"
        _check(["usermod", "--add-subuids", span, "--add-subgids", span, name])
    if not wanted:
        _drop_subordinate_lines(name)


def _drop_subordinate_lines(name: str) -> None:
    for file in (Path("/etc/subuid"), Path("/etc/subgid")):
        if file.exists():
            lines = file.read_text().splitlines(keepends=True)
            kept = [line for line in lines if not line.startswith(f"{name}:")]
            if kept != lines:
                file.write_text("".join(kept))


def _kill_processes_of(name: str) -> None:
    """Every process of this throwaway user (all started by the test), by pid: its own uid,
    and the subordinate ids its user namespaces run as."""
    uid = pwd.getpwnam(name).pw_uid
    ids = {uid}
    found = userns.subordinate_range(userns.SUBUID, name, uid)
    if found:
        ids.update(range(found.start, found.end))
    procs = [p for p in psutil.process_iter(["uids"]) if p.info["uids"].real in ids]
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(procs, timeout=10)
