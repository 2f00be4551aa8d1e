"""The vagrant backend: provider choice, what the Vagrantfile is told, and (integration) real
``vagrant up`` on libvirt: READY, memory of the right qemu, destroy, nothing left behind."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import engine_missing, usable_backend
from helpers.vagrant import settings

from bench.backends import BackendError
from bench.backends.vagrant import (
    detect_provider,
    machine_env,
    process_env,
    run_id_of,
    vagrantfile,
)
from bench.backends.vagrant import libvirt as lv
from bench.backends.vagrant.vbox import find_vbox_headless
from bench.run import liveness
from bench.run.measure import READY, ConsoleWatcher, follow_file, now_ns
from bench.run.scenario import ScenarioError, load


def works(why: str = "fine"):
    return lambda: (True, why)


def broken(why: str):
    return lambda: (False, why)


# --- provider detection -------------------------------------------------------------------


def test_auto_picks_virtualbox_for_a_named_box():
    choice = detect_provider("auto", False, works("VirtualBox 7.0"), works())
    assert choice.provider == "virtualbox"
    assert "auto-detected" in choice.reason and "VirtualBox 7.0" in choice.reason


def test_auto_picks_libvirt_for_a_kernel_boot_even_with_virtualbox_present():
    choice = detect_provider("auto", True, works(), works("QEMU 7.2"), boot="kernel")
    assert choice.provider == "libvirt" and "QEMU 7.2" in choice.reason


def test_a_disk_boot_prefers_virtualbox_and_falls_back_to_libvirt():
    vb = detect_provider("auto", True, works("VirtualBox 7.0"), works(), boot="disk")
    assert vb.provider == "virtualbox"
    lv_choice = detect_provider("auto", True, broken("VBoxManage not found"), works(), boot="disk")
    assert lv_choice.provider == "libvirt"
    asked = detect_provider("libvirt", True, works(), works("QEMU 7.2"), boot="disk")
    assert asked.provider == "libvirt" and "asked for" in asked.reason


def test_virtualbox_cannot_boot_a_kernel_directly():
    with pytest.raises(BackendError, match="boot = 'disk'"):
        detect_provider("virtualbox", True, works(), works(), boot="kernel")
    choice = detect_provider("virtualbox", True, works("VirtualBox 7.0"), works(), boot="disk")
    assert choice.provider == "virtualbox"


def test_a_named_box_on_libvirt_is_refused_no_management_network():
    with pytest.raises(BackendError, match="management network"):
        detect_provider("libvirt", False, works(), works())


def test_the_fitting_provider_missing_says_why():
    with pytest.raises(BackendError, match="virtualbox is not usable here: VBoxManage not found"):
        detect_provider("auto", False, broken("VBoxManage not found"), works())
    with pytest.raises(BackendError, match="libvirt is not usable here: libvirtd down"):
        detect_provider("libvirt", True, works(), broken("libvirtd down"))
    with pytest.raises(BackendError, match=r"virtualbox is not usable.*libvirt is not usable"):
        detect_provider("auto", True, broken("no VBoxManage"), broken("no libvirtd"), boot="disk")


def test_unknown_provider_name():
    with pytest.raises(BackendError, match="unknown provider 'vbox'"):
        detect_provider("vbox", True, works(), works())


# --- what the Vagrantfile is told -----------------------------------------------------------


def test_env_carries_every_setting_and_keeps_vagrant_offline(tmp_path):
    env = machine_env(settings(tmp_path))
    assert env["VAGRANT_CHECKPOINT_DISABLE"] == "1"
    assert env["VMBENCH_BOX_URL"].startswith("file://")
    assert env["VMBENCH_NAME"] == "vmbench-r1-vagrant-busybox-1"
    assert env["VMBENCH_MEMORY_MIB"] == "192" and env["VMBENCH_CPUS"] == "2"
    assert env["VMBENCH_SERIAL_LOG"] == str(tmp_path / "serial.log")
    assert env["VMBENCH_READY_MARKER"] == READY
    assert env["VMBENCH_CMDLINE"].endswith("VMBENCH_WORKLOAD=idle")
    assert env["VAGRANT_DOTFILE_PATH"] == str(tmp_path / ".vagrant")
    assert env["VAGRANT_HOME"] == str(tmp_path / "vagrant.d")
    assert env["VAGRANT_DEFAULT_PROVIDER"] == "libvirt"
    assert env["VMBENCH_SMBIOS_SERIAL"] == "-"  # a kernel boot: the workload is on the cmdline


def test_a_disk_boot_gets_its_workload_through_the_smbios_serial(tmp_path):
    env = machine_env(settings(tmp_path, cmdline="", smbios_serial="VMBENCH_WORKLOAD=idle"))
    assert env["VMBENCH_CMDLINE"] == "-"
    assert env["VMBENCH_SMBIOS_SERIAL"] == "VMBENCH_WORKLOAD=idle"
    text = vagrantfile().read_text()
    # The two channels the Vagrantfile sends it through (bench/guests/bootdisk.py).
    assert '"system" => { "serial" => smbios_serial }' in text
    assert "VBoxInternal/Devices/pcbios/0/Config/DmiSystemSerial" in text


def test_a_users_box_keeps_their_vagrant_home(tmp_path):
    env = machine_env(settings(tmp_path, box_url="", vagrant_home=None, readiness="ssh"))
    assert "VAGRANT_HOME" not in env
    assert env["VMBENCH_BOX_URL"] == "-"  # the Vagrantfile then sets no box_url
    full = process_env(env, {"PATH": "/usr/bin", "VAGRANT_HOME": "/home/u/.vagrant.d"})
    assert full["VAGRANT_HOME"] == "/home/u/.vagrant.d"


def test_stray_vagrant_and_vmbench_variables_do_not_reach_vagrant(tmp_path):
    inherited = {
        "PATH": "/usr/bin",
        "VAGRANT_DEFAULT_PROVIDER": "virtualbox",
        "VAGRANT_CWD": "/elsewhere",
        "VMBENCH_KERNEL": "/stale/vmlinuz",
    }
    full = process_env(machine_env(settings(tmp_path)), inherited)
    assert full["PATH"] == "/usr/bin"
    assert full["VAGRANT_DEFAULT_PROVIDER"] == "libvirt"
    assert "VAGRANT_CWD" not in full and "VMBENCH_KERNEL" not in full


def test_every_variable_the_vagrantfile_reads_is_set_by_the_backend(tmp_path):
    read = set(re.findall(r'vmbench_env\("([A-Z_]+)"', vagrantfile().read_text()))
    optional = {"VMBENCH_KERNEL", "VMBENCH_INITRD"}  # the box's own files unless overridden
    assert read, "the Vagrantfile reads no VMBENCH_ variables?"
    assert read - optional <= set(machine_env(settings(tmp_path)))


def test_vbox_headless_is_found_by_the_vms_uuid():
    uuid = "3f1c9a2e-0000-4000-8000-00000000abcd"
    processes = [
        {"pid": 10, "name": "VBoxHeadless", "cmdline": ["VBoxHeadless", "--startvm", "other"]},
        {"pid": 11, "name": "bash", "cmdline": ["bash", "-c", f"echo {uuid}"]},
        {
            "pid": 12,
            "name": "VBoxHeadless",
            "cmdline": ["/usr/lib/VBoxHeadless", "--startvm", uuid],
        },
    ]
    assert find_vbox_headless(uuid, processes) == 12
    assert find_vbox_headless("not-there", processes) is None


def test_run_id_is_read_back_from_every_name_the_backend_gives():
    run = "20261127T021036Z-my-host-ab12"
    for name in (
        f"vmbench-{run}-vagrant-busybox-3",
        f"vmbench-{run}-vagrant-debian-systemd-3-2.img",  # a density instance's volume
        f"vmbench-{run}-box-busybox",
        f"vmbench-{run}-box-busybox_vagrant_box_image_0_1795745387_box.img",
        f"vmbench-{run}-box-busybox-master",  # the VirtualBox VM its clones come from
    ):
        assert run_id_of(name) == run, name
    assert run_id_of("vmbench-pool") is None and run_id_of("someone-elses-vm") is None


def test_box_url_must_be_a_file_url(tmp_path):
    path = tmp_path / "v.toml"
    path.write_text(
        '[scenario]\nname = "v"\nguests = ["busybox"]\nbackends = ["vagrant"]\n'
        '[backend.vagrant]\nbox = "bento/debian-12"\nbox_url = "https://example.org/x.box"\n'
    )
    with pytest.raises(ScenarioError, match=r"backend\.vagrant\.box_url: expected a file:// URL"):
        load(path)


def test_follow_file_sees_a_file_that_appears_and_grows(tmp_path):
    path = tmp_path / "console" / "serial.log"
    stop = threading.Event()
    watcher = ConsoleWatcher(follow_file(path, stop))
    time.sleep(0.05)
    with open(path, "ab", buffering=0) as f:
        f.write(b"booting\nVMBENCH REA")
        time.sleep(0.05)
        f.write(b"DY uptime=1.5\n")
    line = watcher.wait_for(READY, now_ns() + 5 * 10**9)
    assert line is not None and line.fields() == {"uptime": "1.5"}
    assert not watcher.ended
    stop.set()
    deadline = time.monotonic() + 5
    while not watcher.ended and time.monotonic() < deadline:
        time.sleep(0.01)
    assert watcher.ended


# --- vagrant validate ---------------------------------------------------------------------


def validate_env(tmp_path: Path, monkeypatch, provider: str, readiness: str) -> None:
    env = process_env(machine_env(settings(tmp_path, provider=provider, readiness=readiness)))
    for key in list(__import__("os").environ):
        if key.startswith(("VAGRANT_", "VMBENCH_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


@pytest.mark.integration
@pytest.mark.parametrize("boot", ["kernel", "disk"])
def test_vagrant_validate_libvirt_settings(tmp_path, monkeypatch, boot):
    import vagrant

    if shutil.which("vagrant") is None:
        engine_missing("vagrant not found")
    validate_env(tmp_path, monkeypatch, "libvirt", "serial")
    if boot == "disk":  # vagrant-libvirt validates the sysinfo block itself
        monkeypatch.setenv("VMBENCH_CMDLINE", "-")
        monkeypatch.setenv("VMBENCH_SMBIOS_SERIAL", "VMBENCH_WORKLOAD=idle")
    # python-vagrant's validate runs in our (patched) environment.
    done = vagrant.Vagrant(root=str(vagrantfile().parent)).validate(str(vagrantfile().parent))
    assert b"validated successfully" in done.stdout


STUB_VBOXMANAGE = """#!/bin/sh
# Stands in for VirtualBox's VBoxManage where VirtualBox is not installed: it answers only
# --version, which is all `vagrant validate` asks before it validates the provider's config.
[ "$1" = --version ] && echo 7.0.20r163906 && exit 0
echo "stub VBoxManage: $*" >&2
exit 1
"""


def vagrant_validate(root: Path, stub_dir: Path | None) -> subprocess.CompletedProcess:
    import os

    path = os.environ["PATH"] if stub_dir is None else f"{stub_dir}:{os.environ['PATH']}"
    return subprocess.run(
        ["vagrant", "validate"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PATH": path},
    )


@pytest.mark.integration
@pytest.mark.parametrize("readiness", ["serial", "ssh"])
def test_vagrant_validate_virtualbox_settings(tmp_path, monkeypatch, readiness):
    """The virtualbox branch, validated by Vagrant's own VirtualBox provider (customize
    events and arguments, clone settings, forwarded ports). Where VirtualBox is not
    installed a stub VBoxManage answers only ``--version`` so that Vagrant loads the
    provider; a Vagrantfile with a broken virtualbox block must then fail the same check."""
    if shutil.which("vagrant") is None:
        engine_missing("vagrant not found")
    stub = None
    if shutil.which("VBoxManage") is None:
        stub = tmp_path / "bin"
        stub.mkdir()
        (stub / "VBoxManage").write_text(STUB_VBOXMANAGE)
        (stub / "VBoxManage").chmod(0o755)
    validate_env(tmp_path, monkeypatch, "virtualbox", readiness)
    if readiness == "serial":
        monkeypatch.setenv("VMBENCH_SMBIOS_SERIAL", "VMBENCH_WORKLOAD=idle")
    done = vagrant_validate(vagrantfile().parent, stub)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validated successfully" in done.stdout
    # The same check refuses a virtualbox block Vagrant's provider cannot use.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "Vagrantfile").write_text(
        vagrantfile()
        .read_text()
        .replace("vb.cpus = cpus", 'vb.cpus = cpus\n      vb.customize "at-some-point", ["x"]')
    )
    refused = vagrant_validate(broken, stub)
    assert "at-some-point is not a valid event" in refused.stdout + refused.stderr


# --- real vagrant + libvirt -----------------------------------------------------------------


@pytest.fixture(scope="module")
def vagrant_backend():
    return usable_backend("vagrant")


def leftovers(run_id: str) -> list[str]:
    from bench.backends.vagrant.env import boxes_in, instances_dir, vagrant_home

    prefix = f"vmbench-{run_id}-"
    return (
        [f"domain {d}" for d in lv.domains(prefix)]
        + [f"volume {v}" for v in lv.volumes(prefix)]
        + [f"box {b}" for b in boxes_in(vagrant_home()) if b.startswith(prefix)]
        + [f"folder {p.name}" for p in instances_dir().glob(f"{prefix}*")]
    )


@pytest.mark.integration
def test_vagrant_up_memory_of_its_qemu_and_nothing_left(vagrant_backend, busybox_guest):
    """One idle boot: READY from the serial log, memory of the qemu libvirt runs for *this*
    domain; then a stop after vagrant lost its state (as after a kill -9 mid-run) and the
    run's cleanup leave no domain, volume, box or folder, and no libvirt network."""
    from bench.backends.base import LaunchSpec

    networks_before = set(lv.networks())
    run_id = f"test{secrets.token_hex(3)}"
    try:
        prepared = vagrant_backend.prepare(busybox_guest, {"run_id": run_id, "accel": "tcg"})
        assert prepared.timings["import_s"] > 0
        sizes = {s.metric: s.value for s in prepared.sizes}
        assert sizes["image_compressed_bytes"] < sizes["image_bytes"]
        spec = LaunchSpec(
            run_id=run_id,
            name=f"vmbench-{run_id}-vagrant-busybox-1",
            workload="idle",
            timeout_s=180,
            options={"memory_mib": 256},
        )
        instance = vagrant_backend.create(prepared, spec)
        with instance:
            start = now_ns()
            instance.start(start + 180 * 10**9)
            up_s = (now_ns() - start) / 1e9
            line = instance.console.wait_for(READY, now_ns() + 60 * 10**9)
            assert line is not None, instance.console.tail()
            assert line.fields()["kernel"] == busybox_guest.kernel.release
            # up_returned_s ends when `vagrant up` returned; start() then asks libvirt for
            # the domain's type and pid (tens of ms).
            assert up_s - 1.0 < instance.extra_timings()["up_returned_s"] <= up_s
            assert instance.accel == "tcg" and "domain_type=qemu" in instance.describe()
            # The right process: the qemu whose command line names this domain.
            theirs = [
                p.pid
                for p in psutil.process_iter(["cmdline"])
                if any(a.startswith(f"guest={spec.name},") for a in (p.info["cmdline"] or []))
            ]
            assert theirs == [instance._pid]
            memory = instance.memory()
            assert 50 * 2**20 < memory["pss_bytes"] < 1024 * 2**20
            assert memory["uss_bytes"] <= memory["rss_bytes"]
            # The domain's RAM is a memfd (the Vagrantfile's memorybacking): its qemu's PSS
            # splits into guest RAM, the TCG translation cache and the VMM, summing to it.
            parts = [
                memory[k] for k in ("vm_ram_pss_bytes", "tcg_cache_pss_bytes", "vmm_pss_bytes")
            ]
            assert min(parts) > 0 and instance.memory_note == ""
            assert abs(sum(parts) - memory["pss_bytes"]) <= 0.02 * memory["pss_bytes"]
            assert lv.domains(spec.name) == [spec.name]
            # Whose run the domain is, in its description (bench/run/liveness.py).
            assert vagrant_backend.run_owners()[run_id] == liveness.me().text()
            # The box image was uploaded during the import; vagrant up did not upload another.
            base = [v for v in lv.volumes(f"vmbench-{run_id}-") if "_vagrant_box_image_" in v]
            assert len(base) == 1, base
            # Vagrant loses track of the machine (killed mid-run): stop must still remove it.
            shutil.rmtree(spec_dir := instance.settings.workdir / ".vagrant")
            assert not spec_dir.exists()
        assert lv.domains(spec.name) == []
        assert f"{spec.name}.img" not in lv.volumes(spec.name)
    finally:
        removed = vagrant_backend.cleanup_run(run_id)
    assert any("box" in r for r in removed)
    assert leftovers(run_id) == []
    assert set(lv.networks()) == networks_before  # no libvirt network was created


