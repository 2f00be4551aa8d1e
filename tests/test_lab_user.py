"""vmbench as a lab user without root (issue 14), under CI as real throwaway users:

- a user in the docker group (and kvm where that group exists): doctor is right about docker
  and KVM; a quick busybox + debian run on docker and qemu gives ok rows on both engines, with
  the debian tree built without root, in the user's own cache, and nothing of root's cache
  touched; the rootless tree equals root's (file list, modes, owners, sizes), in its tar and
  inside its ext4 image; ``--cold`` is refused in one line;
- a user outside the docker group and without subordinate ids: doctor's docker line says
  permission and names the group; the setup script prints the root steps in one block; the
  debian guest gives one line, ``unsupported`` rows and exit 1.

Each user is created with useradd and removed afterwards (see lab_user.py).
"""

from __future__ import annotations

import contextlib
import csv
import grp
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import engine_missing
from helpers.assertions import BUILDER_STATE, folder_listing, tar_listing
from helpers.lab_user import REPO, LabUser, can_make_users, lab_venv, throwaway_user

from bench.backends.smaps_reader import NOTE as SMAPS_NOTE
from bench.backends.smaps_reader import ROLE_LABEL
from bench.guests import userns
from bench.guests.cache import cache_root
from bench.run import access

pytestmark = pytest.mark.integration

QUICK = """\
[scenario]
name = "lab"
guests = ["busybox", "debian"]
workloads = ["ready", "idle"]
backends = ["docker", "qemu"]
repetitions = 1
warmup = 0
timeout_s = 300
memory_sample_s = 1.0

[backend.qemu]
accel = "auto"
"""
DEBIAN_ONLY = QUICK.replace('guests = ["busybox", "debian"]', 'guests = ["debian"]').replace(
    'name = "lab"', 'name = "labdebian"'
)


def _groups_for_docker_user() -> tuple[str, ...]:
    """docker always; kvm where the host has that group (KVM exists there)."""
    groups = ["docker"]
    with contextlib.suppress(KeyError):
        grp.getgrnam("kvm")
        groups.append("kvm")
    return tuple(groups)


@pytest.fixture(scope="module")
def venv():
    if not can_make_users():
        engine_missing("tests as a throwaway user need root (useradd, runuser)")
    with contextlib.suppress(KeyError):
        grp.getgrnam("docker")
        return lab_venv()
    engine_missing("no docker group: Docker Engine is not installed")


@pytest.fixture(scope="module")
def docker_user(venv):
    with throwaway_user(venv, groups=_groups_for_docker_user()) as user:
        yield user


@pytest.fixture(scope="module")
def outsider(venv):
    """Not in the docker group, no subordinate ids: a student on the first day."""
    with throwaway_user(venv, subordinate_ids=False) as user:
        yield user


def write_as(user: LabUser, name: str, text: str) -> Path:
    path = user.home / name
    path.write_text(text)
    os.chown(path, user.uid, user.uid)
    return path


def doctor_lines(user: LabUser) -> dict[str, str]:
    """name -> "kind yes|no the rest" (doctor's columns, whatever their widths)."""
    proc = user.run([str(user.venv / "bin" / "vmbench"), "doctor"], env={"COLUMNS": "1000"})
    assert proc.returncode == 0, proc.stderr
    lines = [line.split(maxsplit=3) for line in proc.stdout.splitlines() if line[:1].strip()]
    return {words[0]: " ".join(words[1:]) for words in lines if len(words) == 4}


def rows_of(user: LabUser, results: Path) -> list[dict[str, str]]:
    (csv_path,) = results.glob("*/results.csv")
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


def files_owned_by(where: Path, ids: set[int] | range) -> list[str]:
    found = []
    for dirpath, dirs, files in os.walk(where):
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(os.path.join(dirpath, name)).st_uid in ids:
                    found.append(os.path.join(dirpath, name))
    return found


# -- a user in the docker group -------------------------------------------------------------


def test_doctor_as_a_lab_user_is_right_about_docker_kvm_and_the_builder(docker_user):
    lines = doctor_lines(docker_user)
    assert lines["docker"].startswith("container yes Docker Engine")
    kvm = Path("/dev/kvm")
    may_open = docker_user.run(["test", "-r", str(kvm), "-a", "-w", str(kvm)]).returncode == 0
    if not kvm.exists():
        assert "no /dev/kvm" in lines["qemu"] and "TCG" in lines["qemu"]
    elif not may_open:
        described = access.describe(kvm)
        assert f"/dev/kvm ({described}) refuses {docker_user.name}" in lines["qemu"]
        assert (
            "for KVM: " in lines["qemu"] and f"usermod -aG kvm {docker_user.name}" in lines["qemu"]
        )
    else:  # in the kvm group: the probe decides, not the permissions
        assert "refuses" not in lines["qemu"] and "KVM" in lines["qemu"]
    assert lines["debian"].startswith("guest yes built by mmdebstrap --mode=unshare")


