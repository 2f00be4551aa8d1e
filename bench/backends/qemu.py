"""QEMU run directly: the guest's kernel + initramfs (or disk), no NIC, serial console on a pipe.

KVM is used only when a probe boot proves it works (``/dev/kvm`` can exist and still hang);
otherwise TCG, and every row says which one ran.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.backends.base import (
    HOST_ARCH,
    Availability,
    Backend,
    BackendError,
    BackendUnsupported,
    Instance,
    LaunchSpec,
    Prepared,
    SizeRecord,
    command_version,
)
from bench.guests import Guest
from bench.guests.bootdisk import FIRMWARES, BootDisk, build_bootdisk, workload_serial
from bench.guests.cache import cache_root, file_lock
from bench.guests.debs import DebError
from bench.run import access, liveness, smaps
from bench.run.measure import (
    READY,
    ConsoleWatcher,
    fd_chunks,
    file_chunks,
    gzip_bytes,
    now_ns,
    process_memory,
)
from bench.run.options import CPUS, MEMORY_MIB, Option, one_of, whole_in

KVM_DEVICE = Path("/dev/kvm")
BOOT_MODES = ("kernel", *FIRMWARES)
KVM_PROBE_TIMEOUT_S = 20.0
KVM_PROBE_MAX_AGE_S = 24 * 3600.0
# The TCG translation buffer's size, said explicitly (QEMU 7.2's own default for a system
# emulator): a known mapping in smaps on every host, whatever its QEMU's default.
TB_SIZE_MIB = 1024
# Guest RAM as a named memfd backend, so smaps shows it as one mapping (bench/run/smaps.py).
RAM_BACKEND = "vmbench-ram"
# Debian's OVMF (package ovmf): firmware code and the template of a VM's variable store.
OVMF_FILES = (
    (Path("/usr/share/OVMF/OVMF_CODE_4M.fd"), Path("/usr/share/OVMF/OVMF_VARS_4M.fd")),
    (Path("/usr/share/OVMF/OVMF_CODE.fd"), Path("/usr/share/OVMF/OVMF_VARS.fd")),
)


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
    "amd64": Machine("qemu-system-x86_64", ("-machine", "{machine}"), "ttyS0", "qemu-system-x86"),
    "arm64": Machine(
        "qemu-system-aarch64",
        ("-machine", "virt", "-cpu", "cortex-a57"),
        "ttyAMA0",
        "qemu-system-arm",
    ),
}


def host_machine() -> Machine:
    """The machine of the host's own architecture (x86_64's on an architecture QEMU has
    none here for): its binary is the one doctor checks and the results name."""
    return MACHINES.get(HOST_ARCH, MACHINES["amd64"])


RUN_ENV = "VMBENCH_RUN"  # in a qemu's environment: the run that started it


def run_dir(run_id: str) -> Path:
    """Where a run keeps its qemu pid files, so ``vmbench clean`` can find what a crash left."""
    return cache_root() / "run" / run_id


class QemuBackend(Backend):
    """A VM booted straight from the guest's kernel and initramfs (or disk): its own kernel."""

    name = "qemu"
    kind = "vm"
    options = {  # noqa: RUF012 (a declaration, never mutated)
        "memory_mib": MEMORY_MIB,
        "cpus": CPUS,
        "machine": Option(one_of(("pc", "q35")), "pc", "QEMU machine type"),
        "accel": Option(
            one_of(("auto", "kvm", "tcg")), "auto", "auto: KVM where a probe boot works, else TCG"
        ),
        "tb_size_mib": Option(
            whole_in(0, 4096),
            TB_SIZE_MIB,
            "TCG translation buffer in MiB (0: QEMU's own default, unsaid)",
        ),
        "boot": Option(
            one_of(BOOT_MODES),
            "kernel",
            "kernel: direct kernel boot; bios / uefi: the guest's boot disk through SeaBIOS / "
            "OVMF and a bootloader, as real VMs boot",
        ),
    }
    image_options = ("boot",)
    detail_options = ("boot",)
    # Beyond memory_mib: the hypervisor's own memory (a TCG qemu: a ~42 MiB translation
    # buffer + ~50 MiB of its own).
    estimate_mib = 128

    def availability(self) -> Availability:
        machine = host_machine()
        binary = shutil.which(machine.binary)
        if not binary:
            return Availability(
                False,
                f"{machine.binary} not found",
                f"sudo apt-get install {machine.package}",
                never_ran=True,
            )
        _cause, fix = kvm_access()
        return Availability(
            True, f"{_qemu_version(binary)}; {kvm_status(binary)}", f"for KVM: {fix}" if fix else ""
        )

    def versions(self) -> dict[str, str | None]:
        return {"qemu": command_version([host_machine().binary, "--version"], r"version ([\d.]+)")}

    def prepare(self, guest: Guest, options: dict[str, Any]) -> Prepared:
        options = self.settings(options)
        machine = _machine_for(guest.arch)
        accel = _choose_accel(guest, machine, options)
        boot = options["boot"]
        if boot == "kernel":
            sizes, bootdisk = _kernel_boot_sizes(guest), None
        else:
            bootdisk = _bootdisk(guest, boot)
            sizes = _disk_boot_sizes(guest, bootdisk)
        return Prepared(
            guest,
            sizes,
            bootdisk.build_s if bootdisk is not None and bootdisk.built_now else 0.0,
            bootdisk is not None and bootdisk.built_now,
            handle={"machine": machine, "accel": accel, "bootdisk": bootdisk},
        )

    def create(self, prepared: Prepared, spec: LaunchSpec) -> Instance:
        machine: Machine = prepared.handle["machine"]
        accel: str = prepared.handle["accel"]
        bootdisk: BootDisk | None = prepared.handle["bootdisk"]
        pidfile = run_dir(spec.run_id) / f"{spec.name}.pid"
        options = self.settings(spec.options)
        argv = qemu_argv(
            prepared.guest, machine, accel, spec.workload, options, spec.name, pidfile, bootdisk
        )
        markers = bootdisk.bootloader.markers if bootdisk is not None else ()
        return QemuInstance(argv, accel, pidfile, options, bootloader_markers=markers)

    def cleanup_run(self, run_id: str) -> list[str]:
        removed = []
        folder = run_dir(run_id)
        killed: set[int] = set()
        for pidfile in sorted(folder.glob("*.pid")):
            name = pidfile.stem
            with contextlib.suppress(OSError, ValueError):
                pid = int(pidfile.read_text().split()[0])
                if _is_our_qemu(pid, name):
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                    removed.append(f"qemu pid {pid} ({name})")
            pidfile.unlink(missing_ok=True)
        # A qemu killed -9 before it wrote its pid file is still named after the run.
        for pid, name in _qemus_of_run(run_id):
            if pid not in killed:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                    removed.append(f"qemu pid {pid} ({name})")
        with contextlib.suppress(OSError):
            folder.rmdir()
        return removed

    def leftover_run_ids(self) -> set[str]:
        folder = run_dir("x").parent
        ids = {p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set()
        return ids | set(_running_qemus())

    def run_owners(self) -> dict[str, str]:
        return {run: owner for run, owner in _running_qemus().items() if owner}


def qemu_argv(
    guest: Guest,
    machine: Machine,
    accel: str,
    workload: str,
    options: dict[str, Any],
    name: str,
    pidfile: Path | None,
    bootdisk: BootDisk | None = None,
) -> list[str]:
    """The qemu command line: direct kernel boot, or through firmware from ``bootdisk``;
    ``options`` complete (``QemuBackend.settings``)."""
    accel_arg = accel
    if accel == "tcg" and options.get("tb_size_mib"):
        accel_arg = f"tcg,tb-size={int(options['tb_size_mib'])}"
    append = guest.own_command_line(machine.console) or " ".join(
        w
        for w in (
            f"console={machine.console}",
            "quiet",
            "panic=-1",
            guest.boot_args,
            str(options.get("kernel_args", "")),  # an engine's own words (qemu-microvm)
            f"VMBENCH_WORKLOAD={workload}",
        )
        if w
    )
    argv = [
        machine.binary,
        "-name",
        name,
        *machine.args(str(options["machine"])),
        "-accel",
        accel_arg,
        "-m",
        str(int(options["memory_mib"])),
        "-object",
        f"memory-backend-memfd,id={RAM_BACKEND},size={int(options['memory_mib'])}M",
        "-machine",
        f"memory-backend={RAM_BACKEND}",
        "-smp",
        str(int(options["cpus"])),
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
    ]
    if bootdisk is not None:
        argv += disk_boot_args(bootdisk, workload)
    else:
        argv += ["-kernel", str(guest.kernel.vmlinuz)]
        if guest.initramfs is not None:  # None: a system in one file (memtest86+)
            argv += ["-initrd", str(guest.initramfs)]
        argv += ["-append", append]
        if guest.disk is not None:
            # snapshot=on: writes go to a temporary overlay, the cached image never changes.
            argv += ["-drive", f"file={guest.disk},format=raw,if=virtio,snapshot=on"]
    if pidfile is not None:
        argv += ["-pidfile", str(pidfile)]
    return argv


def disk_boot_args(bootdisk: BootDisk, workload: str) -> list[str]:
    """Firmware, the boot disk and the workload (SMBIOS system serial) for a disk boot.

    BIOS is QEMU's own SeaBIOS; UEFI is Debian's OVMF with a variable store of the VM's own.
    Both the disk and the variable store are opened with snapshot=on: the VM's writes go to a
    temporary overlay, so every instance starts from the same bytes.
    """
    argv = []
    if bootdisk.firmware == "uefi":
        code, variables = ovmf_files()
        argv += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}"]
        argv += ["-drive", f"if=pflash,format=raw,unit=1,snapshot=on,file={variables}"]
    argv += ["-drive", f"file={bootdisk.path},format=raw,if=virtio,snapshot=on"]
    argv += ["-smbios", f"type=1,serial={workload_serial(workload)}"]
    return argv


