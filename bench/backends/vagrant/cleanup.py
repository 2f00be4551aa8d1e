"""What a run of the vagrant engine leaves, found and removed: machines by their working
folder (``vagrant destroy`` from the settings kept there), libvirt domains and volumes,
VirtualBox VMs and boxes, all by the run's name prefix; never anything else's."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

from bench.backends.vagrant import libvirt, vbox
from bench.backends.vagrant.env import (
    box_client,
    boxes_in,
    instances_dir,
    process_env,
    run_id_of,
    vagrant_client,
    vagrant_home,
    vagrantfile,
)
from bench.backends.vagrant.prepare import box_providers


def leftover_run_ids() -> set[str]:
    names = [p.name for p in instances_dir().glob("vmbench-*")] if instances_dir().is_dir() else []
    names += boxes_in(vagrant_home())
    if libvirt.daemon_version().ok:
        with contextlib.suppress(libvirt.LibvirtError):
            names += libvirt.domains() + libvirt.volumes()
    names += vbox.vm_names()
    ids = set()
    for name in names:
        run = run_id_of(name)
        if run:
            ids.add(run)
    return ids


def run_owners() -> dict[str, str]:
    """Run id -> the owner words in the description of each of its libvirt domains."""
    owners: dict[str, str] = {}
    if libvirt.daemon_version().ok:
        with contextlib.suppress(libvirt.LibvirtError):
            for domain in libvirt.domains():
                run, words = run_id_of(domain), libvirt.description(domain)
                if run and words:
                    owners[run] = words
    return owners


def remove(prefix: str, everything: bool) -> list[str]:
    removed: list[str] = []
    folder = instances_dir()
    if folder.is_dir():
        for workdir in sorted(folder.glob(f"{prefix}*")):
            removed += _destroy_by_state(workdir)
    if libvirt.daemon_version().ok:
        for domain in libvirt.domains(prefix):
            if libvirt.remove_domain(domain):
                removed.append(f"libvirt domain {domain}")
        for volume in libvirt.volumes(prefix):
            if libvirt.remove_volume(volume):
                removed.append(f"libvirt volume {volume}")
        if everything:
            removed += libvirt.remove_pool()
    # VirtualBox VMs before the boxes: clones, then the masters imported with the box.
    removed += vbox.remove_vms(prefix)
    home = vagrant_home()
    for box in boxes_in(home):
        if box.startswith(prefix) or everything:
            for provider in box_providers(home, box):
                with contextlib.suppress(subprocess.CalledProcessError):
                    box_client(home).box_remove(box, provider)
            if box not in boxes_in(home):
                removed.append(f"vagrant box {box}")
    return removed


def _destroy_by_state(workdir: Path) -> list[str]:
    """``vagrant destroy`` a machine a crashed run left, from its working folder."""
    settings_file = workdir / "env"
    removed = []
    if settings_file.is_file() and vagrantfile().is_file():
        ours = dict(
            line.split("=", 1) for line in settings_file.read_text().splitlines() if "=" in line
        )
        with contextlib.suppress(subprocess.CalledProcessError, OSError, RuntimeError):
            vagrant_client(vagrantfile().parent, process_env(ours)).destroy()
            removed.append(f"vagrant machine {workdir.name}")
    shutil.rmtree(workdir, ignore_errors=True)
    return removed
