"""The VirtualBox host, as the vagrant backend and ``vmbench doctor`` need it.

Is ``VBoxManage`` there and which version; does a loaded KVM module hold VT-x (then VirtualBox
cannot start a VM); the VBoxHeadless process of one VM; importing a box's master VM that
instances are linked-cloned from; removing the VMs a vmbench run made. Everything goes through
``VBoxManage`` with argv lists. VirtualBox does not run on the machines vmbench is developed
on, so the parts that need it are exercised on lab hosts only (see the README).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

from bench.errors import VmbenchError

INSTALL_HINT = "VirtualBox is not in Debian 12; install it from https://www.virtualbox.org/wiki/Linux_Downloads"
# The snapshot Vagrant links its clones to (Vagrant 2.3's default linked_clone_snapshot).
CLONE_SNAPSHOT = "base"
SYS_MODULE = Path("/sys/module")
# Which hardware extension a KVM vendor module holds, and VirtualBox's error when it does.
_KVM_VENDORS = {
    "kvm_intel": ("VT-x", "VERR_VMX_IN_VMX_ROOT_MODE"),
    "kvm_amd": ("AMD-V", "VERR_SVM_IN_USE"),
}


class VBoxError(VmbenchError, RuntimeError):
    """VBoxManage failed; the message holds its last error line."""


def vboxmanage() -> str | None:
    return shutil.which("VBoxManage")


def version() -> tuple[bool, str]:
    """(works, ``VirtualBox 7.0.20r163906`` or why not)."""
    binary = vboxmanage()
    if binary is None:
        return False, "VBoxManage not found"
    try:
        done = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"VBoxManage --version failed: {e}"
    if done.returncode != 0:
        return False, f"VBoxManage --version: {' '.join(done.stderr.split())[-200:]}"
    lines = done.stdout.strip().splitlines()
    text = f"VirtualBox {lines[-1] if lines else '?'}"
    # "WARNING: The vboxdrv kernel module is not loaded": VBoxManage answers, VMs cannot start.
    warning = " ".join(ln for ln in (done.stderr + done.stdout).splitlines() if "WARNING" in ln)
    return True, f"{text} ({' '.join(warning.split())[:200]})" if warning else text


def kvm_holds_vtx(sys_module: Path = SYS_MODULE) -> str:
    """Empty when no loaded KVM module holds the CPU's virtualization extension; else one
    sentence: which module, since when, what VirtualBox then says, and the fix.

    Linux 6.12+ turns VT-x/AMD-V on when kvm_intel/kvm_amd loads (kvm.enable_virt_at_load,
    default Y) and keeps it while the module stays loaded; older kernels (or
    enable_virt_at_load=0) hold it only while a KVM VM runs (the module's refcnt counts them).
    """
    for module, (extension, error) in _KVM_VENDORS.items():
        folder = sys_module / module
        if not folder.is_dir():
            continue
        at_load = _read(sys_module / "kvm" / "parameters" / "enable_virt_at_load")
        users = _read(folder / "refcnt")
        fix = (
            f"fix: sudo modprobe -r {module} (while no KVM VM runs), or keep it loaded but idle "
            "with kvm.enable_virt_at_load=0 (kernel command line, or "
            "`options kvm enable_virt_at_load=0` in /etc/modprobe.d/)"
        )
        if at_load == "Y":
            return (
                f"{module} is loaded and holds {extension} since it loaded "
                f"(kvm.enable_virt_at_load=Y, Linux 6.12+): VirtualBox fails to start VMs "
                f"with {error} on many kernels; {fix}"
            )
        if users.isdigit() and int(users) > 0:
            return (
                f"{module} holds {extension} while KVM VMs run ({users} now): VirtualBox fails "
                f"with {error} until they stop; {fix}"
            )
        return (
            f"{module} is loaded but holds {extension} only while a KVM VM runs (none now): "
            f"VirtualBox can start VMs while no KVM VM runs"
        )
    return ""


def doctor_lines(sys_module: Path = SYS_MODULE) -> list[str]:
    """What ``vmbench doctor`` says about VirtualBox: absent, one line with the install hint;
    present, its version and whether KVM holds VT-x."""
    if vboxmanage() is None:
        return [f"virtualbox: not installed; {INSTALL_HINT}"]
    works, text = version()
    lines = [f"virtualbox: {text}" if works else f"virtualbox: does not answer: {text}"]
    held = kvm_holds_vtx(sys_module)
    lines.append(f"virtualbox: {held}" if held else "virtualbox: no kvm_intel/kvm_amd loaded")
    return lines


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


# --- VMs ----------------------------------------------------------------------------------


def run(*args: str, timeout_s: float = 300.0) -> str:
    """``VBoxManage ARGS``; VBoxError with its last error line when it fails."""
    binary = vboxmanage()
    if binary is None:
        raise VBoxError("VBoxManage not found")
    try:
        done = subprocess.run(
            [binary, "-q", *args], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise VBoxError(f"VBoxManage {args[0]} took longer than {timeout_s:g} s") from None
    except OSError as e:
        raise VBoxError(f"VBoxManage: {e.strerror}") from None
    if done.returncode != 0:
        errors = [ln for ln in done.stderr.splitlines() if "error" in ln.lower()]
        raise VBoxError(f"VBoxManage {args[0]}: {(errors or ['exit ' + str(done.returncode)])[-1]}")
    return done.stdout


def vm_uuid(name: str) -> str:
    """The UUID of VM ``name`` (``showvminfo --machinereadable``: UUID="...")."""
    for line in run("showvminfo", name, "--machinereadable", timeout_s=60).splitlines():
        if line.startswith("UUID="):
            return line.split("=", 1)[1].strip('"')
    raise VBoxError(f"VBoxManage showvminfo {name}: no UUID")


def import_master(ovf: Path, name: str) -> str:
    """Import ``ovf`` as VM ``name`` and take the snapshot linked clones start from.

    The same steps Vagrant's ImportMaster and PrepareCloneSnapshot take on the first
    ``vagrant up`` with ``linked_clone``; done here, when vmbench adds the box, so that no
    measured ``vagrant up`` pays for the import. Returns the VM's UUID.
    """
    run("import", str(ovf), "--vsys", "0", "--vmname", name, timeout_s=600)
    uuid = vm_uuid(name)
    run("snapshot", uuid, "take", CLONE_SNAPSHOT, timeout_s=120)
    return uuid


def vm_names() -> list[str]:
    if vboxmanage() is None:
        return []
    try:
        listing = run("list", "vms", timeout_s=30)
    except VBoxError:
        return []
    return [ln.split('"')[1] for ln in listing.splitlines() if ln.count('"') >= 2]


def remove_vms(prefix: str) -> list[str]:
    """Power off and delete every VM whose name starts with ``prefix``: linked clones first,
    then the masters they were cloned from (``*-master``)."""
    names = sorted((n for n in vm_names() if n.startswith(prefix)), key=_masters_last)
    return [f"VirtualBox VM {name}" for name in names if _delete(name)]


def remove_vm(name: str) -> bool:
    """Power off and delete VM ``name`` (exactly that name); True if it was there."""
    return name in vm_names() and _delete(name)


def _delete(name: str) -> bool:
    """Power off and unregister a VM VirtualBox listed; False if VirtualBox refused."""
    with contextlib.suppress(VBoxError):
        run("controlvm", name, "poweroff", timeout_s=60)
    try:
        run("unregistervm", name, "--delete", timeout_s=120)
    except VBoxError:
        return False
    return True


def _masters_last(name: str) -> tuple[bool, str]:
    return name.endswith("-master"), name


def headless_pid(uuid: str) -> int | None:
    procs = (p.info for p in psutil.process_iter(["pid", "name", "cmdline"]))
    return find_vbox_headless(uuid, procs)


def find_vbox_headless(uuid: str, processes: Iterable[dict[str, Any]]) -> int | None:
    """The VBoxHeadless process that runs VM ``uuid`` (``--startvm <uuid>`` on its command
    line): by the VM's own UUID, never by the process name alone."""
    for proc in processes:
        name = proc.get("name") or ""
        cmdline = proc.get("cmdline") or []
        if "VBoxHeadless" not in name and not any("VBoxHeadless" in c for c in cmdline[:1]):
            continue
        if uuid and (uuid in cmdline or any(c.endswith(uuid) for c in cmdline)):
            return int(proc["pid"])
    return None
