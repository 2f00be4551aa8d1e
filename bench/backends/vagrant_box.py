"""A libvirt Vagrant box made from a vmbench guest, built once and cached like the guests.

The box holds the same kernel and initramfs (and disk, as qcow2) that the QEMU backend boots,
so both VM backends run byte-identical guests. Layout (what vagrant-libvirt 0.11 reads):
``metadata.json``, ``box.img`` (qcow2), ``Vagrantfile`` (points libvirt at the kernel and
initrd inside the box), plus ``vmlinuz``, ``initrd.img`` and ``cmdline``.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from bench.guests import Guest
from bench.guests.cache import cache_root, cached_build, content_key

BOX_VERSION = "1"
BOX_VAGRANTFILE = Path(__file__).with_name("box.Vagrantfile")
GIB = 1 << 30


class BoxError(RuntimeError):
    """The box could not be built; the message says what was missing."""


@dataclass(frozen=True)
class Box:
    path: Path  # the .box file (tar.gz)
    guest: str
    file_bytes: dict[str, int]  # member -> bytes it occupies once unpacked (box.img: allocated)
    built_now: bool
    build_s: float

    @property
    def unpacked_bytes(self) -> int:
        return sum(self.file_bytes.values())

    @property
    def url(self) -> str:
        return self.path.resolve().as_uri()


def build_box(guest: Guest, cmdline: str) -> Box:
    """The cached libvirt box of ``guest``; ``cmdline`` is the box's default command line."""
    parts = [BOX_VERSION, guest.folder.name, guest.kernel.folder.name, cmdline]
    parts.append(BOX_VAGRANTFILE.read_bytes())
    if guest.disk is not None:
        parts.append(f"{guest.disk.name}:{guest.disk.stat().st_size}")
    key = content_key(parts)
    folder = cache_root() / "boxes" / f"{guest.name}-{guest.arch}-libvirt-{key}"
    box_name = f"vmbench-{guest.name}.box"

    def build(tmp: Path) -> dict:
        qemu_img = shutil.which("qemu-img")
        if qemu_img is None:
            raise BoxError("qemu-img not found; sudo apt-get install qemu-utils")
        stage = tmp / "stage"
        stage.mkdir()
        if guest.disk is not None:
            _run(
                [qemu_img, "convert", "-q", "-O", "qcow2", str(guest.disk), str(stage / "box.img")]
            )
            virtual_gib = max(1, math.ceil(guest.disk.stat().st_size / GIB))
        else:
            # The guest lives in its initramfs; vagrant-libvirt still wants a disk image.
            _run([qemu_img, "create", "-q", "-f", "qcow2", str(stage / "box.img"), "1G"])
            virtual_gib = 1
        shutil.copyfile(guest.kernel.vmlinuz, stage / "vmlinuz")
        shutil.copyfile(guest.initramfs, stage / "initrd.img")
        (stage / "cmdline").write_text(cmdline + "\n")
        shutil.copyfile(BOX_VAGRANTFILE, stage / "Vagrantfile")
        metadata = {"provider": "libvirt", "format": "qcow2", "virtual_size": virtual_gib}
        (stage / "metadata.json").write_text(json.dumps(metadata) + "\n")
        sizes = {
            p.name: p.stat().st_blocks * 512 if p.name == "box.img" else p.stat().st_size
            for p in sorted(stage.iterdir())
        }
        with tarfile.open(tmp / box_name, "w:gz", compresslevel=6) as tar:
            for member in sorted(stage.iterdir()):
                tar.add(member, arcname=member.name)
        shutil.rmtree(stage)
        return {"guest": guest.name, "box": box_name, "file_bytes": sizes}

    entry = cached_build(folder, build)
    return Box(
        path=entry.folder / entry.meta["box"],
        guest=guest.name,
        file_bytes={k: int(v) for k, v in entry.meta["file_bytes"].items()},
        built_now=entry.built_now,
        build_s=entry.build_s,
    )


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise BoxError(f"{Path(argv[0]).name} failed: {' '.join(done.stderr.split())[-300:]}")
