"""Backends by name. Each module knows one engine; importing one never needs another."""

from __future__ import annotations

from bench.backends.base import (
    Availability,
    Backend,
    BackendError,
    BackendUnsupported,
    Instance,
    LaunchSpec,
    Prepared,
)

# Every backend this version knows, in the order runs and `vmbench clean` visit them.
BACKEND_NAMES = ("docker", "qemu", "vagrant")


def make_backend(name: str) -> Backend:
    if name == "docker":
        from bench.backends.docker import DockerBackend

        return DockerBackend()
    if name == "qemu":
        from bench.backends.qemu import QemuBackend

        return QemuBackend()
    if name == "vagrant":
        from bench.backends.vagrant import VagrantBackend

        return VagrantBackend()
    raise BackendError(f"unknown backend {name!r}")


__all__ = [
    "BACKEND_NAMES",
    "Availability",
    "Backend",
    "BackendError",
    "BackendUnsupported",
    "Instance",
    "LaunchSpec",
    "Prepared",
    "make_backend",
]
