"""The results CSV's schema: its columns, phases, statuses, accelerators, kinds and metrics
(with their SI units), one row, and what a run id may be."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields

COLUMNS = (
    "run_id",
    "host_id",
    "scenario",
    "guest",
    "backend",
    "accel",
    "instances",
    "trial",
    "phase",
    "metric",
    "value",
    "unit",
    "status",
    "detail",
    "started_at",
    "kind",
)

PHASES = ("build", "cold", "warm", "warmup")
STATUSES = ("ok", "failed", "timeout", "interrupted", "unsupported")
# none: a container (no hypervisor); unknown: a VM whose accelerator is not known, which
# reports never count as proven hardware virtualization.
ACCELS = ("kvm", "tcg", "virtualbox", "hvf", "none", "unknown")
# Where an engine sits on the isolation spectrum (docs/architecture.md); the claims compare the
# container kind with the vm kind.
KINDS = ("container", "system-container", "microvm", "vm")

# metric -> SI unit. Extend, never rename: CSVs from other hosts depend on these names.
METRIC_UNITS: dict[str, str] = {
    "ready_s": "s",
    "exit_s": "s",
    "guest_uptime_s": "s",
    "up_returned_s": "s",
    "build_s": "s",
    "import_s": "s",
    "all_ready_s": "s",
    # A VM booted through firmware and a bootloader (qemu boot = "bios" | "uefi"), host clock:
    # launch -> the bootloader's first output, then -> the kernel's start (READY less uptime).
    "firmware_s": "s",
    "bootloader_s": "s",
    # Workload ``cpu``: host clock between the guest's VMBENCH WORK START and END lines,
    # a fixed CPU-bound job (the emulator's slowdown, VM over container).
    "cpu_work_s": "s",
    "rss_bytes": "B",
    "uss_bytes": "B",
    "pss_bytes": "B",
    # A VM's pss_bytes by what holds it (bench/run/smaps.py), from the same samples: its
    # guest RAM, the TCG translation cache (0 under KVM) and the rest of the hypervisor.
    "vm_ram_pss_bytes": "B",
    "tcg_cache_pss_bytes": "B",
    "vmm_pss_bytes": "B",
    "cgroup_bytes": "B",
    "shim_pss_bytes": "B",
    "host_used_delta_bytes": "B",
    # Derived by the report, never written by a run: pss_bytes + shim_pss_bytes of one trial.
    "footprint_bytes": "B",
    "image_bytes": "B",
    "image_compressed_bytes": "B",
    "kernel_bytes": "B",
    "initramfs_bytes": "B",
    "disk_bytes": "B",
    "bootloader_bytes": "B",  # the bootloader's own files in a boot disk (in disk_bytes too)
    "firmware_vars_bytes": "B",  # a UEFI VM's own variable store (OVMF_VARS)
    "rootfs_bytes": "B",
    "kernel_matches_host": "bool",
    "runs_foreign_arch": "bool",
    # A system that is not Linux (memtest86+, detail os=...): 1 where it ran, 0 where the
    # engine refused it (exec format error, in the engine's own words).
    "runs_foreign_os": "bool",
    # A trial that produced no number still leaves a row, with this metric and a status.
    "trial": "",
    # The host around each trial (bench/run/hostload.py), beside its measurements: the 1-min
    # load average at its end; the CPU other processes than this run's (and its engine's
    # daemons) used during it, in % of all cores (/proc/stat less ours); the share of its
    # time some task waited for a CPU (/proc/pressure/cpu, where the kernel has PSI); the
    # CPU time the hypervisor took from this host, if it is a VM (steal, % of all cores).
    "host_load_1m": "",
    "host_other_cpu_pct": "%",
    "host_cpu_pressure_pct": "%",
    "host_steal_pct": "%",
    # repetitions = "auto" (and a time budget): per engine of a block (trial 0), the measured
    # trials it got; detail: stopped=target-reached|max-reached|budget-over, ci_pct=...
    "repetitions": "",
}


# A run id names a folder under the results folder and under the cache: nothing that could
# climb out of it (no '/', no '..'), nothing a shell or a Docker label would choke on.
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_run_id(text: str) -> str:
    """``text`` if it is a safe run id, else ValueError saying what one looks like."""
    if not RUN_ID_RE.match(text) or ".." in text:
        raise ValueError(
            f"run id {text!r} is not valid: expected letters, digits, '.', '_' and '-' "
            "(like 20261127T015547Z-host-fcde), no '/' or '..'"
        )
    return text


@dataclass(frozen=True)
class Row:
    run_id: str
    host_id: str
    scenario: str
    guest: str
    backend: str
    accel: str
    instances: int
    trial: int
    phase: str
    metric: str
    value: float | None
    unit: str
    status: str = "ok"
    detail: str = ""
    started_at: str = ""
    kind: str = ""  # empty: the reading side derives it from the backend name

    def as_csv(self, columns: tuple[str, ...] = COLUMNS) -> list[str]:
        values = asdict(self)
        value = values["value"]
        values["value"] = "" if value is None else repr(float(value))
        values["detail"] = " ".join(str(values["detail"]).split())  # one line, always
        return [str(values[c]) for c in columns]


assert tuple(f.name for f in fields(Row)) == COLUMNS


def unit_of(metric: str) -> str:
    return METRIC_UNITS.get(metric, "")
