"""A container's memory from its cgroup (v1, v2 and hybrid), shared by the container engines.

Pure functions over a /proc and a cgroup root, so that file fixtures can drive them. Errors
are ``CgroupUnreadable`` without an engine name; each engine's Instance says which it is.
"""

from __future__ import annotations

from pathlib import Path

import psutil

from bench.backends.base import BackendError
from bench.run.measure import SmapsRelay, process_memory

PROC_ROOT = Path("/proc")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class CgroupUnreadable(BackendError):
    """The container's memory cgroup, or every process in it, could not be read.

    No sample is taken then (the memory sampler skips it, and a trial without any sample
    fails with this message): a container that is gone must never be recorded as 0 bytes.
    """


def memory_cgroup(proc_cgroup: str, cgroup_root: Path) -> Path | None:
    """The memory cgroup folder that a ``/proc/PID/cgroup`` text names, or None.

    cgroup v1, also in hybrid mode (v2 mounted at ``unified/`` without the memory controller):
    the ``memory`` line, under ``<root>/memory``. cgroup v2: the ``0::`` line, under ``<root>``.
    The path is whatever the daemon's driver chose: ``/docker/<id>`` (cgroupfs) or
    ``/system.slice/docker-<id>.scope`` (systemd).
    """
    unified = None
    for line in proc_cgroup.splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return cgroup_root / "memory" / path.lstrip("/")
        if hierarchy == "0" and controllers == "":
            unified = cgroup_root / path.lstrip("/")
    return unified


def container_cgroup(pid: int, proc_root: Path, cgroup_root: Path) -> Path:
    """The memory cgroup folder of process ``pid`` (the container's init)."""
    source = proc_root / str(pid) / "cgroup"
    try:
        text = source.read_text()
    except OSError as e:
        raise CgroupUnreadable(
            f"cannot read {source} ({e.strerror}): the container's process is gone"
        ) from None
    cgroup = memory_cgroup(text, cgroup_root)
    if cgroup is None:
        raise CgroupUnreadable(f"{source} names no memory cgroup")
    return cgroup


def cgroup_pids(cgroup: Path) -> list[int]:
    """The processes in a cgroup, from its ``cgroup.procs``."""
    procs = cgroup / "cgroup.procs"
    try:
        return [int(p) for p in procs.read_text().split()]
    except OSError as e:
        raise CgroupUnreadable(
            f"cannot read {procs} ({e.strerror}): "
            "the container's cgroup is gone or not visible here"
        ) from None


def cgroup_memory(
    cgroup: Path, full: bool = True, read_smaps: SmapsRelay | None = None
) -> dict[str, int]:
    """One sample: its processes' rss_bytes (``full``: uss, pss too) and the cgroup's usage.
    ``read_smaps`` reads what this user may not (measure.process_memory)."""
    pids = cgroup_pids(cgroup)
    own = process_memory(pids, full, read_smaps)
    if not own.processes:
        listed = " ".join(map(str, pids)) or "none"
        raise CgroupUnreadable(
            f"no process of {cgroup} could be read (cgroup.procs lists {listed})"
        )
    sample = own.sample(full)
    usage = cgroup_usage_bytes(cgroup)
    if usage is not None:
        sample["cgroup_bytes"] = usage
    return sample


def cgroup_usage_bytes(cgroup: Path) -> int | None:
    """Usage without reclaimable page cache, as ``docker stats`` reports it (v1 counts cache)."""
    for usage_file, inactive_key in (
        ("memory.current", "inactive_file"),
        ("memory.usage_in_bytes", "total_inactive_file"),
    ):
        try:
            usage = int((cgroup / usage_file).read_text())
        except (OSError, ValueError):
            continue
        stat = _read_stat(cgroup / "memory.stat")
        return max(0, usage - stat.get(inactive_key, 0))
    return None


def _read_stat(path: Path) -> dict[str, int]:
    try:
        pairs = (line.split() for line in path.read_text().splitlines())
        return {k: int(v) for k, v in pairs}
    except (OSError, ValueError):
        return {}


def parent_named(pid: int, prefix: str) -> int | None:
    """The pid of ``pid``'s parent if its name starts with ``prefix`` (the engine's shim:
    ``containerd-shim`` for Docker, ``conmon`` for podman), else None."""
    try:
        parent = psutil.Process(pid).parent()
    except psutil.Error:
        return None
    if parent is not None and parent.name().startswith(prefix):
        return parent.pid
    return None
