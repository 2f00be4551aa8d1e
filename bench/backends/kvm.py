"""The host's QEMU and whether KVM works here: one home for every engine that runs qemu.

Which qemu binary boots which guest architecture, and the KVM probe: ``/dev/kvm`` can exist
and still hang, so KVM is used only when a probe boot proves it works. The answer is kept in
the cache (``kvm-probe.json``) until the kernel, qemu or ``/dev/kvm``'s permissions change,
or for a day. The qemu engines and Vagrant on libvirt (which runs qemu too) all ask here; no
engine asks another engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.backends.base import HOST_ARCH
from bench.guests import Guest
from bench.guests.cache import cache_root, file_lock
from bench.run import access
from bench.run.measure import READY, ConsoleWatcher, fd_chunks, now_ns
from bench.run.options import CPUS, MEMORY_MIB
from bench.signals import shielded

KVM_DEVICE = Path("/dev/kvm")
# Every qemu vmbench starts, the probe's included: no default devices, no display or monitor,
# the first serial port on stdio (the console it watches), no NIC, and no reboot after a halt.
HEADLESS = (
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-serial",
    "stdio",
    "-monitor",
    "none",
    "-nic",
    "none",
    "-no-reboot",
)
KVM_PROBE_TIMEOUT_S = 20.0
KVM_PROBE_MAX_AGE_S = 24 * 3600.0


@dataclass(frozen=True)
class Machine:
    """How to boot one guest architecture."""

    binary: str
    machine_args: tuple[str, ...]
    console: str
    package: str

    def args(self, machine: str) -> list[str]:
        return [a.replace("{machine}", machine) for a in self.machine_args]


MACHINES = {
    "amd64": Machine(
        binary="qemu-system-x86_64",
        machine_args=("-machine", "{machine}"),
        console="ttyS0",
        package="qemu-system-x86",
    ),
    "arm64": Machine(
        binary="qemu-system-aarch64",
        machine_args=("-machine", "virt", "-cpu", "cortex-a57"),
        console="ttyAMA0",
        package="qemu-system-arm",
    ),
}


def host_machine() -> Machine:
    """The machine of the host's own architecture (x86_64's on an architecture QEMU has
    none here for): its binary is the one doctor checks and the results name."""
    return MACHINES.get(HOST_ARCH, MACHINES["amd64"])


def qemu_version(binary: str) -> str:
    """The first line ``<binary> --version`` prints (``QEMU emulator version 7.2.x``)."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "qemu (version unknown)"
    return out.stdout.splitlines()[0] if out.stdout else "qemu (version unknown)"


@dataclass(frozen=True)
class KvmProbe:
    """What one KVM probe boot found, when, and the host state its answer holds for."""

    works: bool
    why: str
    probed_at: float  # Unix time, seconds
    host: dict[str, str]  # kvm_host_state() when it ran

    def stale_because(self, host: dict[str, str], now: float) -> str:
        """Empty while the answer still holds, else why KVM must be probed again."""
        changed = [
            k for k in sorted(host.keys() | self.host.keys()) if host.get(k) != self.host.get(k)
        ]
        if changed:
            return f"{', '.join(changed)} changed since"
        if not 0 <= now - self.probed_at < KVM_PROBE_MAX_AGE_S:
            return "older than a day"
        return ""


def kvm_host_state(binary: str) -> dict[str, str]:
    """What a probe's answer depends on: the running kernel, qemu, /dev/kvm's permissions."""
    device = KVM_DEVICE.stat()
    return {
        "kernel": f"{platform.release()} {platform.version()}",
        "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
        "qemu": qemu_version(binary),
        "kvm_device": f"{stat.filemode(device.st_mode)} uid={device.st_uid} gid={device.st_gid}",
    }


def kvm_works(guest: Guest, machine: Machine) -> tuple[bool, str]:
    """Does KVM boot the guest here? One probe boot answers; the answer is kept (kvm-probe.json)
    until the kernel, qemu or /dev/kvm's permissions change, or for a day."""
    if not os.access(KVM_DEVICE, os.R_OK | os.W_OK):
        return False, f"{KVM_DEVICE} missing or not accessible"
    host = kvm_host_state(shutil.which(machine.binary) or machine.binary)
    with file_lock(cache_root() / ".kvm-probe.lock"):
        probe = last_kvm_probe()
        if probe is None or probe.stale_because(host, time.time()):
            works, why = _probe_kvm_boot(guest, machine)
            probe = KvmProbe(works=works, why=why, probed_at=time.time(), host=host)
            record = _kvm_probe_record()
            partial = record.with_suffix(".tmp")
            partial.write_text(json.dumps(asdict(probe), indent=1) + "\n")
            partial.replace(record)  # whole for a reader without the lock (doctor)
    return probe.works, probe.why


