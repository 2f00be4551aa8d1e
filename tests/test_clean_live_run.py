"""A live run is safe from every clean-up on the machine, whoever runs it (issue 21, item 11).

A real run (busybox idle on docker, then on qemu) is live under root's cache. While each of
its instances runs, ``vmbench clean`` runs under another cache (``VMBENCH_CACHE``, as a second
user has) and as another user (a throwaway user in the docker group, lab_user.py), once with
the machine-wide records of live runs and once without them (``VMBENCH_LIVE_DIR`` empty), so
that only the words on the container's labels and in the qemu's environment can save it.
Nothing of the run is removed, and its trials end ok.
"""

from __future__ import annotations

import contextlib
import csv
import grp
import os
import subprocess
import sys

import pytest
from conftest import engine_missing
from helpers.harness import REPO, containers_of, qemu_pids, wait_until
from helpers.lab_user import can_make_users, lab_venv, throwaway_user

from bench.run import liveness

pytestmark = pytest.mark.integration

SCENARIO = """\
[scenario]
name = "liveclean"
guests = ["busybox"]
workloads = ["idle"]
backends = ["docker", "qemu"]
repetitions = 1
warmup = 0
timeout_s = 300
memory_sample_s = 40.0
"""


@pytest.fixture(scope="module")
def other_user():
    if not can_make_users():
        engine_missing("a second user needs root (useradd, runuser)")
    try:
        grp.getgrnam("docker")
    except KeyError:
        engine_missing("no docker group: Docker Engine is not installed")
    with throwaway_user(lab_venv(), groups=("docker",)) as user:
        yield user


def _removed_of(text: str, run_id: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("removed") and run_id in line]


def test_a_live_run_survives_clean_under_another_cache_and_as_another_user(
    docker_backend, qemu_backend, busybox_guest, other_user, tmp_path
):
    scenario = tmp_path / "liveclean.toml"
    scenario.write_text(SCENARIO)
    results = tmp_path / "results"
    empty_live = tmp_path / "no-records"
    empty_live.mkdir()
    empty_live.chmod(0o755)  # the other user reads it and finds no record
    log = open(tmp_path / "run.log", "w")  # noqa: SIM115 (closed below)
    argv = ["run", str(scenario), "--no-report", "--results-dir", str(results)]
    run = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *argv],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    log.close()
    run_id = ""
    try:
        run_id = wait_until(
            lambda: results.is_dir() and next((p.name for p in results.iterdir()), ""), 60, "run"
        )
        other_cache = {"VMBENCH_CACHE": str(tmp_path / "other-cache")}

        def cleans() -> dict[str, subprocess.CompletedProcess]:
            """Every kind of clean that must leave the run alone, while it is live."""
            as_root = [sys.executable, "-m", "bench.cli", "clean", "--run", run_id]
            env = {**os.environ, "PYTHONPATH": str(REPO), **other_cache}
            done = {
                "root, other cache": subprocess.run(
                    as_root, env=env, capture_output=True, text=True, timeout=300
                ),
                "root, other cache, no records": subprocess.run(
                    as_root,
                    env={**env, liveness.LIVE_DIR_ENV: str(empty_live)},
                    capture_output=True,
                    text=True,
                    timeout=300,
                ),
                "other user": other_user.vmbench("clean", timeout=300),
                "other user, no records": other_user.run(
                    [str(other_user.venv / "bin" / "vmbench"), "clean", "--run", run_id],
                    env={liveness.LIVE_DIR_ENV: str(empty_live)},
                    timeout=300,
                ),
            }
            assert run.poll() is None, "the run ended before its instance was cleaned at"
            return done

        # The docker trial: its container runs.
        container = wait_until(
            lambda: next((c for c in containers_of(docker_backend.client, run_id)), None),
            240,
            "the run's container",
            step=0.2,
        )
        labels = container.labels
        owner = liveness.Owner.parse(labels[liveness.OWNER_LABEL])
        assert owner is not None and owner.uid == os.geteuid() and owner.pid == run.pid
        for who, done in cleans().items():
            said = done.stdout + done.stderr
            assert "Traceback" not in said, (who, said)
            assert _removed_of(said, run_id) == [], (who, said)
            container.reload()
            assert container.status == "running", (who, said)
            if "other user" in who:
                assert f"left alone: run {run_id} (root's) is still running" in said, (who, said)

        # The qemu trial: its process, found by root's clean through its environment alone.
        pid = wait_until(lambda: next(iter(qemu_pids(run_id)), None), 240, "the run's qemu")
        for who, done in cleans().items():
            said = done.stdout + done.stderr
            assert "Traceback" not in said, (who, said)
            assert _removed_of(said, run_id) == [], (who, said)
            assert psutil_alive(pid), (who, said)
            if who == "root, other cache, no records":
                assert f"left alone: run {run_id} (root's) is still running" in said, said

        assert run.wait(timeout=600) == 0, (tmp_path / "run.log").read_text()[-3000:]
    finally:
        if run.poll() is None:
            run.kill()  # our own child, by its pid
            run.wait(30)
        if run_id:
            from bench.run.cleanup import clean

            clean(run_id)
    rows = list(csv.DictReader((results / run_id / "results.csv").open()))
    trials = {(r["backend"], r["status"]) for r in rows if r["metric"] == "ready_s"}
    assert trials == {("docker", "ok"), ("qemu", "ok")}, trials


def psutil_alive(pid: int) -> bool:
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    return False
