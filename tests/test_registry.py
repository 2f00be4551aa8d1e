"""The engine registry: engines are found from their modules, and a new engine declared in one
module shows up everywhere: scenario validation, --backends, doctor, the density guard, the
CSV's kind column and the report's classification."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from bench import backends, cli
from bench.backends.base import KINDS, Backend
from bench.cli import run as cli_run
from bench.run import scenario
from bench.run.density import static_estimate
from bench.run.options import DEFAULT_MEMORY_MIB

# The whole fake engine: one module, nothing else in vmbench edited for it.
FAKE_ENGINE_MODULE = '''
"""fakevm: a microVM engine that exists only in this test."""

import threading

from bench.backends.base import Availability, Backend, Instance, Prepared, SizeRecord
from bench.run.measure import ConsoleWatcher
from bench.run.options import MEMORY_MIB, Option, one_of, whole_in


class FakeVmBackend(Backend):
    name = "fakevm"
    kind = "microvm"
    options = {
        "memory_mib": MEMORY_MIB,
        "vcpus": Option(whole_in(1, 4), 1, "virtual CPUs"),
        "firmware": Option(one_of(("none", "bios")), "none", "what boots the kernel"),
    }
    estimate_mib = 64

    def availability(self):
        return Availability(True, "fakevm: a test double")

    def versions(self):
        return {"fakevm": "0.1"}

    def prepare(self, guest, options):
        return Prepared(
            guest=guest,
            sizes=[SizeRecord("image_bytes", 1e6, "fake")],
            build_s=0.0,
            built_now=False,
            handle=None,
        )

    def create(self, prepared, spec):
        return FakeVmInstance(spec.workload)


class FakeVmInstance(Instance):
    accel = "tcg"

    def __init__(self, workload):
        self.workload = workload
        self.gone = threading.Event()

    def start(self, deadline_ns):
        self.console = ConsoleWatcher(self._console())

    def _console(self):
        yield b"VMBENCH READY uptime=0.5 kernel=fake-1.0 arch=x86_64\\n"
        if self.workload == "ready":
            yield b"VMBENCH DONE\\n"
            self.gone.set()
        self.gone.wait()

    def memory(self, full=True):
        return {"rss_bytes": 3 << 20, "pss_bytes": 2 << 20, "uss_bytes": 1 << 20}

    def wait_exited(self, timeout_s):
        return self.gone.wait(timeout_s)

    def _teardown(self):
        self.gone.set()
'''


def import_module_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_engine(tmp_path):
    """Write the fake engine's module to a folder of its own and register what it declares."""
    path = tmp_path / "fakevm_engine.py"
    path.write_text(FAKE_ENGINE_MODULE)
    module = import_module_file(path, "fakevm_engine")
    [cls] = backends.engines_in(module)
    backends.register(cls)
    yield cls
    backends.unregister(cls.name)
    sys.modules.pop("fakevm_engine", None)


def write_scenario(tmp_path: Path, backends_line: str, extra: str = "") -> Path:
    path = tmp_path / "s.toml"
    path.write_text(
        f'[scenario]\nname = "s"\nguests = ["busybox"]\nworkloads = ["idle"]\n{backends_line}\n'
        + extra
    )
    return path


def test_engines_are_discovered_from_their_modules():
    found = backends.engines()
    assert {"docker", "qemu", "vagrant"} <= set(found)
    for name, cls in found.items():
        assert cls.name == name and cls.kind in KINDS
        assert cls.__module__.startswith("bench.backends.")
    # Ordered from the shared kernel to an own kernel: containers before VMs.
    kinds = [KINDS.index(cls.kind) for cls in found.values()]
    assert kinds == sorted(kinds)
    assert found["docker"].kind == "container" and found["qemu"].kind == "vm"


def test_memory_mib_default_is_declared_once():
    for name in ("qemu", "vagrant"):
        assert backends.engine(name).settings({})["memory_mib"] == DEFAULT_MEMORY_MIB
    assert backends.engine("qemu").settings({"memory_mib": 512})["memory_mib"] == 512