def last_kvm_probe() -> KvmProbe | None:
    """The last probe's record; None if there is none this version can read (then probe)."""
    try:
        data = json.loads(_kvm_probe_record().read_text())
        return KvmProbe(
            works=bool(data["works"]),
            why=str(data["why"]),
            probed_at=float(data["probed_at"]),
            host=dict(data["host"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def kvm_access() -> tuple[str, str]:
    """Why this user cannot use KVM before any probe: (cause, fix); ("", "") when it may open
    /dev/kvm. Absent (the CPU shows no virtualization, or the module is not loaded) and
    present but not accessible (a group) are different problems with different fixes."""
    flag = cpu_virtualization_flag()
    if not KVM_DEVICE.exists():
        if flag is None:
            return (
                f"no {KVM_DEVICE}: this CPU shows no vmx or svm flag (virtualization is off in "
                "the firmware, or this is a VM without nested virtualization)",
                "enable VT-x/AMD-V in the firmware, or nested virtualization for this VM",
            )
        module = "kvm_intel" if flag == "vmx" else "kvm_amd"
        return f"no {KVM_DEVICE} although the CPU has {flag}: {module} is not loaded", (
            f"sudo modprobe {module}"
        )
    if not access.may_open(KVM_DEVICE):
        return access.refusal(KVM_DEVICE, "kvm")
    return "", ""


def cpu_virtualization_flag() -> str | None:
    """``vmx`` (Intel) or ``svm`` (AMD) if /proc/cpuinfo shows one, else None."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return next((f for f in ("vmx", "svm") if f in flags), None)
    return None


def kvm_status(binary: str) -> str:
    """For ``vmbench doctor``: why this user has no KVM, or when KVM was last probed, what it
    found (a /dev/kvm that hangs), and whether that still holds."""
    cause, _fix = kvm_access()
    if cause and KVM_DEVICE.exists() and cpu_virtualization_flag() is None:
        return f"{cause}: TCG (this CPU shows no vmx or svm flag: KVM may hang even then)"
    if cause:
        return f"{cause}: TCG"
    probe = last_kvm_probe()
    if probe is None:
        return f"{KVM_DEVICE} present, KVM not probed yet (the next VM boot probes it)"
    found = "KVM works" if probe.works else f"KVM does not work, TCG ({probe.why})"
    if not probe.works and cpu_virtualization_flag() is None:
        found += "; this CPU shows no vmx or svm flag (a VM without nested virtualization?)"
    stale = probe.stale_because(kvm_host_state(binary), time.time())
    if stale:
        then = f"stale ({stale}): the next VM boot probes again"
    else:
        until = _local_time(probe.probed_at + KVM_PROBE_MAX_AGE_S)
        then = f"holds until {until} unless the kernel, qemu or {KVM_DEVICE} change"
    return f"KVM last probed {_local_time(probe.probed_at)}: {found}; {then}"


def kernel_append(guest: Guest, machine: Machine, workload: str, engine_words: str = "") -> str:
    """The kernel command line of a direct kernel boot (the probe's and the engines'): the
    guest's own where it brings one (memtest86+), else the console, quiet, no reboot on a
    panic, the guest's boot words, an engine's own words and the workload for /init."""
    own = guest.own_command_line(machine.console)
    if own:
        return own
    words = (
        f"console={machine.console}",
        "quiet",
        "panic=-1",
        guest.boot_args,
        engine_words,
        f"VMBENCH_WORKLOAD={workload}",
    )
    return " ".join(w for w in words if w)


def probe_argv(guest: Guest, machine: Machine) -> list[str]:
    """The probe boot: the guest's kernel (and initramfs) under KVM, workload ``ready``, no
    disk, no NIC, the console on stdout; the engines' default memory and CPUs."""
    append = kernel_append(guest, machine, "ready")
    return [
        machine.binary,
        "-name",
        "vmbench-kvm-probe",
        *machine.args("pc"),
        "-accel",
        "kvm",
        "-m",
        str(MEMORY_MIB.default),
        "-smp",
        str(CPUS.default),
        *HEADLESS,
        "-kernel",
        str(guest.kernel.vmlinuz),
        *(["-initrd", str(guest.initramfs)] if guest.initramfs is not None else []),
        "-append",
        append,
    ]


def _kvm_probe_record() -> Path:
    return cache_root() / "kvm-probe.json"


def _local_time(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(unix_s))


def _probe_kvm_boot(guest: Guest, machine: Machine) -> tuple[bool, str]:
    """Boot the guest once under KVM; True once it printed READY within the probe's time."""
    with tempfile.TemporaryFile() as stderr:
        try:
            proc = subprocess.Popen(
                probe_argv(guest, machine),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,  # a Ctrl-C on the terminal reaches the harness only
            )
        except OSError as e:
            return False, f"probe boot could not start {machine.binary}: {e.strerror}"
        try:
            assert proc.stdout is not None
            console = ConsoleWatcher(fd_chunks(proc.stdout.fileno()))
            # The guest's own ready line (memtest86+: its banner), so any guest can be the probe.
            marker = guest.ready_marker
            line = console.wait_for(marker, now_ns() + int(KVM_PROBE_TIMEOUT_S * 1e9))
            what = "READY" if marker == READY else repr(marker)
            if line is not None:
                return True, f"probe boot reached {what}"
            stderr.seek(0)
            said = " ".join(stderr.read().decode(errors="replace").split())[-300:]
            return False, (
                f"probe boot did not reach {what} within {KVM_PROBE_TIMEOUT_S:.0f} s "
                f"({said or console.tail(2)})"
            )
        finally:
            with shielded():  # a second Ctrl-C must not leave it running
                if proc.poll() is None:
                    proc.kill()  # its own pid, never by name
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
                if proc.stdout is not None:
                    proc.stdout.close()
