"""What every backend provides: prepare a guest's image, launch one instance, stop it.

A backend knows its engine and nothing about statistics or trials. An Instance is a context
manager: leaving the ``with`` block stops and removes it, whatever happened inside.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from bench.guests import Guest
from bench.measure import ConsoleWatcher
from bench.signals import shielded


class BackendError(RuntimeError):
    """The engine refused or failed; the message says what to do, in one line."""


class BackendUnsupported(BackendError):
    """This backend cannot run this guest on this host (e.g. Vagrant with only VirtualBox and
    a guest that needs direct kernel boot): the runner writes `unsupported` rows, not failures."""


@dataclass(frozen=True)
class Availability:
    usable: bool
    reason: str
    fix: str = ""


@dataclass(frozen=True)
class SizeRecord:
    """One size metric of a prepared image (metric names as in results.METRIC_UNITS)."""

    metric: str
    value: float
    artefact: str
    detail: str = ""


@dataclass
class Prepared:
    """A guest turned into this backend's image, with its sizes and how long that took."""

    guest: Guest
    sizes: list[SizeRecord]
    build_s: float
    built_now: bool
    handle: Any = None  # backend-specific: image id, paths, box name
    timings: dict[str, float] = field(default_factory=dict)  # e.g. import_s

    @property
    def accel(self) -> str:
        """The accelerator its instances will run with, when the backend knows it already."""
        if isinstance(self.handle, dict) and "accel" in self.handle:
            return str(self.handle["accel"])
        return "none"


@dataclass(frozen=True)
class LaunchSpec:
    run_id: str
    name: str  # unique per instance, safe for engine names
    workload: str
    options: dict[str, Any] = field(default_factory=dict)


class Instance(ABC):
    """One running container or VM."""

    accel: str = "none"
    console: ConsoleWatcher | None = None

    @abstractmethod
    def start(self) -> None:
        """Launch it; returns once launched (Vagrant: once ``vagrant up`` returned)."""

    @abstractmethod
    def memory(self, full: bool = True) -> dict[str, int]:
        """The instance's own memory now: rss_bytes, with ``full`` also uss/pss_bytes
        (+ cgroup_bytes, shim_pss_bytes for containers). See measure.process_memory."""

    @abstractmethod
    def wait_exited(self, timeout_s: float) -> bool:
        """Wait until the guest ended by itself (workload ``ready``)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop and remove it. Idempotent; never raises for an already-gone instance."""

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


class Backend(ABC):
    name: str = ""

    @abstractmethod
    def availability(self) -> Availability:
        """Can it run here? If not, why, and the command that fixes it."""

    @abstractmethod
    def prepare(self, guest: Guest, options: dict[str, Any]) -> Prepared:
        """Build or fetch this backend's image of ``guest`` (cached)."""

    @abstractmethod
    def create(self, prepared: Prepared, spec: LaunchSpec) -> Instance:
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

    def health(self) -> str:
        """Empty while the engine answers, else one line naming the backend, what broke and what
        to do. The runner asks after a failed trial, so an engine that died mid-run fails the
        remaining trials at once instead of each waiting for its own timeout. Must be cheap."""
        return ""

    def close(self) -> None:
        """Release engine connections."""
