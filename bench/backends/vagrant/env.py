"""What Vagrant is told and where its things live: the project's Vagrantfile reads only
environment variables, which ``machine_env`` builds; ``process_env`` keeps the caller's own
VAGRANT_* settings out; vmbench's own VAGRANT_HOME keeps its boxes apart from the user's.

Names: boxes, domains, volumes and working folders of a run all start with
``vmbench-<run_id>-`` so that cleanup removes exactly what one run made.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.backends.vagrant import libvirt
from bench.guests.cache import cache_root
from bench.run import liveness
from bench.run.measure import READY

# Files vagrant must never find: box commands run where no Vagrantfile is.
_NO_VAGRANTFILE = ".vmbench-no-vagrantfile"


def vagrantfile() -> Path:
    """The project's Vagrantfile (``$VMBENCH_VAGRANTFILE`` overrides, e.g. for a wheel install)."""
    if os.environ.get("VMBENCH_VAGRANTFILE"):
        return Path(os.environ["VMBENCH_VAGRANTFILE"]).resolve()
    return Path(__file__).resolve().parents[3] / "Vagrantfile"


def vagrant_home() -> Path:
    """The project's own VAGRANT_HOME: boxes vmbench adds never mix with the user's."""
    if os.environ.get("VMBENCH_VAGRANT_HOME"):
        return Path(os.environ["VMBENCH_VAGRANT_HOME"])
    return cache_root() / "vagrant.d"


def instances_dir() -> Path:
    """Per-instance working folders (vagrant machine state, serial log, vagrant's output)."""
    return cache_root() / "vagrant" / "instances"


def run_prefix(run_id: str) -> str:
    return f"vmbench-{run_id}-"


def box_name(run_id: str, guest: str, flavour: str = "") -> str:
    """The run's box of ``guest``; ``flavour`` (e.g. ``disk``) tells apart the boxes of one
    guest that a run boots in different ways."""
    return f"{run_prefix(run_id)}box-{guest}" + (f"-{flavour}" if flavour else "")


# The run id inside the names this backend (box) and the runner (instances) give.
_RUN_IN_NAME = re.compile(
    r"^vmbench-(?P<run>.+)-(?:box|vagrant)-[a-z0-9][a-z0-9-]*?(?:\.img|_vagrant_box_image_.*)?$"
)


def run_id_of(name: str) -> str | None:
    """``vmbench-<run_id>-vagrant-busybox-3`` (or a box, or their volumes) -> the run id."""
    found = _RUN_IN_NAME.match(name)
    return found.group("run") if found else None


@dataclass(frozen=True)
class MachineSettings:
    """Everything the Vagrantfile needs for one machine."""

    name: str
    provider: str
    box: str
    box_url: str  # file:// URL, or "" for a box the user already has
    memory_mib: int
    cpus: int
    serial_log: Path
    readiness: str  # serial | ssh
    boot_timeout_s: int
    workdir: Path
    cmdline: str = ""  # libvirt direct kernel boot; "" keeps the box's
    smbios_serial: str = ""  # a disk boot's workload (SMBIOS system serial); "" none
    libvirt_driver: str = "qemu"
    vagrant_home: Path | None = None  # None: the user's own (a box they added themselves)


def machine_env(m: MachineSettings) -> dict[str, str]:
    """The variables the Vagrantfile reads, and the ones that keep Vagrant offline and ours."""
    env = {
        "VAGRANT_CHECKPOINT_DISABLE": "1",  # no version check against HashiCorp
        "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1",
        "VAGRANT_NO_COLOR": "1",
        "VAGRANT_DEFAULT_PROVIDER": m.provider,
        "VAGRANT_DOTFILE_PATH": str(m.workdir / ".vagrant"),
        "VMBENCH_NAME": m.name,
        "VMBENCH_BOX": m.box,
        "VMBENCH_BOX_URL": m.box_url or "-",
        "VMBENCH_MEMORY_MIB": str(m.memory_mib),
        "VMBENCH_CPUS": str(m.cpus),
        "VMBENCH_SERIAL_LOG": str(m.serial_log),
        "VMBENCH_READINESS": m.readiness,
        "VMBENCH_READY_MARKER": READY,
        "VMBENCH_BOOT_TIMEOUT": str(m.boot_timeout_s),
        "VMBENCH_CMDLINE": m.cmdline or "-",
        "VMBENCH_SMBIOS_SERIAL": m.smbios_serial or "-",
        "VMBENCH_LIBVIRT_DRIVER": m.libvirt_driver,
        "VMBENCH_LIBVIRT_POOL": libvirt.POOL,
        # Whose run the domain is, for every user's `vmbench clean` (bench/run/liveness.py).
        "VMBENCH_OWNER": liveness.me().text(),
        # vagrant-libvirt talks to the daemon virsh talks to (it honours this variable).
        "LIBVIRT_DEFAULT_URI": libvirt.uri(),
    }
    if m.vagrant_home is not None:
        env["VAGRANT_HOME"] = str(m.vagrant_home)
    return env


def process_env(ours: dict[str, str], inherited: dict[str, str] | None = None) -> dict[str, str]:
    """The vagrant subprocess environment: the caller's minus any VAGRANT_*/VMBENCH_* of its
    own (a stray VAGRANT_DEFAULT_PROVIDER or VAGRANT_CWD would change what runs), plus ours.
    The user's VAGRANT_HOME stays when ``ours`` sets none (their own boxes)."""
    inherited = dict(os.environ if inherited is None else inherited)
    env = {k: v for k, v in inherited.items() if not k.startswith(("VAGRANT_", "VMBENCH_"))}
    if "VAGRANT_HOME" not in ours and "VAGRANT_HOME" in inherited:
        env["VAGRANT_HOME"] = inherited["VAGRANT_HOME"]
    env.update(ours)
    return env


def vagrant_client(root: Path, env: dict[str, str], log: Path | None = None):
    import vagrant  # python-vagrant

    kwargs: dict[str, Any] = {"root": str(root), "env": env}
    if log is not None:
        kwargs["out_cm"] = vagrant.make_file_cm(str(log))
        kwargs["err_cm"] = vagrant.make_file_cm(str(log))
    return vagrant.Vagrant(**kwargs)


def box_client(home: Path, log: Path | None = None):
    """python-vagrant for box commands: our VAGRANT_HOME, and no Vagrantfile loaded."""
    home.mkdir(parents=True, exist_ok=True)
    env = process_env(
        {
            "VAGRANT_HOME": str(home),
            "VAGRANT_CHECKPOINT_DISABLE": "1",
            "VAGRANT_VAGRANTFILE": _NO_VAGRANTFILE,
            "VAGRANT_NO_COLOR": "1",
        }
    )
    return vagrant_client(home, env, log)


def boxes_in(home: Path) -> list[str]:
    """Box names present in a VAGRANT_HOME (read from its folder: no vagrant start-up)."""
    folder = home / "boxes"
    if not folder.is_dir():
        return []
    return sorted(p.name.replace("-VAGRANTSLASH-", "/") for p in folder.iterdir() if p.is_dir())


def output_tail(path: Path, chars: int = 400) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no vagrant output)"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "Progress:" not in ln]
    return " | ".join(lines[-6:])[-chars:]