def ovmf_files() -> tuple[Path, Path]:
    """OVMF's code and variable-store template, or BackendError naming the package."""
    for code, variables in OVMF_FILES:
        if code.is_file() and variables.is_file():
            return code, variables
    raise BackendError("qemu: boot = 'uefi' needs OVMF; sudo apt-get install ovmf")


class QemuInstance(Instance):
    def __init__(
        self,
        argv: list[str],
        accel: str,
        pidfile: Path | None,
        options: dict[str, Any],
        bootloader_markers: tuple[str, ...] = (),
    ) -> None:
        self.argv = argv
        self.bootloader_markers = bootloader_markers
        self.accel = accel
        self.pidfile = pidfile
        self.options = options
        self.proc: subprocess.Popen | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)

    def start(self) -> None:
        if self.pidfile is not None:
            self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.proc = subprocess.Popen(
                self.argv,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                start_new_session=True,  # a Ctrl-C on the terminal reaches the harness, not qemu
            )
        except OSError as e:
            raise BackendError(f"qemu: cannot start {self.argv[0]}: {e.strerror}") from None
        assert self.proc.stdout is not None
        self.console = ConsoleWatcher(
            fd_chunks(self.proc.stdout.fileno()),
            keep_markers=self.bootloader_markers,
        )

    def _env(self) -> dict[str, str]:
        """Whose run this qemu is, for every user's `vmbench clean` (bench/run/liveness.py)."""
        env = {**os.environ, liveness.OWNER_ENV: liveness.me().text()}
        if self.pidfile is not None:
            env[RUN_ENV] = self.pidfile.parent.name  # run_dir(run_id)
        return env

    def memory(self, full: bool = True) -> dict[str, int]:
        """RSS; on a full tick USS, PSS and PSS by what holds it (bench/run/smaps.py)."""
        if self.proc is None:
            return {}
        own = process_memory([self.proc.pid], full)
        if not own.processes:
            return {}
        sample, why = smaps.hypervisor_split(self.proc.pid, own.sample(full))
        if full:  # what the latest full tick found (before qemu maps its RAM: no split yet)
            self.memory_note = why
        return sample

    def wait_exited(self, timeout_s: float) -> bool:
        if self.proc is None:
            return False
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stderr_tail(self) -> str:
        self._stderr.seek(0)
        return " ".join(self._stderr.read().decode(errors="replace").split())[-300:]

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()  # its own pid, never by name
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if self.pidfile is not None:
            self.pidfile.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # the run's folder goes with its last VM
                self.pidfile.parent.rmdir()
        self._stderr.close()

    def describe(self) -> str:
        return f"machine={self.options['machine']} memory_mib={self.options['memory_mib']}"


