"""podman: the guest's tree as an app container, run by a daemonless engine (no API service).

The image is ``podman import`` of a tar of the same root filesystem Docker's image holds,
never a registry. The container runs ``/bin/sh /vmbench/workload`` directly, with no init
system, no network, read-only, labelled with the run id like Docker's containers.

Each instance is one ``podman create`` and one ``podman start --attach``, whose output is the
console. The ready clock starts just before that ``podman start``: a daemonless engine
launches by running its own binary, so that is part of its time to ready.

Memory: the container's own cgroup (its processes' PSS), with ``conmon``, podman's monitor
process of each container, counted apart as ``shim_pss_bytes`` like Docker's containerd-shim.
Rootless podman on cgroup v1 gives a container no cgroup of its own; then the container's
process tree is read instead (and ``cgroup_bytes`` is left out).

What a host needs is detected, not hard-coded (``global_flags``, ``ulimit_flags``): crun on
cgroup v1 is swapped for runc, the systemd cgroup manager for cgroupfs where systemd is not
running, and a rootful podman that may not raise rlimits (no CAP_SYS_RESOURCE, as in some
sandboxes) is given rlimits below the host's hard limits. On a cgroup v2 host with systemd
none of these apply and podman runs with its own defaults.
"""

from __future__ import annotations

import contextlib
import json
import resource
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import psutil

from bench.backends.base import (
    Availability,
    Backend,
    BackendError,
    Instance,
    LaunchSpec,
    Prepared,
    SizeRecord,
    command_version,
)
from bench.backends.cgroups import (
    CGROUP_ROOT,
    PROC_ROOT,
    CgroupUnreadable,
    cgroup_memory,
    container_cgroup,
)
from bench.guests import Guest, userns
from bench.run.liveness import OWNER_LABEL, owner_labels
from bench.run.measure import (
    SMAPS_DENIED,
    ConsoleWatcher,
    fd_chunks,
    gzip_bytes,
    now_ns,
    process_memory,
    seconds_between,
)

LABEL = "vmbench"
RUN_LABEL = "vmbench.run"
INSTALL = "sudo apt-get install --no-install-recommends podman"
CAP_SYS_RESOURCE = 24  # linux/capability.h
# rlimits for a rootful podman that may not raise them: a login shell's usual soft limits.
LOW_NOFILE, LOW_NPROC = 1024, 4096
COMMAND_TIMEOUT_S = 120.0
IMPORT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class PodmanHost:
    """What ``podman info`` says about this host, the facts the flags are chosen from."""

    version: str
    rootless: bool
    runtime: str  # the OCI runtime podman would use: crun | runc
    cgroup_version: str  # v1 | v2
    cgroup_manager: str  # systemd | cgroupfs

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> PodmanHost:
        host = info["host"]
        return cls(
            version=str(info["version"]["Version"]),
            rootless=bool(host["security"]["rootless"]),
            runtime=str(host["ociRuntime"]["name"]),
            cgroup_version=str(host["cgroupVersion"]),
            cgroup_manager=str(host["cgroupManager"]),
        )

    def words(self) -> str:
        mode = "rootless" if self.rootless else "rootful"
        return f"{mode}, {self.runtime}, cgroup {self.cgroup_version} ({self.cgroup_manager})"


def global_flags(host: PodmanHost, runc_found: bool, systemd_running: bool) -> list[str]:
    """podman's global options this host needs: crun refuses cgroup v1, and the systemd cgroup
    manager needs a running systemd. Empty on a cgroup v2 host with systemd."""
    flags = []
    if host.runtime == "crun" and host.cgroup_version == "v1" and runc_found:
        flags += ["--runtime", "runc"]
    if host.cgroup_manager == "systemd" and not systemd_running:
        flags += ["--cgroup-manager", "cgroupfs"]
    return flags


def ulimit_flags(host: PodmanHost, may_raise_rlimits: bool, hard: dict[str, int]) -> list[str]:
    """Rootful podman raises a container's nofile and nproc limits; without CAP_SYS_RESOURCE
    the runtime then fails ("error setting rlimit"). Give limits below the hard ones instead.
    Rootless podman keeps the user's limits, so it needs none."""
    if host.rootless or may_raise_rlimits:
        return []
    nofile = min(LOW_NOFILE, hard["nofile"])
    nproc = min(LOW_NPROC, hard["nproc"])
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


def has_capability(status_text: str, capability: int) -> bool:
    """Whether a ``/proc/PID/status`` text's effective capabilities include ``capability``."""
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> capability & 1)
    return False