@pytest.mark.integration
def test_vmbench_run_of_a_vagrant_scenario(vagrant_backend, busybox_guest, tmp_path):
    """The whole path (runner -> trial -> vagrant up/destroy): every vagrant metric is a row."""
    from bench.cli import main
    from bench.results import read_rows

    scenario = tmp_path / "vagrant-tiny.toml"
    scenario.write_text(
        '[scenario]\nname = "vagrant-tiny"\nguests = ["busybox"]\nworkloads = ["ready", "idle"]\n'
        'backends = ["vagrant"]\nrepetitions = 1\nwarmup = 0\nmemory_sample_s = 0.5\n'
        '[backend.vagrant]\nprovider = "libvirt"\naccel = "tcg"\n'
    )
    networks_before = set(lv.networks())
    code = main(["run", str(scenario), "--results-dir", str(tmp_path / "results"), "--no-report"])
    [run_dir] = list((tmp_path / "results").iterdir())
    rows, bad = read_rows(run_dir / "results.csv")
    assert code == 0, [r["detail"] for r in rows if r["status"] != "ok"]
    assert bad == []
    ok = {r["metric"]: r for r in rows if r["status"] == "ok" and r["backend"] == "vagrant"}
    for metric in ("ready_s", "up_returned_s", "exit_s", "import_s", "pss_bytes", "image_bytes"):
        assert metric in ok, f"no {metric} row"
    assert {r["accel"] for r in rows if r["backend"] == "vagrant"} == {"tcg"}
    assert "provider=libvirt" in ok["ready_s"]["detail"]
    assert "readiness=serial-marker" in ok["ready_s"]["detail"]
    assert float(ok["ready_s"]["value"]) < float(ok["exit_s"]["value"])
    assert leftovers(rows[0]["run_id"]) == []
    assert set(lv.networks()) == networks_before