def _kernel_boot_sizes(guest: Guest) -> list[SizeRecord]:
    """What a direct kernel boot needs: kernel, initramfs and (debian) the ext4 disk."""
    sizes = [SizeRecord("kernel_bytes", guest.kernel.vmlinuz.stat().st_size, "kernel")]
    parts = [guest.kernel.vmlinuz]
    if guest.initramfs is not None:
        sizes.append(SizeRecord("initramfs_bytes", guest.initramfs.stat().st_size, "initramfs"))
        parts.append(guest.initramfs)
    if guest.disk is not None:
        sizes.append(
            SizeRecord(
                "disk_bytes",
                guest.disk.stat().st_blocks * 512,
                "disk",
                f"allocated; virtual_bytes={guest.disk.stat().st_size}",
            )
        )
        parts.append(guest.disk)
    total = sum(p.stat().st_blocks * 512 if p == guest.disk else p.stat().st_size for p in parts)
    what = "kernel" + ("+initramfs" if guest.initramfs else "") + ("+disk" if guest.disk else "")
    sizes.append(SizeRecord("image_bytes", total, "vm-boot-files", what))
    sizes.append(
        SizeRecord(
            "image_compressed_bytes",
            sum(_compressed_size(p) for p in parts),
            "vm-boot-files",
            "gzip -6 of each file",
        )
    )
    return sizes


