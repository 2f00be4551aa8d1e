"""What emulation adds, measured: a VM's PSS by what holds it (smaps: guest RAM memfd, the TCG
translation buffer, the VMM) and the ``cpu`` workload (cpu_work_s). Unit tests on hand-made
smaps and a fake console; integration tests on a real qemu (TCG here) and a real container."""

from __future__ import annotations

import hashlib
import secrets
import time
from pathlib import Path

import pytest
from conftest import usable_backend
from helpers.fakes import FakeBackend

from bench.backends.base import LaunchSpec
from bench.backends.kvm import MACHINES
from bench.backends.qemu import RAM_BACKEND, TB_SIZE_MIB, QemuBackend, qemu_argv
from bench.guests import Guest
from bench.run.measure import WORK_END, WORK_START, now_ns
from bench.run.scenario import ScenarioError, load
from bench.run.smaps import (
    GUEST_RAM_MEMFD,
    SPLIT_DENIED,
    hypervisor_split,
    parse_smaps,
    split_pss,
)
from bench.run.trial import run_trial, zeros_md5

DATA = Path(__file__).parent / "data"
KVM_SMAPS = (DATA / "smaps-qemu-kvm.txt").read_text()
KIB = 1024
HOST_KERNEL = Path("/proc/sys/kernel/osrelease").read_text().strip()


def mapping(head: str, pss_kib: int) -> str:
    """One smaps entry (the lines the split reads, and a few it must skip)."""
    return (
        f"{head}\nSize:               65532 kB\nRss:            {pss_kib:>8} kB\n"
        f"Pss:            {pss_kib:>8} kB\nPss_Dirty:      {pss_kib:>8} kB\n"
        f"Private_Dirty:  {pss_kib:>8} kB\nVmFlags: rd wr ex mr mw me ac\n"
    )


TCG_BUFFER = mapping("7f80bc000000-7f80bffff000 rwxp 00000000 00:00 0 ", 43008)


# --- the split, on hand-made smaps ------------------------------------------------------------


def test_a_kvm_qemu_has_no_translation_cache():
    """KVM runs guest code natively: no rwx mapping, so the TCG part is 0, RAM is the memfd."""
    split = split_pss(KVM_SMAPS)
    assert split is not None
    assert split.tcg_cache_pss_bytes == 0 and split.tcg_mappings == 0
    assert split.vm_ram_pss_bytes == 96240 * KIB and split.ram_mappings == 1
    total = sum(m.pss_bytes for m in parse_smaps(KVM_SMAPS))
    assert split.vmm_pss_bytes == total - 96240 * KIB > 0
    # [vdso] is r-xp and anonymous by inode but named: it is the VMM's, never the cache.
    assert any(m.path == "[vdso]" and m.part == "vmm_pss_bytes" for m in parse_smaps(KVM_SMAPS))


def test_a_tcg_qemu_has_its_rwx_buffer_as_the_translation_cache():
    split = split_pss(KVM_SMAPS + TCG_BUFFER)
    assert split is not None
    assert split.tcg_cache_pss_bytes == 43008 * KIB and split.tcg_mappings == 1
    assert split.vm_ram_pss_bytes == 96240 * KIB
    assert split.total_bytes == sum(m.pss_bytes for m in parse_smaps(KVM_SMAPS + TCG_BUFFER))


def test_split_wx_buffer_is_the_translation_cache_in_both_its_mappings():
    """QEMU with split-wx maps its tcg-jit memfd twice (writable, executable); each mapping
    holds half of every page's PSS."""
    jit = "/memfd:tcg-jit (deleted)"
    text = (
        KVM_SMAPS
        + mapping(f"7f0000000000-7f0004000000 rw-s 00000000 00:01 77 {jit}", 20000)
        + mapping(f"7f0004000000-7f0008000000 r-xs 00000000 00:01 77 {jit}", 20000)
    )
    split = split_pss(text)
    assert split is not None and split.tcg_cache_pss_bytes == 40000 * KIB
    assert split.tcg_mappings == 2


def test_without_a_guest_ram_memfd_there_is_no_split():
    """Guest RAM as a plain anonymous mapping cannot be told from the VMM's heap by what it
    is: no split rather than a guess by size."""
    text = KVM_SMAPS.replace(GUEST_RAM_MEMFD + " (deleted)", "")
    assert split_pss(text) is None


