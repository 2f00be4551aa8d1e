"""Vagrant, driven through python-vagrant and the project's top-level Vagrantfile.

A vmbench guest becomes a box (``box``): on libvirt (qemu, how Debian
hosts and CI run it) booted by direct kernel boot (``boot = "kernel"``) or from the guest's
BIOS boot disk (``boot = "disk"``); on VirtualBox (lab machines) always from that boot disk,
as a streamOptimized VMDK with an OVF. Either way readiness is the guest's own READY line on
its first serial port, which the hypervisor writes to a file that vmbench follows.

A box of the user's own (``box = "bento/debian-12"``) runs its own OS, not the vmbench
workload: its rows name the box as their guest, say ``readiness=ssh-reachable``, and its ready
time is the moment Vagrant itself printed "Machine booted and ready!" (its SSH communicator
connected). vmbench never writes a READY line of its own.

- ``provider``: which provider runs a scenario, and why
- ``env``: what the Vagrantfile is told (environment variables), where boxes and machines live
- ``box``: a box built from a guest (libvirt: kernel or disk; VirtualBox: a VMDK and an OVF)
- ``prepare``: the three ways to a box to boot (libvirt, VirtualBox, the user's own)
- ``instance``: one machine, from ``vagrant up`` to ``vagrant destroy``
- ``cleanup``: what a run left, removed by its name prefix
- ``backend``: the engine's declaration, tying them together
- ``libvirt``, ``vbox``: the two providers' own commands (virsh, VBoxManage)
"""

from __future__ import annotations

from bench.backends.vagrant.backend import VagrantBackend
from bench.backends.vagrant.env import (
    MachineSettings,
    machine_env,
    process_env,
    run_id_of,
    vagrantfile,
)
from bench.backends.vagrant.instance import VAGRANT_BOOTED, VagrantInstance
from bench.backends.vagrant.prepare import VagrantImage
from bench.backends.vagrant.provider import detect_provider

__all__ = [
    "VAGRANT_BOOTED",
    "MachineSettings",
    "VagrantBackend",
    "VagrantImage",
    "VagrantInstance",
    "detect_provider",
    "machine_env",
    "process_env",
    "run_id_of",
    "vagrantfile",
]
