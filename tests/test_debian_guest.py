"""Integration: the debian guests for real, plain and with systemd, as containers and as VMs.

Two VM boots in all (one per flavour, TCG: about 4 s and 10-25 s here). The first run on a
fresh machine bootstraps both trees (debootstrap, about 45 s and 65 s here).
"""

from __future__ import annotations

import hashlib
import platform
import secrets

import pytest
from conftest import built_guest

from bench.backends.base import LaunchSpec
from bench.run.measure import file_chunks
from bench.run.trial import run_trial

pytestmark = pytest.mark.integration

FLAVOURS = ("debian", "debian-systemd")
# PID 1 as the READY line names it: the container runs the workload directly.
VM_INIT = {"debian": "init", "debian-systemd": "systemd"}


@pytest.fixture(scope="module", params=FLAVOURS)
def debian_guest(request):
    return built_guest(request.param)


def spec(workload: str, backend: str, timeout_s: float) -> LaunchSpec:
    run_id = f"test-{secrets.token_hex(3)}"
    return LaunchSpec(
        run_id=run_id,
        name=f"vmbench-{run_id}-{backend}",
        workload=workload,
        timeout_s=timeout_s,
        options={"memory_mib": 256},
    )


def sizes_of(prepared) -> dict[str, float]:
    return {s.metric: s.value for s in prepared.sizes}


def sha256(path) -> str:
    digest = hashlib.sha256()
    for chunk in file_chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


def within(value: float, reference: float, fraction: float) -> bool:
    return abs(value - reference) <= fraction * reference


def test_container_runs_the_tree_on_the_host_kernel(docker_backend, debian_guest):
    prepared = docker_backend.prepare(debian_guest, {})
    sizes = sizes_of(prepared)
    rootfs = debian_guest.rootfs_bytes
    # The same userland: a minbase tree is ~115-140 MB, the image is that tree in one layer.
    assert rootfs > 50e6
    assert within(sizes["image_bytes"], rootfs, 0.25), (sizes["image_bytes"], rootfs)
    assert 0 < sizes["image_compressed_bytes"] < sizes["image_bytes"]

    s = spec("ready", "docker", timeout_s=60)
    outcome = run_trial(docker_backend, prepared, s, 0.5, platform.release())
    assert outcome.status == "ok", outcome.detail
    assert outcome.ready_fields["kernel"] == platform.release()
    assert outcome.ready_fields["init"] == "sh"  # no systemd in the container, either flavour
    ready = next(m for m in outcome.measurements if m.metric == "ready_s")
    assert "no init system" in ready.detail


def test_vm_boots_the_disk_with_the_debian_kernel(qemu_backend, debian_guest):
    disk = debian_guest.disk
    assert disk is not None
    before = sha256(disk)
    prepared = qemu_backend.prepare(debian_guest, {"memory_mib": 256})
    sizes = sizes_of(prepared)
    allocated = disk.stat().st_blocks * 512
    assert sizes["disk_bytes"] == allocated
    assert within(allocated, debian_guest.rootfs_bytes, 0.25), (
        allocated,
        debian_guest.rootfs_bytes,
    )
    assert allocated < disk.stat().st_size  # sparse: the virtual size is larger
    boot_files = (
        allocated
        + debian_guest.kernel.vmlinuz.stat().st_size
        + debian_guest.initramfs.stat().st_size
    )
    assert sizes["image_bytes"] == boot_files

    s = spec("ready", "qemu", timeout_s=150)
    outcome = run_trial(qemu_backend, prepared, s, 0.5, platform.release())
    assert outcome.status == "ok", outcome.detail
    assert outcome.ready_fields["kernel"] == debian_guest.kernel.release
    assert outcome.ready_fields["init"] == VM_INIT[debian_guest.name]
    assert {"ready_s", "exit_s", "guest_uptime_s"} <= {m.metric for m in outcome.measurements}
    # snapshot=on: the guest wrote to its disk (systemd certainly does), the cache did not change.
    assert sha256(disk) == before
