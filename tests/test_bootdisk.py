"""Bootable disks: their layout (read back with sfdisk and mtools), and real boots under QEMU.

Four boots in all for the fast path (busybox and debian, BIOS and UEFI; TCG: 5-20 s each),
one more (slow) for the IDE disk path that VirtualBox takes. Every boot chooses a workload
name through SMBIOS only, and the guest must print it back: that proves the channel.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from conftest import built_guest, engine_missing
from helpers.assertions import assert_phases_fit

from bench.backends.base import LaunchSpec
from bench.guests import HostToolMissing
from bench.guests.bootdisk import (
    ESP_TYPE,
    MIB,
    SYSLINUX_MBR,
    build_bootdisk,
    kernel_command_line,
    workload_serial,
)
from bench.results import read_rows
from bench.run.measure import DONE, READY, file_chunks, now_ns
from bench.run.trial import boot_phases

# A workload name that no guest knows: the workload answers with a RESULT line naming it,
# so the name must have travelled from the host to the guest.
PROBE_WORKLOAD = "smbios-probe"
# sfdisk is in /usr/sbin, which a regular user's PATH lacks.
SFDISK = shutil.which("sfdisk") or shutil.which("sfdisk", path="/usr/sbin:/sbin") or "sfdisk"
BOOT_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def debian_guest():
    return built_guest("debian")


def disk_of(guest, firmware: str):
    """The guest's boot disk; a host without the tools to build it is an engine missing."""
    try:
        return build_bootdisk(guest, firmware)
    except HostToolMissing as e:
        engine_missing(f"boot disk cannot be built on this host: {e}")


