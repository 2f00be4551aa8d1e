"""The plan of a run: which trials, in which order, and which of them a resumed run has done.

Deterministic given the scenario (its seed included), so ``--resume`` plans the same trials
again and skips those the CSV holds an outcome for.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from bench.run.scenario import Scenario


@dataclass
class RunConfig:
    run_id: str
    host_id: str
    backends: tuple[str, ...] | None = None  # restrict to these (None: the scenario's)
    repetitions: int | None = None
    quick: bool = False
    cold: bool = False  # drop the page cache before the first measured trial of each pair
    time_budget_s: float | None = None  # start no trial after this many seconds of the run


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
        # A stand-in guest's rows (a user's Vagrant box) name the planned guest apart.
        planned = re.search(r"(?:^| )scenario_guest=(\S+)", row["detail"])
        keys.add(
            (
                row["scenario"],
                planned.group(1) if planned else row["guest"],
                row["backend"],
                int(row["instances"]),
                int(row["trial"]),
                workload,
            )
        )
    return keys


def effective(scenario: Scenario, config: RunConfig) -> Scenario:
    """The scenario as this run will execute it (--quick, --repetitions, --backends)."""
    changes: dict = {}
    if config.quick:
        changes.update(
            repetitions=min(scenario.repetitions, 2),
            auto=False,
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
    if config.repetitions is not None:  # a fixed number, also for a scenario's "auto"
        changes.update(repetitions=config.repetitions, auto=False)
    if config.backends is not None:
        changes["backends"] = tuple(b for b in scenario.backends if b in config.backends)
    return replace(scenario, **changes)


def plan(scenario: Scenario) -> Iterator[PlannedTrial]:
    """Warmup rounds, then measured rounds; the backends in a fresh shuffled order each round.
    With repetitions = "auto" these are its min_repetitions; bench.run.adaptive adds rounds."""
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
