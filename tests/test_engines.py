"""Integration: one real trial on each engine, through the same path `vmbench run` takes."""

from __future__ import annotations

import os
import platform
import secrets

import psutil
import pytest

from bench.backends.base import LaunchSpec
from bench.backends.qemu import run_dir
from bench.backends.smaps_reader import NOTE as SMAPS_NOTE
from bench.run.trial import run_trial

pytestmark = pytest.mark.integration


def spec(workload: str, backend: str, timeout_s: float) -> LaunchSpec:
    run_id = f"test-{secrets.token_hex(3)}"
    return LaunchSpec(
        run_id=run_id,
        name=f"vmbench-{run_id}-{backend}",
        workload=workload,
        timeout_s=timeout_s,
        options={"memory_mib": 256},
    )


def values(outcome) -> dict[str, float]:
    return {m.metric: m.value for m in outcome.measurements}


def qemu_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "qemu" in p.name()]


def test_docker_ready_trial(docker_backend, busybox_guest):
    prepared = docker_backend.prepare(busybox_guest, {})
    sizes = {s.metric: s.value for s in prepared.sizes}
    inspected = docker_backend.client.api.inspect_image(prepared.handle)
    assert sizes["image_bytes"] == inspected["Size"]
    assert 0 < sizes["image_compressed_bytes"] < sizes["image_bytes"]

    s = spec("ready", "docker", timeout_s=60)
    outcome = run_trial(docker_backend, prepared, s, 0.5, platform.release())
    assert outcome.status == "ok", outcome.detail
    v = values(outcome)
    assert 0 < v["ready_s"] < v["exit_s"] < 60
    assert outcome.ready_fields["kernel"] == platform.release()  # the host's kernel
    assert v["kernel_matches_host"] == 1.0
    assert "guest_uptime_s" not in v  # a container has no uptime of its own
    left = docker_backend.client.containers.list(
        all=True, filters={"label": f"vmbench.run={s.run_id}"}
    )
    assert left == []


def test_docker_idle_trial_memory(docker_backend, busybox_guest):
    prepared = docker_backend.prepare(busybox_guest, {})
    s = spec("idle", "docker", timeout_s=60)
    outcome = run_trial(docker_backend, prepared, s, 1.0, platform.release())
    assert outcome.status == "ok", outcome.detail
    v = values(outcome)
    assert v["cgroup_bytes"] > 0
    assert 100_000 < v["rss_bytes"] < 32 << 20
    # busybox sh + sleep: a few MiB at most; the shim is counted apart and is larger
    assert 100_000 < v["pss_bytes"] < 32 << 20
    assert v["uss_bytes"] <= v["pss_bytes"] <= v["rss_bytes"]
    assert v["shim_pss_bytes"] > 0
    [shim] = [m for m in outcome.measurements if m.metric == "shim_pss_bytes"]
    assert shim.detail.startswith("shim=containerd-shim ")  # named for the report
    # A regular user may not walk root's page tables: Docker's helper read them, and says so.
    pss = [m for m in outcome.measurements if m.metric == "pss_bytes"]
    assert all((SMAPS_NOTE in m.detail) == (os.geteuid() != 0) for m in pss)
    left = docker_backend.client.containers.list(
        all=True, filters={"label": f"vmbench.run={s.run_id}"}
    )
    assert left == []


def test_qemu_ready_then_idle_trial(qemu_backend, busybox_guest):
    prepared = qemu_backend.prepare(busybox_guest, {"memory_mib": 256})
    sizes = {s.metric: s.value for s in prepared.sizes}
    assert sizes["kernel_bytes"] == busybox_guest.kernel.vmlinuz.stat().st_size
    assert sizes["image_bytes"] == sizes["kernel_bytes"] + sizes["initramfs_bytes"]
    accel = prepared.accel
    assert accel in ("kvm", "tcg")

    ready = run_trial(qemu_backend, prepared, spec("ready", "qemu", 120), 0.5, platform.release())
    assert ready.status == "ok", ready.detail
    assert ready.accel == accel
    v = values(ready)
    assert 0 < v["ready_s"] < v["exit_s"]
    assert ready.ready_fields["kernel"] == busybox_guest.kernel.release != platform.release()
    assert v["kernel_matches_host"] == 0.0
    assert 0 < v["guest_uptime_s"] < v["ready_s"] + 1

    idle_spec = spec("idle", "qemu", timeout_s=120)
    idle = run_trial(qemu_backend, prepared, idle_spec, 1.0, platform.release())
    assert idle.status == "ok", idle.detail
    m = values(idle)
    assert 16 << 20 < m["pss_bytes"] < 1 << 30  # the hypervisor process: tens to hundreds of MiB
    assert qemu_children() == []  # killed by its own pid, nothing left
    assert not run_dir(idle_spec.run_id).exists()  # pid file and its folder gone
