"""Why this user may not open a device or a socket, and the exact command that fixes it.

On a lab machine the usual cause is a missing group (docker for Docker's socket, kvm for
/dev/kvm, libvirt for libvirtd's system socket), or a group joined after this login began.
The engines' availability checks name the file, its owner and mode, and the fix.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path


def user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def describe(path: Path) -> str:
    """``crw-rw---- root:kvm``: what ``ls -l`` would say about who may open it."""
    st = path.stat()
    return f"{stat.filemode(st.st_mode)} {_name(st.st_uid, pwd.getpwuid)}:{_name(st.st_gid, grp.getgrgid)}"


def may_open(path: Path) -> bool:
    return os.access(path, os.R_OK | os.W_OK)


def refusal(path: Path, group: str) -> tuple[str, str]:
    """For a ``path`` this user may not open: (the cause, the fix), for access through
    ``group`` (the group the distribution gives such files)."""
    who = user()
    cause = f"{path} ({describe(path)}) refuses {who}"
    st = path.stat()
    owner_group = _name(st.st_gid, grp.getgrgid)
    group_may = bool(st.st_mode & stat.S_IRGRP and st.st_mode & stat.S_IWGRP)
    if group_may and owner_group != "root":
        group = owner_group  # whatever group the admin chose for it
    elif _group_exists(group):
        # The group exists, but the file is not its: the admin's udev rule or set-up is off.
        return cause, (
            f"sudo chgrp {group} {path} && sudo chmod g+rw {path}"
            + ("" if in_group(who, group) else f" && sudo usermod -aG {group} {who}")
            + ", then log out and in again"
        )
    else:
        return cause, (
            f"sudo groupadd --system {group} && sudo chgrp {group} {path} && "
            f"sudo chmod 0660 {path} && sudo usermod -aG {group} {who}, then log out and in again"
        )
    if in_group(who, group) and not in_group_now(group):
        return (
            f"{cause}: {who} joined group {group} after this login began",
            f"log out and in again (or: newgrp {group})",
        )
    return f"{cause} (not in group {group})", (
        f"sudo usermod -aG {group} {who}, then log out and in again"
    )


def in_group(who: str, group: str) -> bool:
    """``who`` is a member of ``group`` in /etc/group (what the next login will have)."""
    try:
        entry = grp.getgrnam(group)
        primary = pwd.getpwnam(who).pw_gid
    except KeyError:
        return False
    return who in entry.gr_mem or primary == entry.gr_gid


def in_group_now(group: str) -> bool:
    """This process has ``group`` (joined before this login began)."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        return False
    return gid in os.getgroups() or gid == os.getgid()


def _group_exists(group: str) -> bool:
    try:
        grp.getgrnam(group)
    except KeyError:
        return False
    return True


def _name(number: int, lookup) -> str:
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)
