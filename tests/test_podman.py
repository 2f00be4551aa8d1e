"""podman (app container) and podman-systemd (system container): flags from host facts,
real trials on the real engine, and Ctrl-C mid-trial leaving no container and no conmon.

The unit tests drive the flag choices with the facts of other hosts (cgroup v2 with systemd,
rootless, crun on cgroup v1); the integration tests run podman here (rootful, cgroup v1).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import tempfile
from pathlib import Path

import psutil
import pytest
from conftest import built_guest, usable_backend
from helpers.harness import Harness, alive, wait_until
from helpers.scenarios import write_scenario

from bench.backends import engine
from bench.backends.base import BackendUnsupported, LaunchSpec, Prepared
from bench.backends.podman import (
    PodmanHost,
    PodmanSystemdBackend,
    global_flags,
    has_capability,
    ulimit_flags,
)
from bench.guests import Guest
from bench.results import read_rows
from bench.run import liveness
from bench.run.trial import run_trial

MIB = 1 << 20
HOST_KERNEL = Path("/proc/sys/kernel/osrelease").read_text().strip()
HARD = {"nofile": 20000, "nproc": 96365}


def host(**facts) -> PodmanHost:
    base = {
        "version": "4.3.1",
        "rootless": False,
        "runtime": "crun",
        "cgroup_version": "v2",
        "cgroup_manager": "systemd",
    }
    return PodmanHost(**(base | facts))


def test_host_facts_are_read_from_podman_info():
    info = {
        "version": {"Version": "4.3.1"},
        "host": {
            "security": {"rootless": True},
            "ociRuntime": {"name": "runc"},
            "cgroupVersion": "v1",
            "cgroupManager": "cgroupfs",
        },
    }
    assert PodmanHost.from_info(info) == host(
        rootless=True, runtime="runc", cgroup_version="v1", cgroup_manager="cgroupfs"
    )


def test_a_cgroup_v2_host_with_systemd_runs_podman_with_its_defaults():
    assert global_flags(host(), runc_found=True, systemd_running=True) == []
    assert ulimit_flags(host(), may_raise_rlimits=True, hard=HARD) == []


def test_crun_on_cgroup_v1_becomes_runc_and_no_systemd_means_cgroupfs():
    v1 = host(cgroup_version="v1")
    assert global_flags(v1, runc_found=True, systemd_running=False) == [
        "--runtime",
        "runc",
        "--cgroup-manager",
        "cgroupfs",
    ]
    assert global_flags(v1, runc_found=False, systemd_running=True) == []  # nothing to swap to


def test_rlimits_are_lowered_only_for_rootful_podman_without_cap_sys_resource():
    assert ulimit_flags(host(), may_raise_rlimits=False, hard=HARD) == [
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=4096:4096",
    ]
    low = ulimit_flags(host(), may_raise_rlimits=False, hard={"nofile": 512, "nproc": 100})
    assert low == ["--ulimit", "nofile=512:512", "--ulimit", "nproc=100:100"]
    assert ulimit_flags(host(rootless=True), may_raise_rlimits=False, hard=HARD) == []


def test_capability_bits_come_from_cap_eff():
    status = "Name:\tx\nCapPrm:\t000001ffffffffff\nCapEff:\t000001fffeffffff\n"
    assert not has_capability(status, 24)  # CAP_SYS_RESOURCE cleared, as in this sandbox
    assert has_capability(status, 21)  # CAP_SYS_ADMIN


def test_both_engines_declare_their_kind():
    assert engine("podman").kind == "container"
    assert engine("podman-systemd").kind == "system-container"


def test_system_container_refuses_a_guest_without_systemd(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "vmbench").mkdir(parents=True)
    guest = Guest("busybox", "amd64", tmp_path, rootfs, None, tmp_path / "i")  # type: ignore[arg-type]
    with pytest.raises(BackendUnsupported, match="no systemd"):
        PodmanSystemdBackend().prepare(guest, {})


def test_system_container_boots_systemd_with_the_workload_on_its_command_line(tmp_path):
    guest = Guest("debian-systemd", "amd64", tmp_path, tmp_path, None, tmp_path / "i")  # type: ignore[arg-type]
    prepared = Prepared(guest=guest, sizes=[], build_s=0.0, built_now=False, handle="localhost/x:1")
    launch = LaunchSpec(run_id="r", name="n", workload="idle", timeout_s=60)
    options, command = PodmanSystemdBackend().launch_args(prepared, launch)
    assert options[options.index("--entrypoint") + 1] == "/lib/systemd/systemd"
    assert "--systemd=always" in options
    assert "systemd.setenv=VMBENCH_WORKLOAD=idle" in command
    assert "systemd.show_status=false" in command  # no status line may carry the marker


# --- integration: the real engine --------------------------------------------------------------


@pytest.fixture(scope="module")
def podman_backend():
    return usable_backend("podman")


@pytest.fixture(scope="module")
def podman_systemd_backend():
    return usable_backend("podman-systemd")


def spec(name: str, workload: str, timeout_s: float) -> LaunchSpec:
    run_id = f"test-{secrets.token_hex(3)}"
    return LaunchSpec(
        run_id=run_id, name=f"vmbench-{run_id}-{name}", workload=workload, timeout_s=timeout_s
    )


def podman_containers(run_id: str) -> list[str]:
    out = subprocess.run(
        ["podman", "ps", "--all", "--quiet", "--filter", f"label=vmbench.run={run_id}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def live_conmons() -> dict[int, str]:
    """conmon processes that still run (not zombies), with their command lines."""
    found = {}
    for proc in psutil.process_iter(["pid", "name", "cmdline", "status"]):
        if proc.info["name"] == "conmon" and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found[proc.info["pid"]] = " ".join(proc.info["cmdline"] or [])
    return found


def by_metric(outcome) -> dict[str, float]:
    return {m.metric: m.value for m in outcome.measurements}


@pytest.mark.integration
def test_podman_trial_from_the_guest_tree_with_its_memory_and_conmon_apart(
    podman_backend, busybox_guest
):
    prepared = podman_backend.prepare(busybox_guest, {})
    [image] = [s for s in prepared.sizes if s.metric == "image_bytes"]
    # The image is the guest's tree (plus tar's and the image's own few kilobytes).
    assert 0.95 < image.value / busybox_guest.rootfs_bytes < 1.10
    launch = spec("podman", "idle", timeout_s=60)
    before = set(live_conmons())
    outcome = run_trial(podman_backend, prepared, launch, 1.0, HOST_KERNEL)
    assert outcome.status == "ok", outcome.detail
    values = by_metric(outcome)
    assert 0.0 < values["ready_s"] < 30
    assert 100_000 < values["pss_bytes"] < 32 * MIB  # a shell and a sleep, not a whole host
    assert 100_000 < values["shim_pss_bytes"] < 32 * MIB  # conmon, counted apart
    [shim] = [m for m in outcome.measurements if m.metric == "shim_pss_bytes"]
    assert shim.detail.startswith("shim=conmon ")  # the report names podman's shim from it
    host = podman_backend.host()
    if host.rootless and host.cgroup_version == "v1":  # no cgroup of its own: its process tree
        assert "cgroup_bytes" not in values
    else:
        assert values["cgroup_bytes"] > 0
    assert values["kernel_matches_host"] == 1
    assert outcome.ready_fields["init"] == "sh"
    assert podman_containers(launch.run_id) == []
    assert set(live_conmons()) - before == set()


@pytest.mark.integration
def test_system_container_boots_systemd_on_the_host_kernel(podman_systemd_backend):
    guest = built_guest("debian-systemd")
    prepared = podman_systemd_backend.prepare(guest, {})
    launch = spec("podman-systemd", "ready", timeout_s=120)
    outcome = run_trial(podman_systemd_backend, prepared, launch, 1.0, HOST_KERNEL)
    assert outcome.status == "ok", outcome.detail
    assert outcome.ready_fields["init"] == "systemd"
    values = by_metric(outcome)
    assert values["kernel_matches_host"] == 1
    assert "guest_uptime_s" not in values  # the host kernel's uptime is not the guest's
    assert values["exit_s"] >= values["ready_s"]  # systemd ended the container after DONE
    [ready] = [m for m in outcome.measurements if m.metric == "ready_s"]
    assert "systemd as PID 1" in ready.detail
    assert podman_containers(launch.run_id) == []


def assert_interrupted_cleanly(proc, run_id: str, results: Path) -> None:
    code = proc.wait(30)
    log = Path(proc.log_path).read_text()
    assert code == 130, log
    assert "Traceback" not in log, log
    assert podman_containers(run_id) == []
    rows, bad = read_rows(results / run_id / "results.csv")
    assert bad == []
    assert any(r["status"] == "interrupted" for r in rows), rows


def _running(
    run: Harness, scenario: Path, results: Path, timeout_s: float
) -> tuple[subprocess.Popen, str, str, list[int]]:
    """`vmbench run` (``run``: the harness fixture) in the background, once its first
    container and that one's conmon run."""
    proc = run.start("run", str(scenario), results=results)
    run_id = run.run_id(results)
    [container] = wait_until(lambda: podman_containers(run_id), timeout_s, "the container")
    conmon = wait_until(
        lambda: [p for p, cmd in live_conmons().items() if container in cmd], 30, "its conmon"
    )
    return proc, run_id, container, conmon


