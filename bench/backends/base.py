"""What every engine declares and provides: prepare a guest's image, launch one instance, stop it.

A backend knows its engine and nothing about statistics or trials. An Instance is a context
manager: leaving the ``with`` block stops and removes it, whatever happened inside.

An engine is one module in this package with one Backend subclass that declares, as class
attributes, its ``name``, its ``kind``, its ``options`` and ``estimate_mib``, and implements
``availability`` and its cleanup (``cleanup_run``, ``leftover_run_ids``, ``cleanup_all``).
The registry (``bench.backends.engines``) finds it; scenario files, ``--backends``,
``vmbench doctor``, ``vmbench clean`` and the CSV's ``kind`` column all read that declaration.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from bench import results
from bench.errors import VmbenchError
from bench.guests import Guest
from bench.run.compat import host_arch
from bench.run.measure import READY, ConsoleWatcher
from bench.run.options import Option
from bench.signals import shielded

# The isolation spectrum, from the host's kernel to a kernel of its own: the CSV's kinds.
KINDS = results.KINDS
SHARED_KERNEL_KINDS = ("container", "system-container")
# The host's Debian architecture name (amd64, arm64): a guest of another one is foreign.
HOST_ARCH = host_arch()


class BackendError(VmbenchError, RuntimeError):
    """The engine refused or failed; the message says what to do, in one line."""


class BackendUnsupported(BackendError):
    """This backend cannot run this guest on this host (e.g. Vagrant with only VirtualBox and
    a guest that needs direct kernel boot): the runner writes `unsupported` rows, not failures."""


class BackendTimeout(BackendError):
    """The instance could not be started before the trial's deadline (e.g. ``vagrant up``
    still running): the trial is a `timeout` row, like a guest that printed no READY line."""


@dataclass(frozen=True)
class Availability:
    usable: bool
    reason: str
    fix: str = ""
    notes: tuple[str, ...] = ()  # more lines for `vmbench doctor` (e.g. VirtualBox's state)
    # Unusable for a reason that means it never ran for this user (not installed, or not
    # possible for this user): vmbench clean has nothing of it to look for, unlike a daemon
    # that is down.
    never_ran: bool = False


@dataclass(frozen=True)
class SizeRecord:
    """One size metric of a prepared image (metric names as in results.METRIC_UNITS)."""

    metric: str
    value: float
    artefact: str
    detail: str = ""


# What an engine's ``prepare`` hands to its ``create``: an image id (docker, podman), or a
# record of the engine's own (qemu's QemuImage, vagrant's VagrantImage).
HandleT = TypeVar("HandleT")


@dataclass(kw_only=True)
class Prepared(Generic[HandleT]):
    """A guest turned into this backend's image, with its sizes and how long that took."""

    guest: Guest
    sizes: list[SizeRecord]
    build_s: float
    built_now: bool
    handle: HandleT
    # The accelerator its instances will run with, when the backend knows it already (else
    # empty: the runner writes its engine's ``unknown_accel``).
    accel: str = ""
    timings: dict[str, float] = field(default_factory=dict)  # e.g. import_s
    # The guest its rows name when that is not the scenario's: a Vagrant box of the user's
    # own boots its own OS, so its rows say guest=<box>, never the guest that did not boot.
    guest_name: str = ""


@dataclass(frozen=True, kw_only=True)
class LaunchSpec:
    """What an engine is given to launch one instance."""

    run_id: str
    name: str  # unique per instance, safe for engine names
    workload: str
    # The trial's time to READY, from just before the first start: an engine that waits
    # for the guest itself (Vagrant's boot_timeout) waits no longer than this.
    timeout_s: float
    options: dict[str, Any] = field(default_factory=dict)


class Instance(ABC):
    """One running container or VM."""

    accel: str = ""  # kvm | tcg | virtualbox | hvf; none for a container; empty: not known
    console: ConsoleWatcher | None = None
    # The console line that means ready: the guest's own READY, unless the instance runs
    # something else (a user's box: what its engine prints once it is up).
    ready_marker: str = READY
    # Why a memory metric is missing from its samples (e.g. measure.SMAPS_DENIED), for the
    # rows' detail; empty when every metric could be read.
    memory_note: str = ""
    # A VM booted through firmware and a bootloader: text in the bootloader's first line on
    # the console and in its last line before the kernel runs. The trial times firmware_s and
    # bootloader_s from them (bench.run.trial); empty for anything else.
    bootloader_markers: tuple[str, ...] = ()
    _stopped: bool = False

    @abstractmethod
    def start(self, deadline_ns: int) -> None:
        """Launch it; returns once launched (Vagrant: once ``vagrant up`` returned). An engine
        whose start waits for the guest returns by ``deadline_ns`` (measure.now_ns clock) or
        raises BackendTimeout: the trial's deadline covers start too."""

    @abstractmethod
    def memory(self, full: bool = True) -> dict[str, int]:
        """The instance's own memory now: rss_bytes, with ``full`` also uss/pss_bytes
        (+ cgroup_bytes, shim_pss_bytes for containers). See measure.process_memory."""

    @abstractmethod
    def wait_exited(self, timeout_s: float) -> bool:
        """Wait until the guest ended by itself (workload ``ready``)."""

    def stop(self) -> None:
        """Stop and remove it, once: a second call (``with`` after an explicit stop, a Ctrl-C
        during cleanup) does nothing."""
        if self._stopped:
            return
        self._stopped = True
        self._teardown()

    @abstractmethod
    def _teardown(self) -> None:
        """Stop and remove it (``stop`` calls it once). Never raises for an already-gone
        instance."""

    def extra_timings(self) -> dict[str, float]:
        """Backend-specific phase metrics (e.g. ``up_returned_s``) in seconds."""
        return {}

    def describe(self) -> str:
        """Words for the ``detail`` column (provider, machine, ...)."""
        return ""

    def __enter__(self) -> Instance:
        return self

    def __exit__(self, *exc: object) -> None:
        with shielded():  # a second Ctrl-C must not leave it running
            self.stop()


