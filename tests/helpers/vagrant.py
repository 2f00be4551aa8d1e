"""Vagrant machine settings for tests, any field changed."""

from __future__ import annotations

from pathlib import Path

from bench.backends.vagrant import MachineSettings


def settings(tmp_path: Path, **changes) -> MachineSettings:
    base = dict(
        name="vmbench-r1-vagrant-busybox-1",
        provider="libvirt",
        box="vmbench-r1-box-busybox",
        box_url="file:///cache/boxes/vmbench-busybox.box",
        memory_mib=192,
        cpus=2,
        serial_log=tmp_path / "serial.log",
        readiness="serial",
        boot_timeout_s=90,
        workdir=tmp_path,
        cmdline="console=ttyS0 quiet VMBENCH_WORKLOAD=idle",
        smbios_serial="",
        vagrant_home=tmp_path / "vagrant.d",
    )
    base.update(changes)
    return MachineSettings(**base)
