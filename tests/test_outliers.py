"""Outliers (modified z), drift (Mann-Kendall) and busy-host trials on synthetic samples."""

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from bench.analysis import outliers
from bench.results import COLUMNS


def rows_of(values, backend="docker", metric="ready_s", other_pct=None, start_minute=0):
    """One warm trial per value, a minute apart, with host_other_cpu_pct rows if given."""
    rows = []
    for k, value in enumerate(values):
        base = dict.fromkeys(COLUMNS, "")
        base |= {
            "run_id": "r1",
            "host_id": "h1",
            "scenario": "s",
            "guest": "busybox",
            "backend": backend,
            "accel": "none",
            "instances": 1,
            "trial": k + 1,
            "phase": "warm",
            "status": "ok",
            "started_at": f"2026-12-03T14:{start_minute + k:02d}:00+00:00",
        }
        rows.append(base | {"metric": metric, "value": value})
        if other_pct is not None:
            rows.append(base | {"metric": "host_other_cpu_pct", "value": other_pct[k]})
            rows.append(base | {"metric": "host_load_1m", "value": other_pct[k] / 40})
    return pd.DataFrame(rows).astype({"value": float})


def test_modified_z_flags_the_known_outliers_and_nothing_else():
    rng = np.random.default_rng(1)
    quiet = list(1.0 + rng.normal(0, 0.01, 20))
    values = [*quiet[:7], 1.5, *quiet[7:15], 0.6, *quiet[15:]]
    found = outliers.outliers(rows_of(values))
    assert sorted(found.trial) == [8, 17]
    assert (found.z.abs() > 3.5).all()
    assert found.set_index("trial").z[8] > 0 > found.set_index("trial").z[17]
    assert outliers.outliers(rows_of(quiet)).empty


def test_modified_z_with_zero_mad_uses_the_mean_absolute_deviation():
    z = outliers.modified_z([1.0, 1.0, 1.0, 1.0, 1.0, 2.0])
    assert z[-1] > 3.5 and np.all(z[:-1] == 0)
    assert np.all(outliers.modified_z([3.0] * 6) == 0)


def test_a_trend_over_the_run_is_named_and_a_shuffled_one_is_not():
    rising = [1.0 + 0.05 * k for k in range(10)]
    [trend] = outliers.trends(rows_of(rising))
    assert trend.tau == pytest.approx(1.0) and trend.p < 0.01 and trend.n == 10
    line = [w for w in outliers.warnings(rows_of(rising)) if w.startswith("drift:")]
    assert len(line) == 1 and "rises" in line[0] and "14:00:00 UTC .. 14:09:00 UTC" in line[0]
    shuffled = [rising[k] for k in (3, 8, 0, 6, 1, 9, 4, 2, 7, 5)]
    assert outliers.trends(rows_of(shuffled)) == []


def test_warnings_name_the_trial_when_it_ran_and_how_busy_the_host_was():
    values = [1.0, 1.01, 0.99, 1.0, 1.02, 2.5, 1.0, 0.98]
    other = [5, 4, 6, 5, 5, 80, 6, 5]
    rows = rows_of(values, other_pct=other)
    said = outliers.warnings(rows)
    [outlier] = [w for w in said if w.startswith("outlier")]
    assert "trial 6 at 14:05:00 UTC" in outlier and "2.50 s" in outlier
    assert "load 2.00, other processes 80 % of the CPU (busy)" in outlier
    [busy] = [w for w in said if w.startswith("busy host")]
    assert "1 of 8 trials" in busy and "s/busybox docker #6 (80 %)" in busy
    assert "1 of the 8 trials" in outliers.busy_caveat(rows)
    assert outliers.busy_caveat(rows_of(values, other_pct=[5] * 8)) == ""
    assert outliers.busy_caveat(rows_of(values)) == ""  # an older CSV: nothing recorded


def test_the_report_names_busy_trials_in_a_verdicts_caveat_and_says_why_groups_stopped(
    tmp_path,
):
    """A real report: the speed verdict rests on trials some of which ran on a busy host,
    its caveat says so; the Repetitions section gives each group's reason to stop."""
    from helpers.reports import full_host, row, write_csv

    from bench.analysis.model import analyse
    from bench.render.report import write_report

    rows = full_host("h")
    trials = sorted({(r.backend, r.trial) for r in rows if r.metric == "ready_s"})
    for backend, trial in trials:
        busy = backend == "qemu" and trial < 3  # three of the VM's trials
        rows.append(row("h", backend, "host_other_cpu_pct", 70.0 if busy else 5.0, trial=trial))
        rows.append(row("h", backend, "host_load_1m", 2.5 if busy else 0.2, trial=trial))
    stop = "workload=idle stopped=budget-over target_ci_pct=5 ci_pct=ready_s:7.5,pss_bytes:0.0"
    rows.append(row("h", "qemu", "repetitions", 10.0, detail=stop))
    rows.append(
        row("h", "docker", "repetitions", 6.0, detail=stop.replace("budget-over", "target-reached"))
    )
    a = analyse([write_csv(tmp_path / "results.csv", rows)])
    [speed] = a.claims[(a.claims.claim == "speed") & (a.claims.vm == "qemu")].itertuples()
    assert "3 of the 20 trials behind this interval ran on a busy host" in speed.caveat
    report = write_report(a, tmp_path / "report").report_path.read_text()
    assert "## Repetitions" in report
    [qemu] = [line for line in report.splitlines() if "| qemu |" in line and "budget" in line]
    assert "time budget over" in qemu and "ready_s ±7.5 %" in qemu and "| 10 |" in qemu
    assert any("target reached" in line for line in report.splitlines() if "| docker |" in line)
    assert "- busy host: 3 of 24 trials ran while other processes used 25 % of the CPU" in report


