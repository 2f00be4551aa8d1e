"""QEMU boot modes (kernel | bios | uefi): the phases a trial times, the rows a run writes,
and the charts that keep the modes apart. One integration run boots busybox twice (TCG)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from helpers.assertions import assert_phases_fit
from helpers.reports import ready_rows, row, write_csv

from bench.analysis.model import analyse
from bench.backends.base import Instance
from bench.cli import main
from bench.render import charts
from bench.render.charts.boot import phases_title
from bench.render.charts.distributions import distribution_groups
from bench.results import read_rows
from bench.run.measure import READY, ConsoleWatcher, now_ns
from bench.run.trial import boot_phases


class ConsoleOnly(Instance):
    """An instance that is nothing but a console (the phases read only the console)."""

    def __init__(self, chunks, markers: tuple[str, ...]) -> None:
        self.bootloader_markers = markers
        self.console = ConsoleWatcher(chunks, keep_lines=2, keep_markers=markers)

    def start(self, deadline_ns: int) -> None: ...
    def memory(self, full: bool = True) -> dict[str, int]:
        return {}

    def wait_exited(self, timeout_s: float) -> bool:
        return True

    def _teardown(self) -> None: ...


def paced(*steps: tuple[float, bytes]):
    for pause, data in steps:
        time.sleep(pause)
        yield data


MARKERS = ("SYSLINUX ", "Loading /initrd.gz")


def test_phases_come_from_the_bootloader_lines_on_the_host_clock():
    start = now_ns()
    # Banner at ~0.2 s, hand-off at ~0.5 s: firmware ~0.2 s, bootloader ~0.3 s. Chatter in
    # between must not push the banner out of the watcher's bounded memory; the guest's
    # uptime plays no part (its clock can run off under emulation).
    chunks = paced(
        (0.2, b"\x1b[0mSYSLINUX 6.04 banner\r\n"),
        (0.0, b"".join(b"noise %d\n" % i for i in range(50))),
        (0.3, b"Loading /vmlinuz... ok\r\nLoading /initrd.gz...ok\r\n"),
        (0.1, b"VMBENCH READY uptime=9.99 kernel=k arch=x86_64 init=init\n"),
    )
    instance = ConsoleOnly(chunks, MARKERS)
    assert instance.console.wait_for(READY, now_ns() + int(5e9)) is not None
    phases = {m.metric: m.value for m in boot_phases(instance, start, "boot=bios")}
    assert phases["firmware_s"] == pytest.approx(0.2, abs=0.08)
    assert phases["bootloader_s"] == pytest.approx(0.3, abs=0.08)


def test_no_phases_without_both_bootloader_lines():
    chunks = paced((0.0, b"SYSLINUX 6\nVMBENCH READY uptime=0.10 kernel=k arch=x86_64\n"))
    instance = ConsoleOnly(chunks, MARKERS)
    assert instance.console.wait_for(READY, now_ns() + int(5e9)) is not None
    assert boot_phases(instance, now_ns(), "") == []  # no hand-off line
    instance.bootloader_markers = ()  # a direct kernel boot declares none
    assert boot_phases(instance, now_ns(), "") == []


def test_a_bad_boot_mode_is_one_line_naming_file_and_key(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[scenario]\nname = "x"\nguests = ["busybox"]\nbackends = ["qemu"]\n'
        '[backend.qemu]\nboot = "efi"\n'
    )
    assert main(["run", str(bad), "--results-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: backend.qemu.boot: expected one of kernel, bios, uefi" in err
    assert "did you mean 'uefi'" in err


def test_charts_keep_boot_modes_apart(tmp_path):
    """qemu booted two ways is two boxes and two phase bars, never one mixed group."""
    rows = ready_rows("h", "docker", [0.5, 0.6, 0.5], detail="workload=ready")
    for boot, ready, fw, bl in (("kernel", 3.0, None, None), ("bios", 5.0, 0.4, 1.6)):
        detail = f"workload=ready boot={boot}"
        for t in range(3):
            rows.append(row("h", "qemu", "ready_s", ready, trial=t, detail=detail))
            rows.append(row("h", "qemu", "guest_uptime_s", 2.5, trial=t, detail=detail))
            if fw is not None:
                rows.append(row("h", "qemu", "firmware_s", fw, trial=t, detail=detail))
                rows.append(row("h", "qemu", "bootloader_s", bl, trial=t, detail=detail))
    a = analyse([write_csv(tmp_path / "results.csv", rows)])
    ds = a.dataset
    made = charts.draw_all(a, tmp_path / "charts").claim_charts
    phases = next(c for c in made if c.name == "boot_phases")
    text = " ".join(re.findall(r"<text[^>]*>([^<]*)</text>", Path(phases.svg).read_text()))
    assert "busybox · qemu bios" in text and "firmware" in text and "bootloader" in text
    assert "before the guest's clock starts" in text
    # (0.4 + 1.6) / 5.0 before the kernel, one bar: its guest named
    assert phases.title.startswith("qemu bios: 50% of busybox's time to ready passes before")
    groups = distribution_groups(ds.measured[ds.measured.metric == "ready_s"], False)
    means = {g.label.split("\n")[0]: float(g.main.mean()) for g in groups}
    assert means == {
        "busybox · docker": pytest.approx(0.5333, abs=1e-3),
        "busybox · qemu": 3.0,
        "busybox · qemu bios": 5.0,
    }


def test_phases_title_speaks_for_the_largest_share_whatever_the_engine(tmp_path):
    """No engine is preferred by name: here qemu's BIOS boot (50 % before the kernel) outweighs
    vagrant's kernel boot (20 %) and heads the title."""
    rows = []
    for backend, boot, ready, uptime in (
        ("vagrant", "kernel", 10.0, 8.0),
        ("qemu", "bios", 5.0, 2.5),
    ):
        detail = f"workload=ready boot={boot}"
        for t in range(3):
            rows.append(row("h", backend, "ready_s", ready, trial=t, detail=detail))
            rows.append(row("h", backend, "guest_uptime_s", uptime, trial=t, detail=detail))
    _fig, title = charts.boot_phases(analyse([write_csv(tmp_path / "results.csv", rows)]))
    assert title.startswith("qemu bios: 50% of busybox's time to ready passes before"), title


