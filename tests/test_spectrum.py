"""The spectrum and the decomposition, read from a CSV written by the real ResultWriter with
known medians: kinds from the CSV's column, shares as differences of medians with CIs, and
claims that never take a system container or a microVM for either side."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from bench.analysis import spectrum
from bench.analysis.dataset import load
from bench.analysis.model import analyse
from bench.analysis.stats import difference_of_medians_ci
from bench.render import spectrum as spectrum_words
from bench.render.charts import Drawing, draw_all
from bench.render.report import write_report
from bench.results import ResultWriter, Row, unit_of

MIB = 1024**2
# engine -> (kind, accel, boot word, ready_s median on debian-systemd, PSS MiB, shim MiB)
ENGINES = {
    "docker": ("container", "none", "", 0.30, 2.0, 4.0),
    "podman": ("container", "none", "", 0.50, 2.0, 1.5),
    "podman-systemd": ("system-container", "none", "", 1.50, 12.0, 1.5),
    "qemu": ("vm", "tcg", "boot=kernel", 14.0, 400.0, 0.0),
}


def trial_rows(engine: str, guest: str, trial: int, ready_s: float, idle: bool) -> list[Row]:
    kind, accel, boot, _ready, pss, shim = ENGINES.get(
        engine, ("microvm", "tcg", "boot=kernel", 0, 200.0, 0.0)
    )
    workload = "idle" if idle else "ready"

    def row(metric: str, value: float) -> Row:
        return Row(
            run_id="run1",
            host_id="h1",
            scenario="spectrum",
            guest=guest,
            backend=engine,
            accel=accel,
            instances=1,
            trial=trial,
            phase="warm",
            metric=metric,
            value=value,
            unit=unit_of(metric),
            status="ok",
            detail=f"{boot} workload={workload}".strip(),
            started_at=f"2026-11-27T10:00:{trial:02d}Z",
            kind=kind,
        )

    rows = [row("ready_s", ready_s)]
    if idle:
        rows += [row("pss_bytes", pss * MIB)]
        if shim:
            rows += [row("shim_pss_bytes", shim * MIB)]
    return rows


@pytest.fixture
def spectrum_csv(tmp_path):
    rng = np.random.default_rng(7)
    rows: list[Row] = []
    for engine, (_k, _a, _b, ready, _p, _s) in ENGINES.items():
        for t in range(8):
            jitter = float(rng.uniform(0.95, 1.05))
            rows += trial_rows(engine, "debian-systemd", t, ready * jitter, idle=t % 2 == 1)
    for t in range(6):  # busybox: an app container and a microVM, no system container
        rows += trial_rows("docker", "busybox", t, 0.25, idle=False)
        rows += trial_rows("qemu-microvm", "busybox", t, 7.0 + 0.1 * t, idle=t % 2 == 1)
    csv = tmp_path / "results.csv"
    with ResultWriter(csv) as writer:
        writer.write(rows)
    return csv


def test_spectrum_orders_kinds_from_the_csv_from_shared_kernel_to_own(spectrum_csv):
    table = spectrum.spectrum_table(load([spectrum_csv]))
    debian = table[table.guest == "debian-systemd"]
    assert list(debian.kind) == ["container", "container", "system-container", "vm"]
    assert list(debian.backend) == ["docker", "podman", "podman-systemd", "qemu"]
    busybox = table[table.guest == "busybox"]
    assert list(busybox.kind) == ["container", "microvm"]
    qemu = debian[debian.backend == "qemu"].iloc[0]
    assert qemu.boot == "kernel" and qemu.accel == "tcg"
    assert qemu.ready_s_ci_low <= qemu.ready_s <= qemu.ready_s_ci_high
    # The footprint is PSS + shim of the idle trials, and kept with the VM's boot mode.
    assert qemu.footprint_bytes == pytest.approx(400 * MIB)
    systemd = debian[debian.backend == "podman-systemd"].iloc[0]
    assert systemd.footprint_bytes == pytest.approx(13.5 * MIB)
    assert systemd.n_ready == 8 and systemd.n_footprint == 4


def test_decomposition_is_vm_minus_system_container_and_system_minus_app(spectrum_csv):
    ds = load([spectrum_csv])
    rows = ds.measured[(ds.measured.metric == "ready_s") & (ds.measured.guest == "debian-systemd")]
    median = rows.groupby("backend").value.median()
    table = spectrum.decomposition_table(ds)
    assert list(table.container) == ["docker", "podman"]  # one line per app container
    assert set(table.guest) == {"debian-systemd"}  # busybox has no system container
    for r in table.itertuples():
        assert r.kernel_share_s == pytest.approx(median["qemu"] - median["podman-systemd"])
        assert r.init_share_s == pytest.approx(median["podman-systemd"] - median[r.container])
        assert r.kernel_share_ci_low < r.kernel_share_s < r.kernel_share_ci_high
        assert r.init_share_ci_low < r.init_share_s < r.init_share_ci_high
        assert r.container_ready_s + r.init_share_s + r.kernel_share_s == pytest.approx(
            r.vm_ready_s
        )
        assert 0.8 < r.kernel_fraction < 1.0 and 0 < r.init_fraction < 0.2
    line = spectrum_words.decomposition_line(table.iloc[1])
    assert "kernel's share" in line and "init's share" in line
    assert "podman-systemd system container − podman" in line
    assert "TCG" in line  # the VM ran emulated: every line says so


def test_a_guest_without_all_three_kinds_has_no_decomposition(tmp_path):
    csv = tmp_path / "results.csv"
    with ResultWriter(csv) as writer:
        for t in range(4):
            writer.write(trial_rows("docker", "busybox", t, 0.3, False))
            writer.write(trial_rows("qemu", "busybox", t, 5.0, False))
    a = analyse([csv])
    drawing = draw_all(a, tmp_path / "out")
    write_report(a, tmp_path / "out", drawing)
    assert a.spectrum.decomposition.empty
    # containers and VMs only: the claims' charts show them
    assert drawing.named("spectrum") is None and drawing.named("decomposition") is None
    assert list(a.spectrum.spectrum.backend) == ["docker", "qemu"]
    text = "\n".join(spectrum_words.markdown(a.spectrum, drawing, tmp_path / "out"))
    assert "not measured" in text
    assert pd.read_csv(tmp_path / "out" / "decomposition.csv").empty


def test_report_has_the_spectrum_and_claims_compare_only_containers_with_vms(
    spectrum_csv, tmp_path
):
    out = write_report(analyse([spectrum_csv]), tmp_path / "report")
    names = {p.name for p in out.files}
    assert {"spectrum.csv", "decomposition.csv", "spectrum.png", "decomposition.png"} <= names
    written = pd.read_csv(tmp_path / "report" / "decomposition.csv")
    assert list(written.columns) == spectrum.DECOMPOSITION_COLUMNS and len(written) == 2
    text = out.report_path.read_text()
    assert "## Isolation spectrum" in text and "kernel's share" in text
    claims = out.claims[out.claims.vm != ""]
    assert set(claims.vm) <= {"qemu"} and set(claims.container) <= {"docker", "podman"}
    assert "podman-systemd" not in set(claims.container) | set(claims.vm)
    assert "qemu-microvm" not in set(claims.container) | set(claims.vm)
    assert "vm qemu, emulated (TCG) vs container docker" in text  # engines and their kinds


def test_difference_of_medians_has_a_bootstrap_interval():
    rng = np.random.default_rng(3)
    a, b = rng.normal(10, 0.5, 12), rng.normal(2, 0.2, 12)
    d = difference_of_medians_ci(a, b)
    assert d.estimate == pytest.approx(np.median(a) - np.median(b))
    assert d.low < d.estimate < d.high and d.high - d.low < 1.5
    assert not difference_of_medians_ci([5.0], [1.0, 2.0]).defined  # one trial: no interval
    assert difference_of_medians_ci([3.0, 3.0], [1.0, 1.0]).low == 2.0


def test_deck_has_the_spectrum_and_the_decomposition_slides(spectrum_csv, tmp_path):
    from helpers.rendering import pictures, slide_text
    from pptx import Presentation

    from bench.render.slides import write_deck

    deck = Presentation(str(write_deck(analyse([spectrum_csv]), tmp_path / "deck.pptx")))
    by_heading = {slide_text(s).split("\n")[0]: s for s in deck.slides}
    slide = by_heading["Why a VM starts slower: kernel vs init"]
    assert len(pictures(slide)) == 1
    text = slide_text(slide)
    lines = text.split("\n")[1:]
    assert len(lines) == 3  # the kernel's share once, the init's share per app container
    assert re.fullmatch(
        r"qemu, emulated \(TCG\) 14\.\d\d s − podman-systemd 1\.\d\d s = "
        r"kernel's share 12\.\d\d s \[12\.\d\d, 12\.\d\d\] \(89%\)",
        lines[0],
    )
    assert lines[2].startswith("podman-systemd − podman 0.50 s = init's share 1.")
    assert len(pictures(by_heading["From the host's kernel to a kernel of its own"])) == 1


def test_a_report_of_containers_only_is_written_with_nothing_measured_said(tmp_path):
    csv = tmp_path / "results.csv"
    with ResultWriter(csv) as writer:
        for t in range(3):
            writer.write(trial_rows("podman", "debian-systemd", t, 0.5, idle=True))
            writer.write(trial_rows("podman-systemd", "debian-systemd", t, 1.5, idle=True))
    out = write_report(analyse([csv]), tmp_path / "report")  # no VM: no claim has a ratio
    assert set(out.claims.verdict) == {"not-measured"}
    text = out.report_path.read_text()
    assert "Decomposition: not measured" in text
    assert "| debian-systemd | system-container | podman-systemd |" in text


def test_a_decomposition_that_could_not_run_here_says_why(tmp_path):
    """A regular user on cgroup v1 has no system container: the report gives the reason its
    rows give, not a scenario that would not run either."""
    csv = tmp_path / "results.csv"
    why = "podman-systemd not usable here: rootless podman on cgroup v1: no cgroup of its own"
    with ResultWriter(csv) as writer:
        for t in range(3):
            writer.write(trial_rows("docker", "debian-systemd", t, 0.3, idle=False))
            writer.write(trial_rows("qemu", "debian-systemd", t, 9.0, idle=False))
            [row] = trial_rows("podman-systemd", "debian-systemd", t, 0.0, idle=False)
            writer.write([replace(row, metric="trial", value=None, unit="", status="unsupported",
                                  detail=f"workload=ready {why}")])  # fmt: skip
    a = analyse([csv])
    assert a.spectrum.decomposition.empty and a.spectrum.unsupported == {"podman-systemd": why}
    text = "\n".join(spectrum_words.markdown(a.spectrum, Drawing(tmp_path / "out"), tmp_path))
    assert f"Decomposition: not measured: {why}." in text
    assert "spectrum.toml" not in text.split("Decomposition")[1].split("\n")[0]
