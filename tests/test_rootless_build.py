"""The Debian guest built without root: user namespaces and the tree's tar <-> folder <-> ext4
steps. The real build as a throwaway user, against root's tree, is in test_lab_user.py."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from helpers.assertions import tar_listing

from bench.guests import debs, tree, userns

# -- user namespaces ----------------------------------------------------------------------


def test_subordinate_range_is_the_first_line_for_the_name_or_uid(tmp_path):
    file = tmp_path / "subuid"
    file.write_text("alice:100000:65536\nbob:165536:65536\n1003:231072:1000000\nbob:9:9\n")
    assert userns.subordinate_range(file, "bob", 1002) == userns.IdRange(165536, 65536)
    assert userns.subordinate_range(file, "carol", 1003) == userns.IdRange(231072, 1000000)
    assert userns.subordinate_range(file, "dave", 1004) is None
    assert userns.free_range_start(file) == 1231072


def test_missing_range_names_the_usermod_line_with_a_free_range(tmp_path, monkeypatch):
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("someone:100000:65536\n")
    subgid.write_text("someone:100000:65536\n")
    monkeypatch.setattr(userns, "SUBUID", subuid)
    monkeypatch.setattr(userns, "SUBGID", subgid)
    with pytest.raises(userns.UserNamespaceUnavailable) as caught:
        userns.as_root(["true"])
    message = str(caught.value)
    assert message.endswith(
        "fix: sudo usermod --add-subuids 165536-231071 --add-subgids 165536-231071 "
        + userns._user()
    )
    assert f"{subuid} gives" in message and f"{subgid} gives" in message and "no range" in message


def test_namespace_maps_the_range_onto_root_and_the_caller_beyond_it(tmp_path, monkeypatch):
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    for name in ("subuid", "subgid"):
        (tmp_path / name).write_text(f"{me}:300000:65536\n")
    monkeypatch.setattr(userns, "SUBUID", tmp_path / "subuid")
    monkeypatch.setattr(userns, "SUBGID", tmp_path / "subgid")
    argv = userns.as_root(["id"])
    assert "--map-users=300000,0,65536" in argv and "--map-groups=300000,0,65536" in argv
    assert "--map-user=65537" in argv and "--setuid=0" in argv
    assert argv[-1] == "id"


def test_a_short_range_is_refused_with_what_a_debian_tree_needs(tmp_path, monkeypatch):
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    for name in ("subuid", "subgid"):
        (tmp_path / name).write_text(f"{me}:300000:1000\n")
    monkeypatch.setattr(userns, "SUBUID", tmp_path / "subuid")
    monkeypatch.setattr(userns, "SUBGID", tmp_path / "subgid")
    with pytest.raises(
        userns.UserNamespaceUnavailable, match=r"only 1000 ids .* needs 65536 subordinate ids"
    ):
        userns.as_root(["true"])


# -- tar <-> folder <-> ext4 --------------------------------------------------------------


def _info(name: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0, **extra):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, gid, 1700000000
    for key, value in extra.items():
        setattr(info, key, value)
    return info


def small_tree_tar(path: Path) -> None:
    """A root tree in miniature: dirs, a 0640 root:shadow file, a hard link, a symlink out of
    the tree, and two device nodes."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(_info(".", tarfile.DIRTYPE, 0o755))
        for name in ("./dev", "./etc", "./usr", "./usr/bin"):
            tar.addfile(_info(name, tarfile.DIRTYPE, 0o755))
        shadow = b"root:*:19000:0:99999:7:::\n"
        tar.addfile(_info("./etc/shadow", tarfile.REGTYPE, 0o640, gid=42, size=len(shadow)),
                    io.BytesIO(shadow))  # fmt: skip
        tool = b"\x7fELF tool"
        tar.addfile(_info("./usr/bin/tool", tarfile.REGTYPE, 0o4755, size=len(tool)),
                    io.BytesIO(tool))  # fmt: skip
        tar.addfile(_info("./usr/bin/alias", tarfile.LNKTYPE, 0o4755, linkname="./usr/bin/tool"))
        tar.addfile(_info("./dev/fd", tarfile.SYMTYPE, 0o777, linkname="/proc/self/fd"))
        tar.addfile(_info("./dev/null", tarfile.CHRTYPE, 0o666, devmajor=1, devminor=3))
        tar.addfile(_info("./dev/tty", tarfile.CHRTYPE, 0o666, gid=5, devmajor=5, devminor=0))


