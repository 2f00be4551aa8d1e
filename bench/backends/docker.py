"""Docker Engine through the docker SDK: an image of the guest's root filesystem.

Small guests are built FROM scratch; guests with a full tree (debian) are ``docker import``ed
from a tar stream of it, one layer, the same bytes the VM's disk holds. Either way the
container runs ``/bin/sh /vmbench/workload`` directly, with no init system.

Containers run with no network, unprivileged, read-only, labelled with the run id so that a
crashed run's leftovers can be found (and only those).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import time
from pathlib import Path
from typing import Any

from bench.backends.base import (
    HOST_ARCH,
    Availability,
    Backend,
    BackendError,
    Instance,
    LaunchSpec,
    Prepared,
    SizeRecord,
)
from bench.backends.cgroups import (
    CGROUP_ROOT,
    PROC_ROOT,
    CgroupUnreadable,
    cgroup_memory,
    container_cgroup,
    parent_named,
)
from bench.backends.smaps_reader import NOTE as SMAPS_NOTE
from bench.backends.smaps_reader import SmapsReader
from bench.guests import Guest
from bench.guests.debs import DebError
from bench.run import access
from bench.run.liveness import OWNER_LABEL, owner_labels
from bench.run.measure import SMAPS_DENIED, ConsoleWatcher, gzip_bytes, process_memory

LABEL = "vmbench"
RUN_LABEL = "vmbench.run"
# The guest's entrypoint: the workload script, or (memtest) the system's own file.
DOCKERFILE = """\
FROM scratch
COPY rootfs/ /
ENTRYPOINT {entrypoint}
"""
FIX = "start the daemon: sudo make host (or: sudo systemctl start docker)"
HEALTH_TIMEOUT_S = 5.0


def _client(timeout: float = 60):
    import docker

    return docker.from_env(version="auto", timeout=timeout)


def sdk_errors() -> tuple[type[Exception], ...]:
    """What the Docker SDK raises when the daemon refuses or does not answer: its own errors,
    requests' (connection refused, read timeout) and OSError (the socket). Imported only when
    one was raised, so that nothing loads the SDK before an engine runs."""
    import docker.errors
    import requests

    return (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


def daemon_address() -> str:
    """Where the SDK looks for the daemon (DOCKER_HOST, as ``docker`` itself does)."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


