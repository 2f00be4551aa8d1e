"""The page accounting of root's processes for a regular user in the docker group.

A container's processes belong to root, and /proc/PID/smaps_rollup (PSS, USS) is readable
only by a process's owner or with CAP_SYS_PTRACE, so a regular user's memory samples of a
Docker container would have RSS only. The docker group is root's equal on that host (the
daemon runs containers as root for its members), so vmbench asks Docker for the numbers:
one small helper container per run with the host's process table (``--pid=host``),
CAP_SYS_PTRACE and nothing else (no network, read-only, no new privileges). It reads the same
kernel file a root run reads; its own memory is in no sample. It is labelled with the run, so
the run's cleanup and ``vmbench clean`` remove it.

Its image holds only a copy of Debian's static busybox, in a layer of its own: a file of its
own, so the helper shares no page with a measured container (one started from the guest's
image would share the guest's busybox pages, and lower the guest's PSS and USS by sharing).
Its containerd-shim is one more on the host, like any other container's.
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
import struct
import tarfile
import tempfile
import threading
from pathlib import Path

from bench.guests import debs
from bench.guests.cache import cache_root

ROLE_LABEL = "vmbench.role"
ROLE = "smaps-reader"
END = b"VMBENCH-SMAPS-END"
# Reads lines of pids on stdin; for each pid prints a header line and its smaps_rollup.
LOOP = (
    'while read -r pids; do for p in $pids; do echo "VMBENCH-SMAPS $p"; '
    "/bin/busybox cat /proc/$p/smaps_rollup 2>/dev/null; done; echo VMBENCH-SMAPS-END; done"
)
DOCKERFILE = b"FROM scratch\nCOPY busybox /bin/busybox\n"
READ_TIMEOUT_S = 10.0
# What the rows of a sample read this way say, next to their numbers.
NOTE = (
    "uss_bytes/pss_bytes of root's processes read through Docker (a helper container with "
    "--pid=host and CAP_SYS_PTRACE): this user may not read them"
)


class SmapsReader:
    """One helper container; ``read(pids)`` -> {pid: smaps_rollup text} (missing: unreadable)."""

    def __init__(self, client, arch: str, name: str, labels: dict[str, str]) -> None:
        self._lock = threading.Lock()
        self.broken = ""
        self.container = client.containers.run(
            reader_image(client, arch),
            entrypoint=["/bin/busybox", "sh", "-c", LOOP],
            name=name,
            labels={**labels, ROLE_LABEL: ROLE},
            detach=True,
            stdin_open=True,
            network_mode="none",
            pid_mode="host",
            cap_drop=["ALL"],
            cap_add=["SYS_PTRACE"],
            security_opt=["no-new-privileges"],
            read_only=True,
        )
        attached = self.container.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
        self._socket: socket.socket = getattr(attached, "_sock", attached)
        self._socket.settimeout(READ_TIMEOUT_S)
        self._pending = b""

    def read(self, pids: list[int]) -> dict[int, str]:
        """smaps_rollup of each of ``pids`` the helper could read; {} once it stopped working
        (the samples then have no USS/PSS, and say so)."""
        if self.broken or not pids:
            return {}
        with self._lock:
            try:
                self._socket.sendall((" ".join(map(str, pids)) + "\n").encode())
                text = self._until_end()
            except OSError as e:
                self.broken = f"the smaps helper container stopped answering: {e}"
                return {}
        return _split(text)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._socket.close()
        with contextlib.suppress(Exception):
            self.container.remove(force=True)

    def _until_end(self) -> bytes:
        """stdout frames (Docker's 8-byte headers: stream, 3 zeros, length) up to END."""
        out = b""
        while END not in out:
            kind, size = struct.unpack(">BxxxL", self._exactly(8))
            payload = self._exactly(size)
            if kind == 1:  # stdout; stderr (2) carries nothing we print
                out += payload
        return out.split(END, 1)[0]

    def _exactly(self, n: int) -> bytes:
        while len(self._pending) < n:
            chunk = self._socket.recv(65536)
            if not chunk:
                raise OSError("connection closed")
            self._pending += chunk
        data, self._pending = self._pending[:n], self._pending[n:]
        return data


def reader_image(client, arch: str) -> str:
    """The helper's image (built once per host and busybox version): Debian's busybox-static,
    downloaded and unpacked like every guest's packages, alone in a FROM-scratch layer."""
    import docker.errors

    package = debs.candidate("busybox-static", arch)
    tag = f"vmbench/smaps-reader-{arch}:{re.sub(r'[^A-Za-z0-9_.-]', '_', package.version)}"
    with contextlib.suppress(docker.errors.ImageNotFound):
        return client.images.get(tag).id
    deb = debs.download(package, cache_root() / "debs")
    with tempfile.TemporaryDirectory() as tmp:
        unpacked = debs.extract(deb, Path(tmp))
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            dockerfile = tarfile.TarInfo("Dockerfile")
            dockerfile.size = len(DOCKERFILE)
            tar.addfile(dockerfile, io.BytesIO(DOCKERFILE))
            tar.add(unpacked / "bin" / "busybox", arcname="busybox")
        context.seek(0)
        image, _logs = client.images.build(
            fileobj=context,
            custom_context=True,
            tag=tag,
            labels={"vmbench": "1", ROLE_LABEL: ROLE},
            rm=True,
            forcerm=True,
            network_mode="none",
        )
    return image.id


def _split(text: bytes) -> dict[int, str]:
    found: dict[int, str] = {}
    for block in text.decode(errors="replace").split("VMBENCH-SMAPS ")[1:]:
        head, _, body = block.partition("\n")
        if head.strip().isdigit() and "Pss:" in body:
            found[int(head)] = body
    return found
