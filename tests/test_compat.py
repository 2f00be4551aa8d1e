"""Kernel and foreign-architecture facts: evidence parsing, and the compat scenario on real engines."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import cli
from bench.guests import build_guest, split_guest_name
from bench.results import read_rows
from bench.run import compat
from bench.run.scenario import ScenarioError, load

ROOT = Path(__file__).resolve().parent.parent


def test_guest_name_may_name_an_architecture(tmp_path):
    assert split_guest_name("busybox-arm64") == ("busybox", "arm64")
    assert split_guest_name("busybox") == ("busybox", None)
    path = tmp_path / "s.toml"
    path.write_text('[scenario]\nname = "s"\nguests = ["busybox", "busybox-arm64"]\n')
    [s] = load(path)
    assert s.guests == ("busybox", "busybox-arm64")
    path.write_text('[scenario]\nname = "s"\nguests = ["busybox-arm65"]\n')
    with pytest.raises(ScenarioError) as e:
        load(path)
    assert str(e.value).startswith(f"{path}: scenario.guests: expected one of busybox")
    assert "-arm64" in str(e.value)


def test_kernel_fact_names_both_releases():
    assert compat.kernel_fact({"kernel": "6.1.0"}, "6.1.0") == (
        1.0,
        "guest_kernel=6.1.0 host_kernel=6.1.0",
    )
    value, detail = compat.kernel_fact({"kernel": "6.1.0-cloud"}, "6.18.4")
    assert value == 0.0 and "guest_kernel=6.1.0-cloud" in detail
    assert compat.kernel_fact({}, "6.1.0") is None


def test_exec_format_error_is_the_evidence_for_zero():
    value, detail = compat.foreign_arch_refused("arm64", "exec /bin/sh: exec format error")
    assert value == 0.0 and "exec format error" in detail and "guest_arch=arm64" in detail
    assert compat.foreign_arch_refused("arm64", "no such file or directory") is None


def test_binfmt_qemu_user_is_reported_as_user_mode_emulation(tmp_path, monkeypatch):
    monkeypatch.setattr(compat, "BINFMT_DIR", tmp_path)
    (tmp_path / "status").write_text("enabled\n")
    fields = {"arch": "aarch64", "kernel": "6.18.4"}
    value, detail = compat.foreign_arch_ran("arm64", fields, container=True)
    assert value == 1.0 and "user-mode emulation" not in detail  # no entry: not emulated by it
    (tmp_path / "qemu-aarch64").write_text(
        "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\n"
    )
    assert compat.binfmt_emulator("arm64") == "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"
    value, detail = compat.foreign_arch_ran("arm64", fields, container=True)
    assert value == 1.0 and "user-mode emulation" in detail and "aarch64-binfmt-P" in detail
    (tmp_path / "qemu-aarch64").write_text("disabled\ninterpreter /x\n")
    assert compat.binfmt_emulator("arm64") is None


def test_vm_that_reports_another_arch_did_not_run_it():
    value, detail = compat.foreign_arch_ran("arm64", {"arch": "x86_64"}, container=False)
    assert value == 0.0 and "expected arch=aarch64" in detail


@pytest.mark.integration
def test_compat_scenario_kernel_and_foreign_arch_facts(
    tmp_path, docker_backend, qemu_backend, busybox_guest
):
    """scenarios/compat.toml as shipped, on docker and qemu: 6 trials, 3 VM boots (one arm64
    under TCG, one memtest86+ to its banner)."""
    results = tmp_path / "results"
    code = cli.main(
        [
            "run",
            str(ROOT / "scenarios" / "compat.toml"),
            "--backends",
            "docker,qemu",
            "--results-dir",
            str(results),
            "--no-report",
        ]
    )
    assert code == 0
    [run] = list(results.iterdir())
    rows, bad = read_rows(run / "results.csv")
    assert bad == []
    assert not [r for r in rows if r["status"] != "ok"]
    facts = {
        (r["guest"], r["backend"], r["metric"]): r
        for r in rows
        if r["metric"] in ("kernel_matches_host", "runs_foreign_arch", "runs_foreign_os")
    }
    # Whose kernel: the container reports the host's, the VM its own.
    assert facts[("busybox", "docker", "kernel_matches_host")]["value"] == "1.0"
    assert facts[("busybox", "qemu", "kernel_matches_host")]["value"] == "0.0"
    assert "guest_kernel=" in facts[("busybox", "qemu", "kernel_matches_host")]["detail"]
    # Foreign architecture: the arm64 VM boots its own arm64 kernel under emulation.
    vm = facts[("busybox-arm64", "qemu", "runs_foreign_arch")]
    assert vm["value"] == "1.0" and "arch=aarch64" in vm["detail"] and vm["accel"] == "tcg"
    assert "cloud-arm64" in facts[("busybox-arm64", "qemu", "kernel_matches_host")]["detail"]
    container = facts[("busybox-arm64", "docker", "runs_foreign_arch")]
    assert container["status"] == "ok"
    arm64_busybox = build_guest("busybox", "arm64").rootfs / "bin" / "busybox"
    emulator = binfmt_handler(arm64_busybox)
    if emulator:  # this host's kernel hands arm64 binaries to qemu-user, containers included
        assert container["value"] == "1.0", emulator
        assert "user-mode emulation" in container["detail"]
    else:
        assert container["value"] == "0.0", container["detail"]
        assert "exec format error" in container["detail"]
        mounted = (BINFMT / "status").exists()
        assert ("binfmt_misc is not mounted" in container["detail"]) is not mounted
    # Another operating system: the VM boots memtest86+, docker cannot execute its file.
    assert facts[("memtest", "qemu", "runs_foreign_os")]["value"] == "1.0"
    refused = facts[("memtest", "docker", "runs_foreign_os")]
    assert refused["value"] == "0.0" and "exec format error" in refused["detail"]
    assert ("memtest", "docker", "kernel_matches_host") not in facts  # it printed no READY
    left = docker_backend.client.containers.list(
        all=True, filters={"label": f"vmbench.run={run.name}"}
    )
    assert left == []


BINFMT = Path("/proc/sys/fs/binfmt_misc")


def binfmt_handler(binary: Path, folder: Path = BINFMT) -> str:
    """The binfmt_misc entry under which this host's kernel would run ``binary`` in a container,
    or "". Read from /proc directly (not through bench.run.compat): each enabled entry's offset,
    magic and mask against the file's first bytes; only an entry with the F flag (interpreter
    opened when registered) works inside a container, whose tree has no qemu-user of its own."""
    status = folder / "status"
    if not status.exists() or status.read_text().strip() != "enabled":
        return ""
    header = binary.read_bytes()[:128]
    for entry in sorted(folder.iterdir()):
        if entry.name in ("status", "register"):
            continue
        lines = entry.read_text().splitlines()
        words = dict(line.replace("flags:", "flags", 1).split(" ", 1) for line in lines[1:])
        if lines[0] != "enabled" or "magic" not in words or "F" not in words.get("flags", ""):
            continue
        magic = bytes.fromhex(words["magic"])
        mask = bytes.fromhex(words.get("mask", "ff" * len(magic)))
        start = int(words.get("offset", "0"))
        window = header[start : start + len(magic)]
        if len(window) == len(magic) and all(
            b & m == x & m for b, x, m in zip(window, magic, mask, strict=True)
        ):
            return f"{entry.name}: {words.get('interpreter', '?')}"
    return ""


def test_binfmt_handler_of_these_tests_matches_by_magic_and_needs_the_f_flag(tmp_path):
    """The oracle above, on Debian's qemu-user-static entry for aarch64."""
    text = (
        "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: {flags}\n"
        "offset 0\nmagic 7f454c460201010000000000000000000200b700\n"
        "mask ffffffffffffff00fffffffffffffffffeffffff\n"
    )
    binfmt = tmp_path / "binfmt_misc"
    binfmt.mkdir()
    entry = binfmt / "qemu-aarch64"
    arm64, amd64 = tmp_path / "arm64", tmp_path / "amd64"
    arm64.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x02\x00\xb7\x00" + bytes(40))
    amd64.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x02\x00\x3e\x00" + bytes(40))
    entry.write_text(text.format(flags="POCF"))
    assert binfmt_handler(arm64, binfmt) == ""  # no status: binfmt_misc is not mounted
    (binfmt / "status").write_text("enabled\n")
    assert (
        binfmt_handler(arm64, binfmt) == "qemu-aarch64: /usr/libexec/qemu-binfmt/aarch64-binfmt-P"
    )
    assert binfmt_handler(amd64, binfmt) == ""
    entry.write_text(text.format(flags="PO"))  # no F: the container has no interpreter to open
    assert binfmt_handler(arm64, binfmt) == ""
    entry.write_text(text.format(flags="POCF").replace("enabled", "disabled", 1))
    assert binfmt_handler(arm64, binfmt) == ""
