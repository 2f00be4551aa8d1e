"""Comparing hosts: both named, differences warned about, a missing backend is a gap."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from report_fixtures import full_host, host_meta, write_csv

from bench.compare import GAP, write_comparison
from bench.report import ReportOutcome


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> tuple[ReportOutcome, Path]:
    """One comparison of a KVM lab host and a TCG laptop without vagrant, shared by tests."""
    tmp_path = tmp_path_factory.mktemp("two")
    kvm = write_csv(
        tmp_path / "a" / "results.csv", full_host("lab-kvm"), host_meta("lab-kvm", accel="kvm")
    )
    meta = host_meta("laptop-tcg", cpu="AMD EPYC 7B13", accel="tcg")
    meta["versions"] = {"docker": "20.10.24", "qemu": "7.2.9"}
    tcg = write_csv(
        tmp_path / "b" / "results.csv",
        full_host("laptop-tcg", accel="tcg", vms=("qemu",), vm_ready=20, seed=2),
        meta,
    )
    return write_comparison([kvm, tcg], tmp_path / "cmp"), tmp_path / "cmp"


def test_compare_names_both_hosts_and_their_differences(compared: tuple) -> None:
    out, where = compared
    md = (where / "compare.md").read_text()
    assert "lab-kvm" in md and "laptop-tcg" in md
    assert set(out.claims.host_id) == {"lab-kvm", "laptop-tcg"}
    text = "\n".join(out.warnings)
    assert "cpu_model" in text and "AMD EPYC 7B13" in text
    assert "qemu runs with different accelerators" in text
    assert "docker versions differ" in text


def test_missing_backend_is_a_gap_not_a_crash(compared: tuple) -> None:
    out, where = compared
    ratios = pd.read_csv(where / "ratios.csv").fillna("")
    vagrant_speed = ratios[(ratios.claim == "speed") & (ratios.vm == "vagrant")].iloc[0]
    assert vagrant_speed["laptop-tcg"] == GAP
    assert vagrant_speed["lab-kvm"].startswith("supported")
    assert any("laptop-tcg has no measurements for vagrant" in w for w in out.warnings)


def test_ratios_per_host_reflect_each_host(compared: tuple) -> None:
    out, _ = compared
    speed = out.claims[(out.claims.claim == "speed") & (out.claims.vm == "qemu")]
    by_host = speed.set_index("host_id").ratio
    assert by_host["laptop-tcg"] == pytest.approx(40, rel=0.1)  # 20 s vs 0.5 s
    assert by_host["lab-kvm"] == pytest.approx(10, rel=0.1)
    assert "TCG" in speed.set_index("host_id").caveat["laptop-tcg"]


def test_compare_charts_group_by_host(compared: tuple) -> None:
    out, where = compared
    names = {p.name for p in out.files}
    assert {"ratios_by_host.png", "ratios_by_host.svg", "ready_time.png"} <= names
    svg = (where / "ready_time.svg").read_text()
    assert "laptop-tcg" in svg and "lab-kvm" in svg  # host named on the category axis


def test_host_with_only_containers_is_not_measured(tmp_path: Path) -> None:
    a = write_csv(tmp_path / "a" / "results.csv", full_host("a"))
    b = write_csv(tmp_path / "b" / "results.csv", full_host("b", vms=()))
    out = write_comparison([a, b], tmp_path / "cmp")
    assert set(out.claims[out.claims.host_id == "b"].verdict) == {"not-measured"}
    ratios = pd.read_csv(tmp_path / "cmp" / "ratios.csv").fillna("")
    assert set(ratios["b"]) == {"not-measured"}


def test_ratio_chart_is_drawn_and_titled(compared: tuple) -> None:
    _, where = compared
    pixels = mpimg.imread(where / "ratios_by_host.png")
    assert float(np.var(pixels[..., :3])) > 0.005
    assert "lie" in (where / "ratios_by_host.svg").read_text()  # "... intervals lie above 1"
