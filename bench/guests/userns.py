"""Root inside a user namespace, for a regular user: how a Debian tree whose files belong to
root *in the guest* is built without root on the host.

The namespace maps ids 0..N-1 onto the caller's first subordinate range (``/etc/subuid``,
``/etc/subgid``), as ``mmdebstrap --mode=unshare`` does, and the caller's own uid and gid onto
N+1, so root in there may also read and write the caller's own files (the cache). Files it
creates belong to subordinate ids on the host: whatever runs in it must leave nothing behind
but files it hands back to the caller (``chown_to_caller``). ``newuidmap``/``newgidmap``
(package uidmap) write the maps; ``unshare`` is util-linux's.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.guests import tool
from bench.guests.debs import HostToolMissing

SUBUID = Path("/etc/subuid")
SUBGID = Path("/etc/subgid")
# A Debian tree uses ids up to 65534 (nobody): the range must reach that far.
MIN_RANGE = 65536
# Environment variable that tells a process inside which id is the caller's.
CALLER_ID_ENV = "VMBENCH_USERNS_CALLER_ID"
PROBE_TIMEOUT_S = 30.0


class UserNamespaceUnavailable(HostToolMissing):
    """This user cannot get a user namespace with a subordinate range (what is missing is in
    the message, with the command that fixes it)."""


@dataclass(frozen=True)
class IdRange:
    start: int
    count: int

    @property
    def end(self) -> int:
        return self.start + self.count


def subordinate_range(file: Path, user: str, uid: int) -> IdRange | None:
    """The first ``user:start:count`` (or ``uid:start:count``) line of ``file``, as newuidmap
    and mmdebstrap read it."""
    try:
        lines = file.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[0] in (user, str(uid)):
            try:
                return IdRange(int(fields[1]), int(fields[2]))
            except ValueError:
                continue
    return None


def free_range_start(file: Path) -> int:
    """Where a new 65536-id range can go in ``file`` without overlapping any other."""
    end = 100000
    try:
        lines = file.read_text().splitlines()
    except OSError:
        return end
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            end = max(end, int(fields[1]) + int(fields[2]))
    return end


def _user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def _ranges() -> tuple[IdRange, IdRange]:
    user, uid = _user(), os.getuid()
    uids = subordinate_range(SUBUID, user, uid)
    gids = subordinate_range(SUBGID, user, uid)
    short = {
        name: (found, file)
        for name, found, file in (("uid", uids, SUBUID), ("gid", gids, SUBGID))
        if found is None or found.count < MIN_RANGE
    }
    if short:
        causes = "; ".join(
            f"{file} gives {user} " + (f"only {found.count} ids" if found else "no range")
            for found, file in short.values()
        )
        adds = " ".join(
            f"--add-sub{name}s {start}-{start + MIN_RANGE - 1}"
            for name, (_found, file) in short.items()
            for start in [free_range_start(file)]
        )
        raise UserNamespaceUnavailable(
            f"{causes} (a Debian tree built without root needs {MIN_RANGE} subordinate ids)",
            fix=f"sudo usermod {adds} {user}",
        )
    assert uids is not None and gids is not None
    return uids, gids


def describe() -> str:
    """The namespace this user gets, in words (doctor)."""
    uids, gids = _ranges()
    return (
        f"a user namespace on subordinate uids {uids.start}-{uids.end - 1}, "
        f"gids {gids.start}-{gids.end - 1}"
    )


def as_root(argv: list[str]) -> list[str]:
    """``argv`` run as root of a new user namespace (see the module docstring)."""
    uids, gids = _ranges()
    unshare = shutil.which("unshare")
    if unshare is None:
        raise UserNamespaceUnavailable("unshare not found (package util-linux)")
    for program in ("newuidmap", "newgidmap"):
        if shutil.which(program) is None:
            raise UserNamespaceUnavailable(
                f"{program} not found", fix="sudo make host (installs uidmap)"
            )
    caller = uids.count + 1  # at N, util-linux 2.38 drops the range's last id
    return [
        unshare,
        f"--map-users={uids.start},0,{uids.count}",
        f"--map-groups={gids.start},0,{gids.count}",
        f"--map-user={caller}",
        f"--map-group={caller}",
        "--setuid=0",
        "--setgid=0",
        "--",
        "env",
        f"{CALLER_ID_ENV}={caller}",
        *argv,
    ]


def chown_to_caller(*paths: Path) -> None:
    """Inside the namespace: give ``paths`` (files it created) to the calling user."""
    caller = int(os.environ[CALLER_ID_ENV])
    for path in paths:
        os.chown(path, caller, caller, follow_symlinks=False)


def check() -> None:
    """Raise UserNamespaceUnavailable unless root-in-a-namespace works here for this user.

    A real probe (``true`` in a namespace), so a kernel that forbids unprivileged user
    namespaces (sysctl, AppArmor) is found too; its error names the knob.
    """
    argv = as_root(["true"])
    try:
        proc = tool.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise UserNamespaceUnavailable(
            f"unshare did not return within {PROBE_TIMEOUT_S:.0f} s"
        ) from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        knob, fix = _sysctl_hint()
        raise UserNamespaceUnavailable(f"no user namespace for {_user()}: {last}{knob}", fix=fix)


def _sysctl_hint() -> tuple[str, str]:
    """The kernel switch that most often forbids unprivileged user namespaces, if it is off."""
    knobs = {
        "/proc/sys/kernel/unprivileged_userns_clone": "1",
        "/proc/sys/user/max_user_namespaces": None,  # any value above 0
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns": "0",
    }
    for path, wanted in knobs.items():
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        bad = value != wanted if wanted is not None else value == "0"
        if bad:
            name = path.removeprefix("/proc/sys/").replace("/", ".")
            fix = wanted if wanted is not None else "15000"
            return f" ({name} is {value})", f"sudo sysctl -w {name}={fix}"
    return "", ""


def remove_tree(path: Path) -> None:
    """Remove a tree a namespace left behind (files of subordinate ids the caller cannot
    delete itself), e.g. after a build was killed half-way."""
    tool.run(
        as_root(["rm", "-rf", "--one-file-system", str(path)]),
        capture_output=True,
        timeout=600,
    )
