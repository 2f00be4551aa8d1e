"""vmbench fleet: the real playbook over real SSH, on loopback only.

The test starts its own sshd (127.0.0.1, a free port, throwaway host and client keys, its own
config) and stops it by pid; the system's sshd, if any, is never touched. The inventory has
two good hosts (both 127.0.0.1, each with its own host id and remote folder) and one bad one
(127.0.0.1 on a closed port). The good hosts run the busybox scenario on docker, --quick.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from conftest import engine_missing, usable_backend
from helpers.reports import full_host, host_meta, write_csv

from bench.analysis.model import analyse
from bench.cli import fleet, fleet_outcome
from bench.render.compare import write_comparison
from bench.run import host

SSHD = "/usr/sbin/sshd"
BENCH_ARGS = "--quick --backends docker"
SCENARIO = "scenarios/busybox.toml"
VMBENCH = str(Path(sys.executable).parent / "vmbench")  # the console script users run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _closed_port() -> int:
    port = _free_port()  # nothing listens there once the probe socket is closed
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))
    return port


@dataclass
class Sshd:
    proc: subprocess.Popen
    port: int
    client_key: Path
    known_hosts: Path

    def drop_connections(self) -> int:
        """Kill the per-connection sshd processes (children of ours): every SSH session drops."""
        children = psutil.Process(self.proc.pid).children()
        for child in children:
            child.kill()
        return len(children)

    def stop(self) -> None:
        with _suppress_gone():
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                child.kill()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _suppress_gone:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, value, tb) -> bool:
        return kind is not None and issubclass(kind, psutil.Error)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    if not Path(SSHD).is_file():
        engine_missing(f"{SSHD} not found: apt-get install openssh-server (make test does)")
    if os.geteuid() != 0:  # sshd needs root for its privilege separation; make bench too here
        engine_missing("the loopback sshd runs as root and lets root in: run the tests as root")
    usable_backend("docker")
    fleet.ansible_tool("ansible-playbook")
    d = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True
        )
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        # pytest's folders sit under /tmp (mode 1777), which StrictModes refuses.
        "StrictModes no\nPidFile none\nSubsystem sftp internal-sftp\n"
    )
    host_key = (d / "host_key.pub").read_text().split()[:2]
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_key)}\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
        stdout=subprocess.DEVNULL,
        stderr=open(d / "sshd.log", "w"),  # noqa: SIM115 (closed with the process)
    )
    server = Sshd(proc, port, d / "client_key", d / "known_hosts")
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"sshd did not start: {(d / 'sshd.log').read_text()}")
                time.sleep(0.1)
        yield server
    finally:
        server.stop()


def write_inventory(path: Path, sshd: Sshd, hosts: dict[str, dict]) -> Path:
    """A YAML inventory (JSON is YAML) that names the user and the key, as labs do."""
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    inventory = {
        "all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(sshd.client_key),
                "ansible_ssh_common_args": f"-o UserKnownHostsFile={sshd.known_hosts} "
                "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
                "ansible_python_interpreter": python,
                "vmbench_poll_s": 5,
            },
            "hosts": hosts,
        }
    }
    path.write_text(json.dumps(inventory, indent=2))
    return path


def vmbench_fleet(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [VMBENCH, "fleet", *args],
        cwd=fleet.CHECKOUT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class FleetRun:
    done: subprocess.CompletedProcess
    out: Path
    inventory: Path
    remote: dict[str, Path]
    dropped: int
    seconds: float


@pytest.fixture(scope="module")
def fleet_run(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> FleetRun:
    d = tmp_path_factory.mktemp("fleet")
    remote = {"lab-a": d / "remote-a", "lab-b": d / "remote-b"}
    remote["lab-b"].mkdir()  # a folder of the user's: the fleet works inside, never removes it
    (remote["lab-b"] / "keep.txt").write_text("the user's own file\n")
    inventory = write_inventory(
        d / "lab.yml",
        sshd,
        {
            "lab-a": {"ansible_host": "127.0.0.1", "ansible_port": sshd.port,
                      "vmbench_remote_dir": str(remote["lab-a"])},
            "lab-b": {"ansible_host": "127.0.0.1", "ansible_port": sshd.port,
                      "vmbench_remote_dir": str(remote["lab-b"])},
            "lab-c": {"ansible_host": "127.0.0.1", "ansible_port": _closed_port()},
        },
    )  # fmt: skip
    dropped: list[int] = []
    stop = threading.Event()

    def drop_once_the_suite_runs() -> None:
        # Once lab-a's suite has started (its results folder exists), every SSH session drops:
        # the run is async on the host and the poll reconnects.
        while not stop.wait(0.2):
            if list(remote["lab-a"].glob("fleet-*/src/results/*")):
                dropped.append(sshd.drop_connections())
                return

    watcher = threading.Thread(target=drop_once_the_suite_runs, daemon=True)
    watcher.start()
    started = time.monotonic()
    try:
        done = vmbench_fleet(
            str(inventory),
            "--scenario",
            SCENARIO,
            "--bench-args",
            BENCH_ARGS,
            "--out",
            str(d / "out"),
        )
    finally:
        stop.set()
        watcher.join()
    seconds = time.monotonic() - started
    print(f"\nvmbench fleet over 3 hosts took {seconds:.0f} s\n{done.stderr[-3000:]}")
    return FleetRun(done, d / "out", inventory, remote, sum(dropped), seconds)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.integration
def test_fleet_fetches_both_good_hosts_with_their_host_ids(fleet_run: FleetRun) -> None:
    for name in ("lab-a", "lab-b"):
        rows = _rows(fleet_run.out / name / "results.csv")
        assert {r["host_id"] for r in rows} == {name}
        ready = [r for r in rows if r["metric"] == "ready_s" and r["status"] == "ok"]
        assert ready and {r["backend"] for r in ready} == {"docker"}
        assert (fleet_run.out / name / "host.json").is_file()
        assert json.loads((fleet_run.out / name / "fleet-host.json").read_text())["status"] == "ok"
        # make bench's output is no terminal there: its log has a progress line per trial.
        log = (fleet_run.out / name / "bench.log").read_text()
        progress = re.findall(r"^vmbench: (\d+)/(\d+) busybox/busybox docker ", log, re.MULTILINE)
        trials = {(r["backend"], r["trial"]) for r in rows if r["phase"] not in ("build",)}
        assert [int(done) for done, _ in progress] == list(range(1, len(trials) + 1)), log
    assert fleet_run.dropped >= 1, "the SSH sessions were never dropped mid-run"


@pytest.mark.integration
def test_fleet_compares_the_good_hosts_and_lists_the_bad_one(fleet_run: FleetRun) -> None:
    md = (fleet_run.out / "compare" / "compare.md").read_text()
    assert "lab-a" in md and "lab-b" in md
    missing = md.split("## Hosts without results", 1)[1].split("##", 1)[0]
    assert "`lab-c`" in missing and "Connection refused" in missing
    assert "lab-a" not in missing and "lab-b" not in missing


@pytest.mark.integration
def test_fleet_names_the_bad_host_and_exits_1(fleet_run: FleetRun) -> None:
    assert fleet_run.done.returncode == 1, fleet_run.done.stderr[-2000:]
    lines = [line for line in fleet_run.done.stderr.splitlines() if "lab-c" in line]
    assert any(
        line.startswith("vmbench fleet: lab-c: FAILED: unreachable")
        and "Connection refused" in line
        for line in lines
    ), lines
    assert "vmbench fleet: 2 of 3 host(s) gave results" in fleet_run.done.stderr


@pytest.mark.integration
def test_fleet_removes_only_the_remote_folders_it_made(fleet_run: FleetRun) -> None:
    assert not fleet_run.remote["lab-a"].exists()  # made by the playbook, so removed
    left = sorted(p.name for p in fleet_run.remote["lab-b"].iterdir())
    assert left == ["keep.txt"]  # the user's folder stays, with only the user's file


@pytest.mark.integration
def test_resume_runs_nothing_on_the_good_hosts(fleet_run: FleetRun) -> None:
    before = {
        name: (fleet_run.out / name / "results.csv").stat().st_mtime_ns
        for name in ("lab-a", "lab-b")
    }
    done = vmbench_fleet(str(fleet_run.inventory), "--resume", str(fleet_run.out))
    assert done.returncode == 1
    assert "1 host(s) to run (2 have results already): lab-c" in done.stderr
    assert "[lab-a]" not in done.stdout and "[lab-b]" not in done.stdout  # not in the play
    assert "[lab-c]" in done.stdout
    for name, mtime in before.items():
        assert (fleet_run.out / name / "results.csv").stat().st_mtime_ns == mtime
    assert not list(fleet_run.remote["lab-b"].glob("fleet-*"))


@pytest.mark.integration
def test_ctrl_c_stops_the_remote_run_and_removes_its_folder(sshd: Sshd, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    inventory = write_inventory(
        tmp_path / "one.yml",
        sshd,
        {"lab-a": {"ansible_host": "127.0.0.1", "ansible_port": sshd.port,
                   "vmbench_remote_dir": str(remote)}},
    )  # fmt: skip
    proc = subprocess.Popen(
        [VMBENCH, "fleet", str(inventory), "--scenario", SCENARIO,
         "--bench-args", BENCH_ARGS, "--out", str(tmp_path / "out")],
        cwd=fleet.CHECKOUT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        job = _wait_for_job(remote, proc)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted; the remote runs were stopped" in err
    assert not job.is_running() or job.status() == psutil.STATUS_ZOMBIE
    assert not remote.exists()


def _wait_for_job(remote: Path, proc: subprocess.Popen) -> psutil.Process:
    """The remote job (timeout -> make) once it runs, read from the pid file it writes."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        for pidfile in remote.glob("fleet-*/job.pid"):
            text = pidfile.read_text().strip()
            if text:
                job = psutil.Process(int(text))
                if str(pidfile.parent) in " ".join(job.cmdline()):
                    return job
        time.sleep(0.2)
    pytest.fail("the remote job never started")