class DockerBackend(Backend[str]):
    """The workload as an app container: no init system, the host's kernel."""

    name = "docker"
    kind = "container"
    options = {}  # noqa: RUF012 (a declaration, never mutated)
    # A busybox container measured 1-2 MiB PSS plus a 3-12 MiB containerd shim; the rest is
    # the engine's bookkeeping.
    estimate_mib = 32
    shim = "containerd-shim"

    def __init__(self) -> None:
        self._client = None
        self._smaps: SmapsReader | None = None  # a regular user's view of root's smaps

    @property
    def client(self):
        if self._client is None:
            try:
                self._client = _client()
            except sdk_errors() as e:
                raise BackendError(f"docker: no daemon answers ({_short(e)}); {FIX}") from None
        return self._client

    def availability(self) -> Availability:
        refused = socket_refusal(daemon_address())
        if refused is not None:
            return refused
        try:
            client = _client()
            self._client = client
            version = client.version().get("Version", "?")
        except sdk_errors() as e:
            return Availability(
                False, f"no Docker daemon answers at {daemon_address()} ({_short(e)})", FIX
            )
        return Availability(True, f"Docker Engine {version}")

    def versions(self) -> dict[str, str | None]:
        client = None
        try:
            client = _client(timeout=HEALTH_TIMEOUT_S)
            return {"docker": client.version().get("Version")}
        except sdk_errors():  # no daemon: not known
            return {"docker": None}
        finally:
            if client is not None:
                client.close()

    def health(self) -> str:
        """A fresh short-timeout connection: the run's own client may hold a dead socket."""
        client = None
        try:
            client = _client(timeout=HEALTH_TIMEOUT_S)  # asks the daemon's API version
            client.ping()
        except sdk_errors() as e:
            where = daemon_address()
            return f"docker: the daemon at {where} stopped answering ({_short(e)}); {FIX}"
        finally:
            if client is not None:
                client.close()
        return ""

    def prepare(self, guest: Guest, options: dict[str, Any]) -> Prepared[str]:
        tag = f"vmbench/{guest.name}-{guest.arch}:{guest.folder.name.rsplit('-', 1)[-1]}"
        import docker.errors

        built_now = False
        importing = guest.meta.get("container_image") == "import"
        how = "docker import of the rootfs" if importing else "FROM scratch + rootfs"
        timings: dict[str, float] = {}
        try:
            image = self.client.images.get(tag)
        except docker.errors.ImageNotFound:
            start = time.perf_counter()
            image = self._import(guest, tag) if importing else self._build(guest, tag)
            if importing:
                timings["import_s"] = time.perf_counter() - start
            built_now = True
        except docker.errors.DockerException as e:
            raise BackendError(f"docker: cannot look up image {tag}: {_short(e)}; {FIX}") from None
        sizes = [
            SizeRecord(
                "image_bytes",
                float(image.attrs["Size"]),
                "container-image",
                f"tag={tag} {how}; runs {' '.join(guest.entrypoint)} directly, no init system",
            ),
            SizeRecord(
                "image_compressed_bytes",
                float(self._compressed_size(image, guest.folder)),
                "container-image",
                "gzip -6 of docker save",
            ),
        ]
        self._start_smaps_reader(str(options.get("run_id") or ""))
        return Prepared(
            guest=guest,
            sizes=sizes,
            build_s=0.0,
            built_now=built_now,
            handle=image.id,
            timings=timings,
        )

    def _start_smaps_reader(self, run_id: str) -> None:
        """For a regular user: the helper that reads root's smaps (smaps_reader.py), started
        once, before any trial, so no memory window sees it start. Root reads them itself."""
        if self._smaps is not None or os.geteuid() == 0:
            return
        if not daemon_address().startswith("unix://"):
            return  # a remote daemon's processes are not on this host
        name = f"vmbench-{run_id or os.getpid()}-smaps-reader"
        labels = {LABEL: "1", RUN_LABEL: run_id, **owner_labels()} if run_id else {LABEL: "1"}
        expected: tuple[type[Exception], ...] = (BackendError, DebError, *sdk_errors())
        try:
            self._smaps = SmapsReader(self.client, HOST_ARCH, name, labels)
        except expected:  # the rows say why there is no PSS
            self._smaps = None

    def _build(self, guest: Guest, tag: str):
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            dockerfile = DOCKERFILE.format(entrypoint=json.dumps(list(guest.entrypoint))).encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(dockerfile)
            tar.addfile(info, io.BytesIO(dockerfile))
            tar.add(guest.rootfs, arcname="rootfs")
        context.seek(0)
        try:
            image, _logs = self.client.images.build(
                fileobj=context,
                custom_context=True,
                tag=tag,
                labels={LABEL: "1", "vmbench.guest": guest.name},
                rm=True,
                forcerm=True,
                network_mode="none",
                platform=docker_platform(guest.arch) if guest.arch != HOST_ARCH else None,
            )
        except sdk_errors() as e:
            raise BackendError(f"docker: building {tag} failed: {_short(e)}") from None
        return image

    def _import(self, guest: Guest, tag: str):
        """``docker import`` of the guest's rootfs.tar (its owners, modes and hard links)."""
        if guest.rootfs_tar is None:
            raise BackendError(f"docker: guest {guest.name} has no rootfs.tar to import")
        repository, _, version = tag.rpartition(":")
        changes = [
            f"ENTRYPOINT {json.dumps(list(guest.entrypoint))}",
            f'LABEL {LABEL}="1" vmbench.guest="{guest.name}"',
        ]
        try:
            with open(guest.rootfs_tar, "rb") as tar:
                self.client.api.import_image_from_data(
                    _chunks(tar), repository=repository, tag=version, changes=changes
                )
        except OSError as e:
            raise BackendError(f"docker: cannot read {guest.rootfs_tar}: {e.strerror}") from None
        except sdk_errors() as e:
            with contextlib.suppress(*sdk_errors()):
                self.client.images.remove(tag, force=True)
            raise BackendError(f"docker: importing {tag} failed: {_short(e)}") from None
        return self.client.images.get(tag)

    def _compressed_size(self, image, cache_folder: Path) -> int:
        """gzip size of ``docker save``, computed once per image id and cached beside the guest."""
        record = cache_folder / f"docker-save-{image.id.split(':')[-1][:16]}.json"
        if record.exists():
            return int(json.loads(record.read_text())["gzip_bytes"])
        size = gzip_bytes(image.save(named=False))
        record.write_text(json.dumps({"gzip_bytes": size}))
        return size

    def create(self, prepared: Prepared[str], spec: LaunchSpec) -> Instance:
        extra = {}
        if prepared.guest.arch != HOST_ARCH:
            # --platform: say which architecture is wanted; the engine still cannot run it.
            extra["platform"] = docker_platform(prepared.guest.arch)
        try:
            container = self.client.containers.create(
                prepared.handle,
                name=spec.name,
                environment={"VMBENCH_WORKLOAD": spec.workload},
                labels={LABEL: "1", RUN_LABEL: spec.run_id, **owner_labels()},
                network_mode="none",
                privileged=False,
                read_only=True,
                detach=True,
                **extra,
            )
        except sdk_errors() as e:
            raise BackendError(f"docker: cannot create container: {_short(e)}; {FIX}") from None
        return DockerInstance(container, self._smaps)

    def cleanup_run(self, run_id: str) -> list[str]:
        import docker.errors

        removed = []
        for container in self.client.containers.list(
            all=True, filters={"label": f"{RUN_LABEL}={run_id}"}
        ):
            if container.labels.get(RUN_LABEL) != run_id:
                continue  # the label filter is exact, but never remove on a near-match
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                continue  # gone between listing and removing
            removed.append(f"container {container.name}")
        return removed

    def leftover_run_ids(self) -> set[str]:
        containers = self.client.containers.list(all=True, filters={"label": RUN_LABEL})
        return {c.labels[RUN_LABEL] for c in containers if c.labels.get(RUN_LABEL)}

    def run_owners(self) -> dict[str, str]:
        containers = self.client.containers.list(all=True, filters={"label": OWNER_LABEL})
        return {
            c.labels[RUN_LABEL]: c.labels[OWNER_LABEL]
            for c in containers
            if c.labels.get(RUN_LABEL)
        }

    def close(self) -> None:
        if self._smaps is not None:
            self._smaps.close()
            self._smaps = None
        if self._client is not None:
            self._client.close()
            self._client = None


