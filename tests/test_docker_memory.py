"""Docker memory from the container's cgroup, on cgroup v1 and v2, and never a made-up zero.

The unit tests drive the cgroup functions with file fixtures of each layout the daemon makes
(cgroup v1 or v2, cgroupfs or systemd driver, hybrid v1+v2); the processes they list are real
(this test's own), so the memory read is real. The integration tests use the real daemon.
"""

from __future__ import annotations

import os
import platform
import re
import secrets
import time
from pathlib import Path

import psutil
import pytest

from bench.backends import cgroups, docker
from bench.backends.base import BackendError, LaunchSpec
from bench.run.measure import READY, MemorySampler, now_ns
from bench.run.trial import run_trial

CID = "25d4be646ec40984ef7d0b6fb7275acab60282a4d4e544caa049fb0a5d0f2a05"
V1_CONTROLLERS = ("pids", "blkio", "freezer", "devices", "memory", "cpuset", "cpuacct", "cpu")


def v1_text(path: str, unified: str | None = None) -> str:
    """A /proc/PID/cgroup of cgroup v1 (hybrid when ``unified`` names the 0:: line too)."""
    lines = [f"9:name=systemd:{path}"]
    lines += [f"{8 - i}:{c}:{path}" for i, c in enumerate(V1_CONTROLLERS)]
    if unified is not None:
        lines.append(f"0::{unified}")
    return "\n".join(lines) + "\n"


# (name, /proc/PID/cgroup text, the folder it must resolve to under the cgroup root)
LAYOUTS = [
    ("v1-cgroupfs", v1_text(f"/docker/{CID}"), f"memory/docker/{CID}"),
    (
        "v1-systemd",
        v1_text(f"/system.slice/docker-{CID}.scope"),
        f"memory/system.slice/docker-{CID}.scope",
    ),
    ("hybrid-cgroupfs", v1_text(f"/docker/{CID}", f"/docker/{CID}"), f"memory/docker/{CID}"),
    ("v2-cgroupfs", f"0::/docker/{CID}\n", f"docker/{CID}"),
    ("v2-systemd", f"0::/system.slice/docker-{CID}.scope\n", f"system.slice/docker-{CID}.scope"),
]
MIB = 1 << 20


def write_cgroup(folder: Path, v2: bool, pids: list[int], usage: int, inactive: int) -> None:
    """The files the kernel shows in a memory cgroup folder (the ones vmbench reads)."""
    folder.mkdir(parents=True)
    (folder / "cgroup.procs").write_text("".join(f"{p}\n" for p in pids))
    if v2:
        (folder / "memory.current").write_text(f"{usage}\n")
        (folder / "memory.stat").write_text(f"anon 1000\nfile 2000\ninactive_file {inactive}\n")
    else:
        (folder / "memory.usage_in_bytes").write_text(f"{usage}\n")
        # v1 has the cgroup's own inactive_file and the hierarchical total_: total_ counts.
        (folder / "memory.stat").write_text(
            f"cache 2000\ninactive_file 1\ntotal_cache 2000\ntotal_inactive_file {inactive}\n"
        )


@pytest.mark.parametrize(("layout", "text", "relative"), LAYOUTS, ids=[x[0] for x in LAYOUTS])
def test_each_layout_resolves_to_its_memory_cgroup_and_reads_it(tmp_path, layout, text, relative):
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "cgroup").write_text(text)
    expected = root / relative
    write_cgroup(expected, layout.startswith("v2"), [os.getpid()], 10 * MIB, 3 * MIB)

    assert cgroups.container_cgroup(4242, proc, root) == expected
    sample = cgroups.cgroup_memory(expected)
    assert sample["cgroup_bytes"] == 7 * MIB  # usage without the inactive page cache
    own = psutil.Process().memory_info().rss
    assert 0.5 * own < sample["rss_bytes"] < 2 * own  # this process, read for real
    assert 0 < sample["uss_bytes"] <= sample["pss_bytes"] <= sample["rss_bytes"]


def test_cheap_sample_reads_no_uss_or_pss(tmp_path):
    folder = tmp_path / "docker" / CID
    write_cgroup(folder, True, [os.getpid()], 5 * MIB, 0)
    assert set(cgroups.cgroup_memory(folder, full=False)) == {"rss_bytes", "cgroup_bytes"}


def test_without_usage_files_the_sample_has_no_cgroup_bytes_rather_than_zero(tmp_path):
    folder = tmp_path / "docker" / CID
    folder.mkdir(parents=True)
    (folder / "cgroup.procs").write_text(f"{os.getpid()}\n")
    sample = cgroups.cgroup_memory(folder)
    assert "cgroup_bytes" not in sample and sample["rss_bytes"] > 0