@pytest.mark.integration
def test_a_trial_not_ready_in_timeout_s_is_a_timeout_and_leaves_no_domain(
    vagrant_backend, busybox_guest
):
    """busybox needs about 7 s under TCG; with timeout_s = 3 the trial (vagrant up included)
    is a timeout after about 3 s, not an ok row after vagrant's own 120 s, and stopping it
    leaves no domain or volume of it behind."""
    import platform

    from bench.backends.base import LaunchSpec
    from bench.run.trial import run_trial

    run_id = f"test{secrets.token_hex(3)}"
    name = f"vmbench-{run_id}-vagrant-busybox-1"
    try:
        prepared = vagrant_backend.prepare(
            busybox_guest, {"run_id": run_id, "accel": "tcg", "provider": "libvirt"}
        )
        spec = LaunchSpec(
            run_id=run_id, name=name, workload="ready", timeout_s=3, options={"memory_mib": 256}
        )
        started = time.monotonic()
        outcome = run_trial(vagrant_backend, prepared, spec, 0.5, platform.release())
        took_s = time.monotonic() - started
        assert outcome.status == "timeout", outcome.detail
        assert took_s < 30, f"the trial took {took_s:.1f} s"
        assert lv.domains(name) == []
        assert lv.volumes(name) == []
        from bench.backends.vagrant.env import instances_dir

        assert not (instances_dir() / name).exists()
    finally:
        vagrant_backend.cleanup_run(run_id)
    assert leftovers(run_id) == []


