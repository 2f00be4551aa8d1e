"""Vagrant boxes made from a vmbench guest, built once and cached like the guests.

One module builds every box vmbench makes, so every provider boots byte-identical guests:

- ``libvirt``, boot ``kernel``: the kernel and initramfs the QEMU backend boots directly, with
  ``box.img`` (qcow2: the guest's ext4 disk, or an empty one) and a ``Vagrantfile`` that points
  vagrant-libvirt at them (``lv.kernel``/``lv.initrd``/``lv.cmd_line``).
- ``libvirt``, boot ``disk``: ``box.img`` is the guest's BIOS boot disk (MBR + syslinux,
  ``bench.guests.bootdisk``) as qcow2; no kernel in the domain, the firmware boots the disk.
- ``virtualbox`` (always a disk boot): ``box.ovf`` (OVF 1.0 with the VirtualBox machine section
  that ``vagrant package`` writes: IDE controller PIIX4 with the disk, UART1 in file mode, no
  network adapter), ``box-disk001.vmdk`` (the same BIOS boot disk as a streamOptimized VMDK)
  and ``metadata.json`` ``{"provider": "virtualbox"}``.

Every box carries ``box.Vagrantfile`` as its ``Vagrantfile``. A disk boot takes its workload
from the SMBIOS system serial (see bench/guests/bootdisk.py): the project Vagrantfile sets it per
instance (libvirt ``<sysinfo>``, VirtualBox ``DmiSystemSerial`` extradata).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from bench.errors import VmbenchError
from bench.guests import Guest
from bench.guests.bootdisk import build_bootdisk
from bench.guests.cache import cache_root, cached_build, content_key

BOX_VERSION = "2"
BOX_VAGRANTFILE = Path(__file__).with_name("box.Vagrantfile")
GIB = 1 << 30
PROVIDERS = ("libvirt", "virtualbox")
BOOTS = ("kernel", "disk")
VMDK_NAME = "box-disk001.vmdk"  # the name `vagrant package` gives the first disk
# The firmware a disk box boots with: VirtualBox's and vagrant-libvirt's default, BIOS.
BOX_FIRMWARE = "bios"

STREAM_OPTIMIZED = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
# OVF defaults for the VM. The project Vagrantfile sets memory, CPUs and an absolute serial file
# per instance before every boot; these only matter for a VM started without it.
OVF_MEMORY_MIB = 256
OVF_CPUS = 1
OVF_SERIAL_FILE = "serial.log"


class BoxError(VmbenchError, RuntimeError):
    """The box could not be built; the message says what was missing."""


@dataclass(frozen=True)
class Box:
    path: Path  # the .box file (tar.gz)
    guest: str
    provider: str  # libvirt | virtualbox
    boot: str  # kernel | disk
    file_bytes: dict[str, int]  # member -> bytes it occupies once unpacked (box.img: allocated)
    built_now: bool
    build_s: float
    disk_virtual_bytes: int = 0  # the disk's virtual size (0: no disk of its own)

    @property
    def unpacked_bytes(self) -> int:
        return sum(self.file_bytes.values())

    @property
    def url(self) -> str:
        return self.path.resolve().as_uri()


def kernel_cmdline(guest: Guest) -> str:
    """A ``kernel`` box's command line: the serial console and the guest's own words (the
    workload is added per instance; a disk box's command line is in its bootloader)."""
    return " ".join(w for w in ("console=ttyS0", "quiet", "panic=-1", guest.boot_args) if w)


def build_box(
    guest: Guest, provider: str = "libvirt", boot: str = "kernel", cmdline: str = ""
) -> Box:
    """The cached box of ``guest`` for ``provider``, booting by ``boot``.

    ``cmdline`` is the kernel command line of a ``kernel`` box (default ``kernel_cmdline``).
    VirtualBox cannot boot a kernel directly: it takes ``disk`` only.
    """
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    if boot not in BOOTS:
        raise ValueError(f"boot must be one of {', '.join(BOOTS)}, got {boot!r}")
    if provider == "virtualbox" and boot != "disk":
        raise ValueError(
            "VirtualBox cannot boot a kernel directly: a virtualbox box boots its disk"
        )
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        raise BoxError("qemu-img not found; sudo apt-get install qemu-utils")
    if boot == "kernel":
        cmdline = cmdline or kernel_cmdline(guest)
    disk = build_bootdisk(guest, BOX_FIRMWARE) if boot == "disk" else None
    parts: list[str | bytes] = [
        BOX_VERSION,
        provider,
        boot,
        guest.folder.name,
        guest.kernel.folder.name,
        cmdline,
    ]
    parts.append(BOX_VAGRANTFILE.read_bytes())
    if disk is not None:
        parts.append(disk.path.parent.name)  # the boot disk's own content key
    elif guest.disk is not None:
        parts.append(f"{guest.disk.name}:{guest.disk.stat().st_size}")
    key = content_key(parts)
    folder = cache_root() / "boxes" / f"{guest.name}-{guest.arch}-{provider}-{boot}-{key}"
    box_name = f"vmbench-{guest.name}-{provider}.box"

    def build(tmp: Path) -> dict:
        stage = tmp / "stage"
        stage.mkdir()
        if provider == "virtualbox":
            assert disk is not None
            virtual = _stage_virtualbox(qemu_img, stage, guest.name, disk.path, key)
        elif disk is not None:
            virtual = _stage_libvirt_disk(qemu_img, stage, disk.path)
        else:
            virtual = _stage_libvirt_kernel(qemu_img, stage, guest, cmdline)
        shutil.copyfile(BOX_VAGRANTFILE, stage / "Vagrantfile")
        sizes = {p.name: _bytes_on_disk(p) for p in sorted(stage.iterdir())}
        with tarfile.open(tmp / box_name, "w:gz", compresslevel=6) as tar:
            for member in sorted(stage.iterdir()):
                tar.add(member, arcname=member.name)
        shutil.rmtree(stage)
        return {
            "guest": guest.name,
            "provider": provider,
            "boot": boot,
            "box": box_name,
            "file_bytes": sizes,
            "disk_virtual_bytes": virtual,
        }

    entry = cached_build(folder, build)
    return Box(
        path=entry.folder / entry.meta["box"],
        guest=guest.name,
        provider=provider,
        boot=boot,
        file_bytes={k: int(v) for k, v in entry.meta["file_bytes"].items()},
        built_now=entry.built_now,
        build_s=entry.build_s,
        disk_virtual_bytes=int(entry.meta.get("disk_virtual_bytes", 0)),
    )


def _stage_libvirt_kernel(qemu_img: str, stage: Path, guest: Guest, cmdline: str) -> int:
    """box.img (the guest's disk or an empty one), kernel, initramfs and command line."""
    if guest.disk is not None:
        _run([qemu_img, "convert", "-q", "-O", "qcow2", str(guest.disk), str(stage / "box.img")])
        virtual = guest.disk.stat().st_size
    else:
        # The guest lives in its initramfs; vagrant-libvirt still wants a disk image.
        _run([qemu_img, "create", "-q", "-f", "qcow2", str(stage / "box.img"), "1G"])
        virtual = 0
    if guest.initramfs is None:  # a system that is not Linux (memtest) boots only from a disk
        raise BoxError(f"{guest.name} has no initramfs to boot by kernel: use --boot disk")
    shutil.copyfile(guest.kernel.vmlinuz, stage / "vmlinuz")
    shutil.copyfile(guest.initramfs, stage / "initrd.img")
    (stage / "cmdline").write_text(cmdline + "\n")
    _write_metadata(
        stage, {"provider": "libvirt", "format": "qcow2", "virtual_size": _gib(virtual)}
    )
    return virtual


def _stage_libvirt_disk(qemu_img: str, stage: Path, disk: Path) -> int:
    """box.img is the boot disk: no kernel in the box, the firmware boots it."""
    _run([qemu_img, "convert", "-q", "-O", "qcow2", str(disk), str(stage / "box.img")])
    virtual = disk.stat().st_size
    _write_metadata(
        stage, {"provider": "libvirt", "format": "qcow2", "virtual_size": _gib(virtual)}
    )
    return virtual


def _stage_virtualbox(qemu_img: str, stage: Path, guest: str, disk: Path, key: str) -> int:
    """The boot disk as a streamOptimized VMDK, the OVF that describes the VM, the metadata."""
    vmdk = stage / VMDK_NAME
    _run(
        [
            *(qemu_img, "convert", "-q", "-f", "raw", "-O", "vmdk"),
            *("-o", "subformat=streamOptimized"),
            *(str(disk), str(vmdk)),
        ]
    )
    virtual = disk.stat().st_size
    ovf = ovf_descriptor(
        name=f"vmbench-{guest}",
        vmdk_name=VMDK_NAME,
        vmdk_bytes=vmdk.stat().st_size,
        capacity_bytes=virtual,
        disk_uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"vmbench:{key}:disk")),
        machine_uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"vmbench:{key}:machine")),
    )
    (stage / "box.ovf").write_text(ovf)
    _write_metadata(stage, {"provider": "virtualbox"})
    return virtual


