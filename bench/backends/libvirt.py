"""The libvirt side of the vagrant backend: the project's storage pool, and finding, reading
and removing the domains and volumes vmbench made (by name prefix, never anyone else's).

vagrant-libvirt does the creating; this module only answers what libvirt holds and cleans up
what a killed ``vagrant up`` or ``vagrant destroy`` left. It calls ``virsh`` with argv lists
(there is no maintained pure-Python libvirt client; libvirt-python needs a compiler).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from bench.guests.cache import cache_root, file_lock

DEFAULT_URI = "qemu:///system"
URI_VARIABLE = "VMBENCH_LIBVIRT_URI"
POOL = "vmbench"
POOL_PATH = Path("/var/lib/libvirt/vmbench")
PID_DIR = Path("/run/libvirt/qemu")
NAME_PREFIX = "vmbench-"


class LibvirtError(RuntimeError):
    """virsh failed; the message holds its error line."""


def uri() -> str:
    """The libvirt connection vmbench uses: VMBENCH_LIBVIRT_URI, else the system daemon.

    Both virsh and vagrant-libvirt (through the Vagrantfile) use it, so pointing it elsewhere
    moves all of vmbench's libvirt work there, and pointing it at nothing shows what a broken
    libvirtd does to a run without touching the daemon other people use.
    """
    return os.environ.get(URI_VARIABLE) or DEFAULT_URI


@dataclass(frozen=True)
class Answer:
    ok: bool
    text: str


def virsh(*args: str, timeout_s: float = 60.0) -> Answer:
    """Run ``virsh -c URI ARGS`` (see ``uri``); never raises for a failing command."""
    binary = shutil.which("virsh")
    if binary is None:
        return Answer(False, "virsh not found")
    try:
        done = subprocess.run(
            [binary, "-q", "-c", uri(), *args],
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
            POOL_PATH.mkdir(parents=True, exist_ok=True)
            must("pool-define-as", POOL, "dir", "--target", str(POOL_PATH))
            state = virsh("pool-info", POOL, timeout_s=20)
        if "running" not in state.text:
            POOL_PATH.mkdir(parents=True, exist_ok=True)
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
    pidfile = PID_DIR / f"{name}.pid"
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
        POOL_PATH.rmdir()
    return [f"libvirt pool {POOL}"]