def start_run_until_domain(tmp_path: Path, name: str):
    """`vmbench run` of one idle vagrant trial in its own session; returns once its domain
    exists: (process, run folder)."""
    import sys

    scenario = tmp_path / f"{name}.toml"
    scenario.write_text(
        f'[scenario]\nname = "{name}"\nguests = ["busybox"]\nworkloads = ["idle"]\n'
        'backends = ["vagrant"]\nrepetitions = 1\nwarmup = 0\n'
        '[backend.vagrant]\nprovider = "libvirt"\naccel = "tcg"\n'
    )
    results = tmp_path / "results"
    argv = [sys.executable, "-m", "bench.cli", "run", str(scenario), "--results-dir", str(results)]
    proc = subprocess.Popen(
        [*argv, "--no-report"],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and any(results.iterdir()):
            [run_dir] = list(results.iterdir())
            if lv.domains(f"vmbench-{run_dir.name}-"):
                return proc, run_dir
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"no domain appeared; vmbench said: {proc.communicate()[1][-500:]}")


@pytest.mark.integration
def test_kill_9_mid_boot_then_clean_removes_the_runs_machine(
    vagrant_backend, busybox_guest, tmp_path
):
    """kill -9 leaves a domain, its volumes and the run's box; `vmbench clean --run` finds
    the run and removes them all."""
    import os
    import signal

    from bench.cli import main

    proc, run_dir = start_run_until_domain(tmp_path, "vagrant-kill")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_id = run_dir.name
    try:
        assert run_id in vagrant_backend.leftover_run_ids()
        assert leftovers(run_id), "kill -9 left nothing to clean?"
        assert main(["clean", "--run", run_id]) == 0
    finally:
        vagrant_backend.cleanup_run(run_id)
    assert leftovers(run_id) == []


