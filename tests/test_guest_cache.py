import json
import threading

import pytest

from bench.guests import built_guests
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


def test_concurrent_builds_of_one_key_build_once(cache_dir):
    calls = []
    gate = threading.Event()

    def slow(tmp):
        calls.append(1)
        gate.wait(2)
        return {}

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cached_build(cache_dir / "g", slow)))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert len(calls) == 1 and sum(r.built_now for r in results) == 1


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
