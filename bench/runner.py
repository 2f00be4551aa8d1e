"""Trials: build once, warm up, repeat, interleave backends, write every outcome as rows.

The runner knows trials and rows, not engines: it asks a Backend to prepare and create
instances and hands each one to ``trial.run_trial``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from bench.backends import Backend, BackendError, BackendUnsupported, Prepared, make_backend
from bench.backends.base import LaunchSpec, SizeRecord
from bench.density import MemoryGuard, run_density
from bench.guests import DebError, Guest, build_guest
from bench.results import ResultWriter, Row, unit_of
from bench.scenario import Scenario
from bench.signals import shielded
from bench.trial import TrialOutcome, run_trial


@dataclass
class RunConfig:
    run_id: str
    host_id: str
    backends: tuple[str, ...] | None = None  # restrict to these (None: the scenario's)
    repetitions: int | None = None
    quick: bool = False
    cold: bool = False  # drop the page cache before the first measured trial of each pair


@dataclass(frozen=True)
class PlannedTrial:
    scenario: Scenario
    guest: str
    backend: str
    workload: str
    instances: int
    trial: int
    phase: str  # cold | warm | warmup (cold decided when the image turns out freshly built)


# What makes a trial the same trial in a resumed run: the plan is deterministic given the
# scenario (seed included), so the same key means the same planned trial.
TrialKey = tuple[
    str, str, str, int, int, str
]  # scenario, guest, backend, instances, trial, workload


def trial_key(trial: PlannedTrial) -> TrialKey:
    return (
        trial.scenario.name,
        trial.guest,
        trial.backend,
        trial.instances,
        trial.trial,
        trial.workload,
    )


def finished_keys(rows: list[dict[str, str]]) -> set[TrialKey]:
    """Trials a results CSV already holds an outcome for.

    ``interrupted`` and ``unsupported`` rows do not count: those trials never ran to an end,
    so a resumed run does them (``failed`` and ``timeout`` are outcomes and stay).

    Build rows (trial 0) count too, keyed with workload "", so a resumed run does not write
    the image sizes twice.
    """
    keys: set[TrialKey] = set()
    for row in rows:
        if row["status"] in ("interrupted", "unsupported"):
            continue
        words = row["detail"].split(maxsplit=1)
        workload = words[0].removeprefix("workload=") if words and row["phase"] != "build" else ""
        keys.add(
            (
                row["scenario"],
                row["guest"],
                row["backend"],
                int(row["instances"]),
                int(row["trial"]),
                workload,
            )
        )
    return keys


@dataclass
class RunStats:
    ok: int = 0
    failed: int = 0
    unavailable: dict[str, str] = field(default_factory=dict)
    down: dict[str, str] = field(default_factory=dict)  # backend -> why it stopped mid-run
    accels: dict[str, str] = field(default_factory=dict)  # backend -> accelerator that ran

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def effective(scenario: Scenario, config: RunConfig) -> Scenario:
    """The scenario as this run will execute it (--quick, --repetitions, --backends)."""
    changes: dict = {}
    if config.quick:
        changes.update(
            repetitions=min(scenario.repetitions, 2),
            warmup=0,
            memory_sample_s=min(scenario.memory_sample_s, 1.0),
            # Density: the two smallest sizes still give a slope.
            instances=tuple(sorted(scenario.instances)[:2]),
            backend_options={
                name: {**opts, "instances": tuple(sorted(opts["instances"])[:2])}
                if opts.get("instances")
                else opts
                for name, opts in scenario.backend_options.items()
            },
        )
    if config.repetitions is not None:
        changes["repetitions"] = config.repetitions
    if config.backends is not None:
        changes["backends"] = tuple(b for b in scenario.backends if b in config.backends)
    return replace(scenario, **changes)


def plan(scenario: Scenario) -> Iterator[PlannedTrial]:
    """Warmup rounds, then measured rounds; the backends in a fresh shuffled order each round."""
    rng = random.Random(scenario.seed)
    for guest in scenario.guests:
        counters = dict.fromkeys(scenario.backends, 0)
        for workload in scenario.workloads:
            sizes = sorted({n for b in scenario.backends for n in scenario.instances_for(b)})
            for n in sizes:
                rounds = ["warmup"] * scenario.warmup + ["warm"] * scenario.repetitions
                for phase in rounds:
                    order = list(scenario.backends)
                    rng.shuffle(order)
                    for backend in order:
                        if n not in scenario.instances_for(backend):
                            continue
                        counters[backend] += 1
                        yield PlannedTrial(
                            scenario, guest, backend, workload, n, counters[backend], phase
                        )


class Runner:
    def __init__(
        self,
        config: RunConfig,
        writer: ResultWriter,
        on_trial: Callable[[PlannedTrial, TrialOutcome | None], None] = lambda t, o: None,
        done: set[TrialKey] | frozenset[TrialKey] = frozenset(),
    ) -> None:
        self.config = config
        self.done = done  # trials (and builds) an earlier attempt of this run finished
        self.writer = writer
        self.on_trial = on_trial
        self.stats = RunStats()
        self.host_kernel = platform.release()
        self._backends: dict[str, Backend] = {}
        self._guests: dict[str, Guest | str] = {}  # a str is the reason it could not be built
        self._prepared: dict[tuple[str, str], Prepared | str] = {}
        self._fresh: set[tuple[str, str]] = set()
        self._unsupported_pairs: set[tuple[str, str]] = (
            set()
        )  # (guest, backend) it cannot run  # (guest, backend) whose next trial is cold
        self._dropped: set[tuple[str, str]] = set()  # pairs whose cold (--cold) trial ran
        self._in_flight: tuple[PlannedTrial, str] | None = None  # trial and accel, until written
        self._memory_guard = MemoryGuard()  # density: per-instance cost measured at smaller N

    # -- backends and images -------------------------------------------------------------

    def backend(self, name: str) -> Backend | None:
        if name in self.stats.unavailable:
            return None
        if name not in self._backends:
            try:
                backend = make_backend(name)
                available = backend.availability()
            except BackendError as e:
                self.stats.unavailable[name] = str(e)
                return None
            if not available.usable:
                self.stats.unavailable[name] = f"{available.reason}; fix: {available.fix}"
                return None
            self._backends[name] = backend
        return self._backends[name]

    def prepared(self, scenario: Scenario, guest_name: str, backend_name: str) -> Prepared | str:
        key = (guest_name, backend_name)
        if key in self._prepared:
            return self._prepared[key]
        guest = self.guest(scenario, guest_name)
        backend = self._backends[backend_name]
        if isinstance(guest, str):
            self._prepared[key] = guest
            return guest
        start = time.perf_counter()
        try:
            # The run id lets a backend name what it imports per run (vagrant boxes).
            options = {**scenario.options(backend_name), "run_id": self.config.run_id}
            prepared = backend.prepare(guest, options)
        except BackendError as e:
            if isinstance(e, BackendUnsupported):
                self._unsupported_pairs.add(key)
            self._prepared[key] = str(e)
            return str(e)
        prepare_s = time.perf_counter() - start
        self._prepared[key] = prepared
        built_now = guest.built_now or prepared.built_now
        if built_now:
            self._fresh.add(key)
        accel = prepared.accel
        rootfs = SizeRecord(
            "rootfs_bytes",
            guest.rootfs_bytes,
            "rootfs",
            "apparent bytes of the userland tree; the same files in every backend's image",
        )
        row = self._row_maker(scenario, guest_name, backend_name, accel, 1, 0, "build")
        rows = [
            row(s.metric, s.value, f"artefact={s.artefact} {s.detail}".strip())
            for s in [rootfs, *prepared.sizes]
        ]
        if built_now:
            build_s = (guest.build_s if guest.built_now else 0.0) + (
                prepare_s if prepared.built_now else 0.0
            )
            rows.append(
                row("build_s", build_s, "guest build + image build, first time on this host")
            )
        for metric, seconds in prepared.timings.items():
            rows.append(row(metric, seconds))
        if (scenario.name, guest_name, backend_name, 1, 0, "") not in self.done:
            self.writer.write(rows)
        return prepared

    def guest(self, scenario: Scenario, name: str) -> Guest | str:
        if name not in self._guests:
            try:
                self._guests[name] = build_guest(name)
            except (DebError, OSError, RuntimeError, ValueError) as e:
                self._guests[name] = f"guest {name} could not be built: {e}"
        return self._guests[name]

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
        try:
            for trial in self.pending(scenarios):
                self._in_flight = (trial, "none")
                try:
                    self.run_one(trial)
                except KeyboardInterrupt:
                    # Building, booting or sampling: the trial in flight gets its row.
                    if self._in_flight is not None:
                        trial, accel = self._in_flight
                        self._write_outcome(
                            trial,
                            TrialOutcome(
                                "interrupted", "stopped by the user (Ctrl-C/SIGTERM)", accel
                            ),
                        )
                    raise
        finally:
            self.close()
        return self.stats

    def run_one(self, trial: PlannedTrial) -> None:
        scenario = trial.scenario
        backend = self.backend(trial.backend)
        if backend is None:
            self._unsupported(trial, self.stats.unavailable[trial.backend])
            return
        if trial.backend in self.stats.down:  # its engine died earlier: no call, no wait
            known = self._prepared.get((trial.guest, trial.backend))
            accel = known.accel if isinstance(known, Prepared) else "none"
            self._write_outcome(
                trial, TrialOutcome("failed", self.stats.down[trial.backend], accel)
            )
            return
        prepared = self.prepared(scenario, trial.guest, trial.backend)
        if isinstance(prepared, str) and (trial.guest, trial.backend) in self._unsupported_pairs:
            self._unsupported(trial, prepared)
            return
        if isinstance(prepared, str):
            outcome = self._after_failure(trial.backend, backend, TrialOutcome("failed", prepared))
            self._write_outcome(trial, outcome)
            return
        phase = trial.phase
        if phase != "warmup" and (trial.guest, trial.backend) in self._fresh:
            self._fresh.discard((trial.guest, trial.backend))
            phase = "cold"
        pair = (trial.guest, trial.backend)
        if phase != "warmup" and self.config.cold and pair not in self._dropped:
            self._dropped.add(pair)
            drop_page_cache()
            phase = "cold"
        trial = replace(trial, phase=phase)
        self._in_flight = (trial, prepared.accel)
        spec = LaunchSpec(
            run_id=self.config.run_id,
            name=f"vmbench-{self.config.run_id}-{trial.backend}-{trial.guest}-{trial.trial}",
            workload=trial.workload,
            options=scenario.options(trial.backend),
        )
        try:
            if scenario.multi_instance(trial.backend):
                outcome = run_density(
                    backend,
                    prepared,
                    spec,
                    trial.instances,
                    scenario.timeout_s,
                    scenario.memory_sample_s,
                    self._memory_guard,
                    (scenario.name, trial.guest, trial.backend),
                )
            else:
                outcome = run_trial(
                    backend,
                    prepared,
                    spec,
                    scenario.timeout_s,
                    scenario.memory_sample_s,
                    self.host_kernel,
                )
        except Exception as e:  # an engine fault fails this trial, not the run
            outcome = TrialOutcome(
                "failed", f"{trial.backend}: {type(e).__name__}: {e}", prepared.accel
            )
        if outcome.status == "failed":
            outcome = self._after_failure(trial.backend, backend, outcome)
        # A density size the memory guard refused is not a measurement failure.
        self._write_outcome(trial, outcome, count_failure=outcome.status != "unsupported")
        if outcome.status == "ok":
            self.stats.accels[trial.backend] = outcome.accel

    def _after_failure(self, name: str, backend: Backend, outcome: TrialOutcome) -> TrialOutcome:
        """Was it the engine itself? Then this and every later trial of it say so, and those
        later ones fail at once (a dead daemon would otherwise cost each its own timeout)."""
        broken = ""
        with contextlib.suppress(Exception):  # a failing check must not end the run
            broken = backend.health()
        if not broken:
            return outcome
        self.stats.down[name] = (
            f"{broken}; then `vmbench clean --run {self.config.run_id}` removes what this run "
            "left there"
        )
        return replace(outcome, detail=f"{self.stats.down[name]} (this trial: {outcome.detail})")

    def _unsupported(self, trial: PlannedTrial, reason: str) -> None:
        outcome = TrialOutcome("unsupported", f"{trial.backend} not usable here: {reason}", "none")
        self._write_outcome(trial, outcome, count_failure=False)

    def _write_outcome(
        self, trial: PlannedTrial, outcome: TrialOutcome, count_failure: bool = True
    ) -> None:
        base = f"workload={trial.workload}"
        row = self._row_maker(
            trial.scenario,
            trial.guest,
            trial.backend,
            outcome.accel,
            trial.instances,
            trial.trial,
            trial.phase,
        )
        rows = [
            row(m.metric, m.value, f"{base} {m.detail}".strip(), outcome.status)
            for m in outcome.measurements
        ]
        if outcome.status != "ok":
            rows.append(row("trial", None, f"{base} {outcome.detail}", outcome.status))
            if count_failure:
                self.stats.failed += 1
        else:
            self.stats.ok += 1
        self.writer.write(rows)
        self._in_flight = None
        self.on_trial(trial, outcome)

    def _row_maker(self, scenario, guest, backend, accel, instances, trial, phase):
        """Rows of one trial (or one build): only metric, value, detail and status vary."""

        def make(metric: str, value: float | None, detail: str = "", status: str = "ok") -> Row:
            return Row(
                run_id=self.config.run_id,
                host_id=self.config.host_id,
                scenario=scenario.name,
                guest=guest,
                backend=backend,
                accel=accel,
                instances=instances,
                trial=trial,
                phase=phase,
                metric=metric,
                value=value,
                unit=unit_of(metric),
                status=status,
                detail=detail,
                started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            )

        return make

    def close(self) -> None:
        with shielded():  # a second Ctrl-C must not skip this
            for backend in self._backends.values():
                # Best effort here; `vmbench clean` reports what is left.
                with contextlib.suppress(Exception):
                    backend.cleanup_run(self.config.run_id)
                with contextlib.suppress(Exception):
                    backend.close()


DROP_CACHES = "/proc/sys/vm/drop_caches"


def drop_page_cache() -> None:
    """Write dirty pages, then drop the page cache, dentries and inodes (root only)."""
    os.sync()
    with open(DROP_CACHES, "w") as f:
        f.write("3\n")
