"""Why a user may not open a socket or device, and the fix: the words doctor prints."""

from __future__ import annotations

import grp
import os

import pytest

from bench.backends import docker
from bench.run import access

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another group")


@pytest.fixture
def socket_of_group_daemon(tmp_path):
    """A stand-in for docker.sock: 0660 and a group this user is not in (Debian's 'daemon')."""
    path = tmp_path / "docker.sock"
    path.write_text("")
    os.chown(path, 0, grp.getgrnam("daemon").gr_gid)
    path.chmod(0o660)
    return path


@needs_root
def test_a_group_socket_names_the_group_and_usermod(socket_of_group_daemon):
    cause, fix = access.refusal(socket_of_group_daemon, "docker")
    me = access.user()
    assert (
        cause
        == f"{socket_of_group_daemon} (-rw-rw---- root:daemon) refuses {me} (not in group daemon)"
    )
    assert fix == f"sudo usermod -aG daemon {me}, then log out and in again"


@needs_root
def test_a_group_joined_after_login_says_log_in_again(socket_of_group_daemon, monkeypatch):
    monkeypatch.setattr(access, "in_group", lambda who, group: True)
    monkeypatch.setattr(access, "in_group_now", lambda group: False)
    cause, fix = access.refusal(socket_of_group_daemon, "docker")
    assert cause.endswith(f"{access.user()} joined group daemon after this login began")
    assert fix == "log out and in again (or: newgrp daemon)"


def test_a_root_only_device_without_its_group_gets_the_group_made(tmp_path):
    device = tmp_path / "kvm"
    device.write_text("")
    device.chmod(0o600)
    cause, fix = access.refusal(device, "vmbench-no-such-group")
    assert "(-rw------- " in cause
    assert fix.startswith(
        f"sudo groupadd --system vmbench-no-such-group && sudo chgrp vmbench-no-such-group {device}"
        f" && sudo chmod 0660 {device} && sudo usermod -aG vmbench-no-such-group "
    )


def test_docker_socket_missing_is_a_daemon_down_not_a_permission(tmp_path):
    refused = docker.socket_refusal(f"unix://{tmp_path}/docker.sock")
    assert refused is not None and not refused.usable
    assert refused.reason == f"no Docker daemon runs: {tmp_path}/docker.sock does not exist"
    assert refused.fix == docker.FIX and "usermod" not in refused.fix


def test_docker_socket_refused_is_a_group_not_a_daemon_start(tmp_path, monkeypatch):
    sock = tmp_path / "docker.sock"
    sock.write_text("")
    monkeypatch.setattr(access, "may_open", lambda path: False)  # root may open anything
    refused = docker.socket_refusal(f"unix://{sock}")
    assert refused is not None
    assert refused.reason.startswith(f"the Docker daemon's socket {sock} (")
    # The group's fix (which one depends on who runs this), never a daemon start.
    assert "docker" in refused.fix and "sudo" in refused.fix and "start" not in refused.fix
    assert docker.socket_refusal("tcp://127.0.0.1:2375") is None  # not ours to judge
