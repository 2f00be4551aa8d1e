"""Runner logic against a fake backend boundary (the real engines are in test_*_backend.py)."""

import datetime as dt
import itertools
import time
from pathlib import Path

from helpers.fakes import OK_LINES, FakeBackend, run_with, scenario_file

from bench.backends.base import Availability
from bench.run import runner as runner_mod
from bench.run.runner import RunConfig, effective, plan
from bench.run.scenario import load


def test_plan_interleaves_backends_in_shuffled_rounds(tmp_path):
    [s] = load(scenario_file(tmp_path))
    trials = list(plan(s))
    # (1 warmup + 3 reps) x 2 workloads x 2 backends
    assert len(trials) == 16
    rounds = [tuple(t.backend for t in trials[i : i + 2]) for i in range(0, 16, 2)]
    assert all(sorted(r) == ["docker", "qemu"] for r in rounds)
    assert len(set(rounds)) == 2  # the order changes between rounds
    numbers = [t.trial for t in trials if t.backend == "docker"]
    assert numbers == list(range(1, 9))
    assert [t.phase for t in trials if t.backend == "docker"][:4] == [
        "warmup",
        "warm",
        "warm",
        "warm",
    ]


def test_quick_and_overrides(tmp_path):
    [s] = load(scenario_file(tmp_path))
    quick = effective(s, RunConfig("r", "h", backends=("qemu",), quick=True))
    assert (quick.repetitions, quick.warmup, quick.backends) == (2, 0, ("qemu",))
    assert effective(s, RunConfig("r", "h", repetitions=7)).repetitions == 7


def test_quick_density_keeps_two_sizes_per_backend_and_never_adds_trials():
    root = Path(__file__).resolve().parent.parent / "scenarios"
    [s] = load(root / "density.toml")
    quick = effective(s, RunConfig("r", "h", quick=True))
    assert quick.instances_for("docker") == (1, 2)
    assert quick.instances_for("qemu") == (1, 2)
    assert quick.repetitions == min(s.repetitions, 2)
    assert len(list(plan(quick))) < len(list(plan(s)))


def test_rows_phases_and_cleanup(tmp_path, monkeypatch, fake_guest):
    backends = {"docker": FakeBackend("docker", OK_LINES), "qemu": FakeBackend("qemu", OK_LINES)}
    stats, rows = run_with(tmp_path, monkeypatch, backends, scenario_file(tmp_path))
    assert stats.failed == 0 and stats.ok == 16
    for backend in backends.values():
        assert all(i.stopped for i in backend.instances)
    ready = [r for r in rows if r["metric"] == "ready_s"]
    assert len(ready) == 16
    # first measured-or-warmup trial after a fresh build: warmup stays warmup, next is cold
    phases = [r["phase"] for r in ready if r["backend"] == "qemu"]
    assert phases.count("cold") == 1 and phases.count("warmup") == 2
    kinds = {(r["backend"], r["metric"]) for r in rows}
    assert ("qemu", "guest_uptime_s") in kinds and ("docker", "guest_uptime_s") not in kinds
    assert ("docker", "exit_s") in kinds and ("docker", "pss_bytes") in kinds
    sizes = [r for r in rows if r["phase"] == "build" and r["metric"] == "image_bytes"]
    assert len(sizes) == 2 and sizes[0]["detail"].startswith("artefact=img")
    assert all(r["detail"].startswith("workload=") for r in ready)
    assert {r["accel"] for r in ready if r["backend"] == "qemu"} == {"tcg"}


def test_timeout_and_failure_become_rows_and_the_run_goes_on(tmp_path, monkeypatch, fake_guest):
    silent = itertools.repeat(b"booting...\n", 0)  # ends at once: output ended before READY
    backends = {
        "docker": FakeBackend("docker", list(silent)),
        "qemu": FakeBackend("qemu", OK_LINES),
    }
    stats, rows = run_with(tmp_path, monkeypatch, backends, scenario_file(tmp_path))
    failed = [r for r in rows if r["metric"] == "trial"]
    assert len(failed) == 8 and {r["status"] for r in failed} == {"failed"}
    assert all("ended before READY" in r["detail"] for r in failed)
    assert stats.failed == 8 and stats.ok == 8
    assert all(i.stopped for i in backends["docker"].instances)


def test_unavailable_backend_gives_unsupported_rows(tmp_path, monkeypatch, fake_guest):
    class Missing(FakeBackend):
        def availability(self):
            return Availability(False, "no daemon", "start it")

    backends = {"docker": Missing("docker", OK_LINES), "qemu": FakeBackend("qemu", OK_LINES)}
    stats, rows = run_with(tmp_path, monkeypatch, backends, scenario_file(tmp_path))
    unsupported = [r for r in rows if r["status"] == "unsupported"]
    assert len(unsupported) == 8 and "no daemon" in unsupported[0]["detail"]
    assert stats.failed == 0 and stats.unavailable == {
        "docker": runner_mod.Missing("no daemon", "start it")
    }
    assert str(stats.unavailable["docker"]) == "no daemon; fix: start it"