@pytest.mark.integration
def test_ctrl_c_during_vagrant_up_leaves_nothing(vagrant_backend, busybox_guest, tmp_path):
    """Ctrl-C as a terminal sends it (SIGINT to the whole process group, vagrant included)
    while the domain boots: exit 130, an `interrupted` row, and no domain, volume or box."""
    import os
    import signal

    from bench.results import read_rows

    proc, run_dir = start_run_until_domain(tmp_path, "vagrant-int")
    try:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err[-500:]
    rows, _ = read_rows(run_dir / "results.csv")
    assert [r["status"] for r in rows if r["metric"] == "trial"] == ["interrupted"]
    assert leftovers(run_dir.name) == []


@pytest.mark.integration
def test_vagrant_libvirt_boots_the_boot_disk_to_ready(vagrant_backend, busybox_guest):
    """boot = "disk": no kernel or initrd in the domain, the firmware boots the guest's BIOS
    boot disk, and the workload comes through libvirt's <sysinfo> (a workload name the guest
    does not know, echoed back on its console, proves the channel)."""
    import xml.etree.ElementTree as ET

    from bench.backends.base import LaunchSpec

    run_id = f"test{secrets.token_hex(3)}"
    probe = "smbios-probe"
    try:
        prepared = vagrant_backend.prepare(
            busybox_guest, {"run_id": run_id, "accel": "tcg", "provider": "libvirt", "boot": "disk"}
        )
        disk = {s.metric: s for s in prepared.sizes}["disk_bytes"]
        assert "boot disk" in disk.detail and "kernel_bytes" not in {
            s.metric for s in prepared.sizes
        }
        spec = LaunchSpec(
            run_id=run_id,
            name=f"vmbench-{run_id}-vagrant-busybox-1",
            workload=probe,
            timeout_s=120,
            options={"memory_mib": 256},
        )
        instance = vagrant_backend.create(prepared, spec)
        with instance:
            deadline = now_ns() + 120 * 10**9
            instance.start(deadline)
            line = instance.console.wait_for(READY, deadline)
            assert line is not None, instance.console.tail()
            domain = ET.fromstring(lv.must("dumpxml", spec.name))
            assert not (domain.findtext("os/kernel") or "").strip()
            assert not (domain.findtext("os/initrd") or "").strip()
            serial = domain.find("sysinfo/system/entry[@name='serial']")
            assert serial is not None and serial.text == f"VMBENCH_WORKLOAD={probe}"
            assert instance.console.wait_for("VMBENCH DONE", deadline) is not None
            assert instance.console.results().get("workload") == probe
            assert "boot=" not in instance.describe()  # the runner writes it in every row
            assert instance.wait_exited(60)  # the guest powered off; then vagrant destroy
    finally:
        vagrant_backend.cleanup_run(run_id)
    assert leftovers(run_id) == []


