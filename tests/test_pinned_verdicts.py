"""Verdicts and intervals pinned, so making the reading side faster cannot quietly change them.

The bootstrap is seeded, so the same CSV gives the same numbers. A faster implementation
(another resampling order, fewer passes over the rows) may move an interval's bounds by
bootstrap noise, never a verdict: bounds are compared within a share of the interval's
width, point estimates (medians, slopes) exactly. The pinned values were computed by
vmbench's statistics (stats.py: scipy.stats.bootstrap, percentile, 2000 resamples).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from helpers.reports import full_host, write_csv

from bench.analysis.claims import evaluate, evaluate_by_host
from bench.analysis.dataset import load

# Of an interval's width: another resampling of the same data may move a bound this far.
# Across 40 seeds the busybox speed interval's bounds moved at most 7% of its width.
NOISE = 0.15

# (host, claim, VM engine): verdict, ratio, 95% CI low, high
SYNTHETIC = {
    ("lab-kvm", "size", "qemu"): ("supported", 20.0, 20.0, 20.0),
    ("lab-kvm", "size", "vagrant"): ("supported", 200.0, 200.0, 200.0),
    ("lab-kvm", "speed", "qemu"): ("supported", 9.754891, 9.410525, 10.030770),
    ("lab-kvm", "speed", "vagrant"): ("supported", 78.301819, 76.459334, 79.358464),
    ("lab-kvm", "kernel", "qemu"): ("supported", math.nan, math.nan, math.nan),
    ("lab-kvm", "density", "qemu"): ("supported", 83.676693, 82.064358, 85.715659),
    ("lab-kvm", "compat", "qemu"): ("supported", math.nan, math.nan, math.nan),
    ("laptop-tcg", "size", "qemu"): ("supported", 20.0, 20.0, 20.0),
    ("laptop-tcg", "speed", "qemu"): ("supported", 40.213399, 38.872007, 41.005640),
    ("laptop-tcg", "kernel", "qemu"): ("supported", math.nan, math.nan, math.nan),
    ("laptop-tcg", "density", "qemu"): ("supported", 83.627224, 81.097978, 86.421946),
    ("laptop-tcg", "compat", "qemu"): ("supported", math.nan, math.nan, math.nan),
}


REAL_CSV = Path(__file__).parent / "data" / "default-suite" / "results.csv"
# The committed default-suite run (TCG, loaded machine): (claim, scenario, guest, VM engine)
REAL = {
    ("size", "busybox", "busybox", "qemu"): ("supported", 7.670762, 7.670762, 7.670762),
    ("size", "busybox", "busybox", "vagrant"): ("supported", 7.772254, 7.772254, 7.772254),
    ("size", "compat", "busybox-arm64", "qemu"): ("supported", 15.311443, 15.311443, 15.311443),
    ("size", "debian", "debian", "qemu"): ("supported", 1.322199, 1.322199, 1.322199),
    ("size", "debian", "debian-systemd", "qemu"): ("supported", 1.285206, 1.285206, 1.285206),
    ("speed", "busybox", "busybox", "qemu"): ("supported", 19.166180, 15.062610, 22.882093),
    ("speed", "busybox", "busybox", "vagrant"): ("supported", 39.738579, 30.546461, 49.999310),
    ("speed", "debian", "debian", "qemu"): ("supported", 24.828176, 20.188641, 29.771972),
    ("speed", "debian", "debian-systemd", "qemu"): ("supported", 55.666262, 39.964526, 78.890489),
    ("kernel", "busybox,compat,debian", "busybox,busybox-arm64,debian,debian-systemd", "qemu"): (
        "supported",
        math.nan,
        math.nan,
        math.nan,
    ),
    ("kernel", "busybox,compat,debian", "busybox,debian,debian-systemd", "vagrant"): (
        "supported",
        math.nan,
        math.nan,
        math.nan,
    ),
    ("density", "density", "busybox", "qemu"): ("supported", 77.518065, 75.334647, 80.834446),
    ("density", "density", "busybox", "vagrant"): ("supported", 79.372217, 78.679929, 82.346960),
    ("compat", "compat", "busybox-arm64", "qemu"): ("supported", math.nan, math.nan, math.nan),
}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two hosts with known answers: VM start 10x (KVM) and 40x (TCG) a container's, each
    extra VM 250 MiB against 3 MiB per container (83x)."""
    tmp = tmp_path_factory.mktemp("pinned")
    kvm = write_csv(tmp / "a" / "results.csv", full_host("lab-kvm"))
    tcg = full_host("laptop-tcg", accel="tcg", vms=("qemu",), vm_ready=20, seed=2)
    return [kvm, write_csv(tmp / "b" / "results.csv", tcg)]


def assert_pinned(claims: pd.DataFrame, pinned: dict, key=("host_id", "claim", "vm")) -> None:
    got = {tuple(getattr(c, k) for k in key): c for c in claims.itertuples()}
    assert set(got) == set(pinned)
    for key, (verdict, ratio, low, high) in pinned.items():
        c = got[key]
        assert c.verdict == verdict, key
        if math.isnan(ratio):
            assert math.isnan(c.ratio) and math.isnan(c.ci_low), key
            continue
        assert c.ratio == pytest.approx(ratio, rel=1e-6), key
        slack = NOISE * (high - low) + 1e-6 * abs(ratio)  # pinned to 7 significant digits
        assert abs(c.ci_low - low) <= slack and abs(c.ci_high - high) <= slack, (key, c)


def test_synthetic_hosts_keep_their_verdicts_and_intervals(synthetic: list[Path]) -> None:
    claims = evaluate(load(synthetic))
    assert_pinned(claims, SYNTHETIC)


def test_the_real_default_suite_keeps_its_verdicts_and_intervals() -> None:
    claims = evaluate(load([REAL_CSV]))
    assert_pinned(claims, REAL, key=("claim", "scenario", "guest", "vm"))


def test_the_intervals_hold_the_true_ratios(synthetic: list[Path]) -> None:
    """The fixture's generating values: 5 s / 0.5 s, 20 s / 0.5 s, 250 MiB / 3 MiB."""
    claims = evaluate(load(synthetic)).set_index(["host_id", "claim", "vm"])
    for key, truth in {
        ("lab-kvm", "speed", "qemu"): 10.0,
        ("laptop-tcg", "speed", "qemu"): 40.0,
        ("lab-kvm", "density", "qemu"): 250 / 3,
        ("laptop-tcg", "density", "qemu"): 250 / 3,
    }.items():
        assert claims.ci_low[key] < truth < claims.ci_high[key], key


def test_compare_gives_every_host_the_same_numbers_as_its_own_report(
    synthetic: list[Path],
) -> None:
    together = evaluate_by_host(load(synthetic))
    alone = pd.concat([evaluate(load([p])) for p in synthetic], ignore_index=True)
    pd.testing.assert_frame_equal(together, alone)
    assert_pinned(together, SYNTHETIC)