@pytest.mark.integration
def test_a_bios_run_times_firmware_and_bootloader(tmp_path, qemu_backend, busybox_guest):
    """One run, two scenarios: the same guest on qemu booted by kernel and through BIOS. Each
    gets its own image and size rows, every row says its boot mode, and the BIOS boot's
    phases (host clock) leave room for the guest's own uptime before READY."""
    for boot in ("kernel", "bios"):
        (tmp_path / f"{boot}.toml").write_text(
            f'[scenario]\nname = "boot-{boot}"\nguests = ["busybox"]\nworkloads = ["ready"]\n'
            'backends = ["qemu"]\nrepetitions = 1\nwarmup = 0\n'
            f'[backend.qemu]\naccel = "tcg"\nboot = "{boot}"\n'
        )
    (tmp_path / "suite.toml").write_text('[suite]\ninclude = ["kernel.toml", "bios.toml"]\n')
    code = main(
        ["run", str(tmp_path / "suite.toml"), "--results-dir", str(tmp_path / "r"), "--no-report"]
    )
    assert code == 0
    [csv] = (tmp_path / "r").glob("*/results.csv")
    rows, bad = read_rows(csv)
    assert bad == []
    by = {boot: [r for r in rows if r["scenario"] == f"boot-{boot}"] for boot in ("kernel", "bios")}
    for boot, mine in by.items():
        assert mine and all(f"boot={boot}" in r["detail"].split() for r in mine), boot
    values = {r["metric"]: float(r["value"]) for r in by["bios"] if r["value"]}
    assert_phases_fit(values)
    # Sizes: the BIOS image is the boot disk (kernel and initramfs inside it, no rows of their
    # own); the kernel boot's image is kernel + initramfs.
    assert values["image_bytes"] == values["disk_bytes"] > values["bootloader_bytes"] > 0
    assert "kernel_bytes" not in values and "firmware_s" not in {r["metric"] for r in by["kernel"]}
    kernel = {r["metric"]: float(r["value"]) for r in by["kernel"] if r["value"]}
    assert kernel["image_bytes"] == kernel["kernel_bytes"] + kernel["initramfs_bytes"]
    assert values["disk_bytes"] > kernel["image_bytes"]  # it holds both, and the bootloader


def test_phases_title_names_its_guest_or_how_many_bars_it_takes_the_median_of():
    one = phases_title("qemu uefi", [("debian", 0.68)])
    assert one == "qemu uefi: 68% of debian's time to ready passes before its kernel runs"
    several = phases_title("qemu uefi", [("busybox", 0.72), ("debian", 0.68)])
    assert several.startswith("qemu uefi: 70% of the time to ready passes before")
    assert several.endswith("(median of busybox and debian)")
    hosts = phases_title("qemu", [("busybox", 0.2), ("busybox", 0.3), ("debian", 0.4)])
    assert hosts.endswith("passes before the guest kernel runs (median of 3 bars)")
