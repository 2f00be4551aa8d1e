import json
import subprocess
from pathlib import Path

from bench.run import host


def test_collect_has_the_facts_a_comparison_needs(monkeypatch):
    monkeypatch.setattr(host.socket, "gethostname", lambda: "Lab_Box 7.example.org")
    meta = host.collect({"run_id": "r"})
    assert (meta["host_id"], meta["hostname"]) == ("lab-box-7", "Lab_Box 7.example.org")
    # Each fact against a second source: the kernel's own files, not the call collect makes.
    assert meta["kernel"] == Path("/proc/sys/kernel/osrelease").read_text().strip()
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    assert meta["cpu_count"] == sum(1 for line in cpuinfo if line.startswith("processor"))
    assert meta["mem_total_bytes"] == meminfo_kib("MemTotal") * 1024
    assert meta["cgroup"] == {"cgroup2fs": "v2", "tmpfs": "v1"}[filesystem("/sys/fs/cgroup")]
    assert set(meta["versions"]) >= {"docker", "qemu", "vagrant"}
    assert meta["run_id"] == "r"


def meminfo_kib(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == key:
            return int(value.split()[0])
    raise KeyError(key)


def filesystem(path: str) -> str:
    """The type of the filesystem mounted at ``path`` (``stat -f``), e.g. cgroup2fs or tmpfs."""
    out = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return out.stdout.strip()


def test_a_failing_source_is_left_out(monkeypatch):
    def broken():
        raise OSError("no such thing")

    monkeypatch.setattr(host, "SOURCES", [("cpu_model", broken), ("os", lambda: "TestOS")])
    meta = host.collect()
    assert "cpu_model" not in meta
    assert meta["os"] == "TestOS"


def test_host_id_is_file_name_safe(monkeypatch):
    monkeypatch.setattr(host.socket, "gethostname", lambda: "Lab_Box 7.example.org")
    assert host.host_id() == "lab-box-7"


def test_write_is_json(tmp_path):
    host.write(tmp_path / "host.json", {"a": 1})
    assert json.loads((tmp_path / "host.json").read_text()) == {"a": 1}
