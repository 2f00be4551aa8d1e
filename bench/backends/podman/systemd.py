"""A system container: the guest's own systemd as PID 1, on the host's kernel (podman).

The ``podman-systemd`` engine, in the podman package beside the ``podman`` engine whose image,
labels, memory reading and cleanup it reuses.

The image is the podman engine's image of the same tree; only the command differs:
``/lib/systemd/systemd`` instead of the workload. READY comes from the guest's own
``vmbench-workload.service`` (multi-user.target, Type=idle), as in the VM, so the READY line
says ``init=systemd``.

Why podman's ``--systemd=always`` rather than docker: it is made for this. It mounts tmpfs on
/run and /tmp, tells systemd it is in a container, stops it with SIGRTMIN+3, and on a cgroup v2
host gives the container a writable cgroup namespace of its own, unprivileged; Docker can run
systemd unprivileged only on cgroup v1 (on v2 it needs --privileged or the host's cgroup tree
mounted writable). And with podman's app container beside it, the same engine runs both, so
the difference between the two is the init system alone.

systemd in a container reads its own arguments as the kernel command line: ``quiet`` and no
status lines as in the VM, and the workload (``VMBENCH_WORKLOAD``) through ``systemd.setenv``.
A drop-in for the unit, mounted read-only, keeps its ordering and console but runs the
workload directly and ends the container when it ends (``SuccessAction=exit-force``): the
VM's unit powers off with sysrq after DONE, which a container must not (and cannot) do.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

from bench.backends.base import Availability, BackendUnsupported, LaunchSpec, Prepared
from bench.backends.podman.backend import PodmanBackend
from bench.guests import Guest
from bench.guests.cache import cache_root

INIT = "/lib/systemd/systemd"
UNIT = "vmbench-workload.service"
DROP_IN = f"""\
# vmbench: the system container's drop-in for {UNIT} (see bench/backends/podman/systemd.py).
[Unit]
SuccessAction=exit-force
FailureAction=exit-force

[Service]
ExecStart=
ExecStart=/bin/sh /vmbench/workload
"""


# What a guest needs to boot this way: systemd (/lib is /usr/lib in merged-/usr Debian) and
# the workload's unit enabled for multi-user.target.
SYSTEMD_PATHS = {"lib/systemd/systemd", "usr/lib/systemd/systemd"}
UNIT_LINK = f"etc/systemd/system/multi-user.target.wants/{UNIT}"


def tree_names(guest: Guest) -> set[str]:
    """The paths (relative, no leading ./) in the guest's tree: its rootfs.tar's members
    (headers only), or its rootfs folder's entries."""
    if guest.rootfs_tar is not None:
        with tarfile.open(guest.rootfs_tar) as tar:
            return {name.removeprefix("./") for name in tar.getnames()}
    if not guest.rootfs.is_dir():
        return set()
    return {str(path.relative_to(guest.rootfs)) for path in guest.rootfs.rglob("*")}


def drop_in_file() -> Path:
    """The drop-in on the host, (re)written when its text changed."""
    path = cache_root() / "podman-systemd" / f"{UNIT}.conf"
    if not path.is_file() or path.read_text() != DROP_IN:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_text(DROP_IN)
        partial.replace(path)
    return path


class PodmanSystemdBackend(PodmanBackend):
    """The guest booted by its own systemd in a podman container: the host's kernel."""

    name = "podman-systemd"
    kind = "system-container"
    options = {}  # noqa: RUF012 (a declaration, never mutated)
    # systemd + journald + the workload measured ~12 MiB PSS, conmon ~1.5 MiB; the rest margin.
    estimate_mib = 64
    runs = f"{INIT} (systemd as PID 1, the guest's {UNIT})"

    def availability(self) -> Availability:
        available = super().availability()
        if not available.usable:
            return available
        host = self.host()
        if host.rootless and host.cgroup_version == "v1":
            # Measured: "Failed to create /init.scope control group: Permission denied".
            return Availability(
                False,
                "rootless podman on cgroup v1: systemd as PID 1 gets no cgroup tree of its own "
                "to write (only cgroup v2 delegates one to a user)",
                "run as root, or on a host booted with cgroup v2 "
                "(systemd.unified_cgroup_hierarchy=1)",
                never_ran=True,  # and podman's own cleanup finds its containers anyway
            )
        return available

    def prepare(self, guest: Guest, options: dict[str, Any]) -> Prepared[str]:
        names = tree_names(guest)
        if not names & SYSTEMD_PATHS or UNIT_LINK not in names:
            raise BackendUnsupported(
                f"{self.name}: guest {guest.name} has no systemd and {UNIT} "
                "(a system container needs a guest like debian-systemd)"
            )
        return super().prepare(guest, options)

    def launch_args(self, prepared: Prepared[str], spec: LaunchSpec) -> tuple[list[str], list[str]]:
        mount = f"type=bind,src={drop_in_file()},dst=/etc/systemd/system/{UNIT}.d/vmbench.conf,ro"
        options = ["--tty", "--systemd=always", "--mount", mount, "--entrypoint", INIT]
        workload = f"systemd.setenv=VMBENCH_WORKLOAD={spec.workload}"
        return options, ["quiet", "systemd.show_status=false", workload]