class Backend(ABC, Generic[HandleT]):
    """One engine. Its subclass declares what it is; see the module docstring. ``HandleT`` is
    what its ``prepare`` hands to its ``create`` (``Prepared.handle``)."""

    name: ClassVar[str] = ""  # [a-z0-9-]+: scenario files, --backends and the CSV use it
    kind: ClassVar[str] = ""  # one of KINDS
    # Its [backend.<name>] keys (bench.run.options), besides the ones every engine has.
    options: ClassVar[dict[str, Option]] = {}
    # Host memory one instance may cost beyond its ``memory_mib`` option (if it has one), an
    # upper bound the density guard uses before anything was measured on this host.
    estimate_mib: ClassVar[int] = 0
    # The options its ``prepare`` depends on: a run prepares one image per guest and per
    # distinct value of these (e.g. Vagrant's provider and boot); the rest apply per instance.
    image_options: ClassVar[tuple[str, ...]] = ()
    # Options every row of this engine names in its detail, default values included
    # (``boot=kernel``): what a reader needs to tell two ways of running one guest apart.
    detail_options: ClassVar[tuple[str, ...]] = ()
    # The helper process the engine runs beside each container (its PSS is shim_pss_bytes,
    # and those rows say shim=<this>): containerd-shim for Docker, conmon for podman.
    shim: ClassVar[str] = ""

    @classmethod
    def settings(cls, given: dict[str, Any]) -> dict[str, Any]:
        """``given`` options completed with this engine's declared defaults."""
        return {**{key: option.default for key, option in cls.options.items()}, **given}

    def shares_host_kernel(self) -> bool:
        return self.kind in SHARED_KERNEL_KINDS

    def unknown_accel(self) -> str:
        """What a row says before the accelerator is known: a container has none; a VM's
        is ``unknown`` (never ``none``: the report must not take it for proven hardware)."""
        return "none" if self.shares_host_kernel() else "unknown"

    @abstractmethod
    def availability(self) -> Availability:
        """Can it run here? If not, why, and the command that fixes it."""

    @abstractmethod
    def prepare(self, guest: Guest, options: dict[str, Any]) -> Prepared[HandleT]:
        """Build or fetch this backend's image of ``guest`` (cached)."""

    @abstractmethod
    def create(self, prepared: Prepared[HandleT], spec: LaunchSpec) -> Instance:
        """An instance ready to ``start`` (the ready clock starts just before ``start``)."""

    def cleanup_run(self, run_id: str) -> list[str]:
        """Remove whatever run ``run_id`` of this backend left behind, and nothing else.

        Called at the end of every run and by ``vmbench clean`` after a crash; returns one
        line per thing removed. Find things by what the run wrote or labelled, never by name
        patterns that could match another program's containers or VMs.
        """
        return []

    def cleanup_all(self) -> list[str]:
        """``vmbench clean`` without a run id: everything of this backend that vmbench made
        and no run id finds (shared pools, stores). Most backends have nothing of the kind."""
        return []

    def leftover_run_ids(self) -> set[str]:
        """Run ids that left something behind here (what ``vmbench clean`` visits)."""
        return set()

    def run_owners(self) -> dict[str, str]:
        """Run id -> the owner words (bench.run.liveness.Owner) found on this engine's things
        of that run: labels, a domain's description, a process's environment. ``vmbench
        clean`` checks them against the live process, so no user's clean removes a live run."""
        return {}

    def versions(self) -> dict[str, str | None]:
        """Versions of the programs this engine runs, for host.json (None: not installed).
        Quick, and never raises."""
        return {}

    def health(self) -> str:
        """Empty while the engine answers, else one line naming the backend, what broke and what
        to do. The runner asks after a failed trial, so an engine that died mid-run fails the
        remaining trials at once instead of each waiting for its own timeout. Must be cheap."""
        return ""

    def close(self) -> None:
        """Release engine connections."""


def command_version(argv: list[str], pattern: str) -> str | None:
    """The first group of ``pattern`` in what ``argv`` prints (e.g. a version), or None."""
    if not shutil.which(argv[0]):
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, out.stdout + out.stderr)
    return match.group(1) if match else None
