import json
import re
import subprocess
import sys

import pytest

from bench.cli import main
from bench.results import read_rows


def vmbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_bad_scenario_is_one_line_exit_2_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[scenario]\nname = "x"\nguests = ["busybox"]\nrepetitions = 0\n')
    result = vmbench("run", str(bad), "--results-dir", str(tmp_path / "results"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{bad}: scenario.repetitions: expected a whole number from 1 to 1000" in result.stderr
    assert not (tmp_path / "results").exists()  # nothing started, nothing written


def test_unknown_backend_option_is_usage_error(tmp_path):
    result = vmbench("run", "--backends", "dockr")
    assert result.returncode == 2
    assert "unknown backend 'dockr'" in result.stderr


def test_doctor_names_every_backend():
    result = vmbench("doctor")
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert {"docker", "qemu"} <= set(names)


def test_no_command_prints_help():
    result = vmbench()
    assert result.returncode == 2
    assert "usage: vmbench" in result.stdout


@pytest.mark.integration
def test_run_writes_csv_host_json_and_summary(
    tmp_path, docker_backend, qemu_backend, busybox_guest, capsys
):
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(
        '[scenario]\nname = "tiny"\nguests = ["busybox"]\nworkloads = ["idle"]\n'
        'backends = ["docker", "qemu"]\nrepetitions = 1\nwarmup = 0\nmemory_sample_s = 0.5\n'
    )
    code = main(["run", str(scenario), "--results-dir", str(tmp_path / "results")])
    assert code == 0
    [run_dir] = list((tmp_path / "results").iterdir())
    rows, bad = read_rows(run_dir / "results.csv")
    assert bad == []
    ok = {(r["backend"], r["metric"]) for r in rows if r["status"] == "ok"}
    for backend in ("docker", "qemu"):
        assert {(backend, "ready_s"), (backend, "pss_bytes"), (backend, "image_bytes")} <= ok
    accels = {r["backend"]: r["accel"] for r in rows if r["metric"] == "ready_s"}
    assert accels["docker"] == "none" and accels["qemu"] in ("kvm", "tcg")
    assert {(r["backend"], r["kind"]) for r in rows} == {("docker", "container"), ("qemu", "vm")}
    meta = json.loads((run_dir / "host.json").read_text())
    assert meta["run_id"] == run_dir.name and meta["accel"]["qemu"] == accels["qemu"]
    assert "summary of" in capsys.readouterr().out


def test_report_command_writes_report_and_prints_verdicts(tmp_path):
    from helpers.reports import full_host, host_meta, write_csv

    csv = write_csv(tmp_path / "run" / "results.csv", full_host("lab1"), host_meta("lab1"))
    result = vmbench("report", str(csv))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "report" / "report.md").is_file()
    assert "speed" in result.stdout and "supported" in result.stdout
    assert "report: " in result.stdout


def test_report_of_a_missing_csv_is_usage_error(tmp_path):
    result = vmbench("report", str(tmp_path / "nope.csv"))
    assert result.returncode == 2
    assert "nope.csv: no such results CSV" in result.stderr


def test_compare_and_slides_commands(tmp_path):
    from helpers.reports import full_host, host_meta, write_csv

    a = write_csv(tmp_path / "a" / "results.csv", full_host("lab1"), host_meta("lab1"))
    b = write_csv(
        tmp_path / "b" / "results.csv", full_host("lab2", vms=("qemu",)), host_meta("lab2")
    )
    result = vmbench("compare", str(a), str(b), "--out", str(tmp_path / "cmp"))
    assert result.returncode == 0, result.stderr
    assert "lab1" in result.stdout and "lab2" in result.stdout
    assert (tmp_path / "cmp" / "compare.md").is_file()
    result = vmbench("slides", str(a), "--out", str(tmp_path / "deck.pptx"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "deck.pptx").stat().st_size > 10_000


def test_report_of_a_csv_without_vmbench_rows_is_usage_error(tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    result = vmbench("report", str(other))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("vagrant", "strict", "expected"),
    [
        ("ok", False, 0),
        ("unavailable", False, 0),  # what could not run here is said, not failed
        ("unavailable", True, 1),  # --strict: it fails the run
        ("fails", False, 1),  # a failed trial fails the run either way
        ("fails", True, 1),
    ],
)
def test_run_exit_codes(
    tmp_path,
    monkeypatch,
    fake_guest,
    vagrant,
    strict,
    expected,
):
    """Exit 0 when every trial this host can run ended ok and a claim was checked; --strict
    makes "could not run here" exit 1; a failed trial exits 1 either way."""
    from helpers.fakes import OK_LINES, FakeBackend, scenario_file

    from bench.backends.base import Availability
    from bench.run import runner as runner_mod

    class Vagrant(FakeBackend):
        def availability(self):
            return Availability(vagrant != "unavailable", "fake", "nothing")

    lines = [b"no READY here\n"] if vagrant == "fails" else OK_LINES
    backends = {
        "docker": FakeBackend("docker", OK_LINES),
        "qemu": FakeBackend("qemu", OK_LINES),
        "vagrant": Vagrant("vagrant", lines),
    }
    monkeypatch.setattr(runner_mod, "make_backend", lambda name: backends[name])
    seen = []
    real_run = runner_mod.Runner.run
    monkeypatch.setattr(
        runner_mod.Runner, "run", lambda self, s: seen.append(real_run(self, s)) or seen[-1]
    )
    results = tmp_path / "results"
    scenario = scenario_file(tmp_path)
    scenario.write_text(scenario.read_text().replace('"qemu"]', '"qemu", "vagrant"]'))
    argv = ["run", str(scenario), "--results-dir", str(results), "--no-report"]
    code = main(argv + (["--strict"] if strict else []))
    [stats] = seen
    assert code == expected
    assert stats.ok == {"ok": 24, "unavailable": 16, "fails": 16}[vagrant]
    assert stats.failed == (8 if vagrant == "fails" else 0)


@pytest.mark.parametrize(
    ("engines", "qemu_usable", "expected", "said"),
    [
        (["qemu"], True, 0, False),  # one engine: it measures, it claims nothing
        (["docker", "qemu"], False, 1, True),  # a comparison planned, none could be made
        (["docker", "qemu"], True, 0, False),
    ],
)
def test_only_a_plan_that_compares_fails_for_checking_no_claim(
    tmp_path, monkeypatch, fake_guest, capsys, engines, qemu_usable, expected, said
):
    from helpers.fakes import OK_LINES, FakeBackend, scenario_file

    from bench.backends.base import Availability
    from bench.run import runner as runner_mod

    class Qemu(FakeBackend):
        def availability(self):
            return Availability(qemu_usable, "fake", "nothing")

    backends = {"docker": FakeBackend("docker", OK_LINES), "qemu": Qemu("qemu", OK_LINES)}
    monkeypatch.setattr(runner_mod, "make_backend", lambda name: backends[name])
    scenario = scenario_file(tmp_path)
    scenario.write_text(scenario.read_text().replace('["docker", "qemu"]', json.dumps(engines)))
    results = tmp_path / "results"
    assert main(["run", str(scenario), "--results-dir", str(results), "--no-report"]) == expected
    assert ("no claim could be checked" in capsys.readouterr().err) == said


def test_a_guest_an_engine_cannot_run_is_one_line_and_the_engine_is_not_skipped(
    tmp_path,
    monkeypatch,
    fake_guest,
    capsys,
):
    """qemu cannot run guest debian (like podman-systemd on busybox) but runs busybox: one
    line for that pair, saying so, no 'skipped'; an engine that cannot run at all is skipped.
    The last line counts every trial: ok, failed and not supported."""
    from dataclasses import replace

    from helpers.fakes import OK_LINES, FakeBackend, scenario_file

    from bench.backends.base import Availability, BackendUnsupported
    from bench.run import runner as runner_mod

    class Qemu(FakeBackend):
        def prepare(self, guest, options):
            if guest.name == "debian":
                raise BackendUnsupported("qemu: guest debian has no kernel")
            return super().prepare(guest, options)

    class Missing(FakeBackend):
        def availability(self):
            return Availability(False, "no daemon", "start it")

    monkeypatch.setattr(runner_mod, "build_guest", lambda name: replace(fake_guest, name=name))
    backends = {"docker": Missing("docker", OK_LINES), "qemu": Qemu("qemu", OK_LINES)}
    monkeypatch.setattr(runner_mod, "make_backend", lambda name: backends[name])
    scenario = scenario_file(tmp_path).read_text().replace('["busybox"]', '["busybox", "debian"]')
    (tmp_path / "s.toml").write_text(scenario)
    results = tmp_path / "results"
    main(["run", str(tmp_path / "s.toml"), "--results-dir", str(results), "--no-report"])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("vmbench: ")]
    progress = [ln for ln in lines if re.match(r"vmbench: \d+/32 ", ln)]
    assert len(progress) == 32  # not a terminal: a line per trial
    # Progress, and what the noise check found on this host (other people's VMs, say), apart.
    lines = [ln for ln in lines if ln not in progress and not ln.startswith("vmbench: noise:")]
    about_qemu = [
        ln for ln in lines if "qemu" in ln and "trials" not in ln and "could not" not in ln
    ]
    assert about_qemu == [
        "vmbench: guest debian is not supported on qemu: qemu: guest debian has no kernel"
    ]
    assert [ln for ln in lines if "skipped:" in ln] == [
        "vmbench: backend docker skipped: no daemon; fix: start it"
    ]
    # The summary repeats only what to do about it.
    assert [ln.partition("could not run here: ")[2] for ln in lines if "could not run" in ln] == [
        "docker (fix: start it); guest debian on qemu (qemu: guest debian has no kernel)"
    ]
    # 2 guests x 2 backends x 2 workloads x (1 warmup + 3): qemu on busybox ran, the rest not.
    assert lines[-1].startswith(
        "vmbench: 8 trials ok, 0 failed, 24 not supported here (guest debian on qemu; "
        "backend docker skipped)"
    ), lines[-1]
