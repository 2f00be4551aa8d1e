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

from bench.backends import BackendError
from bench.backends import libvirt as lv
from bench.backends.vagrant import (
    MachineSettings,
    detect_provider,
    find_vbox_headless,
    machine_env,
    process_env,
    run_id_of,
    vagrantfile,
)
from bench.measure import READY, ConsoleWatcher, follow_file, now_ns
from bench.scenario import ScenarioError, load


def works(why: str = "fine"):
    return lambda: (True, why)


def broken(why: str):
    return lambda: (False, why)


# --- provider detection -------------------------------------------------------------------


def test_auto_picks_virtualbox_for_a_named_box():
    choice = detect_provider("auto", False, works("VirtualBox 7.0"), works())
    assert choice.provider == "virtualbox"
    assert "auto-detected" in choice.reason and "VirtualBox 7.0" in choice.reason


def test_auto_picks_libvirt_for_a_vmbench_guest_even_with_virtualbox_present():
    choice = detect_provider("auto", True, works(), works("QEMU 7.2"))
    assert choice.provider == "libvirt" and "QEMU 7.2" in choice.reason


def test_virtualbox_cannot_boot_a_vmbench_guest():
    with pytest.raises(BackendError, match="name a box"):
        detect_provider("virtualbox", True, works(), works())


def test_a_named_box_on_libvirt_is_refused_no_management_network():
    with pytest.raises(BackendError, match="management network"):
        detect_provider("libvirt", False, works(), works())


def test_the_fitting_provider_missing_says_why():
    with pytest.raises(BackendError, match="virtualbox is not usable here: VBoxManage not found"):
        detect_provider("auto", False, broken("VBoxManage not found"), works())
    with pytest.raises(BackendError, match="libvirt is not usable here: libvirtd down"):
        detect_provider("libvirt", True, works(), broken("libvirtd down"))


def test_unknown_provider_name():
    with pytest.raises(BackendError, match="unknown provider 'vbox'"):
        detect_provider("vbox", True, works(), works())


# --- what the Vagrantfile is told -----------------------------------------------------------


def settings(tmp_path: Path, **changes) -> MachineSettings:
    base = dict(
        name="vmbench-r1-vagrant-busybox-1",
        provider="libvirt",
        box="vmbench-r1-box-busybox",
        box_url="file:///cache/boxes/vmbench-busybox.box",
        memory_mib=192,
        cpus=2,
        serial_log=tmp_path / "serial.log",
        readiness="serial",
        boot_timeout_s=90,
        workdir=tmp_path,
        cmdline="console=ttyS0 quiet VMBENCH_WORKLOAD=idle",
        vagrant_home=tmp_path / "vagrant.d",
    )
    base.update(changes)
    return MachineSettings(**base)


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
def test_vagrant_validate_libvirt_settings(tmp_path, monkeypatch):
    import vagrant

    if shutil.which("vagrant") is None:
        engine_missing("vagrant not found")
    validate_env(tmp_path, monkeypatch, "libvirt", "serial")
    # python-vagrant's validate runs in our (patched) environment.
    done = vagrant.Vagrant(root=str(vagrantfile().parent)).validate(str(vagrantfile().parent))
    assert b"validated successfully" in done.stdout


@pytest.mark.integration
def test_vagrant_validate_virtualbox_settings(tmp_path, monkeypatch):
    """With VirtualBox installed, the full check; without it Vagrant refuses to load the
    provider, so only the provider-independent settings are checked (--ignore-provider)."""
    if shutil.which("vagrant") is None:
        engine_missing("vagrant not found")
    validate_env(tmp_path, monkeypatch, "virtualbox", "ssh")
    argv = ["vagrant", "validate"]
    if shutil.which("VBoxManage") is None:
        argv.append("--ignore-provider")
    done = subprocess.run(
        argv, cwd=vagrantfile().parent, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validated successfully" in done.stdout


# --- real vagrant + libvirt -----------------------------------------------------------------


@pytest.fixture(scope="module")
def vagrant_backend():
    return usable_backend("vagrant")


def leftovers(run_id: str) -> list[str]:
    from bench.backends.vagrant import _boxes_in, instances_dir, vagrant_home

    prefix = f"vmbench-{run_id}-"
    return (
        [f"domain {d}" for d in lv.domains(prefix)]
        + [f"volume {v}" for v in lv.volumes(prefix)]
        + [f"box {b}" for b in _boxes_in(vagrant_home()) if b.startswith(prefix)]
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
            run_id, f"vmbench-{run_id}-vagrant-busybox-1", "idle", {"memory_mib": 256}
        )
        instance = vagrant_backend.create(prepared, spec)
        with instance:
            start = now_ns()
            instance.start()
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
            assert lv.domains(spec.name) == [spec.name]
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
