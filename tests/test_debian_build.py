"""Unit tests of the debian guest's build logic: apt sources, module order, trimming."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bench.guests.aptsources import debian_mirror, read_sources
from bench.guests.debian import HOST_FILES, module_load_order, trim, unmount_under
from bench.guests.debs import DebError

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
"""


def apt_etc(tmp_path: Path, sources_list: str = "", **parts: str) -> Path:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text(sources_list)
    for name, text in parts.items():
        (etc / "sources.list.d" / name.replace("_", ".")).write_text(text)
    return etc


def test_mirror_from_deb822_sources(tmp_path):
    etc = apt_etc(tmp_path, debian_sources=DEB822)
    assert debian_mirror("bookworm", etc) == ("http://deb.debian.org/debian", "bookworm")


def test_mirror_from_one_line_format_skips_other_suites_and_options(tmp_path):
    etc = apt_etc(
        tmp_path,
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64] https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"
        "# deb http://commented.example/debian bookworm main\n"
        "deb [signed-by=/k.gpg] http://mirror.example/debian/ bookworm main contrib\n",
    )
    assert debian_mirror("bookworm", etc) == ("http://mirror.example/debian", "bookworm")


def test_disabled_stanza_is_ignored_and_no_match_names_the_folder(tmp_path):
    etc = apt_etc(tmp_path, debian_sources="Enabled: no\n" + DEB822.split("\n\n")[0])
    assert read_sources(etc) == []
    with pytest.raises(DebError, match=r"no enabled 'deb' source for suite 'bookworm'"):
        debian_mirror("bookworm", etc)


def fake_module(folder: Path, name: str, depends: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.ko").write_bytes(
        b"\x7fELF...\x00license=GPL\x00depends=" + depends.encode() + b"\x00vermagic=6.1\x00"
    )


def test_module_order_puts_dependencies_first_and_skips_builtins(tmp_path):
    mods = tmp_path / "lib" / "modules" / "6.1"
    fake_module(mods / "kernel" / "drivers" / "virtio", "virtio_ring", "")
    fake_module(mods / "kernel" / "drivers" / "virtio", "virtio", "virtio_ring")
    fake_module(mods / "kernel" / "drivers" / "virtio", "virtio_pci", "virtio,virtio_ring,crc")
    fake_module(mods / "kernel" / "drivers" / "block", "virtio_blk", "virtio,virtio_ring")
    (mods / "modules.builtin").write_text("kernel/lib/crc.ko\n")
    order = [p.stem for p in module_load_order(mods, ("virtio_pci", "virtio_blk"))]
    assert order == ["virtio_ring", "virtio", "virtio_pci", "virtio_blk"]


def test_module_missing_is_a_clear_error(tmp_path):
    fake_module(tmp_path, "virtio_blk", "virtio")
    with pytest.raises(DebError, match="kernel module virtio is neither in"):
        module_load_order(tmp_path, ("virtio_blk",))


def test_trim_removes_apt_lists_and_caches_and_replaces_host_files(tmp_path):
    tree = tmp_path / "tree"
    lists = tree / "var" / "lib" / "apt" / "lists"
    archives = tree / "var" / "cache" / "apt" / "archives"
    (lists / "partial").mkdir(parents=True)
    (archives / "partial").mkdir(parents=True)
    (lists / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages").write_bytes(
        b"x" * 1000
    )
    (archives / "bash_5.2_amd64.deb").write_bytes(b"y" * 500)
    (tree / "var" / "cache" / "apt" / "pkgcache.bin").write_bytes(b"z" * 200)
    (tree / "etc").mkdir()
    (tree / "etc" / "hostname").write_text("the-build-host\n")
    (tree / "etc" / "resolv.conf").write_text("nameserver 10.0.0.1\n")
    (tree / "etc" / "keep").write_text("kept")

    removed = trim(tree)

    assert removed >= 1700
    assert list(lists.iterdir()) == []
    assert [p.name for p in archives.iterdir()] == ["partial"]
    assert not (tree / "var" / "cache" / "apt" / "pkgcache.bin").exists()
    for rel, text in HOST_FILES.items():
        assert (tree / rel).read_text() == text
    assert (tree / "etc" / "keep").read_text() == "kept"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_unmount_under_removes_mounts_left_in_the_tree(tmp_path):
    inner = tmp_path / "tree" / "proc"
    inner.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "none", str(inner)], check=True)
    try:
        assert os.path.ismount(inner)
        assert unmount_under(tmp_path / "tree") == [str(inner)]
        assert not os.path.ismount(inner)
    finally:
        if os.path.ismount(inner):
            subprocess.run(["umount", "-l", str(inner)], check=False)
