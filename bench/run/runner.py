"""Trials: build once, warm up, repeat, interleave backends, write every outcome as rows.

The runner knows trials and rows, not engines: it asks a Backend to prepare images and
hands them to ``trial.run_trial`` (one instance) or ``density.run_density`` (N at once).
What cannot run travels as exceptions (EngineUnavailable, EngineDown, GuestUnavailable,
GuestBuildError and the backends' BackendError/BackendUnsupported), each written as the
trial's rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from bench.backends import (
    Backend,
    BackendError,
    BackendUnsupported,
    Prepared,
    engines,
    make_backend,
)
from bench.backends.base import LaunchSpec, SizeRecord
from bench.errors import VmbenchError
from bench.guests import DebError, Guest, HostToolMissing, build_guest
from bench.results import ResultWriter, Row, unit_of
from bench.run import hostload
from bench.run.adaptive import Adaptive
from bench.run.density import MemoryGuard, run_density
from bench.run.planning import (  # noqa: F401 (finished_keys, plan: imported from here too)
    PlannedTrial,
    RunConfig,
    TrialKey,
    effective,
    finished_keys,
    plan,
    trial_key,
)
from bench.run.runstats import Missing, RunStats
from bench.run.scenario import Scenario
from bench.run.trial import Measurement, TrialOutcome, run_trial
from bench.signals import shielded


class EngineUnavailable(BackendUnsupported):
    """The engine cannot run on this host at all (``vmbench doctor`` says why): its trials
    are ``unsupported`` rows, and the run exits 1."""


class EngineDown(BackendError):
    """The engine stopped answering earlier in this run: its remaining trials fail at once."""


class GuestBuildError(VmbenchError):
    """A guest could not be built: every trial on it fails with this reason."""


class GuestUnavailable(VmbenchError):
    """This host lacks what building a guest needs (a tool, a subordinate id range): every
    trial on it is an ``unsupported`` row naming what is missing and the fix; the run exits 1."""


@dataclass
class InFlight:
    """The trial being run, until its rows are written (Ctrl-C writes it as interrupted)."""

    trial: PlannedTrial
    # When the trial started, the same for all its rows: just before its launch, or when the
    # runner took it up if it never got that far (its image could not be made).
    started_at: str
    accel: str = ""  # once known


OnTrial = Callable[[PlannedTrial, TrialOutcome, RunStats], None]


def _declared_options(
    scenario: Scenario, backend: str, which: Literal["image_options", "detail_options"]
) -> list[tuple[str, Any]]:
    """(option, value) of the options the engine declares in ``which`` (``image_options``,
    ``detail_options``), its defaults included, as the rows carry them; none for an engine
    this checkout does not have."""
    engine = engines().get(backend)
    if engine is None:
        return []
    options = engine.settings(scenario.options(backend))
    return [(k, options.get(k)) for k in getattr(engine, which)]


class Runner:
    def __init__(
        self,
        config: RunConfig,
        writer: ResultWriter,
        on_trial: OnTrial = lambda trial, outcome, stats: None,
        done: set[TrialKey] | frozenset[TrialKey] = frozenset(),
        prior_rows: list[dict[str, str]] | None = None,
    ) -> None:
        self.config = config
        self.prior_rows = prior_rows or []  # the CSV of an earlier attempt (--resume)
        self.done = done  # trials (and builds) an earlier attempt of this run finished
        self.writer = writer
        self.on_trial = on_trial  # called after each trial's rows are written
        self.stats = RunStats()
        self.host_kernel = platform.release()
        self._backends: dict[str, Backend] = {}  # every engine made, usable or not
        self._guests: dict[str, Guest | GuestBuildError | GuestUnavailable] = {}
        self._prepared: dict[tuple[str, str, str], Prepared | Exception] = {}
        self._fresh: set[tuple[str, str, str]] = (
            set()
        )  # images (_image_key) whose next trial is cold
        self._dropped: set[tuple[str, str, str]] = set()  # images whose cold (--cold) trial ran
        self._in_flight: InFlight | None = None
        self._memory_guard = MemoryGuard()  # density: per-instance cost measured at smaller N
        self.adaptive = Adaptive([])

    # -- backends and images -------------------------------------------------------------

    def backend(self, name: str) -> Backend:
        """Engine ``name``, checked once per run; EngineUnavailable when it cannot run here,
        EngineDown when it stopped answering earlier in this run."""
        if name not in self._backends and name not in self.stats.unavailable:
            try:
                self._backends[name] = make_backend(name)
                available = self._backends[name].availability()
            except BackendError as e:
                self.stats.unavailable[name] = Missing(str(e))
            else:
                if not available.usable:
                    self.stats.unavailable[name] = Missing(available.reason, available.fix)
        if name in self.stats.unavailable:
            raise EngineUnavailable(str(self.stats.unavailable[name]))
        if name in self.stats.down:
            raise EngineDown(self.stats.down[name])
        return self._backends[name]

    def prepared(self, scenario: Scenario, guest_name: str, backend_name: str) -> Prepared:
        """The backend's image of the guest, made once per run (its size rows written then).
        What made it fail (BackendError, BackendUnsupported, GuestBuildError) is raised again
        for every trial that asks for it."""
        key = self._image_key(scenario, guest_name, backend_name)
        if key not in self._prepared:
            try:
                self._prepared[key] = self._prepare(scenario, guest_name, backend_name)
            except (BackendError, GuestBuildError, GuestUnavailable) as e:
                self._prepared[key] = e
        found = self._prepared[key]
        if isinstance(found, Exception):
            raise found.with_traceback(None)
        return found

    def _prepare(self, scenario: Scenario, guest_name: str, backend_name: str) -> Prepared:
        started_at = _now()  # of the build: the guest's (if not built yet) and the image's
        guest = self.guest(guest_name)
        backend = self._backends[backend_name]
        start = time.perf_counter()
        # The run id lets a backend name what it imports per run (vagrant boxes).
        options = {**scenario.options(backend_name), "run_id": self.config.run_id}
        prepared = backend.prepare(guest, options)
        prepare_s = time.perf_counter() - start
        built_now = guest.built_now or prepared.built_now
        if built_now:
            self._fresh.add(self._image_key(scenario, guest_name, backend_name))
        rootfs = SizeRecord(
            "rootfs_bytes",
            guest.rootfs_bytes,
            "rootfs",
            "apparent bytes of the userland tree; the same files in every backend's image",
        )
        build = PlannedTrial(scenario, guest_name, backend_name, "", 1, 0, "build")
        row = self._row_maker(build, prepared.accel, started_at, prepared)
        words = self._detail_words(scenario, backend_name)
        # A stand-in guest (a user's own Vagrant box) does not hold the scenario guest's tree.
        rows = [
            row(s.metric, s.value, _words(f"artefact={s.artefact}", words, s.detail))
            for s in ([] if prepared.guest_name else [rootfs]) + prepared.sizes
        ]
        if built_now:
            build_s = (guest.build_s if guest.built_now else 0.0) + (
                prepare_s if prepared.built_now else 0.0
            )
            why = "guest build + image build, first time on this host"
            rows.append(row("build_s", build_s, _words(words, why)))
        for metric, seconds in prepared.timings.items():
            rows.append(row(metric, seconds, words))
        if (scenario.name, guest_name, backend_name, 1, 0, "") not in self.done:
            self.writer.write(rows)
        return prepared

    def guest(self, name: str) -> Guest:
        """Guest ``name``, built (or found in the cache) once per run; GuestUnavailable when
        this host lacks what it needs, GuestBuildError when the build went wrong."""
        if name not in self._guests:
            try:
                self._guests[name] = build_guest(name)
            except HostToolMissing as e:
                self.stats.guests_unavailable[name] = Missing(e.cause, e.fix)
                self._guests[name] = GuestUnavailable(f"guest {name} cannot be built here: {e}")
            except (DebError, OSError, RuntimeError, ValueError) as e:
                self._guests[name] = GuestBuildError(f"guest {name} could not be built: {e}")
        found = self._guests[name]
        if isinstance(found, Exception):
            raise found.with_traceback(None)
        return found

    # -- trials ----------------------------------------------------------------------------

    def pending(self, scenarios: list[Scenario]) -> list[PlannedTrial]:
        """The planned trials this run still has to do (all of them unless resuming)."""
        return [
            t
            for s in scenarios
            for t in plan(effective(s, self.config))
            if trial_key(t) not in self.done
        ]

    def run(self, scenarios: list[Scenario]) -> RunStats:
        """The planned trials, then the rounds "auto" adds; with a time budget, no trial
        starts once it is spent (the one in flight finishes)."""
        started = time.monotonic()
        budget_s = self.config.time_budget_s
        pending = self.pending(scenarios)
        self.adaptive = Adaptive([t for s in scenarios for t in plan(effective(s, self.config))])
        self.adaptive.observe_rows(self.prior_rows, {s.name: s for s in scenarios})
        self._add_planned([t.backend for t in pending])
        rounds = self.adaptive.rounds(self._can_run, self._add_planned)
        try:
            for trial in itertools.chain(pending, rounds):
                if budget_s is not None and time.monotonic() - started >= budget_s:
                    self.stats.budget_over = True
                    break
                try:
                    self.run_one(trial)
                except KeyboardInterrupt:
                    # Building, booting or sampling: the trial in flight gets its row.
                    if self._in_flight is not None:
                        why = "stopped by the user (Ctrl-C/SIGTERM)"
                        self._write_outcome(TrialOutcome("interrupted", why))
                    raise
            self._write_stops()
        finally:
            self.close()
        return self.stats

    def _add_planned(self, backends: list[str]) -> None:
        """Trials to come, by engine (the progress line's estimate of what is left)."""
        self.stats.planned += len(backends)
        for name in backends:
            self.stats.to_do[name] = self.stats.to_do.get(name, 0) + 1

    def _can_run(self, backend: str, guest: str) -> bool:
        """False for an engine (or this guest on it) this host cannot run, or that went down."""
        stats = self.stats
        return not (
            backend in stats.unavailable
            or backend in stats.down
            or (backend, guest) in stats.unsupported_guests
            or guest in stats.guests_unavailable
        )

    def _write_stops(self) -> None:
        """A ``repetitions`` row per engine of each block that stopped for a reason worth
        saying (auto scenarios, and what the time budget cut short)."""
        for stop in self.adaptive.stops(self.stats.budget_over, self._can_run):
            marker = stop.marker
            if trial_key(marker) not in self.done:
                make = self._row_maker(
                    marker, self._known_accel(marker), _now(), self._known(marker)
                )
                self.writer.write([make("repetitions", float(stop.trials), stop.detail)])
            if stop.short_of_target:
                self.stats.above_target.append(stop.short_of_target)

    def run_one(self, trial: PlannedTrial) -> None:
        flight = self._in_flight = InFlight(trial, _now())
        try:
            backend = self.backend(trial.backend)
            prepared = self.prepared(trial.scenario, trial.guest, trial.backend)
        except BackendUnsupported as e:  # this engine, or this guest on it, cannot run here
            if not isinstance(e, EngineUnavailable):
                self.stats.unsupported_guests[(trial.backend, trial.guest)] = str(e)
            unsupported = TrialOutcome("unsupported", f"{trial.backend} not usable here: {e}")
            self._write_outcome(unsupported)
            return
        except GuestUnavailable as e:  # the guest cannot be had here, on any engine
            self._write_outcome(TrialOutcome("unsupported", str(e)))
            return
        except EngineDown as e:  # no call, no wait
            flight.accel = self._known_accel(trial)
            self._write_outcome(TrialOutcome("failed", str(e)))
            return
        except (BackendError, GuestBuildError) as e:
            self._write_outcome(self._after_failure(trial.backend, TrialOutcome("failed", str(e))))
            return
        flight.trial = trial = replace(trial, phase=self._phase(trial))
        flight.accel = prepared.accel
        flight.started_at = _now()  # the measurement starts now; a first build came before
        before = hostload.snapshot()
        outcome = self._measure(backend, prepared, trial)
        after = hostload.snapshot()
        if outcome.status != "unsupported":  # it ran: how busy the host was meanwhile
            host = hostload.measurements(before, after, trial.backend, self.config.run_id)
            window = f"over the trial's {after.at_s - before.at_s:.1f} s"
            outcome.measurements += [Measurement(m, v, window) for m, v in host.items()]
        if outcome.status == "failed":
            outcome = self._after_failure(trial.backend, outcome)
        self._write_outcome(outcome)  # a density size the memory guard refused: unsupported

    def _phase(self, trial: PlannedTrial) -> str:
        """warmup stays warmup; the first measured trial after a fresh build (or, with --cold,
        after dropping the page cache) is cold; the rest are warm."""
        pair = self._image_key(trial.scenario, trial.guest, trial.backend)
        if trial.phase == "warmup":
            return trial.phase
        phase = trial.phase
        if pair in self._fresh:
            self._fresh.discard(pair)
            phase = "cold"
        if self.config.cold and pair not in self._dropped:
            self._dropped.add(pair)
            drop_page_cache()
            phase = "cold"
        return phase

    def _measure(self, backend: Backend, prepared: Prepared, trial: PlannedTrial) -> TrialOutcome:
        scenario = trial.scenario
        spec = LaunchSpec(
            run_id=self.config.run_id,
            name=f"vmbench-{self.config.run_id}-{trial.backend}-{trial.guest}-{trial.trial}",
            workload=trial.workload,
            timeout_s=scenario.timeout_s,
            options=scenario.options(trial.backend),
        )
        try:
            if scenario.multi_instance(trial.backend):
                return run_density(
                    backend,
                    prepared,
                    spec,
                    trial.instances,
                    scenario.memory_sample_s,
                    self._memory_guard,
                    (scenario.name, trial.guest, trial.backend),
                )
            return run_trial(
                backend,
                prepared,
                spec,
                scenario.memory_sample_s,
                self.host_kernel,
            )
        except Exception as e:  # an engine fault fails this trial, not the run
            return TrialOutcome("failed", f"{trial.backend}: {type(e).__name__}: {e}")

    def _after_failure(self, name: str, outcome: TrialOutcome) -> TrialOutcome:
        """Was it the engine itself? Then this and every later trial of it say so, and those
        later ones fail at once (a dead daemon would otherwise cost each its own timeout)."""
        broken = ""
        with contextlib.suppress(Exception):  # a failing check must not end the run
            broken = self._backends[name].health()
        if not broken:
            return outcome
        self.stats.down[name] = (
            f"{broken}; then `vmbench clean --run {self.config.run_id}` removes what this run "
            "left there"
        )
        return replace(outcome, detail=f"{self.stats.down[name]} (this trial: {outcome.detail})")

    def _known_accel(self, trial: PlannedTrial) -> str:
        known = self._known(trial)
        return known.accel if known is not None else ""

    def _known(self, trial: PlannedTrial) -> Prepared | None:
        known = self._prepared.get(self._image_key(trial.scenario, trial.guest, trial.backend))
        return known if isinstance(known, Prepared) else None

    def _image_key(self, scenario: Scenario, guest: str, backend: str) -> tuple[str, str, str]:
        """One image per guest, backend and value of the options its image depends on
        (``Backend.image_options``: e.g. two scenarios booting Vagrant two ways)."""
        return guest, backend, repr(_declared_options(scenario, backend, "image_options"))

    def _detail_words(self, scenario: Scenario, backend: str) -> str:
        """``boot=bios``: the values of the options the engine names in every row's detail
        (``Backend.detail_options``)."""
        named = _declared_options(scenario, backend, "detail_options")
        return " ".join(f"{k}={value}" for k, value in named if value)

    # -- rows ------------------------------------------------------------------------------

    def _write_outcome(self, outcome: TrialOutcome) -> None:
        """The in-flight trial's rows: one per measurement, plus a ``trial`` row saying why
        when it did not end ok."""
        assert self._in_flight is not None
        flight = self._in_flight
        trial = flight.trial
        accel = self._accel(trial.backend, outcome.accel or flight.accel)
        row = self._row_maker(trial, accel, flight.started_at, self._known(trial))
        base = _words(
            f"workload={trial.workload}", self._detail_words(trial.scenario, trial.backend)
        )
        rows = [
            row(m.metric, m.value, f"{base} {m.detail}".strip(), outcome.status)
            for m in outcome.measurements
        ]
        if outcome.status != "ok":
            rows.append(row("trial", None, f"{base} {outcome.detail}", outcome.status))
            if outcome.status == "unsupported":  # not a failure: it cannot run here
                self.stats.unsupported += 1
            else:
                self.stats.failed += 1
        else:
            self.stats.ok += 1
            self.stats.accels[trial.backend] = accel
        self.writer.write(rows)
        self._in_flight = None
        self.stats.to_do[trial.backend] = max(self.stats.to_do.get(trial.backend, 0) - 1, 0)
        values = [(m.metric, m.value) for m in outcome.measurements]
        self.adaptive.observe(trial, outcome.status, values)
        self.on_trial(trial, outcome, self.stats)

    def _accel(self, name: str, known: str) -> str:
        """``known``, else the engine's ``unknown_accel``: never ``none`` for a VM."""
        if known:
            return known
        backend = self._backends.get(name)
        return backend.unknown_accel() if backend is not None else "unknown"

    def _row_maker(
        self, trial: PlannedTrial, accel: str, started_at: str, image: Prepared | None = None
    ) -> Callable[..., Row]:
        """Rows of one trial (or one build): only metric, value, detail and status vary.
        Its kind is the one its engine declares. An image that is another guest than the
        scenario's (a Vagrant box of the user's own) names that one as the rows' guest, never
        the guest that did not boot, and ``scenario_guest=`` the planned one (for --resume)."""
        accel = self._accel(trial.backend, accel)
        backend = self._backends.get(trial.backend)
        kind = backend.kind if backend is not None else ""
        guest = (image.guest_name if image is not None else "") or trial.guest
        stand_in = f" scenario_guest={trial.guest}" if guest != trial.guest else ""

        def make(metric: str, value: float | None, detail: str = "", status: str = "ok") -> Row:
            return Row(
                run_id=self.config.run_id,
                host_id=self.config.host_id,
                scenario=trial.scenario.name,
                guest=guest,
                backend=trial.backend,
                accel=accel,
                instances=trial.instances,
                trial=trial.trial,
                phase=trial.phase,
                metric=metric,
                value=value,
                unit=unit_of(metric),
                status=status,
                detail=(detail + stand_in).strip(),
                started_at=started_at,
                kind=kind,
            )

        return make

    def close(self) -> None:
        with shielded():  # a second Ctrl-C must not skip this
            for name, backend in self._backends.items():
                if name in self.stats.unavailable:
                    continue
                # Best effort here; `vmbench clean` reports what is left.
                with contextlib.suppress(Exception):
                    backend.cleanup_run(self.config.run_id)
                with contextlib.suppress(Exception):
                    backend.close()


def _now() -> str:
    """Wall-clock time for the ``started_at`` column (UTC, seconds)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


DROP_CACHES = "/proc/sys/vm/drop_caches"


def drop_page_cache() -> None:
    """Write dirty pages, then drop the page cache, dentries and inodes (root only)."""
    os.sync()
    with open(DROP_CACHES, "w") as f:
        f.write("3\n")


def _words(*parts: str) -> str:
    """Detail words joined by single spaces, empty parts left out."""
    return " ".join(p for p in parts if p)
