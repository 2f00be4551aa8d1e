import json
import shutil
import threading
import time

import pytest
from conftest import engine_missing

from bench.guests import DebError, HostToolMissing, build_guest, built_guests, debian, debs
from bench.guests.cache import cached_build, content_key


def test_content_key_changes_with_any_input():
    assert content_key(["a", b"b"]) == content_key(["a", b"b"])
    assert content_key(["a", "b"]) != content_key(["ab"])  # lengths are part of the key
    assert content_key(["a", "b"]) != content_key(["a", "c"])


def test_build_runs_once_and_is_published_whole(cache_dir):
    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "artefact").write_text("x")
        return {"package": "p"}

    first = cached_build(cache_dir / "guests" / "g", build)
    second = cached_build(cache_dir / "guests" / "g", build)
    assert first.built_now and not second.built_now
    assert len(calls) == 1
    assert (first.folder / "artefact").read_text() == "x"
    assert second.meta["package"] == "p" and second.build_s == first.build_s


def test_failed_build_leaves_nothing(cache_dir):
    def broken(tmp):
        (tmp / "half").write_text("x")
        raise RuntimeError("apt said no")

    with pytest.raises(RuntimeError):
        cached_build(cache_dir / "guests" / "g", broken)
    assert not (cache_dir / "guests" / "g").exists()
    assert not (cache_dir / "guests" / ".g.tmp").exists()


def test_a_second_builder_waits_for_the_first_and_reuses_its_build(cache_dir):
    building = threading.Event()  # the first builder is inside build()
    gate = threading.Event()  # the test lets it finish
    calls = []

    def slow(tmp):
        calls.append(threading.current_thread().name)
        building.set()
        assert gate.wait(10), "the test never opened the gate"
        (tmp / "artefact").write_text("built once")
        return {}

    results = {}

    def builder():
        results[threading.current_thread().name] = cached_build(cache_dir / "g", slow)

    threads = [threading.Thread(target=builder, name=f"b{i}") for i in range(3)]
    threads[0].start()
    assert building.wait(10)
    for t in threads[1:]:
        t.start()
    time.sleep(0.3)  # time enough for a builder that does not wait to build or return
    assert calls == ["b0"] and results == {}  # the others wait on the lock
    gate.set()
    for t in threads:
        t.join(10)
    assert calls == ["b0"]
    assert {name: r.built_now for name, r in results.items()} == {
        "b0": True,
        "b1": False,
        "b2": False,
    }
    assert {(r.folder / "artefact").read_text() for r in results.values()} == {"built once"}


def test_built_guests_lists_artefacts_not_bookkeeping(cache_dir):
    folder = cache_dir / "guests" / "busybox-amd64-abc"
    (folder / "rootfs" / "bin").mkdir(parents=True)
    (folder / "rootfs" / "bin" / "busybox").write_bytes(b"b" * 5000)
    (folder / "initramfs.gz").write_bytes(b"i" * 3000)
    (folder / ".initramfs.gz.gz-size").write_text("1 2")
    (folder / "docker-save-x.json").write_text("{}")
    (folder / "meta.json").write_text(json.dumps({"package": "busybox-static", "build_s": 1.5}))
    [guest] = built_guests()
    assert guest["package"] == "busybox-static"
    assert guest["artefacts"]["rootfs"] == 5000
    assert set(guest["artefacts"]) == {"rootfs", "initramfs.gz"}
    assert guest["artefacts"]["initramfs.gz"] >= 3000


def test_a_host_without_the_build_tools_is_told_so_by_a_type_of_its_own(cache_dir, monkeypatch):
    """HostToolMissing: the tests' fixtures skip (off CI) on it, and on nothing else."""
    monkeypatch.setenv("PATH", str(cache_dir))  # an empty folder: no apt-cache, no cpio
    with pytest.raises(HostToolMissing, match=r"^(dpkg|apt-cache|apt-get) not found"):
        build_guest("busybox")
    # A regular user without mmdebstrap (PATH has none): the fix, not a failed build.
    with pytest.raises(HostToolMissing, match=r"fix: sudo make host \(installs mmdebstrap"):
        debian._mmdebstrap("amd64", (), "bookworm", "http://m", cache_dir / "t", cache_dir / "l")


def test_a_failing_build_step_is_not_a_missing_tool():
    if not shutil.which("apt-cache"):
        engine_missing("apt-cache not found: guests are built from Debian packages")
    with pytest.raises(DebError) as failed:
        debs.candidate("vmbench-no-such-package", "amd64")
    assert not isinstance(failed.value, HostToolMissing)


def test_a_lock_file_of_another_user_is_locked_read_only(tmp_path, monkeypatch):
    """A shared cache: the lock file belongs to whoever built first; flock needs no write."""
    import builtins

    from bench.guests import cache

    lock = tmp_path / ".guest.lock"
    lock.write_text("")
    real_open = builtins.open
    modes = []

    def others_file(path, mode="r", *args, **kwargs):
        modes.append(mode)
        if str(path) == str(lock) and mode != "r":
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", others_file)
    with cache.file_lock(lock):
        pass
    assert modes == ["a", "r"]