class DockerInstance(Instance):
    accel = "none"

    def __init__(self, container, smaps: SmapsReader | None = None) -> None:
        self.container = container
        self._smaps = smaps
        self._stream = container.attach(stdout=True, stderr=True, stream=True, logs=True)
        self.console = ConsoleWatcher(self._stream)
        self._pid: int | None = None
        self._cgroup: Path | None = None

    def start(self, deadline_ns: int) -> None:
        self.container.start()  # returns once running: the trial waits for READY

    def _init_pid(self) -> int:
        if self._pid is None:
            self.container.reload()
            self._pid = int(self.container.attrs["State"]["Pid"])
            if not self._pid:
                raise BackendError("docker: the container is not running")
        return self._pid

    def memory(self, full: bool = True) -> dict[str, int]:
        """One sample of the container's cgroup; CgroupUnreadable when there is nothing to read."""
        pid = self._init_pid()
        try:
            if self._cgroup is None:
                self._cgroup = container_cgroup(pid, PROC_ROOT, CGROUP_ROOT)
            sample = cgroup_memory(self._cgroup, full, self._relay)
        except CgroupUnreadable as e:
            raise CgroupUnreadable(f"docker: {e}") from None
        if full:
            self.memory_note = SMAPS_DENIED if "pss_bytes" not in sample else self.memory_note
        shim = shim_pid(pid) if full else None
        if shim:
            shim_memory = process_memory([shim], read_smaps=self._relay)
            if not shim_memory.denied:
                sample["shim_pss_bytes"] = shim_memory.pss_bytes
        return sample

    def _relay(self, pids: list[int]) -> dict[int, str]:
        """Root's smaps through the helper container, when this user may not read them."""
        if self._smaps is None:
            return {}
        found = self._smaps.read(pids)
        if found:
            self.memory_note = SMAPS_NOTE
        return found

    def wait_exited(self, timeout_s: float) -> bool:
        try:
            self.container.wait(timeout=timeout_s)
        except sdk_errors():  # a read timeout: still running (or the daemon is gone)
            return False
        return True

    def _teardown(self) -> None:
        import docker.errors

        try:
            self.container.remove(force=True)
        except docker.errors.NotFound:
            pass
        finally:
            close = getattr(self._stream, "close", None)
            if close:
                close()

    def describe(self) -> str:
        return f"container={self.container.short_id} runs=/vmbench/workload (no init system)"


def shim_pid(pid: int) -> int | None:
    return parent_named(pid, DockerBackend.shim)


def _chunks(pipe, size: int = 1 << 20):
    while chunk := os.read(pipe.fileno(), size):
        yield chunk


def docker_platform(arch: str) -> str:
    """Debian architecture name -> Docker platform (``arm64`` -> ``linux/arm64``)."""
    return f"linux/{arch}"


def socket_refusal(address: str) -> Availability | None:
    """A local daemon socket that is missing (daemon down) or that this user may not open (the
    docker group), told apart before any connection; None when it may be tried."""
    if not address.startswith("unix://"):
        return None
    path = Path(address.removeprefix("unix://"))
    if not path.exists():
        return Availability(False, f"no Docker daemon runs: {path} does not exist", FIX)
    if not access.may_open(path):
        cause, fix = access.refusal(path, "docker")
        return Availability(False, f"the Docker daemon's socket {cause}", fix)
    return None


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:200] or type(error).__name__
