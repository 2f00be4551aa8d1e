"""`vmbench run --cold`: which trials are cold, and the root check (the page-cache drop faked)."""

from __future__ import annotations

from helpers.fakes import OK_LINES, FakeBackend, run_with, scenario_file

from bench import cli
from bench.cli import running
from bench.run import runner as runner_mod
from bench.run.runner import RunConfig


def run_counting_drops(tmp_path, monkeypatch, cold: bool):
    """Run the fake two-backend scenario; returns (page-cache drops, backends, rows)."""
    drops: list[int] = []
    monkeypatch.setattr(runner_mod, "drop_page_cache", lambda: drops.append(1))
    backends = {
        "docker": FakeBackend("docker", OK_LINES, built_now=False),
        "qemu": FakeBackend("qemu", OK_LINES, built_now=False),
    }
    config = RunConfig("run1", "host1", cold=cold)
    _stats, rows = run_with(tmp_path, monkeypatch, backends, scenario_file(tmp_path), config)
    return drops, backends, rows


def test_cold_drops_the_cache_once_per_guest_and_backend(tmp_path, monkeypatch, fake_guest):
    drops, backends, rows = run_counting_drops(tmp_path, monkeypatch, cold=True)
    ready = [r for r in rows if r["metric"] == "ready_s"]
    assert len(drops) == 2  # one guest, two backends
    for backend in backends:
        phases = [r["phase"] for r in ready if r["backend"] == backend]
        # warmup first, then the cold trial right after the drop, then warm ones
        assert phases[:3] == ["warmup", "cold", "warm"]
        assert phases.count("cold") == 1


def test_without_cold_nothing_is_dropped_and_nothing_cold(tmp_path, monkeypatch, fake_guest):
    drops, _backends, rows = run_counting_drops(tmp_path, monkeypatch, cold=False)
    assert drops == []
    assert "cold" not in {r["phase"] for r in rows}
    rootfs = [r for r in rows if r["metric"] == "rootfs_bytes"]
    assert len(rootfs) == 2 and all(r["detail"].startswith("artefact=rootfs") for r in rootfs)


def test_cold_needs_root(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(running.os, "geteuid", lambda: 1000)
    code = cli.main(["run", str(scenario_file(tmp_path)), "--cold"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == "vmbench: --cold needs root: it writes 3 to /proc/sys/vm/drop_caches"
