"""The memtest guest: another operating system (memtest86+) booted by a VM, refused by containers.

Unit tests: the banner and the compat facts, the console's screen rows, the compat verdict,
matrix and report on a small CSV. Integration tests (real engines): qemu boots it to its
banner by direct kernel boot, BIOS and UEFI and leaves no qemu behind; docker and podman
refuse it with the engine's own ``exec format error``; a Ctrl-C during its boot leaves
nothing behind.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from conftest import usable_backend
from helpers.harness import alive, containers_of, qemu_pids, wait_until
from helpers.reports import full_host, row, write_csv
from helpers.scenarios import write_scenario

from bench import cli
from bench.analysis.claims import evaluate
from bench.analysis.dataset import load
from bench.analysis.model import analyse
from bench.backends.qemu import run_dir as qemu_run_dir
from bench.guests import build_guest, built_guests, memtest
from bench.render import charts
from bench.render.report import write_report
from bench.results import read_rows
from bench.run import compat
from bench.run.measure import ConsoleWatcher, now_ns

ROOT = Path(__file__).resolve().parent.parent
OS = "memtest86+"
# What memtest86+ 6.10 prints first on a serial console (bytes as qemu relays them).
SCREEN = (
    b"\x1b[2J\x1b[?25l\x1b[1;1H\x1b[7m      Memtest86+ v6.10      \x1b[0m| QEMU Virtual CPU"
    b"\x1b[2;1HCLK/Temp: 2602MHz           | Pass   %\x1b[3;1HL1 Cache:   64KB"
)


def svg_text(path: Path) -> str:
    """The visible text of an SVG written with svg.fonttype = none."""
    return " ".join(re.findall(r"<text[^>]*>([^<]*)</text>", path.read_text()))


def test_banner_comes_from_the_package_version():
    assert memtest.banner("6.10-4") == "Memtest86+ v6.10"
    assert memtest.banner("1:7.00-1") == "Memtest86+ v7.00"


def test_a_screen_row_is_a_console_line_without_any_newline():
    """memtest draws rows with cursor moves, never a newline: the banner's row is a line as
    soon as the cursor moves to the next row, while the stream stays open."""

    def stream():
        yield SCREEN[:40]  # a chunk may end inside the banner
        yield SCREEN[40:]
        time.sleep(1.0)  # still open: the banner must not wait for the stream's end

    watcher = ConsoleWatcher(stream())
    line = watcher.wait_for("Memtest86+ v6.10", now_ns() + int(0.8e9))
    assert line is not None and not watcher.ended
    assert line.text.strip().startswith("Memtest86+ v6.10")
    assert "CLK/Temp" not in line.text  # the next row is its own line


def test_foreign_os_facts_name_the_system_and_keep_the_engines_words():
    value, detail = compat.foreign_os_ran(OS, "Memtest86+ v6.10 | QEMU", container=False)
    assert value == 1.0 and f"os={OS}" in detail and "marker=banner" in detail
    words = "exec /memtest86+x64.bin: exec format error"
    value, detail = compat.foreign_os_refused(OS, words)
    assert value == 0.0 and words in detail and f"os={OS}" in detail
    assert compat.foreign_os_refused(OS, "permission denied") is None


def memtest_rows(host: str = "h", vm_ran: int = 1, container_ran: int = 0) -> list:
    """A compat run's rows of the memtest guest: docker and podman refuse, qemu boots it."""
    refused = (
        "workload=ready os=memtest86+ host_arch=amd64 exec format error: "
        "exec /memtest86+x64.bin: exec format error"
    )
    ran = "workload=ready boot=kernel os=memtest86+ marker=banner banner='Memtest86+ v6.10'"
    kw = {"guest": "memtest", "scenario": "compat", "phase": "cold"}
    return [
        row(host, "docker", "runs_foreign_os", container_ran, detail=refused, **kw),
        row(host, "podman", "runs_foreign_os", container_ran, detail=refused, **kw),
        row(host, "qemu", "runs_foreign_os", vm_ran, accel="tcg", detail=ran, **kw),
        row(host, "docker", "image_bytes", 141e3, phase="build", guest="memtest"),
        row(host, "qemu", "image_bytes", 141e3, phase="build", guest="memtest", accel="tcg"),
        row(
            host,
            "qemu",
            "ready_s",
            17.5,
            accel="tcg",
            detail="workload=ready boot=kernel marker=banner os=memtest86+",
            **kw,
        ),
    ]


def test_compat_verdict_gains_a_row_for_another_os(tmp_path):
    ds = load([write_csv(tmp_path / "results.csv", full_host("h", vms=("qemu",)) + memtest_rows())])
    claims = evaluate(ds)
    compat_rows = claims[claims.claim == "compat"]
    other_os = compat_rows[compat_rows.metric == "runs_foreign_os"]
    arch = compat_rows[compat_rows.metric == "runs_foreign_arch"]
    assert len(arch) == 1 and arch.iloc[0].verdict == "supported"
    assert set(other_os.container) == {"docker", "podman"} and set(other_os.vm) == {"qemu"}
    assert set(other_os.verdict) == {"supported"}
    assert other_os.evidence.str.startswith(f"os={OS}:").all()
    assert other_os.evidence.str.contains("exec format error").all()
    # Another system is only the compat fact's: never in a size, speed or memory comparison
    # (its banner time beside a container's READY, its image that no container can run).
    assert not claims[claims.claim != "compat"].guest.str.contains("memtest").any()