def _hard_limits() -> dict[str, int]:
    def hard(which: int) -> int:
        limit = resource.getrlimit(which)[1]
        return limit if limit != resource.RLIM_INFINITY else 1 << 20

    return {"nofile": hard(resource.RLIMIT_NOFILE), "nproc": hard(resource.RLIMIT_NPROC)}


class PodmanBackend(Backend[str]):
    """The workload as an app container of a daemonless engine: no init system, host kernel."""

    name = "podman"
    kind = "container"
    options = {}  # noqa: RUF012 (a declaration, never mutated)
    # A busybox container measured ~1 MiB PSS plus ~1.5 MiB for its conmon; the rest is margin.
    estimate_mib = 32
    shim = "conmon"  # podman's monitor process of each container
    # What the container runs, for the detail column (the same words as docker's rows).
    runs: ClassVar[str] = "/vmbench/workload (no init system)"

    def __init__(self) -> None:
        self._host: PodmanHost | None = None
        self._global: list[str] = []
        self._ulimits: list[str] = []

    # --- running podman ------------------------------------------------------------------

    def host(self) -> PodmanHost:
        """``podman info``, read once; the flags every later command gets follow from it."""
        if self._host is None:
            if not shutil.which("podman"):
                raise BackendError(f"podman: not found; {INSTALL}")
            out = self.run(["info", "--format", "json"], "podman info", flags=False)
            try:
                self._host = PodmanHost.from_info(json.loads(out))
            except (ValueError, KeyError, TypeError) as e:
                raise BackendError(f"podman: cannot read podman info's answer ({e})") from None
            systemd = Path("/run/systemd/system").is_dir()
            self._global = global_flags(self._host, bool(shutil.which("runc")), systemd)
            may_raise = has_capability(Path("/proc/self/status").read_text(), CAP_SYS_RESOURCE)
            self._ulimits = ulimit_flags(self._host, may_raise, _hard_limits())
        return self._host

    def argv(self, args: list[str], flags: bool = True) -> list[str]:
        if flags:
            self.host()
        return ["podman", *(self._global if flags else []), *args]

    def run(
        self, args: list[str], what: str, flags: bool = True, timeout: float = COMMAND_TIMEOUT_S
    ) -> str:
        """Run one podman command; its stdout, or BackendError with what it said."""
        argv = self.argv(args, flags)
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=False
            )
        except OSError as e:
            raise BackendError(f"podman: cannot run {what}: {e.strerror}; {INSTALL}") from None
        except subprocess.TimeoutExpired:
            raise BackendError(f"podman: {what} did not finish in {timeout:g} s") from None
        if done.returncode != 0:
            raise BackendError(f"podman: {what} failed: {_short(done.stderr or done.stdout)}")
        return done.stdout

    # --- what every engine declares ------------------------------------------------------

    def versions(self) -> dict[str, str | None]:
        return {"podman": command_version(["podman", "--version"], r"version ([\d.]+)")}

    def availability(self) -> Availability:
        if not shutil.which("podman"):
            return Availability(False, "podman not found", INSTALL, never_ran=True)
        try:
            host = self.host()
        except BackendError as e:
            return Availability(False, str(e).removeprefix("podman: "), "run: podman info")
        flags = " ".join([*self._global, *self._ulimits]) or "its defaults"
        words = f"podman {host.version} ({host.words()}); runs with {flags}"
        if host.rootless:
            try:
                userns.describe()
            except userns.UserNamespaceUnavailable as e:
                # Rootless podman then maps only the user's own id: an image whose files belong
                # to several owners (debian: root, shadow, _apt, ...) cannot be imported.
                return Availability(
                    True,
                    f"{words}; images whose files all belong to root only: {e.cause}",
                    f"for the debian guest: {e.fix}" if e.fix else "",
                )
        return Availability(True, words)

    def health(self) -> str:
        try:
            self.run(["version", "--format", "json"], "podman version", timeout=10)
        except BackendError as e:
            return f"{e}; {INSTALL}"
        return ""

    def prepare(self, guest: Guest, options: dict[str, Any]) -> Prepared[str]:
        tag = f"localhost/vmbench/{guest.name}-{guest.arch}:{guest.folder.name.rsplit('-', 1)[-1]}"
        built_now = False
        timings: dict[str, float] = {}
        exists = subprocess.run(
            self.argv(["image", "exists", tag]), capture_output=True, check=False
        )
        if exists.returncode != 0:
            timings["import_s"] = self._import(guest, tag)
            built_now = True
        image = self._inspect_image(tag)
        sizes = [
            SizeRecord(
                "image_bytes",
                float(image["Size"]),
                "container-image",
                f"tag={tag} podman import of the rootfs",
            ),
            SizeRecord(
                "image_compressed_bytes",
                float(self._compressed_size(tag, str(image["Id"]), guest.folder)),
                "container-image",
                "gzip -6 of podman save",
            ),
        ]
        return Prepared(
            guest=guest, sizes=sizes, build_s=0.0, built_now=built_now, handle=tag, timings=timings
        )

    def _import(self, guest: Guest, tag: str) -> float:
        """``podman import`` of the guest's tree as a tar (its own rootfs.tar where it has one,
        the one Docker imports); seconds it took."""
        args = ["import", "--quiet", "--arch", guest.arch]
        entrypoint = json.dumps(list(guest.entrypoint))
        for change in (f"ENTRYPOINT {entrypoint}", f"LABEL {LABEL}=1"):
            args += ["--change", change]
        start = now_ns()
        with tempfile.TemporaryDirectory(dir=guest.folder) as scratch:
            tar = guest.rootfs_tar or _tar_of(guest.rootfs, Path(scratch) / "rootfs.tar")
            self.run([*args, str(tar), tag], f"podman import of {tar}", timeout=IMPORT_TIMEOUT_S)
        return seconds_between(start, now_ns())

    def _inspect_image(self, tag: str) -> dict[str, Any]:
        out = self.run(["image", "inspect", "--format", "json", tag], f"inspecting {tag}")
        return json.loads(out)[0]

    def _compressed_size(self, tag: str, image_id: str, cache_folder: Path) -> int:
        """gzip size of ``podman save``, computed once per image id and cached beside the guest."""
        record = cache_folder / f"podman-save-{image_id[:16]}.json"
        if record.exists():
            return int(json.loads(record.read_text())["gzip_bytes"])
        save = subprocess.Popen(
            self.argv(["save", "--quiet", tag]),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert save.stdout is not None
        try:
            size = gzip_bytes(fd_chunks(save.stdout.fileno()))
        finally:
            save.stdout.close()
            save.wait()
        if save.returncode != 0:
            raise BackendError(f"podman: podman save {tag} failed (exit {save.returncode})")
        record.write_text(json.dumps({"gzip_bytes": size}))
        return size

    def create(self, prepared: Prepared[str], spec: LaunchSpec) -> Instance:
        options, command = self.launch_args(prepared, spec)
        labels = ["--label", f"{LABEL}=1", "--label", f"{RUN_LABEL}={spec.run_id}"]
        labels += [f"--label={key}={value}" for key, value in owner_labels().items()]
        args = ["create", "--name", spec.name, *labels, "--network", "none", *self._ulimits]
        container_id = self.run(
            [*args, *options, str(prepared.handle), *command], "podman create"
        ).strip()
        return PodmanInstance(self, container_id, self.describe_instance(container_id))

    def launch_args(self, prepared: Prepared[str], spec: LaunchSpec) -> tuple[list[str], list[str]]:
        """``podman create`` options of this engine, and the command after the image."""
        return ["--read-only", "--env", f"VMBENCH_WORKLOAD={spec.workload}"], []

    def describe_instance(self, container_id: str) -> str:
        flags = ",".join([*self._global, *self._ulimits]).replace("--", "") or "defaults"
        return f"container={container_id[:12]} runs={self.runs} podman_flags={flags}"

    def cleanup_run(self, run_id: str) -> list[str]:
        removed = []
        for container in self._containers(f"{RUN_LABEL}={run_id}"):
            if container.get("Labels", {}).get(RUN_LABEL) != run_id:
                continue  # never remove on a near-match
            with contextlib.suppress(BackendError):  # gone between listing and removing
                self.run(["rm", "--force", "--time", "0", container["Id"]], "podman rm")
                removed.append(f"podman container {_name(container)}")
        return removed

    def leftover_run_ids(self) -> set[str]:
        return {
            c["Labels"][RUN_LABEL]
            for c in self._containers(RUN_LABEL)
            if (c.get("Labels") or {}).get(RUN_LABEL)
        }

    def run_owners(self) -> dict[str, str]:
        return {
            c["Labels"][RUN_LABEL]: c["Labels"][OWNER_LABEL]
            for c in self._containers(OWNER_LABEL)
            if (c.get("Labels") or {}).get(RUN_LABEL)
        }

    def _containers(self, label_filter: str) -> list[dict[str, Any]]:
        args = ["ps", "--all", "--filter", f"label={label_filter}", "--format", "json"]
        return json.loads(self.run(args, "podman ps") or "[]")


class PodmanInstance(Instance):
    accel = "none"

    def __init__(self, backend: PodmanBackend, container_id: str, described: str) -> None:
        self.backend = backend
        self.container_id = container_id
        self.described = described
        self.attach: subprocess.Popen | None = None
        self._pids: tuple[int, int] | None = None  # the container's init, its conmon
        self._cgroup: Path | None = None
        self._own_cgroup = True

    def start(self, deadline_ns: int) -> None:
        """Returns once ``podman start --attach`` runs: the trial waits for READY."""
        argv = self.backend.argv(["start", "--attach", self.container_id])
        try:
            self.attach = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,  # an engine error is the console's last words
                start_new_session=True,  # a Ctrl-C reaches the harness, which stops it
            )
        except OSError as e:
            raise BackendError(f"podman: cannot run podman start: {e.strerror}") from None
        assert self.attach.stdout is not None
        self.console = ConsoleWatcher(fd_chunks(self.attach.stdout.fileno()))

    def _state_pids(self) -> tuple[int, int]:
        if self._pids is None:
            args = ["inspect", "--type", "container", "--format", "json", self.container_id]
            state = json.loads(self.backend.run(args, "podman inspect"))[0]["State"]
            pid, conmon = int(state.get("Pid") or 0), int(state.get("ConmonPid") or 0)
            if not pid:
                raise CgroupUnreadable("podman: the container is not running")
            self._pids = (pid, conmon)
        return self._pids

    def memory(self, full: bool = True) -> dict[str, int]:
        """One sample of the container's cgroup (or process tree), conmon apart."""
        pid, conmon = self._state_pids()
        try:
            if self._cgroup is None and self._own_cgroup:
                cgroup = container_cgroup(pid, PROC_ROOT, CGROUP_ROOT)
                # Rootless on cgroup v1: no cgroup of its own, it would count the user's session.
                self._own_cgroup = self.container_id in str(cgroup)
                self._cgroup = cgroup if self._own_cgroup else None
            if self._cgroup is not None:
                sample = cgroup_memory(self._cgroup, full)
            else:
                sample = _tree_memory(pid, full)
        except CgroupUnreadable as e:
            raise CgroupUnreadable(f"podman: {e}") from None
        if full and "pss_bytes" not in sample:
            self.memory_note = SMAPS_DENIED
        if full and conmon:
            conmon_memory = process_memory([conmon])
            if not conmon_memory.denied:
                sample["shim_pss_bytes"] = conmon_memory.pss_bytes
        return sample

    def wait_exited(self, timeout_s: float) -> bool:
        """The attached ``podman start`` ends when the container does."""
        if self.attach is None:
            return False
        try:
            self.attach.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _teardown(self) -> None:
        try:
            self.backend.run(
                ["rm", "--force", "--time", "0", self.container_id], "podman rm", timeout=60
            )
        except BackendError:
            pass  # already gone; a crashed run's leftovers are found by their label
        finally:
            attach = self.attach
            if attach is not None:
                if attach.poll() is None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        attach.wait(timeout=10)  # ends once the container is gone
                if attach.poll() is None:
                    attach.kill()  # its own pid
                    attach.wait()
                if attach.stdout is not None:
                    attach.stdout.close()

    def describe(self) -> str:
        return self.described


def _tree_memory(pid: int, full: bool) -> dict[str, int]:
    """The memory of ``pid`` and its descendants (a container without a cgroup of its own)."""
    try:
        pids = [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        raise CgroupUnreadable(f"process {pid} is gone") from None
    own = process_memory(pids, full)
    if not own.processes:
        raise CgroupUnreadable(f"no process of the container (pid {pid}) could be read")
    return own.sample(full)


def _name(container: dict[str, Any]) -> str:
    names = container.get("Names") or [container.get("Id", "?")[:12]]
    return str(names[0])


def _short(text: str) -> str:
    return " ".join(str(text).split())[-300:] or "no output"


def _tar_of(tree: Path, tar: Path) -> Path:
    """A tar of ``tree`` with numeric owners, in name order (as the guests' own rootfs.tar)."""
    argv = ["tar", "--numeric-owner", "--sort=name", "-C", str(tree), "-cf", str(tar), "."]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackendError(f"podman: tar of {tree} failed: {_short(done.stderr)}")
    return tar