# Bad input: one line, exit 2, nothing started (no output folder).


@pytest.fixture
def ansible_present() -> None:
    try:
        fleet.ansible_tool("ansible-inventory")
    except Exception as e:
        engine_missing(str(e))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all:\n  hosts:\n    a: {ansible_host: [\n", "not a valid Ansible inventory: yaml"),
        ("[lab\nfoo bar=\n", "not a valid Ansible inventory: ini"),
        ("all:\n  hosts: {}\n", "the inventory names no host"),
        ("[lab]\ncompare ansible_host=10.0.0.1\n", "host 'compare'"),
    ],
    ids=["malformed-yaml", "malformed-ini", "no-hosts", "host-named-compare"],
)
def test_bad_inventory_is_one_line_and_exit_2(
    ansible_present: None, tmp_path: Path, text: str, expected: str
) -> None:
    suffix = ".ini" if text.startswith("[") else ".yml"
    inventory = tmp_path / f"lab{suffix}"
    inventory.write_text(text)
    done = vmbench_fleet(str(inventory), "--out", str(tmp_path / "out"), timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(inventory) in lines[0] and expected in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_missing_inventory_is_one_line_and_exit_2(ansible_present: None, tmp_path: Path) -> None:
    done = vmbench_fleet(str(tmp_path / "nope.ini"), "--out", str(tmp_path / "out"), timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"vmbench: {tmp_path / 'nope.ini'}: no such inventory file"
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--bench-args", "--backends nosuch"], "unknown backend 'nosuch'"),
        (["--bench-args", "--results-dir /tmp/x"], "--results-dir is not allowed"),
        (["--bench-args", "--results-d /tmp/x"], "--results-dir is not allowed"),
        (["--bench-args", "--resum 20261127T000000Z-h-abcd"], "--resume is not allowed"),
        (["--bench-args", "scenarios/busybox.toml"], "scenario files go in --scenario"),
        (["--scenario", "/etc/hostname"], "/etc/hostname"),
    ],
    ids=[
        "unknown-backend",
        "results-dir",
        "results-dir-abbreviated",
        "resume-abbreviated",
        "positional",
        "scenario-outside",
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    ansible_present: None, tmp_path: Path, args: list[str], expected: str
) -> None:
    inventory = tmp_path / "lab.ini"
    inventory.write_text("lab-a ansible_host=127.0.0.1\n")
    done = vmbench_fleet(str(inventory), *args, "--out", str(tmp_path / "out"), timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_resume_refuses_other_options_and_a_folder_that_is_no_fleet(
    ansible_present: None, tmp_path: Path
) -> None:
    inventory = tmp_path / "lab.ini"
    inventory.write_text("lab-a ansible_host=127.0.0.1\n")
    fleet_dir = tmp_path / "fleet-x"
    fleet_dir.mkdir()
    record = {"scenario": SCENARIO, "bench_args": "--quick", "commit": "0" * 40}
    (fleet_dir / "fleet.json").write_text(json.dumps(record))
    cases = [
        (["--resume", str(fleet_dir), "--bench-args", "--quick --backends docker"],
         "it was started with --bench-args '--quick'"),
        (["--resume", str(tmp_path)], "no fleet.json (not a fleet folder)"),
        (["--resume", str(fleet_dir), "--out", str(tmp_path / "o")], "give no --out with it"),
        (["--out", str(inventory)], "exists and is not an empty folder"),
    ]  # fmt: skip
    for args, expected in cases:
        done = vmbench_fleet(str(inventory), *args, timeout=60)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and expected in lines[0], (args, lines)
    assert sorted(p.name for p in fleet_dir.iterdir()) == ["fleet.json"]  # nothing started


def test_host_id_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(host.HOST_ID_ENV, "lab-07.example.org")
    assert host.host_id() == "lab-07.example.org"
    assert host.collect()["host_id"] == "lab-07.example.org"
    monkeypatch.delenv(host.HOST_ID_ENV)
    assert host.host_id() != "lab-07.example.org"


@pytest.mark.parametrize("bad", ["", "lab 3", "a/b", "../x", "-lead"])
def test_a_bad_host_id_refuses_the_run(tmp_path: Path, bad: str) -> None:
    env = os.environ | {host.HOST_ID_ENV: bad}
    done = subprocess.run(
        [VMBENCH, "run", SCENARIO, "--results-dir", str(tmp_path)],
        cwd=fleet.CHECKOUT, capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "VMBENCH_HOST_ID" in lines[0], lines
    assert not list(tmp_path.iterdir())


def test_compare_lists_hosts_without_results(tmp_path: Path) -> None:
    # Container-only hosts, as a `--backends docker` fleet run gives: no claim has a ratio.
    csv_a = write_csv(
        tmp_path / "a" / "results.csv", full_host("lab-a", vms=()), host_meta("lab-a")
    )
    csv_b = write_csv(
        tmp_path / "b" / "results.csv", full_host("lab-b", vms=(), seed=2), host_meta("lab-b")
    )
    write_comparison(
        analyse([csv_a, csv_b]),
        tmp_path / "cmp",
        missing_hosts={"lab-c": "unreachable: Connection refused", "lab-d": "set-up failed"},
    )
    md = (tmp_path / "cmp" / "compare.md").read_text()
    section = md.split("## Hosts without results", 1)[1].split("\n## ", 1)[0]
    assert "- `lab-c`: unreachable: Connection refused" in section
    assert "- `lab-d`: set-up failed" in section
    assert "lab-a" not in section
    write_comparison(analyse([csv_a, csv_b]), tmp_path / "plain")
    assert "Hosts without results" not in (tmp_path / "plain" / "compare.md").read_text()


# --- a remote Python that cannot run Ansible's modules ------------------------------------

# What a pyenv shim prints when the version it stands for is not installed (seen on this
# project's machines, where root's PATH starts with pyenv's shims).
PYENV_SHIM = """#!/bin/sh
echo "pyenv: $(basename "$0"): command not found" >&2
echo >&2
echo "The \\`$(basename "$0")' command exists in these Python versions:" >&2
echo "  3.13.0" >&2
exit 127
"""
# fleet-host.json of such a host, as fleet/bench.yml's rescue wrote it: Ansible's own words
# (ansible-core 2.19; 2.16-2.18 said "MODULE FAILURE See stdout/stderr for the exact error").
SHIM_RECORD = {
    "host": "lab-07",
    "status": "failed",
    "reason": "Module result deserialization failed: No start of json char found",
    "interpreter": "/root/.pyenv/shims/python3.13",
    "module_stderr": "pyenv: python3.13: command not found\n\nThe `python3.13' command exists "
    "in these Python versions:\n  3.13.0\n\nNote: See 'pyenv help global' for tips on "
    "allowing multiple\n      Python versions to be found at the same time.\n",
}


@pytest.mark.parametrize(
    "reason",
    [SHIM_RECORD["reason"], "MODULE FAILURE See stdout/stderr for the exact error"],
)
def test_a_broken_remote_python_is_named_with_its_fix(tmp_path: Path, reason: str) -> None:
    (tmp_path / "lab-07").mkdir()
    record = {**SHIM_RECORD, "reason": reason}
    (tmp_path / "lab-07" / fleet_outcome.HOST_RECORD).write_text(json.dumps(record))
    outcome = fleet_outcome.host_outcome(tmp_path, "lab-07")
    assert outcome.status == "failed"
    assert outcome.line == (
        "lab-07: FAILED: the remote Python /root/.pyenv/shims/python3.13 cannot run Ansible's "
        "modules (it printed 'pyenv: python3.13: command not found'; Ansible: "
        f"{reason}); fix: set ansible_python_interpreter=/usr/bin/python3 for this host in "
        "the inventory"
    )
    # Any other failure keeps Ansible's reason as it was, with no fix invented for it.
    other = {**SHIM_RECORD, "reason": "set-up failed (make setup exited 2): no space left"}
    (tmp_path / "lab-07" / fleet_outcome.HOST_RECORD).write_text(json.dumps(other))
    line = fleet_outcome.host_outcome(tmp_path, "lab-07").line
    assert line == "lab-07: FAILED: set-up failed (make setup exited 2): no space left"


@pytest.mark.integration
def test_the_fleet_names_a_shim_that_interpreter_discovery_picked(
    ansible_present: None, tmp_path: Path
) -> None:
    """The real playbook on a host (local connection: no sshd, no suite) whose PATH starts
    with a broken python3.13, the first name Ansible's interpreter discovery tries."""
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "python3.13").write_text(PYENV_SHIM)
    (shims / "python3.13").chmod(0o755)
    inventory = tmp_path / "lab.ini"
    inventory.write_text("lab-shim ansible_connection=local\n")
    out = tmp_path / "out"
    done = subprocess.run(
        [VMBENCH, "fleet", str(inventory), "--scenario", SCENARIO, "--out", str(out)],
        cwd=fleet.CHECKOUT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=os.environ | {"PATH": f"{shims}:{os.environ['PATH']}"},
    )
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    [line] = [line for line in done.stderr.splitlines() if "lab-shim: FAILED" in line]
    assert line.startswith(
        f"vmbench fleet: lab-shim: FAILED: the remote Python {shims / 'python3.13'} cannot run "
        "Ansible's modules (it printed 'pyenv: python3.13: command not found'; Ansible: "
    ), line
    assert line.endswith(
        "fix: set ansible_python_interpreter=/usr/bin/python3 for this host in the inventory"
    )
    record = json.loads((out / "lab-shim" / fleet_outcome.HOST_RECORD).read_text())
    assert record["interpreter"] == str(shims / "python3.13")
    assert not (out / "lab-shim" / "results.csv").exists()