def test_a_wrong_declaration_is_refused_naming_the_class():
    class Hypervisor(Backend):
        name = "hv"
        kind = "hypervisor"

        def availability(self): ...
        def prepare(self, guest, options): ...
        def create(self, prepared, spec): ...

    with pytest.raises(backends.RegistryError, match=r"Hypervisor: kind 'hypervisor' is not"):
        backends.register(Hypervisor)
    assert "hv" not in backends.engines()


def test_a_fake_engine_in_one_module_is_in_scenario_validation(tmp_path, fake_engine):
    path = write_scenario(tmp_path, 'backends = ["fakevm"]', "[backend.fakevm]\nvcpus = 2\n")
    [s] = scenario.load(path)
    assert s.backends == ("fakevm",)
    assert s.options("fakevm") == {
        "instances": None,
        "memory_mib": DEFAULT_MEMORY_MIB,
        "vcpus": 2,
        "firmware": "none",
    }
    typo = write_scenario(tmp_path, 'backends = ["fakvm"]')
    with pytest.raises(
        scenario.ScenarioError, match=r"scenario\.backends: .*did you mean 'fakevm'"
    ):
        scenario.load(typo)
    bad_key = write_scenario(tmp_path, 'backends = ["fakevm"]', "[backend.fakevm]\nvcpu = 2\n")
    with pytest.raises(scenario.ScenarioError) as err:
        scenario.load(bad_key)
    assert str(err.value) == (
        f"{bad_key}: backend.fakevm.vcpu: unknown key (did you mean 'vcpus'?); "
        "allowed: instances, memory_mib, vcpus, firmware"
    )
    bad_value = write_scenario(tmp_path, 'backends = ["fakevm"]', "[backend.fakevm]\nvcpus = 9\n")
    with pytest.raises(scenario.ScenarioError, match=r"backend\.fakevm\.vcpus: .* from 1 to 4"):
        scenario.load(bad_value)


def test_a_fake_engine_in_one_module_is_in_doctor_backends_and_host_json(fake_engine, capsys):
    from bench.run import host

    assert cli.main(["doctor"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["fakevm"].split()[1:3] == ["microvm", "yes"]
    assert lines["fakevm"].endswith("fakevm: a test double")
    assert cli_run._backend_list("docker,fakevm") == ("docker", "fakevm")
    versions = host.engine_versions()
    assert versions["fakevm"] == "0.1" and {"docker", "qemu", "vagrant"} <= set(versions)


def test_a_fake_engine_in_one_module_is_classified_by_the_report(
    tmp_path,
    monkeypatch,
    fake_engine,
    fake_guest,
):
    """Its rows carry the kind it declares, and the reading side classifies it by that alone
    (its name is in no list there)."""
    from bench.analysis import dataset
    from bench.results import ResultWriter
    from bench.run.runner import RunConfig, Runner

    path = write_scenario(tmp_path, 'backends = ["fakevm"]\nrepetitions = 2\nwarmup = 0')
    csv = tmp_path / "results.csv"
    with ResultWriter(csv) as writer:
        stats = Runner(RunConfig("run1", "host1"), writer).run(scenario.load(path))
    assert stats.ok == 2 and stats.exit_code() == 0
    ds = dataset.load([csv])
    rows = ds.rows[ds.rows.backend == "fakevm"]
    assert set(rows.kind) == {"microvm"}
    # Its image rows come before any instance said which accelerator it runs with.
    assert set(rows[rows.phase == "build"].accel) == {"unknown"}
    assert set(rows[rows.phase != "build"].accel) == {"tcg"}
    assert {"ready_s", "pss_bytes", "guest_uptime_s"} <= set(rows.metric)
    assert dataset.kind_of("fakevm") == ""  # not from a list of names: from the CSV
    assert not [w for w in ds.warnings if "fakevm" in w]


def test_a_fake_engine_in_one_module_is_in_the_memory_guard(tmp_path, fake_engine):
    path = write_scenario(tmp_path, 'backends = ["fakevm"]', "[backend.fakevm]\nmemory_mib = 100\n")
    [s] = scenario.load(path)
    estimate = static_estimate(s, "fakevm")
    assert estimate.per_instance_bytes == (100 + 64) << 20
    assert "memory_mib 100 + 64 MiB fakevm overhead" in estimate.how
    docker = static_estimate(s, "docker")
    assert docker.per_instance_bytes == backends.engine("docker").estimate_mib << 20