# --- a box of the user's own: honest rows --------------------------------------------------

FAKE_VAGRANT = """#!/bin/sh
# Stands in for vagrant driving VirtualBox (which cannot run here): prints what `vagrant up`
# prints for a box whose SSH became reachable, and accepts destroy.
case "$1" in
  up)
    echo "Bringing machine 'default' up with 'virtualbox' provider..."
    echo "==> default: Waiting for machine to boot. This may take a few minutes..."
    sleep 0.3
    echo "==> default: Machine booted and ready!"
    ;;
esac
exit 0
"""


def launch(workload: str, timeout_s: float = 10):
    from bench.backends.base import LaunchSpec

    return LaunchSpec(
        run_id="r1", name="vmbench-r1-vagrant-busybox-1", workload=workload, timeout_s=timeout_s
    )


def users_box_prepared(guest, box: str = "bento/debian-12"):
    from bench.backends.base import Prepared
    from bench.backends.vagrant import VagrantImage

    image = VagrantImage(
        guest=guest,
        provider="virtualbox",
        provider_reason="asked for",
        box=box,
        box_url="",
        readiness="ssh",
        boot="",
        accel="virtualbox",
    )
    return Prepared(
        guest=guest,
        sizes=[],
        build_s=0.0,
        built_now=False,
        handle=image,
        accel="virtualbox",
        guest_name=box,
    )


