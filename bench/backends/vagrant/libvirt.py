"""The libvirt side of the vagrant backend: the project's storage pool, and finding, reading
and removing the domains and volumes vmbench made (by name prefix, never anyone else's).

vagrant-libvirt does the creating; this module only answers what libvirt holds and cleans up
what a killed ``vagrant up`` or ``vagrant destroy`` left. It calls ``virsh`` with argv lists
(there is no maintained pure-Python libvirt client; libvirt-python needs a compiler).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from bench.errors import VmbenchError
from bench.guests.cache import cache_root, file_lock
from bench.run import access

DEFAULT_URI = "qemu:///system"
SESSION_URI = "qemu:///session"  # the user's own libvirtd, started on demand, qemu as the user
URI_VARIABLE = "VMBENCH_LIBVIRT_URI"
SYSTEM_SOCKET = Path("/var/run/libvirt/libvirt-sock")
POOL = "vmbench"
POOL_PATH = Path("/var/lib/libvirt/vmbench")
PID_DIR = Path("/run/libvirt/qemu")
NAME_PREFIX = "vmbench-"


class LibvirtError(VmbenchError, RuntimeError):
    """virsh failed; the message holds its error line."""


def uri() -> str:
    """The libvirt connection vmbench uses: VMBENCH_LIBVIRT_URI, else the system daemon, except
    for a regular user whom it refuses and whose own session daemon works (``user_uri``).

    Both virsh and vagrant-libvirt (through the Vagrantfile) use it, so pointing it elsewhere
    moves all of vmbench's libvirt work there, and pointing it at nothing shows what a broken
    libvirtd does to a run without touching the daemon other people use.
    """
    if os.environ.get(URI_VARIABLE):
        return os.environ[URI_VARIABLE]
    return DEFAULT_URI if os.geteuid() == 0 else user_uri()


@functools.cache
def user_uri() -> str:
    """A regular user's choice, made once per process: qemu:///system if it lets them in, else
    qemu:///session if that works, else qemu:///system (whose refusal doctor explains)."""
    if _answers(DEFAULT_URI):
        return DEFAULT_URI
    return SESSION_URI if _answers(SESSION_URI) else DEFAULT_URI


def session_answer() -> str:
    """Whether the user's own session daemon works here: its versions, or its error."""
    answer = _virsh_at(SESSION_URI, "version", timeout_s=20)
    return "works" if answer.ok else f"does not work either ({answer.text})"


def is_session() -> bool:
    return uri().rstrip("/").endswith("/session")


def pool_path() -> Path:
    """The project pool's folder: the system daemon's, or one in the user's cache (session)."""
    return cache_root() / "libvirt-pool" if is_session() else POOL_PATH


def pid_dir() -> Path:
    """Where libvirtd writes each domain's qemu pid: the system's, or the session daemon's
    runtime folder ($XDG_RUNTIME_DIR/libvirt, else ~/.cache/libvirt)."""
    if not is_session():
        return PID_DIR
    runtime = os.environ.get("XDG_RUNTIME_DIR") or os.environ.get("XDG_CACHE_HOME")
    base = Path(runtime) if runtime else Path.home() / ".cache"
    return base / "libvirt" / "qemu" / "run"


def system_refusal() -> tuple[str, str]:
    """Why qemu:///system does not let this (non-root) user in, and the fix; ("", "") if it
    does. Tells libvirtd down (no socket) from a socket the user may not open (the libvirt
    group) from a daemon that refuses the user itself (its access policy)."""
    if not SYSTEM_SOCKET.exists():
        return f"libvirtd is not running (no {SYSTEM_SOCKET})", (
            "sudo make host (starts libvirtd), or: sudo systemctl start libvirtd"
        )
    if not access.may_open(SYSTEM_SOCKET):
        return access.refusal(SYSTEM_SOCKET, "libvirt")
    answer = _virsh_at(DEFAULT_URI, "version", timeout_s=10)
    if answer.ok:
        return "", ""
    who = access.user()
    if "system bus" in answer.text:  # no unix_sock_group: libvirtd asks polkit, over D-Bus
        return (
            f"{DEFAULT_URI} refuses {who}: libvirtd would ask polkit over the system D-Bus, "
            f"which does not run here ({answer.text.rpartition('error: ')[2]})",
            f"sudo usermod -aG libvirt {who} on a host whose libvirtd.conf gives that group the "
            "socket (libvirt-daemon-system does), then log out and in again",
        )
    if access.in_group(who, "libvirt") and not access.in_group_now("libvirt"):
        return (
            f"{DEFAULT_URI} refuses {who} ({answer.text}): {who} joined group libvirt after "
            "this login began",
            "log out and in again (or: newgrp libvirt)",
        )
    return f"{DEFAULT_URI} refuses {who} ({answer.text})", (
        f"sudo usermod -aG libvirt {who}, then log out and in again (with libvirt-daemon-system's "
        "libvirtd.conf: unix_sock_group libvirt, auth_unix_rw none)"
    )


@dataclass(frozen=True)
class Answer:
    ok: bool
    text: str


def virsh(*args: str, timeout_s: float = 60.0) -> Answer:
    """Run ``virsh -c URI ARGS`` (see ``uri``); never raises for a failing command."""
    return _virsh_at(uri(), *args, timeout_s=timeout_s)


def _answers(at: str) -> bool:
    return _virsh_at(at, "version", timeout_s=20).ok