def ovf_descriptor(
    name: str,
    vmdk_name: str,
    vmdk_bytes: int,
    capacity_bytes: int,
    disk_uuid: str,
    machine_uuid: str,
    memory_mib: int = OVF_MEMORY_MIB,
    cpus: int = OVF_CPUS,
) -> str:
    """box.ovf: OVF 1.0 as VirtualBox exports it (and ``vagrant package`` ships it).

    The portable part (DiskSection, VirtualHardwareSection) names the disk and its controller;
    the ``vbox:Machine`` section is the machine as VirtualBox itself stores it, which is what
    VirtualBox imports: BIOS firmware booting the hard disk, an IDE (PIIX4) controller (the
    Debian cloud kernel has ata_piix but no AHCI driver), UART1 at 0x3f8/IRQ 4 writing to a
    file, no network adapter, no audio. ``vbox:uuid`` on the disk and the Image uuid in the
    controller must be equal, or VirtualBox refuses the import.
    """
    values = {
        "name": name,
        "vmdk_name": vmdk_name,
        "vmdk_bytes": int(vmdk_bytes),
        "capacity_bytes": int(capacity_bytes),
        "disk_uuid": disk_uuid,
        "machine_uuid": machine_uuid,
        "memory_mib": int(memory_mib),
        "cpus": int(cpus),
        "serial_file": OVF_SERIAL_FILE,
        "stream_optimized": STREAM_OPTIMIZED,
    }
    escaped = {k: escape(str(v), {'"': "&quot;"}) for k, v in values.items()}
    return OVF_TEMPLATE.format(**escaped)


