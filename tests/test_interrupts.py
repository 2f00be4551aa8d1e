"""Nothing leaks, nothing is lost: the real CLI in a subprocess, stopped at the worst moments.

Each test runs ``vmbench run`` on a tiny scenario written to tmp_path, interrupts or kills it
while it builds, boots or samples memory, then checks the engines: no container with the run's
label, no qemu process of the run, and a CSV that parses. Budget: about a minute in all (one
guest build from a fresh cache, a few TCG boots).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from helpers.harness import alive, containers_of, qemu_pids, wait_until
from helpers.scenarios import write_scenario

from bench.backends.qemu import run_dir as qemu_run_dir
from bench.results import read_rows

pytestmark = pytest.mark.integration


def assert_stopped_cleanly(proc, client, run_id: str, results: Path, timeout: float = 20):
    code = proc.wait(timeout)  # "within seconds"
    log = Path(proc.log_path).read_text()
    assert code == 130, log
    assert "Traceback" not in log, log
    assert containers_of(client, run_id) == []
    rows, bad = read_rows(results / run_id / "results.csv")
    assert bad == []
    return rows, log


@pytest.fixture(scope="module")
def docker_client(docker_backend):
    return docker_backend.client


def test_sigint_during_memory_sampling_keeps_finished_trials(
    harness, tmp_path, docker_client, busybox_guest
):
    scenario = write_scenario(
        tmp_path, "sampling", workloads=["ready", "idle"], backends=["docker"], memory_sample_s=60
    )
    results = tmp_path / "results"
    proc = harness.start("run", str(scenario), results=results)
    run_id = harness.run_id(results)
    csv = results / run_id / "results.csv"
    wait_until(lambda: csv.is_file() and "exit_s" in csv.read_text(), 60, "the ready trial's rows")
    container = wait_until(
        lambda: containers_of(docker_client, run_id, helpers=False), 30, "the idle container"
    )
    wait_until(lambda: b"VMBENCH READY" in container[0].logs(), 30, "READY: sampling started")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)  # an impatient second Ctrl-C must not skip the cleanup
    proc.send_signal(signal.SIGTERM)
    rows, log = assert_stopped_cleanly(proc, docker_client, run_id, results)
    by_trial = {(r["trial"], r["status"]) for r in rows if r["phase"] != "build"}
    assert ("1", "ok") in by_trial  # the finished trial is kept
    assert ("2", "interrupted") in by_trial
    assert f"--resume {run_id}" in log


def test_sigint_during_qemu_boot_leaves_no_qemu(harness, tmp_path, docker_client, qemu_backend):
    scenario = write_scenario(tmp_path, "boot", workloads=["ready"], backends=["qemu"])
    results = tmp_path / "results"
    proc = harness.start("run", str(scenario), results=results)
    run_id = harness.run_id(results)
    pids = wait_until(lambda: qemu_pids(run_id), 60, "qemu's pid file")
    assert all(alive(pid) for pid in pids)
    proc.send_signal(signal.SIGINT)
    rows, _log = assert_stopped_cleanly(proc, docker_client, run_id, results)
    assert not any(alive(pid) for pid in pids)
    assert not qemu_run_dir(run_id).exists()
    [row] = [r for r in rows if r["status"] == "interrupted"]
    assert row["backend"] == "qemu" and row["accel"] in ("kvm", "tcg")


def test_sigint_during_guest_build_leaves_no_half_build(harness, tmp_path, docker_client):
    """The one test with a fresh cache: the guest really gets built (and downloaded)."""
    cache = tmp_path / "cache"
    scenario = write_scenario(tmp_path, "build", workloads=["ready"], backends=["docker"])
    results = tmp_path / "results"
    proc = harness.start("run", str(scenario), env={"VMBENCH_CACHE": str(cache)}, results=results)
    run_id = harness.run_id(results)

    def building():
        return [p for p in cache.rglob("*") if p.name.endswith(".tmp") or ".partial-" in p.name]

    wait_until(building, 60, "a build in progress", step=0.02)
    helpers = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGINT)
    rows, _log = assert_stopped_cleanly(proc, docker_client, run_id, results)
    assert not any(alive(p.pid) for p in helpers), "apt-get/dpkg-deb/cpio left running"
    assert building() == []  # no half-built folder or half-downloaded .deb
    for folder in (cache / "guests").glob("busybox-*"):
        assert (folder / "meta.json").is_file(), f"{folder} published without finishing"
    assert [r["status"] for r in rows] == ["interrupted"]


def test_kill_9_then_clean_removes_exactly_that_run(harness, tmp_path, docker_client, qemu_backend):
    results = tmp_path / "results"
    left: dict[str, str] = {}
    for backend in ("docker", "qemu"):
        scenario = write_scenario(
            tmp_path, f"k9-{backend}", workloads=["idle"], backends=[backend], memory_sample_s=120
        )
        out = results / backend
        proc = harness.start("run", str(scenario), results=out)
        run_id = harness.run_id(out)
        if backend == "docker":
            wait_until(
                lambda r=run_id: containers_of(docker_client, r, helpers=False), 60, "the container"
            )
        else:
            wait_until(lambda r=run_id: qemu_pids(r), 60, "qemu's pid file")
        proc.kill()  # kill -9: no cleanup at all
        proc.wait(10)
        left[backend] = run_id
    [container] = containers_of(docker_client, left["docker"], helpers=False)
    [qemu_pid] = qemu_pids(left["qemu"])
    assert alive(qemu_pid)

    # Things that look like vmbench's but are not these runs': clean must not touch them.
    decoy_container = docker_client.containers.create(
        container.image.id, labels={"vmbench.run": "someone-elses-run"}, network_mode="none"
    )
    decoy_process = subprocess.Popen(["sleep", "300"])
    decoy_pidfile = qemu_run_dir(left["qemu"]) / f"vmbench-{left['qemu']}-decoy.pid"
    decoy_pidfile.write_text(f"{decoy_process.pid}\n")
    try:
        for backend, run_id in left.items():
            result = harness.run("clean", "--run", run_id)
            assert result.returncode == 0, result.stderr
            assert ("container" if backend == "docker" else "qemu pid") in result.stdout
        assert containers_of(docker_client, left["docker"]) == []
        wait_until(lambda: not alive(qemu_pid), 10, "the qemu to die")
        assert not qemu_run_dir(left["qemu"]).exists()
        decoy_container.reload()  # still there
        assert decoy_process.poll() is None  # still running: a pid file alone is not enough
    finally:
        decoy_container.remove(force=True)
        decoy_process.kill()
        decoy_process.wait()


def test_resume_adds_only_the_missing_trials(harness, tmp_path, docker_client, busybox_guest):
    scenario = write_scenario(
        tmp_path, "resume", workloads=["ready"], backends=["docker"], repetitions=3
    )
    results = tmp_path / "results"
    first = harness.run("run", str(scenario), "--results-dir", str(results), "--no-report")
    assert first.returncode == 0, first.stderr
    run_id = harness.run_id(results)
    csv = results / run_id / "results.csv"
    lines = csv.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if ",3,warm," not in ln and ",2,warm," not in ln]
    trial2 = next(ln for ln in lines if ",2,warm,ready_s," in ln)
    interrupted = trial2.replace(",ready_s,", ",trial,").replace(",ok,", ",interrupted,")
    csv.write_text("".join([*kept, interrupted, "half a line from a cra"]))  # crash leftovers
    before, _ = read_rows(csv)

    resumed = harness.run("run", "--resume", run_id, "--results-dir", str(results), "--no-report")
    assert resumed.returncode == 0, resumed.stderr
    after, bad = read_rows(csv)
    assert bad == []
    assert after[: len(before)] == before  # nothing rewritten
    added = after[len(before) :]
    assert {r["trial"] for r in added} == {"2", "3"}
    assert all(r["status"] == "ok" and r["phase"] != "build" for r in added)
    ready = [(r["trial"], r["status"]) for r in after if r["metric"] == "ready_s"]
    assert sorted(ready) == [("1", "ok"), ("2", "ok"), ("3", "ok")]

    again = harness.run("run", "--resume", run_id, "--results-dir", str(results), "--no-report")
    assert again.returncode == 0 and "0 trials still to do" in again.stderr
    assert read_rows(csv)[0] == after

    scenario.write_text(scenario.read_text().replace("repetitions = 3", "repetitions = 4"))
    changed = harness.run("run", "--resume", run_id, "--results-dir", str(results))
    assert changed.returncode == 2 and "changed or vanished" in changed.stderr


def test_engine_down_or_missing_one_line_others_go_on(
    harness, tmp_path, docker_client, qemu_backend
):
    # A Docker daemon that does not answer: qemu still runs, exit 1, one line about docker.
    scenario = write_scenario(tmp_path, "faults", workloads=["ready"], backends=["docker", "qemu"])
    results = tmp_path / "r1"
    down = harness.run(
        "run", str(scenario), "--results-dir", str(results), "--no-report",
        env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
    )  # fmt: skip
    assert down.returncode == 1, down.stderr
    lines = [
        ln for ln in down.stderr.splitlines() if ln.startswith("vmbench: backend docker skipped")
    ]
    assert len(lines) == 1 and "fix:" in lines[0], down.stderr
    harness.run_id(results)
    rows, _ = read_rows(next(results.glob("*/results.csv")))
    assert {(r["backend"], r["status"]) for r in rows if r["metric"] == "ready_s"} == {
        ("qemu", "ok")
    }

    # No qemu binary on PATH: docker still runs, exit 1, one line about qemu.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        for tool in Path(folder).glob("*") if Path(folder).is_dir() else []:
            target = bin_dir / tool.name
            if not tool.name.startswith("qemu-system") and not target.exists():
                target.symlink_to(tool)
    results = tmp_path / "r2"
    missing = harness.run(
        "run", str(scenario), "--results-dir", str(results), "--no-report",
        env={"PATH": str(bin_dir)},
    )  # fmt: skip
    assert missing.returncode == 1, missing.stderr
    lines = [
        ln for ln in missing.stderr.splitlines() if ln.startswith("vmbench: backend qemu skipped")
    ]
    assert len(lines) == 1 and "apt-get install" in lines[0], missing.stderr
    harness.run_id(results)
    rows, _ = read_rows(next(results.glob("*/results.csv")))
    assert {(r["backend"], r["status"]) for r in rows if r["metric"] == "ready_s"} == {
        ("docker", "ok")
    }


def test_two_runs_at_once_do_not_collide(harness, tmp_path, docker_client, busybox_guest):
    sentinel = tmp_path / "pwned"
    scenario = write_scenario(
        tmp_path, "twice", workloads=["ready"], backends=["docker"], repetitions=2,
        description=f"$(touch {sentinel}); `touch {sentinel}`",
    )  # fmt: skip
    outs = [tmp_path / "a", tmp_path / "b"]
    procs = [harness.start("run", str(scenario), "--no-report", results=out) for out in outs]
    codes = [p.wait(120) for p in procs]
    assert codes == [0, 0], [Path(p.log_path).read_text() for p in procs]
    ids = [harness.run_id(out) for out in outs]
    assert ids[0] != ids[1]
    for out, run_id in zip(outs, ids, strict=True):
        rows, bad = read_rows(out / run_id / "results.csv")
        assert bad == [] and {r["run_id"] for r in rows} == {run_id}
        assert sorted(r["trial"] for r in rows if r["metric"] == "ready_s") == ["1", "2"]
        assert containers_of(docker_client, run_id) == []
    assert not sentinel.exists()  # the description never reached a shell


def test_containers_and_vms_have_no_network_and_no_privileges(
    docker_backend, qemu_backend, busybox_guest
):
    from bench.backends.base import LaunchSpec

    spec = LaunchSpec(run_id=f"safety-{os.getpid()}", name=f"vmbench-safety-{os.getpid()}-1",
                      workload="ready", timeout_s=60)  # fmt: skip
    prepared = docker_backend.prepare(busybox_guest, {})
    with docker_backend.create(prepared, spec) as instance:
        instance.container.reload()
        host_config = instance.container.attrs["HostConfig"]
        assert host_config["NetworkMode"] == "none"
        assert host_config["Privileged"] is False
        assert host_config["ReadonlyRootfs"] is True
        assert not host_config.get("Binds") and not instance.container.attrs.get("Mounts")
        assert not host_config.get("CapAdd") and not host_config.get("Devices")
    assert containers_of(docker_backend.client, spec.run_id) == []

    prepared = qemu_backend.prepare(busybox_guest, {"accel": "tcg"})
    instance = qemu_backend.create(prepared, spec)
    argv = instance.argv
    instance.stop()
    assert argv[argv.index("-nic") + 1] == "none"
    assert not any(a in ("-netdev", "-net") or "virtio-net" in a or "e1000" in a for a in argv)
    assert not any("hostfwd" in a or a == "-virtfs" or "9p" in a for a in argv)
