import json
import platform

from bench import host


def test_collect_has_the_facts_a_comparison_needs():
    meta = host.collect({"run_id": "r"})
    assert meta["host_id"] == host.host_id()
    assert meta["kernel"] == platform.release()
    assert meta["cpu_count"] >= 1
    assert meta["mem_total_bytes"] > 0
    assert meta["cgroup"] in ("v1", "v2")
    assert set(meta["versions"]) >= {"docker", "qemu", "vagrant"}
    assert meta["run_id"] == "r"


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
