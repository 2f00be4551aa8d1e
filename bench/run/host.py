"""Host metadata: one small function per source, each tolerant of absence.

A figure without its host is not comparable; every run writes this next to its CSV.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench.errors import InputError

HOST_ID_ENV = "VMBENCH_HOST_ID"
HOST_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def valid_host_id(name: str) -> bool:
    """1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, and no '..'
    (a host id is also a folder name)."""
    return bool(HOST_ID_RE.match(name)) and ".." not in name


class HostIdError(InputError, ValueError):
    """$VMBENCH_HOST_ID is set to something that cannot name a host in run ids and folders."""


def host_id() -> str:
    """This host's name in every row: $VMBENCH_HOST_ID if set (`vmbench fleet` sets the
    inventory hostname), else the first label of the hostname, made file-name-safe."""
    given = os.environ.get(HOST_ID_ENV)
    if given is not None:
        if not valid_host_id(given):
            raise HostIdError(
                f"{HOST_ID_ENV}={given!r}: expected 1 to 64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return given
    name = socket.gethostname().split(".")[0].lower()
    return re.sub(r"[^a-z0-9-]+", "-", name).strip("-") or "host"


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_model() -> str | None:
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or None


def cpu_counts() -> dict[str, int | None]:
    return {
        "cpu_count": psutil.cpu_count(logical=True),
        "cpu_cores": psutil.cpu_count(logical=False),
    }


def memory() -> dict[str, int]:
    vm = psutil.virtual_memory()
    return {"mem_total_bytes": vm.total, "mem_available_bytes": vm.available}


def kernel() -> dict[str, str]:
    uname = platform.uname()
    return {"kernel": uname.release, "arch": uname.machine}


def os_release() -> str | None:
    text = _read("/etc/os-release") or ""
    match = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text, re.MULTILINE)
    return match.group(1) if match else None


def cpu_governor() -> str | None:
    return _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def cgroup_version() -> str:
    return "v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "v1"


def engine_versions() -> dict[str, str | None]:
    """Each engine's programs and their versions, as the engines themselves report them."""
    from bench.backends import engines

    versions: dict[str, str | None] = {}
    for cls in engines().values():
        backend = cls()
        try:
            versions |= backend.versions()
        finally:
            backend.close()
    return versions


SOURCES: list[tuple[str, Callable[[], Any]]] = [
    ("cpu_model", cpu_model),
    ("cpu", cpu_counts),
    ("memory", memory),
    ("kernel", kernel),
    ("os", os_release),
    ("cpu_governor", cpu_governor),
    ("load_average", load_average),
    ("cgroup", cgroup_version),
    ("versions", engine_versions),
]


def collect(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything we can learn about the host; a source that fails is left out, not fatal."""
    meta: dict[str, Any] = {"host_id": host_id(), "hostname": socket.gethostname()}
    for key, source in SOURCES:
        try:
            value = source()
        except Exception:  # a boundary: any source may fail; host.json goes without it
            continue
        if isinstance(value, dict) and key not in ("versions",):
            meta.update(value)
        elif value is not None:
            meta[key] = value
    meta.update(extra or {})
    return meta


def write(path: Path, meta: dict[str, Any]) -> None:
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