def _disk_boot_sizes(guest: Guest, bootdisk: BootDisk) -> list[SizeRecord]:
    """What a disk boot needs: the boot disk (bootloader, kernel, initramfs and root file
    system inside it) and, for UEFI, the VM's own variable store. The firmware code itself
    (SeaBIOS, OVMF_CODE) ships with the hypervisor, like qemu's binary, and is not counted."""
    inside = "kernel, " + ("initramfs, " if guest.initramfs else "") + "bootloader"
    inside += ", root file system" if guest.disk else ""
    sizes = [
        SizeRecord(
            "disk_bytes",
            bootdisk.allocated_bytes,
            "boot-disk",
            f"allocated; virtual_bytes={bootdisk.virtual_bytes}; {bootdisk.meta['partitions']};"
            f" holds {inside}",
        ),
        SizeRecord(
            "bootloader_bytes",
            bootdisk.bootloader_bytes,
            "bootloader",
            f"{bootdisk.bootloader.name}; inside disk_bytes",
        ),
    ]
    total, compressed = bootdisk.allocated_bytes, _compressed_size(bootdisk.path)
    if bootdisk.firmware == "uefi":
        _code, variables = ovmf_files()
        sizes.append(
            SizeRecord(
                "firmware_vars_bytes",
                variables.stat().st_size,
                "firmware-vars",
                f"{variables.name}: the VM's own UEFI variable store",
            )
        )
        total += variables.stat().st_size
        # 0.5 MiB, read from the system's firmware folder: compressed each time, never cached
        # beside it.
        compressed += gzip_bytes(file_chunks(variables))
    what = "boot disk" + (" + UEFI variable store" if bootdisk.firmware == "uefi" else "")
    sizes.append(SizeRecord("image_bytes", total, "vm-boot-files", what))
    sizes.append(
        SizeRecord("image_compressed_bytes", compressed, "vm-boot-files", "gzip -6 of each file")
    )
    return sizes


def _bootdisk(guest: Guest, firmware: str) -> BootDisk:
    if guest.arch != "amd64":
        raise BackendUnsupported(
            f"qemu: boot = {firmware!r} needs an amd64 guest (boot disks are built for amd64)"
        )
    try:
        return build_bootdisk(guest, firmware)
    except DebError as e:
        raise BackendError(f"qemu: the {firmware} boot disk of {guest.name}: {e}") from None