@pytest.mark.integration
def test_ctrl_c_while_podman_samples_memory_leaves_no_container_and_no_conmon(
    harness,
    tmp_path,
    podman_backend,
    busybox_guest,
):
    scenario = write_scenario(
        tmp_path, "podman", workloads=["idle"], backends=["podman"], memory_sample_s=60
    )
    results = tmp_path / "results"
    proc, run_id, container, conmon = _running(harness, scenario, results, 60)
    # Whose run it is, on its label, for every user's `vmbench clean` (bench/run/liveness.py).
    owner = liveness.Owner.parse(podman_backend.run_owners()[run_id])
    assert owner is not None and owner.pid == proc.pid and owner.alive()
    wait_until(lambda: "READY" in _logs(container), 30, "READY: sampling started")
    proc.send_signal(signal.SIGINT)
    assert_interrupted_cleanly(proc, run_id, results)
    wait_until(lambda: not any(alive(p) for p in conmon), 10, "conmon to end")


@pytest.mark.integration
def test_ctrl_c_while_the_system_container_boots_leaves_nothing(
    harness,
    tmp_path,
    podman_systemd_backend,
):
    built_guest("debian-systemd")
    scenario = write_scenario(
        tmp_path,
        "sysc",
        guests=["debian-systemd"],
        workloads=["idle"],
        backends=["podman-systemd"],
    )
    results = tmp_path / "results"
    proc, run_id, _container, conmon = _running(harness, scenario, results, 120)
    proc.send_signal(signal.SIGINT)  # systemd is booting or just booted
    assert_interrupted_cleanly(proc, run_id, results)
    wait_until(lambda: not any(alive(p) for p in conmon), 10, "conmon to end")