def test_smaps_this_user_may_not_read_gives_no_split_and_says_why(monkeypatch):
    """A regular user and libvirt's qemu (qemu:///system runs it as its own user): the kernel
    refuses the smaps; the tick keeps its numbers and the rows say why there is no split."""

    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refused)
    sample = {"rss_bytes": 5, "pss_bytes": 4}
    assert hypervisor_split(1, sample) == (sample, SPLIT_DENIED)


def test_a_tick_without_pss_gets_no_split():
    """Only full ticks (with pss_bytes) are split, so the parts come from the same ticks."""
    sample = {"rss_bytes": 5}
    assert hypervisor_split(1, sample) == (sample, "")


def test_qemu_backs_guest_ram_with_a_named_memfd_and_sizes_the_tcg_buffer(tmp_path):
    class Kernel:
        vmlinuz = tmp_path / "vmlinuz"

    guest = Guest("busybox", "amd64", tmp_path, tmp_path, Kernel(), tmp_path / "i.gz")  # type: ignore[arg-type]
    options = QemuBackend.settings({"memory_mib": 384})
    tcg = qemu_argv(guest, MACHINES["amd64"], "tcg", "idle", options, "n", None)
    assert tcg[tcg.index("-accel") + 1] == f"tcg,tb-size={TB_SIZE_MIB}"
    assert f"memory-backend-memfd,id={RAM_BACKEND},size=384M" in tcg
    assert f"memory-backend={RAM_BACKEND}" in tcg and tcg[tcg.index("-m") + 1] == "384"
    kvm = qemu_argv(guest, MACHINES["amd64"], "kvm", "idle", options, "n", None)
    assert kvm[kvm.index("-accel") + 1] == "kvm"  # no translation buffer to size
    assert f"memory-backend={RAM_BACKEND}" in kvm


# --- the cpu workload, on a fake console ------------------------------------------------------


def test_zeros_md5_is_the_md5_of_zero_bytes():
    assert zeros_md5(2) == hashlib.md5(bytes(2 << 20)).hexdigest()
    assert zeros_md5(64) == "7f614da9329cd3aebf59b91aadc30bf0"  # busybox md5sum, 64 MiB


def fake_guest(tmp_path: Path) -> Guest:
    return Guest("busybox", "amd64", tmp_path, tmp_path, None, tmp_path / "i")  # type: ignore[arg-type]


def cpu_lines(md5: str) -> list[bytes]:
    return [
        b"VMBENCH READY uptime=1.0 kernel=k arch=x86_64\n",
        f"{WORK_START} mib=64\n".encode(),
        f"{WORK_END} md5={md5} mib=64\n".encode(),
        b"VMBENCH DONE\n",
    ]


def cpu_spec() -> LaunchSpec:
    return LaunchSpec(run_id="r", name="n", workload="cpu", timeout_s=5)


def test_cpu_work_is_timed_between_the_two_lines(tmp_path):
    backend = FakeBackend("docker", cpu_lines(zeros_md5(64)))
    prepared = backend.prepare(fake_guest(tmp_path), {})
    outcome = run_trial(backend, prepared, cpu_spec(), 0.1, HOST_KERNEL)
    assert outcome.status == "ok", outcome.detail
    [work] = [m for m in outcome.measurements if m.metric == "cpu_work_s"]
    assert 0 <= work.value < 1 and "md5sum" in work.detail and "host clock" in work.detail


def test_cpu_work_with_a_wrong_hash_fails_the_trial(tmp_path):
    backend = FakeBackend("docker", cpu_lines("0" * 32))
    prepared = backend.prepare(fake_guest(tmp_path), {})
    outcome = run_trial(backend, prepared, cpu_spec(), 0.1, HOST_KERNEL)
    assert outcome.status == "failed" and "not the md5 of 64 MiB" in outcome.detail
    assert not [m for m in outcome.measurements if m.metric == "cpu_work_s"]


def test_cpu_is_timed_one_instance_at_a_time(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        '[scenario]\nname = "d"\nguests = ["busybox"]\nworkloads = ["cpu"]\n'
        'backends = ["docker"]\ninstances = [1, 2]\n'
    )
    with pytest.raises(ScenarioError, match=r"scenario\.workloads"):
        load(path)