@pytest.fixture(scope="module")
def quick_run(docker_user):
    """A quick busybox + debian run on docker and qemu as the lab user, from an empty cache."""
    root_cache = cache_root()
    scenario = write_as(docker_user, "lab.toml", QUICK)
    results = docker_user.home / "results"
    proc = docker_user.vmbench(
        "run", str(scenario), "--no-report", "--results-dir", str(results), timeout=3600
    )
    return proc, results, root_cache


def test_quick_run_gives_ok_rows_on_docker_and_qemu_for_both_guests(docker_user, quick_run):
    proc, results, _ = quick_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    rows = rows_of(docker_user, results)
    assert [r for r in rows if r["status"] != "ok"] == []
    ready = {(r["guest"], r["backend"]) for r in rows if r["metric"] == "ready_s"}
    assert ready == {(g, b) for g in ("busybox", "debian") for b in ("docker", "qemu")}
    kernel = {
        (r["guest"], r["backend"]): r["value"] for r in rows if r["metric"] == "kernel_matches_host"
    }
    assert float(kernel[("debian", "docker")]) == 1 and float(kernel[("debian", "qemu")]) == 0
    # PSS of root's container processes, read through Docker's helper (and the rows say so);
    # the user's own qemu: PSS as for root. The helper is gone with the run.
    memory = {(r["guest"], r["backend"], r["metric"]): r for r in rows if r["phase"] != "build"}
    for guest in ("busybox", "debian"):
        docker_pss = memory[(guest, "docker", "pss_bytes")]
        assert 100_000 < float(docker_pss["value"]) < 32e6
        assert SMAPS_NOTE in docker_pss["detail"]
        assert float(memory[(guest, "docker", "shim_pss_bytes")]["value"]) > 0
        assert float(memory[(guest, "qemu", "pss_bytes")]["value"]) > 50e6
    helpers = ["docker", "ps", "-a", "-q", "--filter", f"label={ROLE_LABEL}"]
    assert subprocess.run(helpers, capture_output=True, text=True).stdout.strip() == ""
    # Built now, by this user: the build rows are there, the guest came from no one's cache.
    built = {(r["guest"], r["backend"]) for r in rows if r["metric"] == "build_s"}
    assert ("debian", "qemu") in built or ("debian", "docker") in built


def test_the_debian_tree_was_built_without_root_in_the_users_cache(docker_user, quick_run):
    (meta,) = (docker_user.cache / "guests").glob("debian-*/meta.json")
    assert json.loads(meta.read_text())["builder"] == "mmdebstrap --mode=unshare"
    listed = docker_user.run(
        [str(docker_user.venv / "bin" / "vmbench"), "guests"], env={"COLUMNS": "1000"}
    )
    assert "mmdebstrap --mode=unshare" in listed.stdout


def test_nothing_of_the_run_is_in_roots_cache_and_nothing_of_subordinate_ids_anywhere(
    docker_user, quick_run
):
    _, _, root_cache = quick_run
    subordinate = userns.subordinate_range(userns.SUBUID, docker_user.name, docker_user.uid)
    assert subordinate is not None
    ids = {docker_user.uid, *range(subordinate.start, subordinate.end)}
    assert files_owned_by(root_cache, ids) == []
    # The user could not have used root's cache: it is not where the user's vmbench looks.
    probe = docker_user.python("from bench.guests.cache import cache_root; print(cache_root())")
    assert probe.stdout.strip() == str(docker_user.cache) != str(root_cache)
    # Every file of the namespace went back to the user: none of subordinate ids is left.
    strays = files_owned_by(docker_user.home, set(range(subordinate.start, subordinate.end)))
    strays += files_owned_by(
        Path(tempfile.gettempdir()), set(range(subordinate.start, subordinate.end))
    )
    assert strays == []


def _users_debian_folder(user: LabUser) -> Path:
    (meta,) = (user.cache / "guests").glob("debian-*/meta.json")
    return meta.parent


