"""Verdicts, summaries and the report folder, on CSV fixtures with known answers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.reports import MIB, full_host, host_meta, ready_rows, row, write_csv
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from bench.analysis.claims import CLAIMS, evaluate
from bench.analysis.dataset import ReportInputError, load
from bench.analysis.model import analyse
from bench.analysis.stats import fit_slope, median_ci, ratio_of_medians_ci
from bench.analysis.summary import summarize
from bench.render.report import write_report
from bench.render.terminal import verdict_table
from bench.results import COLUMNS


def claims_for(tmp_path: Path, rows: list) -> pd.DataFrame:
    return evaluate(load([write_csv(tmp_path / "results.csv", rows)]))


def one(claims: pd.DataFrame, claim: str, vm: str = "qemu") -> pd.Series:
    sel = claims[(claims.claim == claim) & (claims.vm == vm)]
    assert len(sel) == 1, sel
    return sel.iloc[0]


def test_clearly_apart_speed_is_supported_with_ci_above_one(tmp_path: Path) -> None:
    speed = one(claims_for(tmp_path, full_host("h")), "speed")
    assert speed.verdict == "supported"
    assert 1 < speed.ci_low <= speed.ratio <= speed.ci_high
    assert speed.ratio == pytest.approx(10, rel=0.1)
    assert (speed.n_container, speed.n_vm) == (10, 10)
    assert speed.phase == "warm"


def test_three_overlapping_samples_are_inconclusive(tmp_path: Path) -> None:
    rows = ready_rows("h", "docker", [1.0, 1.2, 1.4]) + ready_rows("h", "qemu", [1.1, 1.3, 1.5])
    speed = one(claims_for(tmp_path, rows), "speed")
    assert speed.verdict == "inconclusive"
    assert speed.ci_low < 1 < speed.ci_high


def test_slower_container_is_refuted(tmp_path: Path) -> None:
    speed = one(claims_for(tmp_path, full_host("h", container_ready=5, vm_ready=1)), "speed")
    assert speed.verdict == "refuted"
    assert speed.ci_low <= speed.ratio <= speed.ci_high < 1


def test_one_trial_per_side_gives_no_speed_verdict(tmp_path: Path) -> None:
    rows = ready_rows("h", "docker", [0.1]) + ready_rows("h", "qemu", [9.0])
    speed = one(claims_for(tmp_path, rows), "speed")
    assert speed.verdict == "inconclusive"
    assert "too few trials" in speed.caveat


def test_warm_is_never_compared_with_cold(tmp_path: Path) -> None:
    rows = ready_rows("h", "docker", [0.5, 0.6, 0.5], phase="cold")
    rows += ready_rows("h", "qemu", [5.0, 5.1, 5.2], phase="warm")
    claims = claims_for(tmp_path, rows)
    assert list(claims[claims.claim == "speed"].verdict) == ["not-measured"]


def test_size_ratio_is_exact_for_single_builds(tmp_path: Path) -> None:
    claims = claims_for(tmp_path, full_host("h"))
    size = one(claims, "size")
    assert size.verdict == "supported"
    assert size.ratio == pytest.approx(20) and size.ci_low == size.ci_high == size.ratio
    assert one(claims, "size", "vagrant").ratio == pytest.approx(200)


def test_density_slopes_and_ratio_within_tolerance(tmp_path: Path) -> None:
    density = one(claims_for(tmp_path, full_host("h")), "density")
    assert density.verdict == "supported"
    assert density.ratio == pytest.approx(250 / 3, rel=0.1)
    assert density.ci_low > 1
    assert "250." in density.evidence  # qemu's slope in MiB per instance


def test_fit_slope_recovers_known_slope() -> None:
    x = np.repeat([1, 2, 4, 8], 3)
    y = 100 + 250 * MIB * x + np.random.default_rng(0).normal(0, MIB, len(x))
    fit = fit_slope(x, y)
    assert fit is not None
    assert fit.slope == pytest.approx(250 * MIB, rel=0.01)
    assert fit.low < 250 * MIB < fit.high
    assert fit_slope([2, 2, 2], [1, 2, 3]) is None


def test_equal_density_slopes_are_not_supported(tmp_path: Path) -> None:
    rows = []
    rng = np.random.default_rng(3)
    for backend in ("docker", "qemu"):
        for k in (1, 2, 4, 8):
            v = 50 * MIB * k + rng.normal(0, 20 * MIB)
            rows.append(row("h", backend, "host_used_delta_bytes", v, instances=k))
    assert one(claims_for(tmp_path, rows), "density").verdict == "inconclusive"


def test_tcg_caveat_only_on_tcg_hosts(tmp_path: Path) -> None:
    tcg = one(claims_for(tmp_path / "t", full_host("h", accel="tcg")), "speed")
    kvm = one(claims_for(tmp_path / "k", full_host("h", accel="kvm")), "speed")
    assert "TCG" in tcg.caveat and tcg.accel == "tcg"
    assert "TCG" not in kvm.caveat and kvm.accel == "kvm"


def test_kernel_and_compat_facts(tmp_path: Path) -> None:
    claims = claims_for(tmp_path / "ok", full_host("h", vms=("qemu",)))
    assert one(claims, "kernel").verdict == "supported"
    assert one(claims, "compat").verdict == "supported"
    flipped = [
        row("h", "docker", "runs_foreign_arch", 1, detail="binfmt"),
        row("h", "qemu", "runs_foreign_arch", 0, accel="tcg"),
        row("h", "docker", "kernel_matches_host", 1),
        row("h", "qemu", "kernel_matches_host", 1),
    ]
    claims = claims_for(tmp_path / "flip", flipped)
    assert one(claims, "compat").verdict == "refuted"
    kernel = one(claims, "kernel")
    assert kernel.verdict == "inconclusive" and "uname" in kernel.caveat


def test_missing_vm_side_is_not_measured(tmp_path: Path) -> None:
    claims = claims_for(tmp_path, full_host("h", vms=()))
    assert set(claims.claim) == set(CLAIMS)
    assert set(claims.verdict) == {"not-measured"}
    assert claims.caveat.str.contains("no VM rows").all()


def test_unsupported_pairs_are_not_failures_where_a_claim_is_not_measured(tmp_path: Path) -> None:
    """podman-systemd cannot run busybox (no systemd): that is not a failure, and a system
    container is neither side of a claim, so a host without VM rows does not name it. An
    engine of the missing side that cannot run here is named with its reason, not as failed;
    a failed trial counts once however many rows it wrote."""

    def not_run(backend: str, kind: str, why: str, trial: int) -> object:
        detail = f"workload=ready {backend} not usable here: {why}"
        accel = "none" if kind != "vm" else "unknown"
        bad = row("h", backend, "trial", None, status="unsupported", trial=trial, accel=accel)
        return replace(bad, detail=detail, kind=kind)

    busybox_has_no_systemd = [
        not_run("podman-systemd", "system-container", "guest busybox has no systemd", t)
        for t in range(4)
    ]
    failed = [  # one failed trial: its ready time and the row saying why
        row("h", "docker", "ready_s", 0.4, status="failed", trial=9),
        row("h", "docker", "trial", None, status="failed", trial=9, detail="exit code 1"),
    ]
    rows = ready_rows("h", "docker", [0.3, 0.35]) + busybox_has_no_systemd + failed
    speed = one(claims_for(tmp_path, rows), "speed", vm="")
    assert speed.verdict == "not-measured"
    assert "podman-systemd" not in speed.caveat
    assert "failed trials: docker 1" in speed.caveat

    rows += [not_run("qemu", "vm", "qemu-system-x86_64 not found", t) for t in range(3)]
    speed = one(claims_for(tmp_path, rows), "speed", vm="")
    assert "not supported here: qemu on busybox (qemu not usable here: qemu-system-x86_64" in (
        speed.caveat
    )
    assert "failed trials: docker 1" in speed.caveat and "qemu 3" not in speed.caveat


def test_summary_excludes_warmup_and_counts_failures(tmp_path: Path) -> None:
    summary = summarize(load([write_csv(tmp_path / "r.csv", full_host("h"))]))
    ready = summary[(summary.metric == "ready_s") & (summary.phase == "warm")]
    docker = ready[ready.backend == "docker"].iloc[0]
    assert docker.n == 10 and docker["max"] < 1  # the 99 s warmup row is left out
    assert docker.ci_low <= docker["median"] <= docker.ci_high
    assert ready[ready.backend == "qemu"].iloc[0].n_failed == 1
    assert docker.n_failed == 0
    assert "warmup" not in set(summary.phase)


def test_report_survives_truncated_and_garbage_lines(tmp_path: Path) -> None:
    rows = full_host("h")
    tail = "this is not,a result line\nrun1,h,busybox,busybox,docker,none,1,3,warm,ready_s,0.5"
    csv = write_csv(tmp_path / "run" / "results.csv", rows, host_meta("h"), raw_tail=tail)
    out = write_report(analyse([csv]), tmp_path / "report")
    garbage, truncated = len(rows) + 2, len(rows) + 3
    assert any(w.startswith(f"{csv}:{garbage}:") for w in out.warnings), out.warnings
    assert any(w.startswith(f"{csv}:{truncated}:") for w in out.warnings), out.warnings
    assert one(out.claims, "speed").verdict == "supported"
    report = (tmp_path / "report" / "report.md").read_text()
    assert f"results.csv:{truncated}" in report


def test_report_folder_contents(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "results.csv", full_host("h"), host_meta("h"))
    out = write_report(analyse([csv]), tmp_path / "out")
    for name in ("summary.csv", "claims.csv", "report.md", "ready_time.png", "ready_time.svg"):
        assert tmp_path / "out" / name in out.files
        assert (tmp_path / "out" / name).stat().st_size > 0
    claims = pd.read_csv(tmp_path / "out" / "claims.csv")
    required = [
        "host_id",
        "claim",
        "verdict",
        "ratio",
        "ci_low",
        "ci_high",
        "n_container",
        "n_vm",
        "accel",
        "caveat",
    ]
    assert set(required) <= set(claims.columns)
    assert set(claims.verdict) <= {"supported", "refuted", "inconclusive", "not-measured"}
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.index("## Verdicts") < md.index("## Summary") < md.index("## Methodology")
    assert "![" in md and "Intel(R) Xeon(R) Gold 6230" in md and "TCG" in md


def test_verdict_table_has_a_row_per_claim(tmp_path: Path) -> None:
    claims = claims_for(tmp_path, full_host("h"))
    table = verdict_table(claims)
    assert table.row_count == len(claims)
    console = Console(width=200, record=True)
    console.print(table)
    assert "supported" in console.export_text()


def test_missing_file_and_empty_csv_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(ReportInputError, match="no such results file"):
        load([tmp_path / "nope.csv"])
    (tmp_path / "foreign.csv").write_text("not,a,header\n")
    with pytest.raises(ReportInputError, match=r"foreign\.csv: header is not a vmbench results"):
        load([tmp_path / "foreign.csv"])
    (tmp_path / "empty.csv").write_text(",".join(COLUMNS) + "\n")
    with pytest.raises(ReportInputError, match="no usable rows"):
        load([tmp_path / "empty.csv"])


def test_ratio_ci_direction() -> None:
    fast, slow = [1.0, 1.1, 0.9, 1.05], [3.0, 3.3, 2.9, 3.1]
    up = ratio_of_medians_ci(slow, fast)
    down = ratio_of_medians_ci(fast, slow)
    assert up.low > 1 and down.high < 1
    assert up.estimate == pytest.approx(1 / down.estimate)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.001, 1000), min_size=2, max_size=30))
def test_median_ci_contains_median(values: list[float]) -> None:
    ci = median_ci(values)
    assert ci.low <= np.median(values) <= ci.high
    assert median_ci(values) == ci  # seeded: same input, same interval


def test_flat_container_density_leaves_the_ratio_unbounded(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    rows = []
    for k in (1, 2, 4, 8):
        for t in range(2):
            rows.append(
                row(
                    "h",
                    "docker",
                    "host_used_delta_bytes",
                    rng.normal(0, 2 * MIB),
                    instances=k,
                    trial=t,
                )
            )
            rows.append(
                row("h", "qemu", "host_used_delta_bytes", 250 * MIB * k, instances=k, trial=t)
            )
    density = one(claims_for(tmp_path, rows), "density")
    assert density.verdict == "supported"  # decided by the slope difference, not the ratio
    assert np.isinf(density.ci_high) and "unbounded" in density.caveat


def test_podman_counts_as_a_container(tmp_path: Path) -> None:
    rows = ready_rows("h", "podman", [0.4, 0.5, 0.45]) + ready_rows("h", "qemu", [4, 4.2, 4.1])
    speed = claims_for(tmp_path, rows)
    speed = speed[speed.claim == "speed"].iloc[0]
    assert (speed.container, speed.vm, speed.verdict) == ("podman", "qemu", "supported")


def test_density_prefers_the_instances_own_memory_over_a_noisy_host_delta(tmp_path: Path) -> None:
    """PSS + shims is what an instance costs; MemAvailable moves with every other program."""
    rows = []
    rng = np.random.default_rng(7)
    for backend, pss_mib, shim_mib in (("docker", 2, 3), ("qemu", 210, 0)):
        for k in (1, 2, 4):
            for trial in range(2):
                kw = {"instances": k, "trial": trial}
                rows.append(row("h", backend, "pss_bytes", pss_mib * MIB * k, **kw))
                if shim_mib:
                    rows.append(row("h", backend, "shim_pss_bytes", shim_mib * MIB * k, **kw))
                noise = rng.normal(0, 600 * MIB)  # other people's VMs on a shared host
                rows.append(row("h", backend, "host_used_delta_bytes", 100 * MIB * k + noise, **kw))
    density = one(claims_for(tmp_path, rows), "density")
    assert density.verdict == "supported"
    assert density.ratio == pytest.approx(210 / 5, rel=0.05)  # shims counted with the container
    assert density.evidence.startswith("footprint_bytes per extra instance")


def test_density_falls_back_to_host_delta_without_pss_at_several_sizes(tmp_path: Path) -> None:
    rows = [row("h", b, "pss_bytes", 5 * MIB) for b in ("docker", "qemu")]  # N=1 only
    for backend, slope in (("docker", 3), ("qemu", 250)):
        for k in (1, 2, 4):
            rows.append(row("h", backend, "host_used_delta_bytes", slope * MIB * k, instances=k))
    density = one(claims_for(tmp_path, rows), "density")
    assert density.evidence.startswith("host_used_delta_bytes per extra instance")
    assert density.verdict == "supported"


def test_a_one_trial_speed_comparison_is_left_out_where_a_full_one_exists(tmp_path: Path) -> None:
    rows = ready_rows("h", "docker", [0.2, 0.21, 0.22, 0.2]) + ready_rows(
        "h", "qemu", [2.0, 2.1, 2.2, 2.0]
    )
    # the single ready time a density scenario also records, for the same guest and engines
    rows += ready_rows("h", "docker", [0.3], scenario="density")
    rows += ready_rows("h", "qemu", [2.5], scenario="density")
    # a guest compared only once stays, as inconclusive
    rows += ready_rows("h", "docker", [0.3], scenario="compat", guest="other")
    rows += ready_rows("h", "qemu", [2.5], scenario="compat", guest="other")
    speed = claims_for(tmp_path, rows)
    speed = speed[speed.claim == "speed"]
    assert sorted(zip(speed.scenario, speed.verdict, strict=True)) == [
        ("busybox", "supported"),
        ("compat", "inconclusive"),
    ]