def test_tar_round_trip_keeps_devices_hard_links_modes_and_symlinks(tmp_path):
    small_tree_tar(tmp_path / "in.tar")
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    devices = tree.extract(tmp_path / "in.tar", rootfs)
    assert sorted(d.name for d in devices) == ["./dev/null", "./dev/tty"]
    assert not (rootfs / "dev" / "null").exists()  # never created in the folder
    assert (rootfs / "usr" / "bin" / "alias").stat().st_ino == (
        rootfs / "usr" / "bin" / "tool"
    ).stat().st_ino
    tree.write_tar(rootfs, tmp_path / "out.tar", devices)
    before, after = tar_listing(tmp_path / "in.tar"), tar_listing(tmp_path / "out.tar")
    if os.geteuid() != 0:  # without root the unpacked files are ours, not root's
        before = {k: (*v[:2], *v[4:]) for k, v in before.items() if v[0] != "c"}
        after = {k: (*v[:2], *v[4:]) for k, v in after.items() if v[0] != "c"}
    assert after == before
    with tarfile.open(tmp_path / "out.tar") as tar:
        names = tar.getnames()
        assert names == sorted(names, key=lambda n: n.split("/"))
        # The first name in sorted order holds the bytes, the other links to it.
        assert not tar.getmember("./usr/bin/alias").islnk()
        assert tar.getmember("./usr/bin/tool").linkname == "./usr/bin/alias"
        assert {m.uname for m in tar} == {""}  # numeric owners only


def test_device_nodes_land_in_the_ext4_image_with_mode_owner_and_numbers(tmp_path):
    src = tmp_path / "src"
    (src / "dev").mkdir(parents=True)
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(8 << 20)
    mkfs = ["mkfs.ext4", "-q", "-F", "-d", str(src), str(disk)]
    subprocess.run(mkfs, check=True, env={**os.environ, "PATH": "/usr/sbin:/sbin:/usr/bin:/bin"})
    tty = _info("./dev/tty", tarfile.CHRTYPE, 0o620, uid=0, gid=5, devmajor=5, devminor=0)
    tree.add_device_nodes(disk, [tty])
    shown = _debugfs_stat(disk, "/dev/tty")
    assert "Type: character special" in shown
    assert "Mode:  0620" in shown
    assert "User:     0   Group:     5" in shown
    assert "Device major/minor number: 05:00" in shown


def test_a_device_debugfs_cannot_place_is_an_error_not_silence(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(8 << 20)
    env = {**os.environ, "PATH": "/usr/sbin:/sbin:/usr/bin:/bin"}
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(src), str(disk)], check=True, env=env)
    orphan = _info("./nodir/null", tarfile.CHRTYPE, 0o666, devmajor=1, devminor=3)
    with pytest.raises(debs.DebError, match="debugfs could not add device nodes"):
        tree.add_device_nodes(disk, [orphan])


def _debugfs_stat(disk: Path, path: str) -> str:
    proc = subprocess.run(
        ["/sbin/debugfs", "-R", f"stat {path}", str(disk)],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


# -- what a rootless tree may differ in (tests/test_lab_user.py builds one) ---------------

# What debootstrap and mmdebstrap leave differently in the same package set: their own logs
# and apt/dpkg bookkeeping. Everything else must match name for name, mode, owner and size.


def test_a_forbidding_kernel_switch_is_the_cause_and_its_sysctl_the_fix(monkeypatch):
    """The namespace probe fails and user.max_user_namespaces is 0: doctor's cause names the
    switch and its fix is the whole sysctl command (it once came back cut in two)."""
    from bench.guests import debian

    switches = {"/proc/sys/user/max_user_namespaces": "0"}

    class Proc:
        def __init__(self, path: str) -> None:
            self.path = path

        def read_text(self) -> str:
            if self.path not in switches:
                raise OSError(self.path)
            return switches[self.path] + "\n"

    monkeypatch.setattr(userns, "Path", Proc)
    monkeypatch.setattr(
        userns, "as_root", lambda argv: ["sh", "-c", "echo 'unshare: Operation not permitted' >&2; exit 1"]
    )  # fmt: skip
    monkeypatch.setattr(debian, "builder", lambda: "mmdebstrap")
    monkeypatch.setattr(debian.shutil, "which", lambda name, path=None: f"/usr/bin/{name}")
    with pytest.raises(userns.UserNamespaceUnavailable) as raised:
        userns.check()
    assert raised.value.cause.endswith("Operation not permitted (user.max_user_namespaces is 0)")
    assert raised.value.fix == "sudo sysctl -w user.max_user_namespaces=15000"
    ok, cause, fix = debian.builder_status()
    assert (ok, cause, fix) == (False, raised.value.cause, raised.value.fix)