ROOTLESS_TRIAL = """
import json, platform, sys
from pathlib import Path
from bench.backends.base import LaunchSpec
from bench.backends.podman import PodmanBackend
from bench.guests import Guest
from bench.run.trial import run_trial
backend = PodmanBackend()
folder = Path.home() / "guest-0123456789abcdef"
folder.mkdir()
guest = Guest("busybox", "amd64", folder, folder / "rootfs", None, folder / "i",
              rootfs_tar=Path(sys.argv[1]))
outcome = run_trial(backend, backend.prepare(guest, {}),
                    LaunchSpec(run_id="rootless1", name="vmbench-rootless1-podman",
                               workload="idle", timeout_s=60), 1.0,
                    platform.release())
print(json.dumps({"reason": backend.availability().reason, "status": outcome.status,
                  "detail": outcome.detail, "left": backend.cleanup_run("rootless1"),
                  "values": {m.metric: m.value for m in outcome.measurements}}))
"""


@pytest.mark.integration
def test_rootless_podman_trial_as_a_regular_user(podman_backend, busybox_guest):
    """A regular user's podman (rootless: no flags needed); on cgroup v1 its container has no
    cgroup of its own, so its process tree is read, never the user's whole session."""
    from conftest import engine_missing
    from helpers.lab_user import can_make_users, lab_venv, throwaway_user

    if not can_make_users():
        engine_missing("a rootless podman trial needs root to make a throwaway user")
    venv = lab_venv()
    with tempfile.TemporaryDirectory(dir="/var/tmp") as shared:
        tar = Path(shared) / "rootfs.tar"
        argv = ["tar", "--numeric-owner", "-C", str(busybox_guest.rootfs), "-cf", str(tar), "."]
        subprocess.run(argv, check=True)
        os.chmod(shared, 0o755)
        tar.chmod(0o644)
        with throwaway_user(venv) as user:
            code = ROOTLESS_TRIAL.replace("sys.argv[1]", repr(str(tar)))
            proc = user.python(code, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "rootless" in found["reason"] and "--ulimit" not in found["reason"]
    assert found["status"] == "ok", found["detail"]
    values = found["values"]
    assert 100_000 < values["pss_bytes"] < 32 * MIB  # the container, not the user's session
    assert values["shim_pss_bytes"] > 0 and values["kernel_matches_host"] == 1
    assert found["left"] == []


def _logs(container: str) -> str:
    out = subprocess.run(["podman", "logs", container], capture_output=True, text=True, check=False)
    return out.stdout + out.stderr
