"""Shared fixtures. Integration tests use the real engines; a missing engine is a skip on a
user's machine and a failure under CI (CI=true), so a daemon that did not start cannot pass."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def engine_missing(reason: str) -> None:
    """Skip (user machine) or fail (CI) a test whose engine is not usable here."""
    if IN_CI:
        pytest.fail(f"engine missing under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def usable_backend(name: str):
    """The real backend ``name``, or skip/fail (see engine_missing) when it cannot run here."""
    from bench.backends import make_backend

    backend = make_backend(name)
    available = backend.availability()
    if not available.usable:
        engine_missing(f"{name}: {available.reason}")
    return backend


@pytest.fixture(scope="session")
def docker_backend():
    backend = usable_backend("docker")
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def qemu_backend():
    return usable_backend("qemu")


def built_guest(name: str):
    """The guest ``name``, built (cached); a host without the tools to build it is an engine
    missing (see engine_missing). Any other failure of the build fails the test."""
    from bench.guests import HostToolMissing, build_guest

    try:
        return build_guest(name)
    except HostToolMissing as e:
        engine_missing(f"{name} guest cannot be built on this host: {e}")


@pytest.fixture(scope="session")
def busybox_guest():
    return built_guest("busybox")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """An empty guest cache, for tests of the cache itself (not for engine tests: slow), and
    a folder of live runs of its own (other runs on the machine do not count there)."""
    monkeypatch.setenv("VMBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VMBENCH_LIVE_DIR", str(tmp_path / "live"))
    return tmp_path / "cache"


@pytest.fixture
def fake_guest(monkeypatch, tmp_path):
    """A busybox guest the runner never builds (helpers.fakes)."""
    from helpers.fakes import make_fake_guest

    return make_fake_guest(monkeypatch, tmp_path)


@pytest.fixture
def harness(tmp_path):
    """Starts ``vmbench`` subprocesses; whatever the test did, leaves nothing behind."""
    from helpers.harness import Harness

    h = Harness(tmp_path)
    yield h
    h.close()