def test_a_guest_the_backend_cannot_run_gives_unsupported_rows_not_failures(
    tmp_path, monkeypatch, fake_guest
):
    """E.g. Vagrant on a VirtualBox-only host and a guest that needs direct kernel boot."""
    from bench.backends.base import BackendUnsupported

    class CannotRun(FakeBackend):
        def prepare(self, guest, options):
            raise BackendUnsupported("vagrant: provider libvirt is not usable here: no libvirtd")

    backends = {"docker": FakeBackend("docker", OK_LINES), "qemu": CannotRun("qemu", OK_LINES)}
    stats, rows = run_with(tmp_path, monkeypatch, backends, scenario_file(tmp_path))
    assert stats.exit_code() == 0 and stats.failed == 0
    qemu = [r for r in rows if r["backend"] == "qemu"]
    assert qemu and {r["status"] for r in qemu} == {"unsupported"}
    assert "no libvirtd" in qemu[0]["detail"]
    assert {r["status"] for r in rows if r["backend"] == "docker"} == {"ok"}


def test_an_unknown_accelerator_is_unknown_for_a_vm_and_none_only_for_a_container(
    tmp_path, monkeypatch, fake_guest
):
    class Missing(FakeBackend):
        def availability(self):
            return Availability(False, "not installed", "install it")

    class Unknown(FakeBackend):
        """A VM whose engine never says which accelerator ran."""

        def create(self, prepared, spec):
            instance = super().create(prepared, spec)
            instance.accel = ""
            return instance

    backends = {"docker": Missing("docker", OK_LINES), "qemu": Missing("qemu", OK_LINES)}
    stats, rows = run_with(tmp_path, monkeypatch, backends, scenario_file(tmp_path))
    assert {r["accel"] for r in rows if r["backend"] == "docker"} == {"none"}
    assert {r["accel"] for r in rows if r["backend"] == "qemu"} == {"unknown"}
    assert stats.exit_code() == 1 and stats.failed == 0  # nothing could run here: exit 1

    backends = {"docker": FakeBackend("docker", OK_LINES), "qemu": Unknown("qemu", OK_LINES)}
    (tmp_path / "results.csv").unlink()
    _stats, rows = run_with(tmp_path, monkeypatch, backends, scenario_file(tmp_path))
    qemu = [r for r in rows if r["backend"] == "qemu"]
    assert qemu and {r["accel"] for r in qemu} == {"unknown"}
    assert {r["accel"] for r in rows if r["backend"] == "docker"} == {"none"}


def test_started_at_is_the_trials_start_for_every_row_of_it(tmp_path, monkeypatch, fake_guest):
    """Trials that take 2 s: their rows say when they started, not when they were written."""
    created: list[dt.datetime] = []

    class SlowToBoot(FakeBackend):
        def create(self, prepared, spec):
            created.append(dt.datetime.now(dt.UTC))
            instance = super().create(prepared, spec)

            def late(output=instance._output):
                time.sleep(2.0)
                yield from output()

            instance._output = late
            return instance

    path = tmp_path / "slow.toml"
    path.write_text(
        '[scenario]\nname = "slow"\nguests = ["busybox"]\nworkloads = ["ready"]\n'
        'backends = ["qemu"]\nrepetitions = 2\nwarmup = 0\ntimeout_s = 10\n'
    )
    backends = {"qemu": SlowToBoot("qemu", OK_LINES)}
    _stats, rows = run_with(tmp_path, monkeypatch, backends, path)
    stamps: dict[str, set[str]] = {}
    for r in rows:
        if r["phase"] != "build":
            stamps.setdefault(r["trial"], set()).add(r["started_at"])
    assert sorted(stamps) == ["1", "2"] and len(rows) > 4
    for k, trial in enumerate(sorted(stamps)):
        [stamp] = stamps[trial]  # the same for every row of the trial
        # Whole seconds, taken before its instance was created, not 2 s later when written.
        assert dt.datetime.fromisoformat(stamp) <= created[k], (stamp, created[k])


def test_an_instance_the_engine_cannot_create_here_is_unsupported_not_failed(
    tmp_path, monkeypatch, fake_guest
):
    from bench.backends.base import BackendUnsupported

    class NoSuchProvider(FakeBackend):
        def create(self, prepared, spec):
            raise BackendUnsupported("vagrant: this box needs VirtualBox")

    backends = {"docker": FakeBackend("docker", OK_LINES), "qemu": NoSuchProvider("qemu", [])}
    stats, rows = run_with(tmp_path, monkeypatch, backends, scenario_file(tmp_path))
    trials = [r for r in rows if r["backend"] == "qemu" and r["phase"] != "build"]
    assert trials and {r["status"] for r in trials} == {"unsupported"}
    assert all("needs VirtualBox" in r["detail"] for r in trials)
    assert stats.failed == 0 and stats.exit_code() == 0


def test_an_instance_is_ready_at_its_own_marker(tmp_path, monkeypatch, fake_guest):
    """A user's box runs no vmbench workload: it is ready when its engine says so."""
    up = b"==> default: Machine booted and ready!\n"

    class OwnMarker(FakeBackend):
        def create(self, prepared, spec):
            instance = super().create(prepared, spec)
            instance.ready_marker = "Machine booted and ready!"
            return instance

    backends = {"docker": FakeBackend("docker", OK_LINES), "qemu": OwnMarker("qemu", [up])}
    path = scenario_file(tmp_path).read_text().replace('["ready", "idle"]', '["idle"]')
    (tmp_path / "s.toml").write_text(path)
    stats, rows = run_with(tmp_path, monkeypatch, backends, tmp_path / "s.toml")
    ready = [r for r in rows if r["backend"] == "qemu" and r["metric"] == "ready_s"]
    assert stats.failed == 0 and len(ready) == 4 and {r["status"] for r in ready} == {"ok"}
    assert not [r for r in rows if r["backend"] == "qemu" and r["metric"] == "guest_uptime_s"]
