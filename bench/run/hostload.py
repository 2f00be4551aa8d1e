"""How busy the host was around each trial, and a noise check before the first one.

A boot that takes 6 s on a quiet 2-core machine takes 11 s while someone else compiles: a
figure without the host's load beside it cannot be trusted on a shared lab machine. One
small function per source (/proc/stat, /proc/loadavg, /proc/pressure/cpu, /proc/<pid>/stat,
cpufreq, swap), each returning None where the source is absent, as pyperf collects its
metadata. Nothing here changes the host: it reads and warns.

Whose CPU is "ours": this process and everything it started (a qemu it runs, reaped
children included through their parent's cutime), the trial engine's daemons (dockerd,
containerd, the shims, conmon, libvirtd, ...), what those daemons started during the trial
(its container), and a qemu whose command line names this run (a libvirt domain). The rest
of the busy time /proc/stat counts is the other processes' (``host_other_cpu_pct``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# Each engine's long-running helpers, by process name prefix (what `ps -o comm` shows).
ENGINE_DAEMONS: dict[str, tuple[str, ...]] = {
    "docker": ("dockerd", "containerd", "docker-proxy", "runc"),
    "podman": ("conmon", "podman", "catatonit", "crun", "runc", "fuse-overlayfs"),
    "vagrant": ("libvirtd", "virtqemud", "virtlogd", "virtlockd"),
    "qemu": (),
    "qemu-microvm": (),
}
ENGINE_DAEMONS["podman-systemd"] = ENGINE_DAEMONS["podman"]
ALL_DAEMONS = tuple(sorted({d for ds in ENGINE_DAEMONS.values() for d in ds}))
# Hypervisors a trial competes with when they are not this run's.
HYPERVISORS = ("qemu-system", "qemu-kvm", "VBoxHeadless", "VirtualBoxVM", "VBoxSVC")
HOST_METRICS = ("host_load_1m", "host_other_cpu_pct", "host_cpu_pressure_pct", "host_steal_pct")


@dataclass(frozen=True)
class CpuTimes:
    """The all-CPU line of /proc/stat, in clock ticks summed over every core."""

    total: int  # user + nice + system + idle + iowait + irq + softirq + steal
    busy: int  # run by something on this host: total less idle, iowait and steal
    steal: int  # taken by the hypervisor this host is a guest of


@dataclass(frozen=True)
class Proc:
    name: str
    ppid: int
    ticks: int  # utime + stime + cutime + cstime: its own CPU and its reaped children's
    started: int  # clock ticks after boot: tells a reused pid from the process it was
    cmdline: str = ""  # read only for hypervisors (a libvirt domain names the run)


@dataclass(frozen=True)
class Snapshot:
    at_s: float  # time.monotonic()
    cpu: CpuTimes | None
    pressure_us: int | None
    procs: dict[int, Proc]


def cpu_times(proc: Path = PROC) -> CpuTimes | None:
    try:
        first = (proc / "stat").read_text().splitlines()[0].split()
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    except (OSError, IndexError, ValueError):
        return None
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return CpuTimes(total=total, busy=total - idle - iowait - steal, steal=steal)


def load_1m() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def cpu_pressure_us(proc: Path = PROC) -> int | None:
    """PSI: microseconds some task waited for a CPU ("some" line), where the kernel has PSI."""
    try:
        for line in (proc / "pressure" / "cpu").read_text().splitlines():
            if line.startswith("some "):
                return int(dict(w.split("=", 1) for w in line.split()[1:])["total"])
    except (OSError, KeyError, ValueError):
        return None
    return None


def processes(proc: Path = PROC) -> dict[int, Proc]:
    """Every process's CPU ticks; one that vanishes while read is left out."""
    found: dict[int, Proc] = {}
    try:
        entries = [e for e in os.listdir(proc) if e.isdigit()]
    except OSError:
        return found
    for entry in entries:
        try:
            text = (proc / entry / "stat").read_text()
            name = text[text.index("(") + 1 : text.rindex(")")]
            fields = text[text.rindex(")") + 2 :].split()
            # fields[0] is field 3 (state): ppid is 4, utime..cstime 14-17, starttime 22.
            ticks = sum(int(v) for v in fields[11:15])
            cmdline = ""
            if name.startswith(HYPERVISORS):
                cmdline = (proc / entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            found[int(entry)] = Proc(name, int(fields[1]), ticks, int(fields[19]), cmdline)
        except (OSError, ValueError, IndexError):
            continue
    return found


def snapshot() -> Snapshot:
    return Snapshot(time.monotonic(), cpu_times(), cpu_pressure_us(), processes())


def _descendants(procs: dict[int, Proc], roots: Iterable[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, p in procs.items():
        children.setdefault(p.ppid, []).append(pid)
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo += children.get(pid, [])
    return found


def ours(
    procs: dict[int, Proc],
    daemons: tuple[str, ...],
    run_id: str,
    before: dict[int, Proc] | None = None,
    self_pid: int | None = None,
) -> set[int]:
    """This run's processes in ``procs`` (see the module docstring); with ``before``, the
    daemons' descendants that started since then (the trial's container) too."""
    me = os.getpid() if self_pid is None else self_pid
    found = _descendants(procs, [me])
    engine = {pid for pid, p in procs.items() if daemons and p.name.startswith(daemons)}
    named = {pid for pid, p in procs.items() if run_id and run_id in p.cmdline}
    found |= engine | _descendants(procs, named)
    if before is not None:
        new = {pid for pid, p in procs.items() if not _same(before.get(pid), p)}
        found |= _descendants(procs, engine) & new
    return found


def _same(a: Proc | None, b: Proc) -> bool:
    return a is not None and a.started == b.started


def ours_ticks(before: Snapshot, after: Snapshot, daemons: tuple[str, ...], run_id: str) -> int:
    """CPU ticks this run's processes used between the snapshots. A process of ours that
    ended and was reaped by another of ours shows up in that parent's cutime with all of its
    life's ticks: what it had used before the window is taken off again."""
    then = ours(before.procs, daemons, run_id)
    now = ours(after.procs, daemons, run_id, before=before.procs)
    used = 0
    for pid in now:
        p = after.procs[pid]
        old = before.procs.get(pid)
        used += p.ticks - old.ticks if old is not None and _same(old, p) else p.ticks
    for pid in then:
        old = before.procs[pid]
        if not _same(after.procs.get(pid), old) and old.ppid in now:
            used -= old.ticks
    return max(used, 0)


def measurements(before: Snapshot, after: Snapshot, backend: str, run_id: str) -> dict[str, float]:
    """The host_* rows of one trial: what could be read, nothing for an absent source."""
    found: dict[str, float] = {}
    load = load_1m()
    if load is not None:
        found["host_load_1m"] = round(load, 2)
    if before.cpu is not None and after.cpu is not None:
        total = after.cpu.total - before.cpu.total
        if total > 0:
            daemons = ENGINE_DAEMONS.get(backend, ALL_DAEMONS)
            other = after.cpu.busy - before.cpu.busy - ours_ticks(before, after, daemons, run_id)
            found["host_other_cpu_pct"] = round(min(max(other / total * 100, 0.0), 100.0), 1)
            found["host_steal_pct"] = round((after.cpu.steal - before.cpu.steal) / total * 100, 1)
    wall_s = after.at_s - before.at_s
    if before.pressure_us is not None and after.pressure_us is not None and wall_s > 0:
        waited_s = (after.pressure_us - before.pressure_us) / 1e6
        found["host_cpu_pressure_pct"] = round(min(waited_s / wall_s * 100, 100.0), 1)
    return found


# -- the noise check before the first trial -----------------------------------------------


def governors(sys_cpu: Path = Path("/sys/devices/system/cpu")) -> set[str]:
    """The CPU frequency governors in use; empty where there is no cpufreq (a VM, say)."""
    found = set()
    for path in sys_cpu.glob("cpu[0-9]*/cpufreq/scaling_governor"):
        try:
            found.add(path.read_text().strip())
        except OSError:
            continue
    return found


def swap_used_bytes(proc: Path = PROC) -> int | None:
    try:
        info = dict(
            line.split(":", 1)
            for line in (proc / "meminfo").read_text().splitlines()
            if ":" in line
        )
        total, free = (int(info[k].split()[0]) * 1024 for k in ("SwapTotal", "SwapFree"))
    except (OSError, KeyError, ValueError):
        return None
    return total - free


def foreign_hypervisors(run_id: str, procs: dict[int, Proc] | None = None) -> list[str]:
    """'qemu-system-x86 (pid 812)' for each qemu or VirtualBox process that is not this run's."""
    procs = processes() if procs is None else procs
    mine = ours(procs, (), run_id)
    return [
        f"{p.name} (pid {pid})"
        for pid, p in sorted(procs.items())
        if p.name.startswith(HYPERVISORS) and pid not in mine
    ]


def noise_lines(run_id: str, cores: int | None = None) -> list[str]:
    """One line per condition that makes timings noisy here; empty on a quiet host."""
    cores = cores or os.cpu_count() or 1
    lines = []
    load = load_1m()
    if load is not None and load > cores / 2:
        lines.append(
            f"load average {load:.2f} is above half the {cores} cores: other work competes "
            "with the trials (each trial's rows record the host's load)"
        )
    other = sorted(governors() - {"performance"})
    if other:
        lines.append(
            f"CPU frequency governor {', '.join(other)}, not performance: the clock speed "
            "varies between trials"
        )
    foreign = foreign_hypervisors(run_id)
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        lines.append(f"other VMs are running (not this run's): {shown}")
    swap = swap_used_bytes()
    if swap:
        lines.append(
            f"{swap / 2**20:.0f} MiB of swap in use: memory figures and timings may suffer"
        )
    return lines