def test_a_users_box_is_ready_at_vagrants_own_line_and_gets_no_ready_line(tmp_path, monkeypatch):
    """The harness never writes a READY line: a box of the user's own is ready when Vagrant
    printed "Machine booted and ready!" (read from vagrant's output as it is written). A
    stub `vagrant` prints that line (VirtualBox cannot run here)."""
    from bench.backends.vagrant import VAGRANT_BOOTED, VagrantBackend

    fake = tmp_path / "bin" / "vagrant"
    fake.parent.mkdir()
    fake.write_text(FAKE_VAGRANT)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("VMBENCH_CACHE", str(tmp_path / "cache"))
    backend = VagrantBackend()
    prepared = users_box_prepared(guest=None)
    with pytest.raises(BackendError, match="workloads = \\['idle'\\] only"):
        backend.create(prepared, launch("ready"))
    instance = backend.create(prepared, launch("idle"))
    assert instance.ready_marker == VAGRANT_BOOTED
    with instance:
        start = now_ns()
        instance.start(start + 10 * 10**9)
        line = instance.console.wait_for(instance.ready_marker, now_ns() + 10 * 10**9)
        assert line is not None and line.text.endswith("Machine booted and ready!")
        assert 0.3 < (line.t_ns - start) / 1e9 < instance.extra_timings()["up_returned_s"] + 0.5
        assert instance.console.wait_for(READY, now_ns()) is None  # none was written
        words = instance.describe().split()
        assert "readiness=ssh-reachable" in words and "box=bento/debian-12" in words
        assert not any(w.startswith("boot=") for w in words)


@pytest.mark.usefixtures("fake_guest")
def test_rows_of_a_users_box_name_the_box_and_resume_still_finds_them(tmp_path, monkeypatch):
    from helpers.fakes import OK_LINES, FakeBackend, run_with, scenario_file

    from bench.run.runner import finished_keys, plan, trial_key

    class UsersBox(FakeBackend):
        def prepare(self, guest, options):
            return replace_timings(users_box_prepared(guest))

    def replace_timings(prepared):
        prepared.timings["import_s"] = 2.0
        return prepared

    backends = {"docker": FakeBackend("docker", OK_LINES), "qemu": UsersBox("qemu", OK_LINES)}
    path = scenario_file(tmp_path)
    _stats, rows = run_with(tmp_path, monkeypatch, backends, path)
    box_rows = [r for r in rows if r["backend"] == "qemu"]
    assert box_rows and {r["guest"] for r in box_rows} == {"bento/debian-12"}
    assert {r["guest"] for r in rows if r["backend"] == "docker"} == {"busybox"}
    assert "rootfs_bytes" not in {r["metric"] for r in box_rows}  # not busybox's tree
    assert all("scenario_guest=busybox" in r["detail"] for r in box_rows)
    [s] = load(path)
    assert {trial_key(t) for t in plan(s)} <= finished_keys(rows)


