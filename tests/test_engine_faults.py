"""Engines that break under a run: a Docker daemon killed mid-run, a libvirtd that does not answer.

The shared Docker daemon and libvirtd are never touched. The Docker test starts a private
``dockerd`` (own socket, data-root, exec-root and so its own managed containerd) in a short
/tmp folder, points the harness at it with DOCKER_HOST, and kills it by its pid while a
container of the run is sampling memory. The libvirt test points VMBENCH_LIBVIRT_URI at a
socket that does not exist. Budget: about a minute (a few TCG boots).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from conftest import engine_missing
from helpers.harness import alive, qemu_pids, wait_until
from helpers.scenarios import write_scenario

from bench.backends.qemu import run_dir as qemu_run_dir
from bench.results import METRIC_UNITS, read_rows

pytestmark = pytest.mark.integration


class PrivateDockerd:
    """A dockerd of the test's own; everything it made lives under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen | None = None
        self.log = root / "dockerd.log"

    @property
    def host(self) -> str:
        return f"unix://{self.root}/docker.sock"

    def start(self, timeout: float = 60) -> None:
        argv = [
            "dockerd",
            "--host", self.host,
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),  # its own managed containerd lives here
            "--pidfile", str(self.root / "docker.pid"),
            "--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false",
        ]  # fmt: skip
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # a Ctrl-C of pytest reaches the finalizer, not it
            )
        wait_until(self.answers, timeout, f"the private dockerd ({self.log})", step=0.1)

    def answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"private dockerd exited: {self.log.read_text()[-2000:]}")
        try:
            with contextlib.closing(self.client(timeout=2)) as client:
                return bool(client.ping())
        except Exception:
            return False

    def client(self, timeout: float = 30):
        import docker

        return docker.DockerClient(base_url=self.host, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL, by its own pid: the daemon dies with no chance to tidy up."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # dockerd stops its containers and its containerd
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def leftover_processes(self) -> list[psutil.Process]:
        """containerd, shims and their containers: every process that names our folder,
        with its children (the container's own processes name nothing of ours)."""
        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter(["cmdline"]):
            if any(str(self.root) in part for part in proc.info["cmdline"] or []):
                found[proc.pid] = proc
                with contextlib.suppress(psutil.Error):
                    found.update({c.pid: c for c in proc.children(recursive=True)})
        return list(found.values())

    def mounts(self) -> list[str]:
        points = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == str(self.root) or point.startswith(f"{self.root}/"):
                points.append(point)
        return points

    def remove(self) -> None:
        """Whatever a test did: daemon, containerd, shims, mounts, folder; all ours."""
        self.stop()
        for proc in self.leftover_processes():
            with contextlib.suppress(psutil.Error):
                proc.kill()  # found by our folder in its arguments, killed by pid
        psutil.wait_procs(self.leftover_processes(), timeout=10)
        for point in sorted(self.mounts(), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_dockerd(request):
    if shutil.which("dockerd") is None:
        engine_missing("dockerd not installed (sudo make setup)")
    if os.geteuid() != 0:
        engine_missing("a private dockerd needs root")
    # A short path: unix socket paths under pytest's tmp_path would pass the 108-byte limit.
    daemon = PrivateDockerd(Path(tempfile.mkdtemp(prefix="vmbench-dockerd-", dir="/tmp")))
    request.addfinalizer(daemon.remove)  # also when start() or an assertion fails
    daemon.start()
    return daemon


def running_containers(client, run_id: str) -> list:
    return client.containers.list(filters={"label": f"vmbench.run={run_id}", "status": "running"})


def test_docker_daemon_dies_mid_run(
    harness,
    tmp_path,
    private_dockerd,
    qemu_backend,
    busybox_guest,
):
    scenario = write_scenario(
        tmp_path,
        "daemon-dies",
        workloads=["idle"],
        backends=["docker", "qemu"],
        repetitions=3,
        memory_sample_s=3,
    )
    results = tmp_path / "results"
    env = {"DOCKER_HOST": private_dockerd.host}
    proc = harness.start("run", str(scenario), "--no-report", env=env, results=results)
    run_id = harness.run_id(results, timeout=60)
    csv = results / run_id / "results.csv"
    client = private_dockerd.client()

    def docker_rows(status: str) -> list[dict]:
        rows, _bad = read_rows(csv) if csv.is_file() else ([], [])
        return [r for r in rows if r["backend"] == "docker" and r["status"] == status]

    wait_until(lambda: [r for r in docker_rows("ok") if r["phase"] != "build"], 120, "trial 1")
    [container] = wait_until(lambda: running_containers(client, run_id), 60, "trial 2 running")
    wait_until(lambda: b"VMBENCH READY" in container.logs(), 30, "trial 2 sampling memory")
    ours = psutil.Process(proc.pid).children(recursive=True)  # its helpers and VMs, now
    private_dockerd.kill()
    killed_at = time.monotonic()
    wait_until(lambda: docker_rows("failed"), 60, "the failed row of the trial in flight")
    noticed_s = time.monotonic() - killed_at
    code = proc.wait(120)
    log = Path(proc.log_path).read_text()
    print(f"dead daemon noticed after {noticed_s:.2f} s; run ended {time.monotonic() - killed_at:.1f} s after the kill; exit {code}")  # fmt: skip

    assert code == 1, log
    assert "Traceback" not in log, log
    # One line about docker, naming the backend, the daemon and what to do; none per trial.
    about = [ln for ln in log.splitlines() if private_dockerd.host in ln]
    assert len(about) == 1, log
    assert about[0].startswith("vmbench: backend docker stopped working:"), log
    assert "make host" in about[0] and f"vmbench clean --run {run_id}" in about[0], log
    # Each trial has its progress line (the output is not a terminal), but no failure line
    # of its own repeating why: that was said once, above.
    assert not re.search(r"docker idle #\d+: failed: ", log), log
    progress = re.findall(r"^vmbench: \d+/6 \S+ docker idle #\d+: (\w+)", log, re.M)
    assert progress.count("failed") == 2, log
    # Well under the SDK's 60 s timeout per call: the dead socket is refused at once.
    assert noticed_s < 30

    rows, bad = read_rows(csv)
    assert bad == []
    trials = {
        (r["backend"], r["trial"], r["status"])
        for r in rows
        if r["metric"] in ("pss_bytes", "trial") and r["phase"] != "build"
    }
    assert trials == {
        ("docker", "1", "ok"),
        ("docker", "2", "failed"),  # in flight when the daemon died
        ("docker", "3", "failed"),  # written without asking the dead daemon
        ("qemu", "1", "ok"),
        ("qemu", "2", "ok"),
        ("qemu", "3", "ok"),
    }
    failed = [r for r in rows if r["status"] == "failed"]
    # A failed trial's rows: its reason (metric trial) and the host's load while it ran.
    assert {r["metric"] for r in failed} - {"trial"} <= {
        m for m in METRIC_UNITS if m.startswith("host_")
    }
    for row in (r for r in failed if r["metric"] == "trial"):
        assert f"docker: the daemon at {private_dockerd.host} stopped answering" in row["detail"]
        assert "make host" in row["detail"]

    # Nothing of the run is left running: its helpers and VMs are gone...
    assert not [p.pid for p in ours if alive(p.pid)]
    assert not any(alive(pid) for pid in qemu_pids(run_id))
    assert not qemu_run_dir(run_id).exists()
    # ...but for the container the dead daemon could not remove: it is still under its shim.
    # Once the daemon is back (it stops leftovers when it starts), `vmbench clean` removes it.
    private_dockerd.start()
    cleaned = harness.run("clean", "--run", run_id, env=env)
    assert cleaned.returncode == 0, cleaned.stderr
    assert "container" in cleaned.stdout
    client = private_dockerd.client()
    assert client.containers.list(all=True, filters={"label": f"vmbench.run={run_id}"}) == []
    assert [p for p in private_dockerd.leftover_processes() if "containerd-shim" in p.name()] == []


def test_libvirtd_unreachable_skips_vagrant_others_go_on(harness, tmp_path, qemu_backend):
    if shutil.which("vagrant") is None:
        engine_missing("vagrant not installed (sudo make setup)")
    socket = tmp_path / "no-libvirtd.sock"  # nothing listens here; the shared libvirtd is left be
    uri = f"qemu+unix:///system?socket={socket}"
    scenario = write_scenario(
        tmp_path, "no-libvirt", workloads=["ready"], backends=["vagrant", "qemu"]
    )
    results = tmp_path / "results"
    started = time.monotonic()
    run = harness.run(
        "run", str(scenario), "--results-dir", str(results), "--no-report",
        env={"VMBENCH_LIBVIRT_URI": uri},
    )  # fmt: skip
    print(f"run with libvirtd unreachable: {time.monotonic() - started:.1f} s, exit {run.returncode}")  # fmt: skip
    # What this host cannot run is said, not failed: every trial that could run ended ok.
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    about = [ln for ln in run.stderr.splitlines() if str(socket) in ln]
    assert len(about) == 1, run.stderr
    assert about[0].startswith("vmbench: backend vagrant skipped:"), run.stderr
    assert f"libvirtd does not answer at {uri}" in about[0], run.stderr
    assert "make host" in about[0], run.stderr
    run_id = harness.run_id(results)
    rows, bad = read_rows(results / run_id / "results.csv")
    assert bad == []
    outcomes = {(r["backend"], r["status"]) for r in rows if r["metric"] in ("ready_s", "trial")}
    assert outcomes == {("qemu", "ok"), ("vagrant", "unsupported")}
    assert not any(alive(pid) for pid in qemu_pids(run_id))


def test_vagrant_health_names_libvirtd_and_the_fix(tmp_path, monkeypatch):
    """The check the runner makes after a failed vagrant trial: real virsh, a dead socket."""
    if shutil.which("virsh") is None:
        engine_missing("virsh not installed (sudo make setup)")
    from bench.backends.vagrant import VagrantBackend, libvirt

    if not libvirt.daemon_version().ok:
        engine_missing("libvirtd does not answer (sudo make setup)")
    backend = VagrantBackend()
    backend._checks["libvirt"] = (True, "answered when the run began")
    uri = f"qemu+unix:///system?socket={tmp_path / 'gone.sock'}"
    monkeypatch.setenv("VMBENCH_LIBVIRT_URI", uri)
    line = backend.health()
    assert line.startswith(f"vagrant: libvirtd stopped answering at {uri}")
    assert "make host" in line
    monkeypatch.delenv("VMBENCH_LIBVIRT_URI")
    assert backend.health() == ""  # the shared libvirtd answers