def _machine_for(arch: str) -> Machine:
    if arch not in MACHINES:
        raise BackendError(f"qemu: no machine known for guest architecture {arch}")
    machine = MACHINES[arch]
    if not shutil.which(machine.binary):
        raise BackendError(
            f"qemu: {machine.binary} not found; sudo apt-get install {machine.package}"
        )
    return machine


def _choose_accel(guest: Guest, machine: Machine, options: dict[str, Any]) -> str:
    wanted = str(options.get("accel", "auto"))
    if guest.arch != HOST_ARCH:
        return "tcg"  # a foreign architecture is always emulated
    if wanted == "tcg":
        return "tcg"
    works, why = kvm_works(guest, machine)
    if works:
        return "kvm"
    if wanted == "kvm":
        raise BackendError(f"qemu: accel = 'kvm' was asked for but KVM does not work here: {why}")
    return "tcg"


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
        "qemu": _qemu_version(binary),
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
            probe = KvmProbe(works, why, time.time(), host)
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
            bool(data["works"]), str(data["why"]), float(data["probed_at"]), dict(data["host"])
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


def _kvm_probe_record() -> Path:
    return cache_root() / "kvm-probe.json"


def _local_time(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(unix_s))


def _probe_kvm_boot(guest: Guest, machine: Machine) -> tuple[bool, str]:
    options = QemuBackend.settings({})
    argv = qemu_argv(guest, machine, "kvm", "ready", options, "vmbench-kvm-probe", None)
    instance = QemuInstance(argv, "kvm", None, options)
    with instance:
        instance.start()
        assert instance.console is not None
        # The guest's own ready line (memtest86+: its banner), so any guest can be the probe.
        marker = guest.ready_marker
        line = instance.console.wait_for(marker, now_ns() + int(KVM_PROBE_TIMEOUT_S * 1e9))
        what = "READY" if marker == READY else repr(marker)
        if line is not None:
            return True, f"probe boot reached {what}"
        return False, (
            f"probe boot did not reach {what} within {KVM_PROBE_TIMEOUT_S:.0f} s "
            f"({instance.stderr_tail() or instance.console.tail(2)})"
        )


def _is_our_qemu(pid: int, name: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(b"qemu-system" in part for part in cmdline[:1]) and name.encode() in cmdline


def _running_qemus() -> dict[str, str]:
    """Run id -> owner words of the qemu processes vmbench started that this user may stop:
    their own, or everyone's for root (from each process's environment)."""
    uid = os.geteuid()
    found: dict[str, str] = {}
    for proc in psutil.process_iter(["name", "uids"]):
        if "qemu-system" not in (proc.info.get("name") or ""):
            continue
        if uid != 0 and (proc.info.get("uids") is None or proc.info["uids"].real != uid):
            continue
        with contextlib.suppress(psutil.Error):
            env = proc.environ()
            if env.get(RUN_ENV):
                found[env[RUN_ENV]] = env.get(liveness.OWNER_ENV, "")
    return found


def _qemus_of_run(run_id: str) -> list[tuple[int, str]]:
    """qemu processes whose ``-name`` starts with ``vmbench-<run_id>-`` (run ids are unique)."""
    prefix = f"vmbench-{run_id}-"
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        argv = proc.info.get("cmdline") or []
        if not argv or "qemu-system" not in os.path.basename(argv[0]):
            continue
        for flag, value in itertools.pairwise(argv):
            if flag == "-name" and value.startswith(prefix):
                found.append((proc.info["pid"], value))
    return found


def _qemu_version(binary: str) -> str:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "qemu (version unknown)"
    return out.stdout.splitlines()[0] if out.stdout else "qemu (version unknown)"


def _compressed_size(path: Path) -> int:
    """gzip size of a boot file, cached beside it (the kernel is already compressed: ~same)."""
    record = path.with_name(f".{path.name}.gz-size")
    stamp = f"{path.stat().st_size}:{path.stat().st_mtime_ns}"
    if record.exists():
        saved_stamp, _, size = record.read_text().partition(" ")
        if saved_stamp == stamp:
            return int(size)
    size = gzip_bytes(file_chunks(path))
    with contextlib.suppress(OSError):
        record.write_text(f"{stamp} {size}")
    return size