def test_a_container_that_ran_it_turns_the_os_row(tmp_path):
    rows = memtest_rows(container_ran=1)
    rows[0] = row(
        "h", "docker", "runs_foreign_os", 1, guest="memtest", scenario="compat", detail="os=x ran"
    )
    claims = evaluate(load([write_csv(tmp_path / "results.csv", rows)]))
    docker = claims[(claims.metric == "runs_foreign_os") & (claims.container == "docker")]
    assert docker.iloc[0].verdict == "inconclusive"
    assert "ran another system" in docker.iloc[0].caveat


def test_compat_matrix_and_report_show_another_os(tmp_path):
    csv = write_csv(tmp_path / "results.csv", full_host("h", vms=("qemu",)) + memtest_rows())
    made = charts.draw_all(analyse([csv]), tmp_path / "charts").charts
    matrix = next(c for c in made if c.name == "compat_matrix")
    text = svg_text(matrix.svg)
    assert f"another OS: {OS}" in text and "arm64 guest" in text
    assert "podman" in text and "exec format error" in text and "booted (TCG)" in text
    assert OS in matrix.title and "arm64" in matrix.title
    for name in ("ready_time", "size_breakdown"):  # never beside a Linux guest
        assert "memtest" not in svg_text(next(c for c in made if c.name == name).svg)
    write_report(analyse([csv]), tmp_path / "report")
    report = (tmp_path / "report" / "report.md").read_text()
    assert f"os={OS}" in report and "runs_foreign_os" in report


# --- real engines ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def podman_backend():
    return usable_backend("podman")


def scenario(folder: Path, name: str, backends: list[str], boot: str = "") -> Path:
    path = write_scenario(
        folder, name, guests=["memtest"], workloads=["ready"], backends=backends, timeout_s=240
    )
    if boot:
        path.write_text(path.read_text() + f'\n[backend.qemu]\nboot = "{boot}"\n')
    return path


def run(tmp_path: Path, *scenarios: Path) -> list[dict]:
    results = tmp_path / "results"
    code = cli.main(["run", *map(str, scenarios), "--results-dir", str(results), "--no-report"])
    [folder] = list(results.iterdir())
    rows, bad = read_rows(folder / "results.csv")
    assert bad == [] and code == 0, [r for r in rows if r["status"] != "ok"]
    assert not qemu_run_dir(folder.name).exists()  # no pid file: every qemu was stopped
    return rows


@pytest.mark.integration
def test_qemu_boots_it_to_its_banner_by_kernel_bios_and_uefi(tmp_path, qemu_backend):
    """Three TCG boots; each stopped at its banner (no memory test runs on, no exit_s)."""
    boots = ("kernel", "bios", "uefi")
    rows = run(tmp_path, *(scenario(tmp_path, f"mt-{b}", ["qemu"], b) for b in boots))
    by = {(r["scenario"], r["metric"]): r for r in rows if r["phase"] != "build"}
    for boot in boots:
        ran = by[(f"mt-{boot}", "runs_foreign_os")]
        assert ran["value"] == "1.0" and ran["status"] == "ok"
        assert f"boot={boot}" in ran["detail"] and "banner='Memtest86+ v" in ran["detail"]
        ready = by[(f"mt-{boot}", "ready_s")]
        assert "marker=banner" in ready["detail"] and f"os={OS}" in ready["detail"]
        assert float(ready["value"]) > 0
        assert (f"mt-{boot}", "exit_s") not in by  # stopped after the banner
    for boot, bootloader in (("bios", "SYSLINUX"), ("uefi", "GRUB")):
        assert bootloader in by[(f"mt-{boot}", "bootloader_s")]["detail"]
    # `vmbench guests` lists its boot files, the package's bytes.
    [built] = [
        g
        for g in built_guests()
        if g.get("os") == OS and g["folder"].endswith(build_guest("memtest").folder.name)
    ]
    assert built["artefacts"][f"boot/{memtest.BIN}"] == (
        build_guest("memtest").kernel.vmlinuz.stat().st_size
    )


@pytest.mark.integration
def test_docker_and_podman_refuse_it_with_exec_format_error(
    tmp_path, docker_backend, podman_backend
):
    rows = run(tmp_path, scenario(tmp_path, "mt-containers", ["docker", "podman"]))
    facts = {r["backend"]: r for r in rows if r["metric"] == "runs_foreign_os"}
    assert set(facts) == {"docker", "podman"}
    for fact in facts.values():
        assert fact["status"] == "ok" and fact["value"] == "0.0", fact
        # The engine's own words, naming the file it was given as the entrypoint.
        assert "exec /memtest86+x64.bin: exec format error" in fact["detail"], fact
        assert f"os={OS}" in fact["detail"]
    assert not [r for r in rows if r["metric"] == "ready_s"]


@pytest.mark.integration
def test_sigint_during_its_boot_leaves_no_qemu(harness, tmp_path, docker_backend, qemu_backend):
    path = scenario(tmp_path, "mt-sigint", ["qemu"], "bios")
    results = tmp_path / "results"
    proc = harness.start("run", str(path), results=results)
    run_id = harness.run_id(results)
    pids = wait_until(lambda: qemu_pids(run_id), 60, "qemu's pid file")
    assert all(alive(pid) for pid in pids)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 130  # within seconds, as Ctrl-C should
    log = Path(proc.log_path).read_text()
    assert "Traceback" not in log, log
    assert containers_of(docker_backend.client, run_id) == []
    rows, bad = read_rows(results / run_id / "results.csv")
    assert bad == []
    assert not any(alive(pid) for pid in pids)
    assert not qemu_run_dir(run_id).exists()
    [interrupted] = [r for r in rows if r["status"] == "interrupted"]
    assert interrupted["guest"] == "memtest" and interrupted["backend"] == "qemu"