def test_the_default_suite_times_cpu_work_on_busybox_in_docker_and_qemu():
    root = Path(__file__).resolve().parent.parent / "scenarios"
    [cpu] = [s for s in load(root / "default.toml") if "cpu" in s.workloads]
    assert cpu.guests == ("busybox",) and {"docker", "qemu"} <= set(cpu.backends)
    assert cpu.repetitions <= 5  # the suite's time: a TCG trial costs seconds


# --- integration: a real qemu under TCG (the accelerator here) ---------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("engine", ["qemu", "qemu-microvm"])
def test_a_real_tcg_vm_splits_its_pss_and_its_cache_grows_with_more_code(engine, busybox_guest):
    """The three parts are positive and sum to the same tick's smaps_rollup PSS within 2 %;
    the translation cache read as soon as qemu has set the VM up (the guest has run little
    code yet) is smaller than after the guest booted and ran its cpu work."""
    backend = usable_backend(engine)
    prepared = backend.prepare(busybox_guest, {"accel": "tcg"})
    run_id = f"test-{secrets.token_hex(3)}"
    spec = LaunchSpec(
        run_id=run_id,
        name=f"vmbench-{run_id}-{engine}-busybox-1",
        workload="cpu",
        timeout_s=240,
        options={"accel": "tcg"},
    )
    with backend.create(prepared, spec) as instance:
        deadline = now_ns() + int(240e9)
        instance.start(deadline)
        early = instance.memory(full=True)
        while "tcg_cache_pss_bytes" not in early and now_ns() < deadline:
            time.sleep(0.02)  # qemu has not mapped the guest's RAM yet
            early = instance.memory(full=True)
        assert instance.console.wait_for("VMBENCH READY", deadline) is not None
        at_ready = instance.memory(full=True)
        assert instance.console.wait_for("VMBENCH DONE", deadline) is not None, (
            instance.console.tail()
        )
        after = instance.memory(full=True)
    assert instance.accel == "tcg" and instance.memory_note == ""
    for sample in (at_ready, after):
        parts = [sample["vm_ram_pss_bytes"], sample["tcg_cache_pss_bytes"], sample["vmm_pss_bytes"]]
        assert min(parts) > 0, sample
        assert abs(sum(parts) - sample["pss_bytes"]) <= 0.02 * sample["pss_bytes"], sample
    assert after["tcg_cache_pss_bytes"] > early["tcg_cache_pss_bytes"], (early, after)


@pytest.mark.integration
def test_the_cpu_workload_on_docker_and_qemu_gives_the_factor_in_the_report(
    tmp_path, docker_backend, qemu_backend, busybox_guest
):
    """vmbench run of the cpu workload (the real engines), then its report: ok cpu_work_s rows
    on both, and report.md states the factor VM / container with its interval."""
    from bench.cli import main
    from bench.results import read_rows

    scenario = tmp_path / "cpu.toml"
    scenario.write_text(
        '[scenario]\nname = "cpu"\nguests = ["busybox"]\nworkloads = ["cpu"]\n'
        'backends = ["docker", "qemu"]\nrepetitions = 2\nwarmup = 0\n'
    )
    assert main(["run", str(scenario), "--results-dir", str(tmp_path / "results")]) == 0
    [run_dir] = list((tmp_path / "results").iterdir())
    rows, bad = read_rows(run_dir / "results.csv")
    assert bad == []
    work = [r for r in rows if r["metric"] == "cpu_work_s"]
    assert {r["backend"] for r in work} == {"docker", "qemu"}
    assert all(r["status"] == "ok" and float(r["value"]) > 0 for r in work) and len(work) == 4
    docker = max(float(r["value"]) for r in work if r["backend"] == "docker")
    qemu = min(float(r["value"]) for r in work if r["backend"] == "qemu")
    report = (run_dir / "report" / "report.md").read_text()
    assert "## What emulation adds" in report
    [line] = [ln for ln in report.splitlines() if "the same CPU work takes" in ln]
    factor = float(line.split("takes ")[1].split("x")[0])
    assert factor >= qemu / docker * 0.99 and "[95% CI" in line and "qemu, " in line
