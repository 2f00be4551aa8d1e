"""The project's Vagrantfile is harmless outside vmbench: the real ``vagrant``, run in the
checkout without vmbench's environment, finds no machine of ours, so the commands that need
none work there, and ``vagrant up`` says who starts these machines."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import engine_missing

from bench.backends.vagrant import vagrantfile

CHECKOUT = vagrantfile().parent


def user_env(vagrant_home: Path) -> dict[str, str]:
    """A user's shell in the checkout: no VMBENCH_* or VAGRANT_* of vmbench's; their own
    VAGRANT_HOME (a temporary one here), no version check against HashiCorp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAGRANT_", "VMBENCH_"))}
    return {**env, "VAGRANT_HOME": str(vagrant_home), "VAGRANT_CHECKPOINT_DISABLE": "1"}


def vagrant(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["vagrant", *argv], cwd=CHECKOUT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def checkout_dotfolder():
    """Vagrant writes its .vagrant/ folder wherever it runs: the test leaves none of its own."""
    dot = CHECKOUT / ".vagrant"
    existed = dot.exists()
    yield
    if not existed:
        shutil.rmtree(dot, ignore_errors=True)


@pytest.mark.integration
@pytest.mark.usefixtures("checkout_dotfolder")
def test_vagrant_commands_in_the_checkout_work_and_up_says_who_starts_the_machines(tmp_path):
    if shutil.which("vagrant") is None:
        engine_missing("vagrant not found")
    assert (CHECKOUT / "Vagrantfile").is_file()
    env = user_env(tmp_path / "vagrant.d")
    # The box `vmbench box` makes (libvirt, kernel boot: the small one), and the command it
    # prints for the user to run, run as printed, from the checkout.
    out = tmp_path / "busybox.box"
    argv = ["box", "busybox", "--provider", "libvirt", "--boot", "kernel", "--out", str(out)]
    made = subprocess.run(
        [sys.executable, "-m", "bench.cli", *argv],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    [printed] = [line for line in made.stdout.splitlines() if line.startswith("add it: ")]
    words = shlex.split(printed.removeprefix("add it: "))
    assert words[0] == "VAGRANT_CHECKPOINT_DISABLE=1" and words[1:3] == ["vagrant", "box"]
    assert words[-1] == out.resolve().as_uri()  # file://: nothing reaches the network
    name = words[words.index("--name") + 1]
    added = vagrant(env, *words[2:])
    try:
        assert added.returncode == 0, added.stdout + added.stderr
        assert f"Successfully added box '{name}'" in added.stdout
        listed = vagrant(env, "box", "list")
        assert listed.returncode == 0, listed.stderr
        assert f"{name} (libvirt, 0)" in listed.stdout
    finally:
        removed = vagrant(env, "box", "remove", "--force", name)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not (tmp_path / "vagrant.d" / "boxes" / name).exists()

    status = vagrant(env, "global-status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stderr == ""
    assert "failed to initialize" not in status.stdout
    assert "VMBENCH" not in status.stdout

    up = vagrant(env, "up")
    assert up.returncode != 0
    assert up.stdout == ""
    assert up.stderr.splitlines() == [
        "vmbench Vagrantfile: vmbench starts these machines: vmbench run scenarios/vagrant.toml"
    ]