def test_a_failed_trial_with_host_rows_counts_once_with_its_reason(tmp_path):
    """A trial that timed out after its READY still counts as one trial that gave no number,
    its example the reason, not one of its measurements or the host's load."""
    from helpers.reports import full_host, row, write_csv

    from bench.analysis.model import analyse

    late = dict(status="timeout", trial=99)
    rows = [
        *full_host("h"),
        row("h", "qemu", "ready_s", 5.0, **late),
        row("h", "qemu", "host_other_cpu_pct", 12.0, **late),
        row("h", "qemu", "host_load_1m", 0.4, **late),
        row("h", "qemu", "trial", None, detail="workload=idle no DONE before the timeout", **late),
    ]
    rows[-3:-1] = [replace(r, detail="workload=idle over the trial's 9.1 s") for r in rows[-3:-1]]
    before = analyse([write_csv(tmp_path / "a" / "results.csv", full_host("h"))])
    a = analyse([write_csv(tmp_path / "b" / "results.csv", rows)])
    assert a.failures.trials.sum() == before.failures.trials.sum() + 1
    assert a.failures.example.str.contains("host").sum() == 0  # never a host row's detail

    def failed(analysis):
        s = analysis.summary
        return s[(s.backend == "qemu") & (s.metric == "ready_s")].n_failed.tolist()

    assert sum(failed(a)) == sum(failed(before)) + 1  # one trial, not its four rows


def test_mann_kendall_matches_the_textbook_and_scipys_kendall_tau():
    """S = 45 for 10 rising values: var 125, z = 44 / sqrt(125), p = erfc(z / sqrt 2); tau
    as scipy.stats.kendalltau gives it for values without ties."""
    from scipy import stats as sps

    tau, p = outliers.mann_kendall(list(range(10)))
    assert tau == 1.0 and p == pytest.approx(math.erfc(44 / math.sqrt(125) / math.sqrt(2)))
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = rng.normal(size=12)
        tau, p = outliers.mann_kendall(x)
        reference = sps.kendalltau(np.arange(12), x)
        assert tau == pytest.approx(reference.statistic)
        assert p == pytest.approx(reference.pvalue, abs=0.08)  # normal vs exact


def test_s_counted_as_in_a_merge_sort_equals_every_pair_counted_at_once():
    """S is counted as in a merge sort (O(n log² n)); it must be the S of all
    pairs, ties included, and tau must be scipy's tau-a for values without ties."""
    from scipy import stats as sps

    rng = np.random.default_rng(5)
    for n in (3, 8, 17, 257, 600):
        x = np.round(rng.normal(size=n) + np.linspace(0, 0.5, n), 1)  # a drift, and ties
        every_pair = int(np.triu(np.sign(x[None, :] - x[:, None]), 1).sum())
        assert outliers._kendall_s(x) == every_pair != 0
    distinct = rng.normal(size=400)
    tau, _ = outliers.mann_kendall(distinct)
    assert tau == pytest.approx(sps.kendalltau(np.arange(400), distinct).statistic)


def test_a_long_run_names_three_outliers_of_a_group_and_counts_the_rest():
    """Thousands of outliers in a long run: the three most extreme named, in run order, the
    rest one line with their number, z range and trials; four are all named."""
    values = [1.0] * 40 + [5.0, 8.0, 6.0, 7.0, 4.5, 7.5]  # outliers: trials 41..46
    lines = [w for w in outliers.warnings(rows_of(values)) if w.startswith("outlier")]
    assert [line.split(" trial ")[1].split()[0] for line in lines[:3]] == ["42", "44", "46"]
    assert len(lines) == 4 and lines[3].startswith("outlier (kept): 3 more in s/busybox docker")
    assert "(trials 41..45)" in lines[3] and "to" in lines[3]
    four = [w for w in outliers.warnings(rows_of(values[:44])) if w.startswith("outlier")]
    assert len(four) == 4 and not any("more in" in w for w in four)
    alike = [1.0] * 40 + [8.0] * 6  # the rest share one z: said once, not "6.1 to 6.1"
    z = outliers.modified_z(alike)[-1]
    same = [w for w in outliers.warnings(rows_of(alike)) if "more in" in w]
    assert len(same) == 1 and same[0].endswith(f"modified z {z:.1f} (trials 44..46)")
