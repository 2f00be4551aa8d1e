"""podman: two engines, ``podman`` (an app container: the workload as PID 1) and
``podman-systemd`` (a system container: the guest's systemd as PID 1), one daemonless engine.

- ``backend``: the ``podman`` engine (image import, create, start, memory, cleanup)
- ``systemd``: the ``podman-systemd`` engine, the same image with systemd as its command
"""

from __future__ import annotations

from bench.backends.podman.backend import (
    PodmanBackend,
    PodmanHost,
    PodmanInstance,
    global_flags,
    has_capability,
    ulimit_flags,
)
from bench.backends.podman.systemd import PodmanSystemdBackend

__all__ = [
    "PodmanBackend",
    "PodmanHost",
    "PodmanInstance",
    "PodmanSystemdBackend",
    "global_flags",
    "has_capability",
    "ulimit_flags",
]