def _virsh_at(at: str, *args: str, timeout_s: float = 60.0) -> Answer:
    binary = shutil.which("virsh")
    if binary is None:
        return Answer(False, "virsh not found")
    try:
        done = subprocess.run(
            [binary, "-q", "-c", at, *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return Answer(False, f"virsh {' '.join(args)} did not answer within {timeout_s:g} s")
    except OSError as e:
        return Answer(False, f"virsh: {e.strerror}")
    if done.returncode != 0:
        error = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        return Answer(False, error.removeprefix("error: "))
    return Answer(True, done.stdout)


def must(*args: str, timeout_s: float = 60.0) -> str:
    answer = virsh(*args, timeout_s=timeout_s)
    if not answer.ok:
        raise LibvirtError(f"virsh {' '.join(args)}: {answer.text}")
    return answer.text


def daemon_version() -> Answer:
    """libvirtd's and the hypervisor's versions, or why libvirtd does not answer."""
    answer = virsh("version", timeout_s=10)
    if not answer.ok:
        return answer
    words = {
        k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in answer.text.splitlines())
    }
    return Answer(
        True,
        f"libvirt {words.get('Using library', '?').split()[-1]}, "
        f"{words.get('Running hypervisor', 'hypervisor ?')}",
    )


def ensure_pool() -> None:
    """The project's own directory pool (vagrant-libvirt only creates one called 'default')."""
    with file_lock(cache_root() / ".libvirt-pool.lock"):
        state = virsh("pool-info", POOL, timeout_s=20)
        if not state.ok:
            pool_path().mkdir(parents=True, exist_ok=True)
            must("pool-define-as", POOL, "dir", "--target", str(pool_path()))
            state = virsh("pool-info", POOL, timeout_s=20)
        if "running" not in state.text:
            pool_path().mkdir(parents=True, exist_ok=True)
            must("pool-start", POOL)


def domains(prefix: str = NAME_PREFIX) -> list[str]:
    answer = virsh("list", "--all", "--name", timeout_s=20)
    if not answer.ok:
        raise LibvirtError(f"cannot list libvirt domains: {answer.text}")
    return sorted(n for n in answer.text.split() if n.startswith(prefix))


def volumes(prefix: str = NAME_PREFIX) -> list[str]:
    answer = virsh("vol-list", "--pool", POOL, timeout_s=20)
    if not answer.ok:
        if "not found" in answer.text.lower() or "no storage pool" in answer.text.lower():
            return []
        raise LibvirtError(f"cannot list volumes of pool {POOL}: {answer.text}")
    names = [ln.split()[0] for ln in answer.text.splitlines() if ln.strip()]
    return sorted(n for n in names if n.startswith(prefix))


def description(name: str) -> str:
    """Domain ``name``'s description (vmbench's domains: whose run, bench/run/liveness.py)."""
    try:
        root = ET.fromstring(must("dumpxml", name, timeout_s=20))
    except (LibvirtError, ET.ParseError):
        return ""
    return (root.findtext("description") or "").strip()


def networks() -> list[str]:
    """Every libvirt network, active or not (vmbench must never have made one)."""
    return must("net-list", "--all", "--name", timeout_s=20).split()


def domain_type(name: str) -> str:
    """``qemu`` (TCG) or ``kvm``: the <domain type=...> libvirt started."""
    root = ET.fromstring(must("dumpxml", name, timeout_s=20))
    return root.get("type", "")


def accel_of(domain_kind: str) -> str:
    """The accelerator of a libvirt domain type; a VM's is never ``none``."""
    return {"qemu": "tcg", "kvm": "kvm"}.get(domain_kind, domain_kind or "unknown")


def qemu_pid(name: str) -> int | None:
    """The qemu process libvirt runs for domain ``name``, from libvirt's own pid file."""
    pidfile = pid_dir() / f"{name}.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    # libvirt names the guest on the command line: -name guest=NAME,debug-threads=on
    wanted = f"guest={name},".encode()
    if any(part.startswith(wanted) or part == wanted[:-1] for part in cmdline):
        return pid
    return None


def remove_domain(name: str) -> bool:
    """Stop and undefine a domain (and the volumes named after it); True if there was one."""
    existed = virsh("domstate", name, timeout_s=20).ok
    if existed:
        virsh("destroy", name, timeout_s=30)
        virsh("undefine", name, "--managed-save", "--snapshots-metadata", timeout_s=30)
    return existed


def upload_volume(name: str, image: Path, capacity_bytes: int) -> None:
    """A qcow2 volume ``name`` in the project's pool with the bytes of ``image``."""
    must(
        "vol-create-as",
        POOL,
        name,
        f"{capacity_bytes}B",
        "--allocation",
        f"{image.stat().st_size // 2**20}M",
        "--format",
        "qcow2",
    )
    answer = virsh("vol-upload", "--pool", POOL, name, str(image), timeout_s=600)
    if not answer.ok:
        remove_volume(name)
        raise LibvirtError(f"virsh vol-upload {name}: {answer.text}")


def remove_volume(name: str) -> bool:
    return virsh("vol-delete", "--pool", POOL, name, timeout_s=60).ok


def remove_pool() -> list[str]:
    """Remove the project's pool (and its folder) once it holds no volume any more."""
    if not virsh("pool-info", POOL, timeout_s=20).ok:
        return []
    left = volumes(prefix="")
    if left:
        return []
    virsh("pool-destroy", POOL, timeout_s=30)
    virsh("pool-undefine", POOL, timeout_s=30)
    with contextlib.suppress(OSError):
        pool_path().rmdir()
    return [f"libvirt pool {POOL}"]