def partitions(disk) -> dict:
    out = subprocess.run([SFDISK, "--json", str(disk)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["partitiontable"]


def fat_file(disk, start_bytes: int, name: str) -> bytes:
    """A file from the FAT file system at ``start_bytes`` in ``disk``, read with mtools."""
    out = subprocess.run(
        ["mtype", "-i", f"{disk}@@{start_bytes}", f"::{name}"],
        capture_output=True,
        check=True,
        env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"},
    )
    return out.stdout


def test_the_cloud_kernel_exposes_the_smbios_serial_to_the_guest(busybox_guest):
    """The guest reads the workload from /sys/class/dmi/id/product_serial: CONFIG_DMIID."""
    config = busybox_guest.kernel.folder / "boot" / f"config-{busybox_guest.kernel.release}"
    assert "CONFIG_DMIID=y" in config.read_text().splitlines()


def test_workload_serial_is_the_command_line_word():
    assert workload_serial("idle") == "VMBENCH_WORKLOAD=idle"
    with pytest.raises(ValueError):
        workload_serial("idle,serial=x")  # would smuggle another -smbios field


def test_bios_disk_mbr_syslinux_serial_console(busybox_guest):
    disk = disk_of(busybox_guest, "bios")
    table = partitions(disk.path)
    assert table["label"] == "dos"
    (boot,) = table["partitions"]  # busybox: the initramfs is the whole userland
    assert boot["start"] == 2048 and boot.get("bootable") is True and boot["type"] == "e"
    assert disk.path.read_bytes()[:440] == SYSLINUX_MBR.read_bytes()[:440]
    config = fat_file(disk.path, MIB, "/syslinux.cfg").decode()
    assert config.splitlines()[0] == "SERIAL 0 115200"
    # The direct boot's command line, "quiet" said so that syslinux still prints its
    # "Loading ..." lines (the last one times the bootloader's hand-off).
    quiet = "loglevel=4 systemd.show_status=error"
    assert f"APPEND {kernel_command_line(busybox_guest).replace('quiet', quiet)}" in config
    assert "quiet" not in config
    assert "console=ttyS0" in config and "VMBENCH_WORKLOAD" not in config
    kernel = fat_file(disk.path, MIB, "/vmlinuz")
    assert kernel == busybox_guest.kernel.vmlinuz.read_bytes()
    assert fat_file(disk.path, MIB, "/ldlinux.sys")  # written by syslinux --install, no mount
    assert 50_000 < disk.bootloader_bytes < 1_000_000
    # Sparse: the allocated bytes are the files, not the partition's size.
    assert disk.allocated_bytes < disk.virtual_bytes


def test_uefi_disk_gpt_esp_grub(busybox_guest):
    disk = disk_of(busybox_guest, "uefi")
    table = partitions(disk.path)
    assert table["label"] == "gpt"
    (esp,) = table["partitions"]
    assert esp["type"] == ESP_TYPE
    grub = fat_file(disk.path, esp["start"] * 512, "/EFI/BOOT/BOOTX64.EFI")
    assert grub[:2] == b"MZ" and len(grub) == disk.bootloader_bytes  # a PE image
    assert (
        fat_file(disk.path, esp["start"] * 512, "/initrd.gz")
        == busybox_guest.initramfs.read_bytes()
    )
    # The backup GPT at the end is valid (sfdisk --verify checks both headers).
    verify = subprocess.run([SFDISK, "--verify", str(disk.path)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_debian_disk_holds_the_guest_ext4_byte_for_byte(debian_guest):
    disk = disk_of(debian_guest, "bios")
    _boot, root = partitions(disk.path)["partitions"]
    assert root["type"] == "83"
    assert root["size"] * 512 >= debian_guest.disk.stat().st_size
    with open(disk.path, "rb") as whole:
        whole.seek(root["start"] * 512)
        for chunk in file_chunks(debian_guest.disk):
            assert whole.read(len(chunk)) == chunk
    assert "VMBENCH_ROOT=LABEL=vmbench" in disk.meta["kernel_command_line"]


def boot(qemu_backend, guest, firmware: str, interface: str = "virtio") -> dict[str, float]:
    """Boot the guest's disk through the qemu backend (boot = firmware) with the probe
    workload; returns the boot phases the trial would record."""
    options = {"boot": firmware, "accel": "tcg"}
    disk_of(guest, firmware)  # built here first: a missing tool skips (fails under CI)
    prepared = qemu_backend.prepare(guest, options)
    spec = LaunchSpec(
        run_id="test-bootdisk",
        name="vmbench-test-bootdisk",
        workload=PROBE_WORKLOAD,
        timeout_s=BOOT_TIMEOUT_S,
        options=options,
    )
    instance = qemu_backend.create(prepared, spec)
    if interface != "virtio":
        instance.argv = [a.replace("if=virtio", f"if={interface}") for a in instance.argv]
    with instance:
        start = now_ns()
        deadline = start + int(BOOT_TIMEOUT_S * 1e9)
        instance.start(deadline)
        ready = instance.console.wait_for(READY, deadline)
        done = instance.console.wait_for(DONE, deadline)
        assert ready is not None, instance.console.tail(8)
        assert done is not None, instance.console.tail(8)
        assert ready.fields()["kernel"] == guest.kernel.release
        assert instance.console.results().get("workload") == PROBE_WORKLOAD
        phases = {m.metric: m.value for m in boot_phases(instance, start, "")}
    phases["ready_s"] = (ready.t_ns - start) / 1e9
    phases["guest_uptime_s"] = float(ready.fields()["uptime"])
    assert_phases_fit(phases)
    return phases


@pytest.mark.integration
@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_busybox_disk_boots_to_ready(qemu_backend, busybox_guest, firmware):
    boot(qemu_backend, busybox_guest, firmware)


@pytest.mark.integration
@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_debian_disk_boots_to_ready(qemu_backend, debian_guest, firmware):
    boot(qemu_backend, debian_guest, firmware)


@pytest.mark.integration
@pytest.mark.slow
def test_debian_disk_boots_from_ide_as_virtualbox_attaches_it(qemu_backend, debian_guest):
    """No virtio disk: the initramfs loads ata_piix and finds the root partition by label."""
    boot(qemu_backend, debian_guest, "bios", interface="ide")


@pytest.mark.integration
@pytest.mark.slow
def test_debian_systemd_disk_boots_to_ready(qemu_backend):
    boot(qemu_backend, built_guest("debian-systemd"), "bios")


@pytest.mark.integration
@pytest.mark.slow
def test_a_regular_user_builds_and_boots_a_bios_disk(tmp_path):
    """No root, no loop device, no sbin on PATH: a throwaway user runs a boot = "bios" trial
    of busybox from its own cache (the guest and its disk built as that user)."""
    from helpers.lab_user import can_make_users, lab_venv, throwaway_user

    if not can_make_users():
        engine_missing("a regular user's build needs root to make a throwaway user")
    venv = lab_venv()
    scenario = (
        '[scenario]\nname = "user-bios"\nguests = ["busybox"]\nworkloads = ["ready"]\n'
        'backends = ["qemu"]\nrepetitions = 1\nwarmup = 0\n'
        '[backend.qemu]\naccel = "tcg"\nboot = "bios"\n'
    )
    with throwaway_user(venv) as user:
        (user.home / "bios.toml").write_text(scenario)
        proc = user.vmbench("run", "bios.toml", "--results-dir", "results", "--no-report")
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        [csv] = (user.home / "results").glob("*/results.csv")
        rows = [r for r in read_rows(csv)[0] if r["status"] == "ok"]
        disks = list((user.cache / "guests").glob("busybox-amd64-bios-*/disk.img"))
        owners = {d.stat().st_uid for d in disks}
    metrics = {r["metric"] for r in rows}
    assert {"ready_s", "firmware_s", "bootloader_s", "disk_bytes"} <= metrics
    assert disks and owners == {user.uid}
