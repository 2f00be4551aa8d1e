"""Comparing hosts: both named, differences warned about, a missing backend is a gap."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from helpers.reports import full_host, host_meta, write_csv
from markdown_it import MarkdownIt

from bench.analysis.hosts import GAP
from bench.analysis.model import analyse
from bench.render.compare import write_comparison
from bench.render.report import ReportOutcome


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
    return write_comparison(analyse([kvm, tcg]), tmp_path / "cmp"), tmp_path / "cmp"


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
    ratios = pd.read_csv(where / "ratios.csv", keep_default_na=False)
    vagrant_speed = ratios[(ratios.claim == "speed") & (ratios.vm == "vagrant")]
    by_host = vagrant_speed.set_index("host_id").verdict
    assert by_host["laptop-tcg"] == GAP and by_host["lab-kvm"] == "supported"
    assert any(
        "no measurements for vagrant (busybox/busybox) on 1 of 2 hosts: laptop-tcg" in w
        for w in out.warnings
    )


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
    out = write_comparison(analyse([a, b]), tmp_path / "cmp")
    assert set(out.claims[out.claims.host_id == "b"].verdict) == {"not-measured"}
    ratios = pd.read_csv(tmp_path / "cmp" / "ratios.csv", keep_default_na=False)
    assert set(ratios[ratios.host_id == "b"].verdict) == {"not-measured"}
    assert set(ratios[ratios.host_id == "a"].verdict) == {"supported"}


def test_ratio_chart_is_drawn_and_titled(compared: tuple) -> None:
    _, where = compared
    pixels = mpimg.imread(where / "ratios_by_host.png")
    assert float(np.var(pixels[..., :3])) > 0.005
    assert "lie" in (where / "ratios_by_host.svg").read_text()  # "... intervals lie above 1"


# --- host ids are data, and a lab has many hosts -----------------------------------------------

ODD_HOSTS = ["vm", "container", "claim", "lab 3 (Zürich)", "a,b", "a|b", "back`tick"]


def md_table(md: str, heading: str) -> list[list[str]]:
    """The cells (as a reader sees them) of the first table after a heading, rendered by a
    CommonMark parser with GFM tables: what a viewer of compare.md gets."""
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    start = next(
        i
        for i, t in enumerate(tokens)
        if t.type == "inline" and t.content == heading and tokens[i - 1].type == "heading_open"
    )
    rows: list[list[str]] = []
    for t in tokens[start:]:
        if t.type == "tr_open":
            rows.append([])
        elif t.type == "inline" and rows:
            rows[-1].append("".join(c.content for c in t.children or []))
        elif t.type == "table_close":
            return rows
    raise AssertionError(f"no table after {heading!r}")


def md_list(md: str, heading: str) -> list[str]:
    """The items (as a reader sees them) of the bullet list after a heading."""
    tokens = MarkdownIt("commonmark").parse(md)
    start = next(i for i, t in enumerate(tokens) if t.type == "inline" and t.content == heading)
    items = []
    for t in tokens[start + 1 :]:
        if t.type == "heading_open":
            return items
        if t.type == "inline":
            items.append("".join(c.content for c in t.children or []))
    return items


def test_host_ids_that_look_like_columns_stay_data(tmp_path: Path) -> None:
    paths = [
        write_csv(
            tmp_path / f"h{i}" / "results.csv",
            full_host(h, seed=i),
            host_meta(h, cpu="AMD EPYC" if h in ("a|b", "back`tick") else "Intel Xeon"),
        )
        for i, h in enumerate(ODD_HOSTS)
    ]
    write_comparison(analyse(paths), tmp_path / "cmp")
    ratios = pd.read_csv(tmp_path / "cmp" / "ratios.csv", keep_default_na=False)
    assert list(ratios.columns).count("vm") == 1 and "host_id" in ratios.columns
    assert sorted(set(ratios.host_id)) == sorted(ODD_HOSTS)
    assert set(ratios.vm) == {"qemu", "vagrant"} and set(ratios.container) == {"docker"}
    speed = ratios[(ratios.claim == "speed") & (ratios.vm == "qemu")].set_index("host_id")
    assert set(speed.verdict) == {"supported"} and len(speed) == len(ODD_HOSTS)
    md = (tmp_path / "cmp" / "compare.md").read_text()
    hosts = md_table(md, "Hosts")
    assert hosts[0][0] == "host_id" and [row[0] for row in hosts[1:]] == sorted(ODD_HOSTS)
    across = md_table(md, "Across hosts")
    assert across[0] == [
        "claim",
        "comparison",
        "VM accel",
        "verdicts",
        "median ratio",
        "range",
        "hosts that differ",
    ]
    assert {row[1].split(",")[0] for row in across[1:] if row[1]} == {
        "qemu vs docker",
        "vagrant vs docker",
    }
    per_host = md_table(md, "Claims per host")
    assert {row[0] for row in per_host[1:]} == set(ODD_HOSTS)
    differences = md_list(md, "Differences and gaps")
    assert differences[0] == (
        "hosts differ in cpu_model: 'Intel Xeon' on 'a,b', claim, container, 'lab 3 (Zürich)', "
        "vm; 'AMD EPYC' on 'a|b', 'back`tick'"
    )


REAL_CSV = Path(__file__).parent / "data" / "default-suite" / "results.csv"


def real_host(host: str, out: Path, vm_start_factor: float = 1.0) -> Path:
    """The committed default-suite run as host `host` (its VMs' ready_s scaled)."""
    with open(REAL_CSV, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    for row in rows:
        row["host_id"] = host
        if row["metric"] == "ready_s" and row["backend"] in ("qemu", "vagrant") and row["value"]:
            row["value"] = repr(float(row["value"]) * vm_start_factor)
    path = out / host / "results.csv"
    path.parent.mkdir(parents=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, reader.fieldnames or [], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    shutil.copy(REAL_CSV.parent / "host.json", path.parent / "host.json")
    return path


def test_fifty_hosts_one_line_per_comparison_and_the_odd_ones_named(tmp_path: Path) -> None:
    """Fifty copies of a real default-suite run, three of them with VMs starting 3x slower."""
    slow = {f"lab-{i:02d}" for i in (3, 17, 41)}
    paths = [
        real_host(h, tmp_path, 3.0 if h in slow else 1.0)
        for h in (f"lab-{i:02d}" for i in range(50))
    ]
    out = tmp_path / "cmp"
    result = subprocess.run(
        [sys.executable, "-m", "bench.cli", "compare", *map(str, paths), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    # The terminal gets the lines across hosts, not 50 hosts' verdicts one by one.
    assert "vmbench across 50 hosts" in result.stdout and "lab-41" in result.stdout
    assert "lab-40" not in result.stdout
    ratios = pd.read_csv(out / "ratios.csv", keep_default_na=False)
    comparisons = ratios[["claim", "scenario", "guest", "vm", "container"]].drop_duplicates()
    assert len(ratios) == 50 * len(comparisons)
    md = (out / "compare.md").read_text()
    across = md_table(md, "Across hosts")[1:]
    assert [row[0] for row in across] == list(comparisons.claim)  # one line per comparison
    assert sorted(row[0] for row in md_table(md, "Hosts")[1:]) == sorted(
        p.parent.name for p in paths
    )
    assert set(ratios.host_id[ratios.outlier]) == slow
    assert set(ratios.claim[ratios.outlier]) == {"speed"} and set(ratios.verdict) == {"supported"}
    speed = next(row for row in across if row[0] == "speed")
    assert speed[2] == "tcg (emulated) on 50" and speed[3] == "50 supported (of 50)"
    assert all(h in speed[6] for h in slow) and speed[6].count("lab-") == len(slow)
    assert (out / "ratios_across_hosts.png").is_file() and not (out / "density.png").exists()
    assert "lab-03, lab-17, lab-41 differ" in md  # the chart title