@pytest.mark.parametrize("readiness", ["ssh-reachable", "serial-marker"])
def test_claims_compare_only_the_same_readiness(tmp_path, readiness):
    from helpers.reports import ready_rows, write_csv

    from bench.analysis.claims import evaluate
    from bench.analysis.dataset import load as load_csv

    detail = f"workload=idle provider=virtualbox readiness={readiness} box=vmbench-r-box-busybox"
    rows = ready_rows("h", "docker", [0.5, 0.6, 0.5, 0.55])
    rows += ready_rows("h", "vagrant", [30.0, 31.0, 29.5, 30.5], detail=detail)
    claims = evaluate(load_csv([write_csv(tmp_path / "results.csv", rows)]))
    speed = claims[(claims.claim == "speed") & (claims.vm == "vagrant")]
    assert len(speed) == (0 if readiness == "ssh-reachable" else 1)


@pytest.mark.usefixtures("fake_guest")
def test_one_run_prepares_a_box_per_boot_and_reuses_it_otherwise(tmp_path, monkeypatch):
    """Two scenarios booting vagrant two ways get an image each (image_options), not the
    first scenario's box for both; a scenario leaving boot at its default shares the box of
    one that names that default."""
    from helpers.fakes import OK_LINES, FakeBackend

    from bench.results import ResultWriter
    from bench.run import runner as runner_mod
    from bench.run.runner import RunConfig, Runner

    class Boxes(FakeBackend):
        image_options = ("boot",)

        def prepare(self, guest, options):
            self.prepared_for.append(options["boot"])
            return super().prepare(guest, options)

    backend = Boxes("vagrant", OK_LINES)
    backend.prepared_for = []
    files = []
    for name, boot in (("k", "kernel"), ("d", "disk"), ("k2", "kernel"), ("default", "")):
        path = tmp_path / f"{name}.toml"
        path.write_text(
            f'[scenario]\nname = "{name}"\nguests = ["busybox"]\nworkloads = ["ready"]\n'
            'backends = ["vagrant"]\nrepetitions = 1\nwarmup = 0\n'
            + (f'[backend.vagrant]\nboot = "{boot}"\n' if boot else "")
        )
        files.append(path)
    monkeypatch.setattr(runner_mod, "make_backend", lambda name: backend)
    with ResultWriter(tmp_path / "results.csv") as writer:
        Runner(RunConfig("run1", "host1"), writer).run([s for f in files for s in load(f)])
    assert backend.prepared_for == ["kernel", "disk"]


@pytest.mark.usefixtures("fake_guest")
@pytest.mark.parametrize("box", ["", "bento/debian-12"])
def test_every_vagrant_row_says_once_how_the_guest_booted(tmp_path, monkeypatch, box):
    """Build (size) rows and trial rows alike carry boot=<value> once, so charts never split
    one engine's bars; a box of the user's boots its own way, so its rows carry none."""
    from helpers.fakes import OK_LINES, FakeBackend, run_with

    path = tmp_path / "v.toml"
    path.write_text(
        '[scenario]\nname = "v"\nguests = ["busybox"]\nworkloads = ["ready"]\n'
        'backends = ["vagrant"]\nrepetitions = 1\nwarmup = 0\n'
        f'[backend.vagrant]\nboot = "disk"\nbox = "{box}"\n'
    )
    _stats, rows = run_with(
        tmp_path, monkeypatch, {"vagrant": FakeBackend("vagrant", OK_LINES)}, path
    )
    assert {r["phase"] for r in rows} >= {"build", "cold"}
    for r in rows:
        boots = [w for w in r["detail"].split() if w.startswith("boot=")]
        assert boots == ([] if box else ["boot=disk"]), r
