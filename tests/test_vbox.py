"""The VirtualBox box and the VirtualBox host checks.

VirtualBox cannot run here, so these tests prove everything up to the engine itself: the box
is what `vagrant box add` accepts for the virtualbox provider (real Vagrant, no VirtualBox
needed), its VMDK is a streamOptimized copy of the BIOS boot disk that still boots (converted
back to raw, in QEMU, from an IDE disk as VirtualBox attaches it), and its OVF describes that
disk, its size and a serial port writing to a file. Booting it in VirtualBox, VBoxHeadless's
memory and the clone-from-master path need a VirtualBox host (see the README).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import engine_missing

from bench.backends.vagrant import vbox
from bench.backends.vagrant.box import STREAM_OPTIMIZED, VMDK_NAME, build_box, ovf_descriptor
from bench.run.measure import DONE, READY, now_ns

NS = {
    "ovf": "http://schemas.dmtf.org/ovf/envelope/1",
    "rasd": "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData",
    "vbox": "http://www.virtualbox.org/ovf/machine",
}
OVF = "{http://schemas.dmtf.org/ovf/envelope/1}"
PROBE_WORKLOAD = "smbios-probe"  # unknown to the guest: it answers with a RESULT naming it


def parse_ovf(text: str) -> ET.Element:
    return ET.fromstring(text.encode())


def check_ovf(root: ET.Element, vmdk_bytes: int, capacity_bytes: int) -> None:
    """What VirtualBox needs from box.ovf to import the disk and give the VM its console."""
    assert root.get(f"{OVF}version") == "1.0"
    (file_ref,) = root.findall("ovf:References/ovf:File", NS)
    assert file_ref.get(f"{OVF}href") == VMDK_NAME
    assert file_ref.get(f"{OVF}size") == str(vmdk_bytes)
    (disk,) = root.findall("ovf:DiskSection/ovf:Disk", NS)
    assert disk.get(f"{OVF}fileRef") == file_ref.get(f"{OVF}id")
    assert disk.get(f"{OVF}capacity") == str(capacity_bytes)
    assert disk.get(f"{OVF}format") == STREAM_OPTIMIZED
    machine = root.find("ovf:VirtualSystem/vbox:Machine", NS)
    assert machine is not None
    # The controller's image is the disk of the DiskSection (same UUID), or the import fails.
    image = machine.find(
        "ovf:StorageControllers/ovf:StorageController/ovf:AttachedDevice/ovf:Image", NS
    )
    assert image is not None
    assert image.get("uuid") == "{" + disk.get("{http://www.virtualbox.org/ovf/machine}uuid") + "}"
    controller = machine.find("ovf:StorageControllers/ovf:StorageController", NS)
    assert controller.get("type") == "PIIX4"  # IDE: the cloud kernel has ata_piix, no AHCI
    (port,) = machine.findall("ovf:Hardware/ovf:UART/ovf:Port", NS)
    assert (port.get("slot"), port.get("enabled"), port.get("IOBase")) == ("0", "true", "0x3f8")
    assert port.get("hostMode") == "RawFile" and port.get("path")
    assert machine.findall("ovf:Hardware/ovf:Network/ovf:Adapter", NS) == []  # no NIC
    assert machine.find("ovf:Hardware/ovf:Boot/ovf:Order", NS).get("device") == "HardDisk"
    types = [i.findtext("rasd:ResourceType", namespaces=NS) for i in root.iter(f"{OVF}Item")]
    assert "10" not in types  # no Ethernet adapter in the portable section either


def test_ovf_descriptor_describes_disk_serial_port_and_no_network():
    text = ovf_descriptor(
        name="vmbench-busybox",
        vmdk_name=VMDK_NAME,
        vmdk_bytes=12345,
        capacity_bytes=34603008,
        disk_uuid="11111111-2222-5333-8444-555555555555",
        machine_uuid="66666666-7777-5888-9999-000000000000",
        memory_mib=192,
        cpus=2,
    )
    root = parse_ovf(text)
    check_ovf(root, 12345, 34603008)
    memory = root.find("ovf:VirtualSystem/vbox:Machine/ovf:Hardware/ovf:Memory", NS)
    assert memory.get("RAMSize") == "192"
    cpu = root.find("ovf:VirtualSystem/vbox:Machine/ovf:Hardware/ovf:CPU", NS)
    assert cpu.get("count") == "2"


def test_ovf_values_are_escaped():
    root = parse_ovf(ovf_descriptor('a"<b&', VMDK_NAME, 1, 512, "u", "m"))
    assert root.find("ovf:VirtualSystem", NS).get(f"{OVF}id") == 'a"<b&'


# --- the VirtualBox host ---------------------------------------------------------------------


def sys_tree(tmp_path: Path, module: str | None, at_load: str | None, refcnt: int = 0) -> Path:
    """A /sys/module as the kernel shows it with ``module`` loaded (fake boundary)."""
    root = tmp_path / "module"
    (root / "kvm" / "parameters").mkdir(parents=True)
    if at_load is not None:
        (root / "kvm" / "parameters" / "enable_virt_at_load").write_text(at_load + "\n")
    if module:
        (root / module).mkdir()
        (root / module / "refcnt").write_text(f"{refcnt}\n")
    return root


def test_kvm_intel_holding_vtx_from_load_names_the_error_and_the_fix(tmp_path):
    note = vbox.kvm_holds_vtx(sys_tree(tmp_path, "kvm_intel", "Y"))
    assert "kvm_intel" in note and "VT-x" in note and "VERR_VMX_IN_VMX_ROOT_MODE" in note
    assert "sudo modprobe -r kvm_intel" in note and "enable_virt_at_load=0" in note


def test_kvm_amd_while_vms_run(tmp_path):
    note = vbox.kvm_holds_vtx(sys_tree(tmp_path, "kvm_amd", "N", refcnt=2))
    assert "AMD-V" in note and "VERR_SVM_IN_USE" in note and "(2 now)" in note
    assert "modprobe -r kvm_amd" in note


def test_kvm_loaded_but_idle_on_an_older_kernel_is_no_conflict(tmp_path):
    note = vbox.kvm_holds_vtx(sys_tree(tmp_path, "kvm_intel", None, refcnt=0))
    assert "only while a KVM VM runs" in note and "fix" not in note


def test_no_kvm_vendor_module_holds_nothing(tmp_path):
    assert vbox.kvm_holds_vtx(sys_tree(tmp_path, None, "Y")) == ""


def test_doctor_without_virtualbox_is_one_line_with_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no VBoxManage on it
    assert vbox.doctor_lines() == [f"virtualbox: not installed; {vbox.INSTALL_HINT}"]


def test_doctor_with_virtualbox_gives_its_version_and_the_vtx_conflict(monkeypatch, tmp_path):
    """A stub VBoxManage that answers --version (VirtualBox does not run here)."""
    stub = tmp_path / "bin" / "VBoxManage"
    stub.parent.mkdir()
    stub.write_text('#!/bin/sh\n[ "$1" = --version ] && echo 7.0.20r163906\n')
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{stub.parent}:/usr/bin:/bin")
    lines = vbox.doctor_lines(sys_tree(tmp_path, "kvm_intel", "Y"))
    assert lines[0] == "virtualbox: VirtualBox 7.0.20r163906"
    assert "VERR_VMX_IN_VMX_ROOT_MODE" in lines[1] and len(lines) == 2


def test_remove_vms_deletes_the_runs_clones_before_their_master_and_nothing_else(
    monkeypatch, tmp_path
):
    """A stub VBoxManage that lists three VMs and logs what it is asked; VirtualBox is listed
    once, the other run's VM is not touched, a linked clone goes before its master."""
    log = tmp_path / "calls"
    stub = tmp_path / "bin" / "VBoxManage"
    stub.parent.mkdir()
    stub.write_text(
        f'#!/bin/sh\necho "$*" >> "{log}"\n'
        'if [ "$2 $3" = "list vms" ]; then\n'
        "  echo '\"vmbench-r1-master\" {{1}}'; echo '\"vmbench-r1-busybox\" {{2}}'\n"
        "  echo '\"vmbench-r2-busybox\" {{3}}'\nfi\n"
    )
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{stub.parent}:/usr/bin:/bin")
    removed = vbox.remove_vms("vmbench-r1-")
    assert removed == ["VirtualBox VM vmbench-r1-busybox", "VirtualBox VM vmbench-r1-master"]
    assert log.read_text().splitlines() == [
        "-q list vms",
        "-q controlvm vmbench-r1-busybox poweroff",
        "-q unregistervm vmbench-r1-busybox --delete",
        "-q controlvm vmbench-r1-master poweroff",
        "-q unregistervm vmbench-r1-master --delete",
    ]


