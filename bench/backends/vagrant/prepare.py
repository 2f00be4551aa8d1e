"""A box to boot, three ways: built from a vmbench guest for libvirt (kernel or disk boot) or
for VirtualBox (disk boot), or a box of the user's own. Each is added under a VAGRANT_HOME
and imported once (libvirt: its image uploaded into the pool; VirtualBox: its master VM),
so that no measured ``vagrant up`` pays for that.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.backends.base import BackendError, Prepared, SizeRecord
from bench.backends.kvm import MACHINES, kvm_works
from bench.backends.vagrant import libvirt, vbox
from bench.backends.vagrant.box import VMDK_NAME, Box, BoxError, build_box, kernel_cmdline
from bench.backends.vagrant.env import (
    box_client,
    box_name,
    boxes_in,
    output_tail,
    vagrant_home,
)
from bench.backends.vagrant.provider import PROVIDERS, ProviderChoice
from bench.guests import DebError, Guest
from bench.run.measure import now_ns, seconds_between


@dataclass(frozen=True, kw_only=True)
class VagrantImage:
    """A prepared box: what ``create`` hands to every instance of it."""

    guest: Guest
    provider: str
    provider_reason: str
    box: str
    box_url: str  # file:// URL, or "" for a box the user already has
    readiness: str  # serial | ssh
    boot: str  # kernel | disk (vmbench guests); "" for a box of the user's own
    accel: str
    libvirt_driver: str = "qemu"  # kvm | qemu (TCG)
    base_cmdline: str = ""  # a kernel boot's command line, before the workload
    vagrant_home: Path | None = None  # None: the user's own


def users_box(
    guest: Guest, options: dict[str, Any], box: str, choice: ProviderChoice
) -> Prepared[VagrantImage]:
    """A box the user has (or a file:// one): its own OS, so readiness is SSH reachable,
    and its rows name the box as their guest (not the scenario's, which did not boot)."""
    box_url = str(options.get("box_url") or "")
    timings = {}
    home = Path(os.environ["VAGRANT_HOME"]) if os.environ.get("VAGRANT_HOME") else None
    home_dir = home or Path.home() / ".vagrant.d"
    if box_url and box not in boxes_in(home_dir):
        start = now_ns()
        box_add(home_dir, box, box_url, choice.provider)
        timings["import_s"] = seconds_between(start, now_ns())
    accel = "virtualbox"  # detect_provider: a box of the user's own runs on VirtualBox
    image = VagrantImage(
        guest=guest,
        provider=choice.provider,
        provider_reason=choice.reason,
        box=box,
        box_url=box_url,
        readiness="ssh",
        boot="",
        accel=accel,
        vagrant_home=home,
    )
    return Prepared(
        guest=guest,
        sizes=[],
        build_s=0.0,
        built_now=False,
        handle=image,
        accel=accel,
        timings=timings,
        guest_name=box,
    )


def _build_box(guest: Guest, provider: str, boot: str, cmdline: str = "") -> Box:
    try:
        return build_box(guest, provider, boot, cmdline)
    except (BoxError, DebError) as e:
        raise BackendError(f"vagrant: {provider} box of guest {guest.name}: {e}") from None


def libvirt_box(
    guest: Guest, options: dict[str, Any], run_id: str, boot: str, choice: ProviderChoice
) -> Prepared[VagrantImage]:
    base_cmdline = kernel_cmdline(guest) if boot == "kernel" else ""
    box = _build_box(guest, "libvirt", boot, base_cmdline)
    try:
        libvirt.ensure_pool()
    except libvirt.LibvirtError as e:
        raise BackendError(f"vagrant: libvirt storage pool: {e}") from None
    accel, driver = libvirt_accel(guest, str(options.get("accel", "auto")))
    name = box_name(run_id, guest.name, "" if boot == "kernel" else boot)
    home = vagrant_home()
    timings = {}
    if name not in boxes_in(home):
        start = now_ns()
        box_add(home, name, box.url, "libvirt")
        _preload_base_volume(home, name)
        timings["import_s"] = seconds_between(start, now_ns())
    image = VagrantImage(
        guest=guest,
        provider="libvirt",
        provider_reason=choice.reason,
        box=name,
        box_url=box.url,
        readiness="serial",
        boot=boot,
        accel=accel,
        libvirt_driver=driver,
        base_cmdline=base_cmdline,
        vagrant_home=home,
    )
    return _prepared(box, image, timings)


def virtualbox_box(guest: Guest, run_id: str, choice: ProviderChoice) -> Prepared[VagrantImage]:
    """The guest's BIOS boot disk as a VirtualBox box, added under vmbench's VAGRANT_HOME;
    its master VM is imported now, so that every `vagrant up` only makes a linked clone."""
    box = _build_box(guest, "virtualbox", "disk")
    name = box_name(run_id, guest.name, "vbox")
    home = vagrant_home()
    timings = {}
    if name not in boxes_in(home):
        start = now_ns()
        box_add(home, name, box.url, "virtualbox")
        _import_virtualbox_master(home, name)
        timings["import_s"] = seconds_between(start, now_ns())
    accel = "virtualbox"
    image = VagrantImage(
        guest=guest,
        provider="virtualbox",
        provider_reason=choice.reason,
        box=name,
        box_url=box.url,
        readiness="serial",
        boot="disk",
        accel=accel,
        vagrant_home=home,
    )
    return _prepared(box, image, timings)


def _prepared(box: Box, image: VagrantImage, timings: dict[str, float]) -> Prepared[VagrantImage]:
    """What the runner gets for a box either provider boots: its sizes, build and import."""
    return Prepared(
        guest=image.guest,
        sizes=_box_sizes(box, image.guest),
        build_s=box.build_s if box.built_now else 0.0,
        built_now=box.built_now,
        handle=image,
        accel=image.accel,
        timings=timings,
    )


def box_add(home: Path, name: str, url: str, provider: str) -> None:
    if not url.startswith("file://"):
        raise BackendError(f"vagrant: box_url must be a file:// URL, got {url!r}")
    log = home / f".box-add-{name.replace('/', '_')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    try:
        box_client(home, log).box_add(name, url, provider=provider)
    except subprocess.CalledProcessError:
        raise BackendError(f"vagrant box add {name} {url} failed: {output_tail(log)}") from None
    finally:
        log.unlink(missing_ok=True)


def _box_sizes(box: Box, guest: Guest) -> list[SizeRecord]:
    """The size rows of a vmbench box: what each provider's box holds, unpacked and packed."""
    members = " + ".join(sorted(box.file_bytes))
    sizes = []
    if box.boot == "kernel":
        sizes += [
            SizeRecord("kernel_bytes", box.file_bytes["vmlinuz"], "kernel"),
            SizeRecord("initramfs_bytes", box.file_bytes["initrd.img"], "initramfs"),
        ]
    sizes += [
        SizeRecord(
            "image_bytes",
            box.unpacked_bytes,
            "vagrant-box",
            f"unpacked {box.provider} box: {members} (box.img allocated)",
        ),
        SizeRecord(
            "image_compressed_bytes",
            box.path.stat().st_size,
            "vagrant-box",
            ".box file (tar.gz)",
        ),
    ]
    if box.provider == "virtualbox":
        sizes.append(
            SizeRecord(
                "disk_bytes",
                box.file_bytes[VMDK_NAME],
                "disk",
                f"boot disk as a streamOptimized VMDK; virtual {box.disk_virtual_bytes} bytes",
            )
        )
    elif box.boot == "disk" or guest.disk is not None:
        what = "boot disk" if box.boot == "disk" else "root disk"
        sizes.append(
            SizeRecord("disk_bytes", box.file_bytes["box.img"], "disk", f"{what}, qcow2, allocated")
        )
    return sizes


def _box_dir(home: Path, box: str, provider: str) -> Path:
    return home / "boxes" / box.replace("/", "-VAGRANTSLASH-") / "0" / provider


def box_providers(home: Path, box: str) -> list[str]:
    return [p for p in PROVIDERS if _box_dir(home, box, p).is_dir()] or ["libvirt"]


def _box_image(home: Path, box: str) -> Path:
    return _box_dir(home, box, "libvirt") / "box.img"


def base_volume_name(home: Path, box: str) -> str:
    """The pool volume vagrant-libvirt 0.11 makes of a box's box.img (HandleBoxImage):
    ``<box>_vagrant_box_image_0_<mtime of box.img>_box.img`` for an unversioned box."""
    mtime = int(_box_image(home, box).stat().st_mtime)
    return f"{box.replace('/', '-VAGRANTSLASH-')}_vagrant_box_image_0_{mtime}_box.img"


def _preload_base_volume(home: Path, box: str) -> None:
    """Upload the box image into the pool now, as part of the import, so that no measured
    ``vagrant up`` pays for it (it finds the volume and skips its own upload). Should the
    name ever differ from vagrant-libvirt's, it uploads again and cleanup removes both."""
    image = _box_image(home, box)
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", str(image)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        capacity = int(json.loads(info.stdout)["virtual-size"])
        libvirt.upload_volume(base_volume_name(home, box), image, capacity)
    except (ValueError, KeyError, OSError, libvirt.LibvirtError) as e:
        raise BackendError(f"vagrant: uploading box {box} into pool {libvirt.POOL}: {e}") from None


def _import_virtualbox_master(home: Path, box: str) -> None:
    """Import the box's VM once, now (named ``<box>-master``, so cleanup finds it by the run),
    and record it where Vagrant's linked-clone support looks for it (``master_id`` in the
    box's folder): every ``vagrant up`` then clones it instead of importing the disk."""
    folder = _box_dir(home, box, "virtualbox")
    try:
        uuid = vbox.import_master(folder / "box.ovf", f"{box}-master")
    except vbox.VBoxError as e:
        raise BackendError(f"vagrant: importing box {box} into VirtualBox: {e}") from None
    (folder / "master_id").write_text(uuid)


def libvirt_accel(guest: Guest, wanted: str) -> tuple[str, str]:
    """(accel, lv.driver): kvm only where a probe boot proved KVM works (as the qemu backend)."""
    if wanted == "tcg":
        return "tcg", "qemu"
    works, why = kvm_works(guest, MACHINES[guest.arch]) if guest.arch in MACHINES else (False, "")
    if works:
        return "kvm", "kvm"
    if wanted == "kvm":
        raise BackendError(
            f"vagrant: accel = 'kvm' was asked for but KVM does not work here: {why}"
        )
    return "tcg", "qemu"