def test_rootless_tree_matches_root_tree(docker_user, quick_run):
    from bench.guests import build_guest

    folder = _users_debian_folder(docker_user)
    root_guest = build_guest("debian")
    assert root_guest.meta["builder"] == "debootstrap (root)"
    mine, theirs = tar_listing(root_guest.rootfs_tar), tar_listing(folder / "rootfs.tar")
    assert len(mine) > 5000
    assert sorted((set(mine) ^ set(theirs)) - BUILDER_STATE) == []
    differ = [n for n in (set(mine) & set(theirs)) - BUILDER_STATE if mine[n] != theirs[n]]
    assert sorted(differ) == [], [(n, mine[n], theirs[n]) for n in sorted(differ)[:10]]
    # Root's files really are root's in the user's tar (not the user's, not subordinate ids).
    assert theirs["./etc/shadow"][1:4] == (0o640, 0, 42)
    assert theirs["./usr/bin/passwd"][1:4] == (0o4755, 0, 0)
    assert theirs["./dev/null"] == ("c", 0o666, 0, 0, 0, "1,3")


def test_rootless_disk_holds_the_tree_with_owners_from_inside_the_guest(docker_user, quick_run):
    """Mounted read-only (root may), the user's ext4 image is its rootfs.tar, file for file."""
    folder = _users_debian_folder(docker_user)
    with tempfile.TemporaryDirectory() as mnt, _mounted(folder / "disk.img", Path(mnt)):
        on_disk = folder_listing(Path(mnt))
    on_disk.pop("./lost+found")
    in_tar = tar_listing(folder / "rootfs.tar")
    assert sorted(set(on_disk) ^ set(in_tar)) == []
    differ = [n for n in in_tar if on_disk[n] != in_tar[n]]
    assert differ == [], [(n, on_disk[n], in_tar[n]) for n in differ[:10]]


def test_cold_as_a_lab_user_is_one_line_and_exit_2_before_anything_starts(docker_user):
    scenario = write_as(docker_user, "cold.toml", QUICK)
    results = docker_user.home / "cold-results"
    proc = docker_user.vmbench("run", str(scenario), "--cold", "--results-dir", str(results))
    assert proc.returncode == 2
    said = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(said) == 1 and "--cold needs root" in said[0]
    assert not results.exists()


# -- a user outside the docker group, without subordinate ids -------------------------------


def test_doctor_says_docker_permission_and_the_group_fix(outsider):
    line = doctor_lines(outsider)["docker"]
    assert line == (
        "container no the Docker daemon's socket /var/run/docker.sock "
        f"({access.describe(Path('/var/run/docker.sock'))}) refuses {outsider.name} "
        f"(not in group docker); fix: sudo usermod -aG docker {outsider.name}, then log out and "
        "in again"
    )


def test_setup_prints_the_root_steps_once_as_a_block(outsider):
    script = write_as(outsider, "setup-host.sh", (REPO / "scripts" / "setup-host.sh").read_text())
    proc = outsider.run(["bash", str(script)])
    said = proc.stdout.splitlines()
    assert sum("one-time steps that need root" in line for line in said) == 1
    steps = [line.strip() for line in said if line.startswith("    sudo ")]
    assert any(
        "sudo usermod -aG docker" in s and s.split("#")[0].rstrip().endswith(outsider.name)
        for s in steps
    )
    assert any(s.startswith("sudo usermod --add-subuids ") and "--add-subgids" in s for s in steps)
    assert proc.returncode == 0


def test_an_unbuildable_guest_is_one_line_unsupported_rows_and_exit_1(outsider):
    scenario = write_as(outsider, "debian.toml", DEBIAN_ONLY)
    results = outsider.home / "results"
    proc = outsider.vmbench(
        "run", str(scenario), "--no-report", "--results-dir", str(results), timeout=900
    )
    said = proc.stdout + proc.stderr
    assert proc.returncode == 1, said[-2000:]
    assert said.count("vmbench: guest debian skipped:") == 1
    assert "fix: sudo usermod --add-subuids" in said
    rows = rows_of(outsider, results)
    trials = [r for r in rows if r["metric"] == "trial"]
    assert trials and {r["status"] for r in trials} == {"unsupported"}
    qemu = [r for r in trials if r["backend"] == "qemu"]
    assert qemu and all("guest debian cannot be built here" in r["detail"] for r in qemu)
    docker = [r for r in trials if r["backend"] == "docker"]
    assert docker and all("not in group docker" in r["detail"] for r in docker)
    assert "vmbench: claims not checked:" in said or "could not run here:" in said


@contextlib.contextmanager
def _mounted(image: Path, where: Path):
    subprocess.run(["mount", "-o", "ro,loop,noload", str(image), str(where)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(where)], check=False)