def test_vmbench_doctor_prints_the_virtualbox_line(capsys):
    from bench.cli import main

    assert main(["doctor"]) == 0
    lines = [ln.strip() for ln in capsys.readouterr().out.splitlines()]
    ours = [ln for ln in lines if ln.startswith("virtualbox:")]
    if shutil.which("VBoxManage") is None:
        assert ours == [f"virtualbox: not installed; {vbox.INSTALL_HINT}"]
    else:
        assert ours and ours[0].startswith("virtualbox: VirtualBox ")


# --- the box, with real tools ------------------------------------------------------------------


@pytest.fixture(scope="module")
def virtualbox_box(busybox_guest):
    from bench.guests.bootdisk import build_bootdisk

    if shutil.which("qemu-img") is None:
        engine_missing("qemu-img not found")
    return build_box(busybox_guest, "virtualbox", "disk"), build_bootdisk(busybox_guest, "bios")


def members(box_path: Path) -> dict[str, bytes]:
    with tarfile.open(box_path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


@pytest.mark.integration
def test_vagrant_box_add_of_the_virtualbox_box_needs_no_virtualbox(virtualbox_box, tmp_path):
    if shutil.which("vagrant") is None:
        engine_missing("vagrant not found")
    box, _disk = virtualbox_box
    home = tmp_path / "vagrant.d"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VAGRANT_")},
        "VAGRANT_HOME": str(home),
        "VAGRANT_CHECKPOINT_DISABLE": "1",
        "VAGRANT_VAGRANTFILE": "no-vagrantfile-here",
    }
    argv = ["vagrant", "box", "add", "--name", "vmbench-test-vbox", box.url]
    added = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert added.returncode == 0, added.stdout + added.stderr
    assert "for 'virtualbox'" in added.stdout
    folder = home / "boxes" / "vmbench-test-vbox" / "0" / "virtualbox"
    assert sorted(p.name for p in folder.iterdir()) == sorted(box.file_bytes)
    assert json.loads((folder / "metadata.json").read_text()) == {"provider": "virtualbox"}
    listed = subprocess.run(
        ["vagrant", "box", "list"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert "vmbench-test-vbox (virtualbox, 0)" in listed.stdout


@pytest.mark.integration
def test_the_vmdk_is_stream_optimized_with_the_raw_disks_virtual_size(virtualbox_box, tmp_path):
    box, disk = virtualbox_box
    vmdk = tmp_path / VMDK_NAME
    vmdk.write_bytes(members(box.path)[VMDK_NAME])
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(vmdk)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert info["format"] == "vmdk"
    assert info["format-specific"]["data"]["create-type"] == "streamOptimized"
    assert info["virtual-size"] == disk.virtual_bytes == box.disk_virtual_bytes
    assert vmdk.stat().st_size < disk.virtual_bytes  # compressed grains, not a flat copy


@pytest.mark.integration
def test_box_ovf_names_the_vmdk_with_its_real_size_and_a_file_serial_port(virtualbox_box):
    box, disk = virtualbox_box
    files = members(box.path)
    assert set(files) == {"box.ovf", VMDK_NAME, "metadata.json", "Vagrantfile"}
    check_ovf(parse_ovf(files["box.ovf"].decode()), len(files[VMDK_NAME]), disk.virtual_bytes)


@pytest.mark.integration
def test_the_vmdk_converted_back_to_raw_is_the_boot_disk_and_boots_to_ready(
    virtualbox_box, busybox_guest, tmp_path
):
    """The box carries a bootable disk: its VMDK, back to raw, equals the BIOS boot disk byte
    for byte and boots in QEMU (TCG) from an IDE disk, the controller the OVF gives it, with
    the workload chosen through the SMBIOS serial as VirtualBox's DMI extradata sets it."""
    from bench.backends import qemu
    from bench.backends.kvm import MACHINES

    if not shutil.which("qemu-system-x86_64"):
        engine_missing("qemu-system-x86_64 not found")
    box, disk = virtualbox_box
    vmdk, raw = tmp_path / VMDK_NAME, tmp_path / "back.raw"
    vmdk.write_bytes(members(box.path)[VMDK_NAME])
    subprocess.run(
        ["qemu-img", "convert", "-q", "-O", "raw", str(vmdk), str(raw)], check=True, timeout=300
    )
    assert raw.stat().st_size == disk.virtual_bytes
    with open(raw, "rb") as back, open(disk.path, "rb") as original:
        while chunk := original.read(1 << 20):
            assert back.read(len(chunk)) == chunk
    argv = qemu.qemu_argv(
        busybox_guest,
        MACHINES["amd64"],
        "tcg",
        PROBE_WORKLOAD,
        qemu.QemuBackend.settings({}),
        "vmbench-test-vmdk",
        None,
        replace(disk, path=raw),
    )
    argv = [a.replace("if=virtio", "if=ide") for a in argv]
    with qemu.QemuInstance(argv, "tcg", None, {}) as instance:
        deadline = now_ns() + 180 * 10**9
        instance.start(deadline)
        ready = instance.console.wait_for(READY, deadline)
        assert ready is not None, instance.console.tail(10)
        assert instance.console.wait_for(DONE, deadline) is not None, instance.console.tail(8)
        assert ready.fields()["kernel"] == busybox_guest.kernel.release
        assert instance.console.results().get("workload") == PROBE_WORKLOAD


@pytest.mark.integration
def test_vmbench_box_writes_the_box_and_refuses_bad_input(virtualbox_box, tmp_path, capsys):
    from bench.cli import main

    box, _disk = virtualbox_box
    out = tmp_path / "out" / "busybox.box"
    assert main(["box", "busybox", "--provider", "virtualbox", "--out", str(out)]) == 0
    assert out.read_bytes() == box.path.read_bytes()
    assert "vagrant box add" in capsys.readouterr().out
    assert main(["box", "nosuch", "--provider", "virtualbox", "--out", str(out)]) == 2
    assert "unknown guest 'nosuch'" in capsys.readouterr().err
    kernel = ["box", "busybox", "--provider", "virtualbox", "--boot", "kernel", "--out", str(out)]
    assert main(kernel) == 2
    # A libvirt kernel box boots on its own too: its command line names the serial console.
    libvirt_box = tmp_path / "kernel.box"
    kernel[3], kernel[-1] = "libvirt", str(libvirt_box)
    assert main(kernel) == 0
    assert members(libvirt_box)["cmdline"].decode().startswith("console=ttyS0 ")
