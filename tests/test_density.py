"""Density: scenario keys, the memory guard, N instances measured together (fakes and real engines)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bench import cli
from bench.backends.base import Availability, Backend, Instance, Prepared
from bench.backends.qemu import run_dir as qemu_run_dir
from bench.cli import running
from bench.guests import Guest
from bench.results import read_rows
from bench.run.density import MemoryGuard, check_host_memory, run_density
from bench.run.measure import ConsoleWatcher
from bench.run.runner import plan
from bench.run.scenario import ScenarioError, load
from bench.run.trial import Measurement, TrialOutcome

GIB = 1 << 30


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def density_toml(tmp_path: Path, extra: str = "", name: str = "d") -> Path:
    return write(
        tmp_path / f"{name}.toml",
        f'[scenario]\nname = "{name}"\nguests = ["busybox"]\nworkloads = ["idle"]\n'
        'backends = ["docker", "qemu"]\nrepetitions = 1\nwarmup = 0\ntimeout_s = 120\n'
        f"memory_sample_s = 0.5\n{extra}",
    )


# --- scenario keys and planning ----------------------------------------------------------------


def test_backend_instances_override_the_scenario_list(tmp_path):
    path = density_toml(
        tmp_path, "instances = [1, 2]\n[backend.docker]\ninstances = [1, 2, 4, 8]\n"
    )
    [s] = load(path)
    assert s.instances_for("docker") == (1, 2, 4, 8)
    assert s.instances_for("qemu") == (1, 2)
    assert s.multi_instance("docker") and s.multi_instance("qemu")
    counts = {}
    for t in plan(s):
        counts.setdefault(t.backend, []).append(t.instances)
    assert sorted(counts["docker"]) == [1, 2, 4, 8]
    assert sorted(counts["qemu"]) == [1, 2]


def test_single_instance_scenario_is_not_density(tmp_path):
    [s] = load(density_toml(tmp_path))
    assert s.instances_for("docker") == (1,) and not s.multi_instance("docker")


def test_density_needs_the_idle_workload(tmp_path):
    path = write(
        tmp_path / "r.toml",
        '[scenario]\nname = "r"\nguests = ["busybox"]\nworkloads = ["ready"]\ninstances = [1, 2]\n',
    )
    with pytest.raises(ScenarioError) as e:
        load(path)
    assert str(e.value).startswith(f"{path}: scenario.workloads: ")
    assert "idle" in str(e.value)


def test_bad_backend_instances_names_file_and_key(tmp_path):
    path = density_toml(tmp_path, "[backend.qemu]\ninstances = [0, 2]\n")
    with pytest.raises(ScenarioError) as e:
        load(path)
    assert str(e.value).startswith(f"{path}: backend.qemu.instances: expected a whole number")


def test_shipped_density_scenarios_load():
    root = Path(__file__).resolve().parent.parent / "scenarios"
    [s] = load(root / "density.toml")
    assert s.instances_for("docker") == (1, 2, 4, 8, 16, 32)
    assert s.instances_for("qemu") == (1, 2, 4)
    [lab] = load(root / "density-lab.toml")
    assert max(lab.instances_for("docker")) > 32
    names = [s.name for s in load(root / "default.toml")]
    assert "density" in names and "compat" in names


# --- the memory guard --------------------------------------------------------------------------


def test_guard_refuses_an_n_the_host_cannot_hold_naming_the_key(tmp_path):
    path = density_toml(tmp_path, "[backend.qemu]\ninstances = [1, 4]\nmemory_mib = 1024\n")
    [s] = load(path)
    check_host_memory([s], available=8 * GIB)  # 4 x (1024 + 128) MiB fits in 8 GiB
    with pytest.raises(ScenarioError) as e:
        check_host_memory([s], available=4 * GIB)
    message = str(e.value)
    assert message.startswith(f"{path}: backend.qemu.instances: 4 qemu instances need")
    assert "4.5 GiB" in message and "MemAvailable" in message and "\n" not in message


def test_guard_ignores_single_instance_scenarios(tmp_path):
    [s] = load(density_toml(tmp_path, "[backend.qemu]\nmemory_mib = 65536\n"))
    check_host_memory([s], available=1 * GIB)  # no density: nothing to refuse


def test_runtime_guard_uses_the_cost_measured_at_a_smaller_n():
    guard = MemoryGuard()
    key = ("d", "busybox", "qemu")
    assert guard.refusal(key, 4, available=1) is None  # nothing measured yet
    measured = TrialOutcome(
        "ok",
        measurements=[
            Measurement("pss_bytes", 2 * 200e6),
            Measurement("host_used_delta_bytes", 2 * 250e6),
        ],
    )
    guard.learn(key, 2, measured)
    assert guard.refusal(key, 4, available=int(1.1e9)) is None  # 4 x 250 MB fits
    why = guard.refusal(key, 8, available=int(1.1e9))
    assert why is not None and "measured at N=2" in why and "MemAvailable" in why
    # A larger N's figure replaces a smaller one's, even when lower (noise spread thinner).
    guard.learn(key, 4, TrialOutcome("ok", measurements=[Measurement("pss_bytes", 4 * 100e6)]))
    assert guard.refusal(key, 8, available=int(1.1e9)) is None
    guard.learn(key, 1, TrialOutcome("ok", measurements=[Measurement("pss_bytes", 900e6)]))
    assert guard.per_instance[key] == (100e6, 4)


# --- N instances at once, against a fake engine boundary ---------------------------------------


class FakeInstance(Instance):
    def __init__(self, ready: bool) -> None:
        self.ready = ready
        self.accel = "tcg"
        self.started = self.stopped = False

    def start(self, deadline_ns: int) -> None:
        self.started = True
        lines = [b"VMBENCH READY uptime=1 kernel=k arch=x86_64\n"] if self.ready else []
        self.console = ConsoleWatcher(_then_block(lines))

    def memory(self, full: bool = True) -> dict[str, int]:
        return {"rss_bytes": 3000, "pss_bytes": 1000, "uss_bytes": 900}

    def wait_exited(self, timeout_s: float) -> bool:
        return False

    def _teardown(self) -> None:
        self.stopped = True


def _then_block(lines):
    """Yield the lines, then block like a live console (until the test process ends)."""
    import threading

    yield from lines
    threading.Event().wait()


class FakeBackend(Backend):
    name = "fake"
    kind = "vm"

    def __init__(self, ready_pattern):
        self.ready_pattern = ready_pattern
        self.instances: list[FakeInstance] = []

    def availability(self):
        return Availability(True, "fake")

    def prepare(self, guest, options):
        raise NotImplementedError

    def create(self, prepared, spec):
        instance = FakeInstance(self.ready_pattern[len(self.instances)])
        self.instances.append(instance)
        return instance


@pytest.fixture
def prepared(tmp_path):
    guest = Guest("busybox", "amd64", tmp_path, tmp_path, None, tmp_path / "i")  # type: ignore[arg-type]
    return Prepared(guest=guest, sizes=[], build_s=0.0, built_now=False, handle=None, accel="tcg")


def spec(timeout_s: float = 5):
    from bench.backends.base import LaunchSpec

    return LaunchSpec(
        run_id="run1", name="vmbench-run1-fake-busybox-1", workload="idle", timeout_s=timeout_s
    )


def test_density_sums_memory_and_times_every_instance(prepared):
    backend = FakeBackend([True, True, True])
    outcome = run_density(backend, prepared, spec(), 3, sample_s=0.3, hz=10)
    assert outcome.status == "ok", outcome.detail
    by = {}
    for m in outcome.measurements:
        by.setdefault(m.metric, []).append(m)
    assert len(by["ready_s"]) == 3 and len(by["all_ready_s"]) == 1
    assert by["all_ready_s"][0].value >= max(m.value for m in by["ready_s"])
    assert by["pss_bytes"][0].value == 3000 and by["rss_bytes"][0].value == 9000
    assert "host_used_delta_bytes" in by
    assert all(i.started and i.stopped for i in backend.instances)


def test_density_stops_every_instance_when_one_never_gets_ready(prepared):
    backend = FakeBackend([True, False, True])
    outcome = run_density(backend, prepared, spec(timeout_s=0.5), 3, sample_s=0.3)
    assert outcome.status == "timeout" and "instance 2/3" in outcome.detail
    assert len(backend.instances) == 3 and all(i.stopped for i in backend.instances)


def test_density_stops_every_instance_on_ctrl_c(prepared):
    class Interrupting(FakeBackend):
        def create(self, prepared, spec):
            if len(self.instances) == 2:
                raise KeyboardInterrupt
            return super().create(prepared, spec)

    backend = Interrupting([True, True, True])
    with pytest.raises(KeyboardInterrupt):
        run_density(backend, prepared, spec(), 3, sample_s=0.3)
    assert len(backend.instances) == 2 and all(i.stopped for i in backend.instances)


def test_density_refused_by_the_runtime_guard_starts_nothing(prepared):
    guard = MemoryGuard({("k",): (1e15, 1)})  # a petabyte per instance, measured
    backend = FakeBackend([True, True])
    outcome = run_density(backend, prepared, spec(), 2, 0.3, guard=guard, guard_key=("k",))
    assert outcome.status == "unsupported" and "refused before starting" in outcome.detail
    assert backend.instances == []


# --- real engines ------------------------------------------------------------------------------


def _rows_by(rows, backend, metric):
    return {
        int(r["instances"]): r for r in rows if r["backend"] == backend and r["metric"] == metric
    }


@pytest.mark.integration
def test_density_one_and_two_instances_on_docker_and_qemu(
    tmp_path, docker_backend, qemu_backend, busybox_guest
):
    path = density_toml(tmp_path, "instances = [1, 2]\n[backend.qemu]\ntb_size_mib = 32\n")
    results = tmp_path / "results"
    code = cli.main(["run", str(path), "--results-dir", str(results), "--no-report"])
    assert code == 0
    [run] = list(results.iterdir())
    rows, bad = read_rows(run / "results.csv")
    assert bad == []
    assert not [r for r in rows if r["status"] != "ok"]
    for backend in ("docker", "qemu"):
        ready = [r for r in rows if r["backend"] == backend and r["metric"] == "ready_s"]
        assert sorted(int(r["instances"]) for r in ready) == [1, 2, 2]  # each one's ready_s
        for metric in ("all_ready_s", "host_used_delta_bytes", "pss_bytes", "rss_bytes"):
            assert set(_rows_by(rows, backend, metric)) == {1, 2}, (backend, metric)
        rss = _rows_by(rows, backend, "rss_bytes")
        assert float(rss[2]["value"]) > 1.5 * float(rss[1]["value"]), backend
        assert "sum over 2 instances" in rss[2]["detail"]
    pss = _rows_by(rows, "qemu", "pss_bytes")
    assert float(pss[2]["value"]) > 1.5 * float(pss[1]["value"])
    # Shims apart. Their PSS is not asserted to grow: a shim's pages are shared with every other
    # containerd-shim on the host (other runs' too), so its share can shrink as N grows.
    shim = _rows_by(rows, "docker", "shim_pss_bytes")
    assert set(shim) == {1, 2} and all(float(r["value"]) > 0 for r in shim.values())
    assert "sum over 2 instances" in shim[2]["detail"]
    assert "shim=containerd-shim" in shim[2]["detail"].split()
    # Nothing left behind: no container of this run, no qemu pid files.
    client = docker_backend.client
    left = client.containers.list(all=True, filters={"label": f"vmbench.run={run.name}"})
    assert left == []
    assert not list(qemu_run_dir(run.name).glob("*.pid"))


@pytest.mark.integration
def test_memory_guard_refuses_before_anything_starts(
    tmp_path, monkeypatch, capsys, docker_backend, qemu_backend
):
    fine = density_toml(tmp_path, "instances = [1, 2]\n", name="fine")
    huge = density_toml(
        tmp_path, "[backend.qemu]\ninstances = [1, 256]\nmemory_mib = 65536\n", name="huge"
    )
    run_id = f"guard-test-{dt.datetime.now(dt.UTC):%H%M%S%f}"
    monkeypatch.setattr(running, "new_run_id", lambda host_id: run_id)
    since = dt.datetime.now(dt.UTC)
    results = tmp_path / "results"
    code = cli.main(["run", str(fine), str(huge), "--results-dir", str(results)])
    until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vmbench: {huge}: backend.qemu.instances: 256 qemu instances need")
    assert "MemAvailable" in err and "Traceback" not in err and "\n" not in err
    # Not even the possible scenario listed first ran: no results, no container was ever
    # created with this run's label, no qemu pid file folder.
    assert not results.exists()
    events = docker_backend.client.events(
        since=since, until=until, filters={"label": f"vmbench.run={run_id}"}, decode=True
    )
    assert list(events) == []
    assert not qemu_run_dir(run_id).exists()
