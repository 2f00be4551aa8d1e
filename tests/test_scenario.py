from pathlib import Path

import pytest

from bench.run import scenario
from bench.run.scenario import ScenarioError

GOOD = """
[scenario]
name = "busybox"
guests = ["busybox"]
workloads = ["ready", "idle"]
backends = ["docker", "qemu"]
repetitions = 3
warmup = 0
timeout_s = 30

[backend.qemu]
memory_mib = 128
"""


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_file_gives_values_and_defaults(tmp_path):
    [s] = scenario.load(write(tmp_path, GOOD))
    assert s.name == "busybox"
    assert s.backends == ("docker", "qemu")
    assert s.repetitions == 3 and s.warmup == 0 and s.timeout_s == 30.0
    assert s.options("qemu")["memory_mib"] == 128
    assert s.options("qemu")["machine"] == "pc"  # default filled in
    assert s.instances == (1,)


@pytest.mark.parametrize(
    ("old", "new", "key", "expected"),
    [
        ("repetitions = 3", "repetitions = -1", "scenario.repetitions", "from 1 to"),
        ("repetitions = 3", 'repetitions = "3"', "scenario.repetitions", "whole number"),
        ("timeout_s = 30", "timeout_s = 0", "scenario.timeout_s", "from 1"),
        (
            'guests = ["busybox"]',
            'guests = ["busybx"]',
            "scenario.guests",
            "did you mean 'busybox'",
        ),
        ('backends = ["docker", "qemu"]', 'backends = ["dokcer"]', "scenario.backends", "'docker'"),
        ('name = "busybox"', 'name = "../etc"', "scenario.name", "lower-case"),
        ("warmup = 0", "warmpu = 0", "scenario.warmpu", "did you mean 'warmup'"),
        ("memory_mib = 128", "memory_mb = 128", "backend.qemu.memory_mb", "'memory_mib'"),
        ("[backend.qemu]", "[backend.qmeu]", "backend.qmeu", "'qemu'"),
    ],
)
def test_bad_values_name_file_key_and_expectation(tmp_path, old, new, key, expected):
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ScenarioError) as err:
        scenario.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}: ")
    assert expected in message
    assert "\n" not in message


def test_missing_required_key(tmp_path):
    path = write(tmp_path, '[scenario]\nname = "x"\n')
    with pytest.raises(ScenarioError, match=r"scenario\.guests: is required"):
        scenario.load(path)


def test_malformed_toml_and_binary_garbage(tmp_path):
    with pytest.raises(ScenarioError, match="is not valid TOML"):
        scenario.load(write(tmp_path, "[scenario\nname=", "bad.toml"))
    garbage = tmp_path / "garbage.toml"
    garbage.write_bytes(b"\xff\xfe\x00\x01binary")
    with pytest.raises(ScenarioError, match="not UTF-8"):
        scenario.load(garbage)
    with pytest.raises(ScenarioError, match="no such file"):
        scenario.load(tmp_path / "absent.toml")


def test_suite_includes_scenarios_and_rejects_loops(tmp_path):
    write(tmp_path, GOOD, "busybox.toml")
    suite = write(tmp_path, '[suite]\ninclude = ["busybox.toml"]\n', "default.toml")
    [s] = scenario.load(suite)
    assert s.name == "busybox"
    loop = write(tmp_path, '[suite]\ninclude = ["loop.toml"]\n', "loop.toml")
    with pytest.raises(ScenarioError, match="includes itself"):
        scenario.load(loop)


def test_shipped_scenarios_load():
    root = Path(__file__).resolve().parent.parent / "scenarios"
    names = [s.name for f in sorted(root.glob("*.toml")) for s in scenario.load(f)]
    assert "busybox" in names