OVF_TEMPLATE = """\
<?xml version="1.0"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1" \
xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" \
xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" \
xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vbox="http://www.virtualbox.org/ovf/machine">
  <References>
    <File ovf:id="file1" ovf:href="{vmdk_name}" ovf:size="{vmdk_bytes}"/>
  </References>
  <DiskSection>
    <Info>List of the virtual disks used in the package</Info>
    <Disk ovf:capacity="{capacity_bytes}" ovf:diskId="vmdisk1" ovf:fileRef="file1" \
ovf:format="{stream_optimized}" vbox:uuid="{disk_uuid}"/>
  </DiskSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine</Info>
    <OperatingSystemSection ovf:id="96">
      <Info>The kind of installed guest operating system</Info>
      <Description>Debian_64</Description>
      <vbox:OSType ovf:required="false">Debian_64</vbox:OSType>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:Caption>{cpus} virtual CPU</rasd:Caption>
        <rasd:Description>Number of virtual CPUs</rasd:Description>
        <rasd:ElementName>{cpus} virtual CPU</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>{cpus}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits>
        <rasd:Caption>{memory_mib} MB of memory</rasd:Caption>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>{memory_mib} MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>{memory_mib}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Caption>ideController0</rasd:Caption>
        <rasd:Description>IDE Controller</rasd:Description>
        <rasd:ElementName>ideController0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>PIIX4</rasd:ResourceSubType>
        <rasd:ResourceType>5</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:Caption>disk1</rasd:Caption>
        <rasd:Description>Disk Image</rasd:Description>
        <rasd:ElementName>disk1</rasd:ElementName>
        <rasd:HostResource>/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
    <vbox:Machine ovf:required="false" version="1.16-linux" uuid="{{{machine_uuid}}}" name="{name}" \
OSType="Debian_64" snapshotFolder="Snapshots">
      <ovf:Info>Complete VirtualBox machine configuration in VirtualBox format</ovf:Info>
      <Hardware>
        <CPU count="{cpus}">
          <PAE enabled="true"/>
          <LongMode enabled="true"/>
        </CPU>
        <Memory RAMSize="{memory_mib}"/>
        <Firmware type="BIOS"/>
        <Boot>
          <Order position="1" device="HardDisk"/>
          <Order position="2" device="None"/>
          <Order position="3" device="None"/>
          <Order position="4" device="None"/>
        </Boot>
        <Display controller="VMSVGA" VRAMSize="16"/>
        <RemoteDisplay enabled="false"/>
        <BIOS>
          <ACPI enabled="true"/>
          <IOAPIC enabled="true"/>
          <Logo fadeIn="false" fadeOut="false" displayTime="0"/>
          <BootMenu mode="Disabled"/>
        </BIOS>
        <Network/>
        <UART>
          <Port slot="0" enabled="true" IOBase="0x3f8" IRQ="4" hostMode="RawFile" path="{serial_file}"/>
        </UART>
        <AudioAdapter enabled="false"/>
        <RTC localOrUTC="UTC"/>
      </Hardware>
      <StorageControllers>
        <StorageController name="IDE" type="PIIX4" PortCount="2" useHostIOCache="true" Bootable="true">
          <AttachedDevice type="HardDisk" hotpluggable="false" port="0" device="0">
            <Image uuid="{{{disk_uuid}}}"/>
          </AttachedDevice>
        </StorageController>
      </StorageControllers>
    </vbox:Machine>
  </VirtualSystem>
</Envelope>
"""


def copy_box(box: Box, out: Path) -> Path:
    """The cached ``.box`` copied to ``out`` (for ``vmbench box``); returns ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(box.path, out)
    return out


def _write_metadata(stage: Path, metadata: dict) -> None:
    (stage / "metadata.json").write_text(json.dumps(metadata) + "\n")


def _gib(virtual_bytes: int) -> int:
    return max(1, math.ceil(virtual_bytes / GIB))


def _bytes_on_disk(path: Path) -> int:
    """A sparse qcow2 counts what it occupies; every other member its length."""
    return path.stat().st_blocks * 512 if path.name == "box.img" else path.stat().st_size


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise BoxError(f"{Path(argv[0]).name} failed: {' '.join(done.stderr.split())[-300:]}")