def test_no_memory_line_and_no_unified_line_names_no_cgroup(tmp_path):
    assert cgroups.memory_cgroup("3:cpu:/docker/x\n", tmp_path) is None
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "cgroup").write_text("3:cpu:/docker/x\n")
    with pytest.raises(cgroups.CgroupUnreadable, match="names no memory cgroup"):
        cgroups.container_cgroup(7, tmp_path, tmp_path / "cgroup")


def test_a_gone_process_has_no_cgroup(tmp_path):
    with pytest.raises(cgroups.CgroupUnreadable, match=r"cannot read .*/proc/4242/cgroup"):
        cgroups.container_cgroup(4242, tmp_path / "proc", tmp_path / "cgroup")


def pid_that_does_not_exist() -> int:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert not psutil.pid_exists(pid_max + 1)
    return pid_max + 1


@pytest.mark.parametrize(
    "state", ["folder gone", "cgroup.procs empty", "its processes gone"], ids=str
)
def test_a_cgroup_with_nothing_to_read_is_an_error_never_a_zero(tmp_path, state):
    folder = tmp_path / "docker" / CID
    if state != "folder gone":
        pids = [] if state == "cgroup.procs empty" else [pid_that_does_not_exist()]
        write_cgroup(folder, True, pids, 10 * MIB, 0)
    with pytest.raises(cgroups.CgroupUnreadable, match=re.escape(str(folder))):
        cgroups.cgroup_memory(folder)


def test_sampler_keeps_no_sample_of_a_gone_cgroup(tmp_path):
    """What the trial sees: no median, so no row; the error says why (trial.py fails the trial)."""
    folder = tmp_path / "docker" / CID
    with MemorySampler(lambda full: cgroups.cgroup_memory(folder, full), hz=50) as sampler:
        wait_for_error(sampler)
    assert sampler.samples == [] and sampler.medians() == {}
    assert "CgroupUnreadable" in sampler.error and "cgroup.procs" in sampler.error


def wait_for_error(sampler: MemorySampler, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not sampler.error and time.monotonic() < deadline:
        time.sleep(0.01)


# --- integration: the real daemon --------------------------------------------------------------


def launch_spec(workload: str) -> LaunchSpec:
    run_id = f"test-{secrets.token_hex(3)}"
    return LaunchSpec(
        run_id=run_id, name=f"vmbench-{run_id}-docker", workload=workload, timeout_s=60
    )


@pytest.mark.integration
def test_container_killed_behind_our_back_gives_no_sample(docker_backend, busybox_guest):
    """The container's cgroup vanishes (the daemon removes it when the container dies): the
    next sample is an error naming why, not {'rss_bytes': 0, ...}."""
    prepared = docker_backend.prepare(busybox_guest, {})
    with docker_backend.create(prepared, launch_spec("idle")) as instance:
        instance.start(now_ns() + int(60e9))
        assert instance.console.wait_for(READY, now_ns() + int(60e9)) is not None
        alive = instance.memory()
        assert 100_000 < alive["rss_bytes"] < 32 * MIB  # PSS too, for root (not a regular user)
        assert alive["cgroup_bytes"] > 0
        instance.container.kill()
        instance.container.wait(timeout=30)
        try:
            sample = instance.memory()
        except BackendError as e:
            assert "cgroup" in str(e) and str(e).startswith("docker: ")
        else:
            pytest.fail(f"a made-up sample from a dead container: {sample}")
        with MemorySampler(instance.memory, hz=50) as sampler:
            wait_for_error(sampler)
            time.sleep(0.1)  # a few more ticks: none of them may add a sample
        assert sampler.samples == [] and sampler.medians() == {}
        assert "CgroupUnreadable" in sampler.error


@pytest.mark.integration
def test_idle_trial_with_an_unreadable_cgroup_writes_no_zero(
    docker_backend, busybox_guest, tmp_path, monkeypatch
):
    """The cgroup root is not where /proc says (an empty folder): the trial fails and says why,
    and no memory metric is reported (the old code reported 0 bytes, status ok)."""
    monkeypatch.setattr(docker, "CGROUP_ROOT", tmp_path)
    prepared = docker_backend.prepare(busybox_guest, {})
    outcome = run_trial(docker_backend, prepared, launch_spec("idle"), 0.5, platform.release())
    memory = {m.metric: m.value for m in outcome.measurements if m.metric.endswith("_bytes")}
    assert memory == {}, f"memory rows from an unreadable cgroup: {memory} ({outcome.status})"
    assert outcome.status == "failed"
    assert "cgroup.procs" in outcome.detail and str(tmp_path) in outcome.detail
