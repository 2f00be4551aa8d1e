"""A run on a busy host, and a run within a time budget, on the real docker engine: the
host's load in every trial's rows, the report naming busy trials, the budget kept, and a
progress line per trial when the output is a pipe."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time

import pytest
from conftest import IN_CI
from helpers.harness import wait_until
from helpers.scenarios import write_scenario

from bench.results import read_rows

pytestmark = pytest.mark.integration

HOGS = 2 * (os.cpu_count() or 1)  # enough to keep every core busy


def trial_rows(csv, metric):
    rows, _ = read_rows(csv) if csv.is_file() else ([], [])
    return [r for r in rows if r["metric"] == metric]


def test_hogged_trials_show_the_load_and_the_report_names_them(
    harness, tmp_path, docker_backend, busybox_guest
):
    """CPU hogs this test starts (its own children, not the run's) run across the middle
    trials: their host_other_cpu_pct is well above the quiet trials', the report's Warnings
    name them as run on a busy host, and the noise check, with hogs already running when
    the run starts, names the load."""
    scenario = write_scenario(
        tmp_path, "busy", workloads=["ready"], backends=["docker"], repetitions=12, warmup=1
    )
    results = tmp_path / "results"
    hogs: list[subprocess.Popen] = []
    try:
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(HOGS)]
        # The load average follows in about a minute: wait until it says "busy".
        wait_until(lambda: os.getloadavg()[0] > (os.cpu_count() or 1) / 2, 90, "load up")
        proc = harness.start("run", str(scenario), results=results)
        run_id = harness.run_id(results)
        csv = results / run_id / "results.csv"
        wait_until(lambda: len(trial_rows(csv, "ready_s")) >= 6, 180, "6 hogged trials")
        for hog in hogs:
            hog.kill()
            hog.wait()
        quiet_from = len(trial_rows(csv, "ready_s"))
        assert proc.wait(300) == 0  # docker alone: no claim in its plan, every trial ok
    finally:
        for hog in hogs:
            if hog.poll() is None:
                hog.kill()
                hog.wait()
    log = open(proc.log_path).read()  # noqa: SIM115
    assert re.search(r"vmbench: noise: load average [\d.]+ is above half the \d+ cores", log), log

    other = {int(r["trial"]): float(r["value"]) for r in trial_rows(csv, "host_other_cpu_pct")}
    load = {int(r["trial"]): float(r["value"]) for r in trial_rows(csv, "host_load_1m")}
    assert len(other) == len(load) == 13  # every trial, the warmup too
    trials = sorted(other)
    hogged, quiet = trials[1:quiet_from], trials[quiet_from + 1 :]  # the one in flight: either
    report = (results / run_id / "report" / "report.md").read_text()
    [busy] = [line for line in report.splitlines() if line.startswith("- busy host:")]
    for t in hogged:
        assert f"busy/busybox docker #{t} (" in busy, busy

    print({t: (other[t], load[t]) for t in trials}, "hogged:", hogged)
    quiet_other = statistics.median(other[t] for t in quiet)
    if quiet_other > 70:  # other people's work fills this host: no quiet trial to compare with
        message = f"host too busy for a quiet baseline (other processes {quiet_other:.0f} %)"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    assert statistics.median(other[t] for t in hogged) > quiet_other + 25, other
    assert min(load[t] for t in hogged) > (os.cpu_count() or 1) / 2, load


def test_a_time_budget_ends_the_run_on_time_and_names_the_groups_above_target(
    harness, tmp_path, docker_backend, busybox_guest
):
    """repetitions = "auto" with a target no run reaches and a 60 s budget: the run ends
    within the budget plus one trial's timeout, says which groups are above target, writes
    why each stopped, and, its output being a pipe, prints one progress line per trial."""
    timeout_s = 30
    scenario = write_scenario(
        tmp_path,
        "budget",
        workloads=["ready"],
        backends=["docker"],
        repetitions="auto",
        warmup=0,
        timeout_s=timeout_s,
        extra="min_repetitions = 3\nmax_repetitions = 1000\ntarget_ci_pct = 0.1\n",
    )
    results = tmp_path / "results"
    started = time.monotonic()
    run = harness.run(
        "run", str(scenario), "--results-dir", str(results), "--no-report",
        "--time-budget", "60s", timeout=600,
    )  # fmt: skip
    took_s = time.monotonic() - started
    harness.run_id(results)
    print(f"60 s budget: the run took {took_s:.1f} s")
    lines = run.stderr.splitlines()
    assert took_s < 60 + timeout_s + 20, run.stderr  # + start-up, image check, summary
    assert run.returncode == 0 and "no claim could be checked" not in run.stderr  # docker alone
    assert any("time budget (1:00) is spent" in line for line in lines), run.stderr
    [above] = [line for line in lines if line.startswith("vmbench: groups above their target:")]
    assert above.startswith("vmbench: groups above their target: budget/busybox ready: docker ")
    assert "docker ready_s (±" in above and above.endswith("(budget-over)")

    [csv] = results.glob("*/results.csv")
    ready = trial_rows(csv, "ready_s")
    assert len(ready) > 3  # the budget went on past min_repetitions
    [stop] = trial_rows(csv, "repetitions")
    assert int(float(stop["value"])) == len(ready) and "stopped=budget-over" in stop["detail"]
    # A pipe, not a terminal: one progress line per trial, counting up.
    progress = [line for line in lines if re.match(r"vmbench: \d+/\d+ budget/busybox", line)]
    assert [int(line.split()[1].split("/")[0]) for line in progress] == list(
        range(1, len(ready) + 1)
    )
    assert all(re.search(r": ok in [\d.]+ s; elapsed \d+:\d\d, about", line) for line in progress)
