"""Density: N idle instances started at once, measured together, then all stopped.

The claim is "more containers than VMs fit on a host", so what counts is what N instances
cost the host together: the change in MemAvailable, and the summed PSS of the instances (the
container shims apart). Memory is guarded twice: before a run starts, an N whose estimated
memory exceeds what the host has available refuses the run (exit 2); during a run, an N that
the per-instance figure measured at a smaller N says will not fit is skipped (``unsupported``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from bench.backends import engine
from bench.backends.base import Backend, Instance, LaunchSpec, Prepared
from bench.run.measure import mem_available_bytes
from bench.run.scenario import Scenario, ScenarioError
from bench.run.trial import (
    MEM_AVAILABLE,
    ForeignArchRefused,
    Measurement,
    TrialOutcome,
    TrialStopped,
    launched,
    memory_measurements,
    sample_memory,
)

MIB = 1 << 20
SETTLE_S = 1.0  # after the last READY, before the memory window: let engines finish their work
DENSITY_HZ = 4.0  # summing N instances' smaps is costly; a few samples a second suffice
MEMORY_KEYS = ("rss_bytes", "uss_bytes", "pss_bytes", "cgroup_bytes", "shim_pss_bytes")


@dataclass(frozen=True)
class Estimate:
    per_instance_bytes: int
    how: str


def static_estimate(scenario: Scenario, backend: str) -> Estimate:
    """What one instance may cost the host, from the scenario and the engine's declared
    ``estimate_mib`` alone (nothing started): its guest RAM, if it has any, plus that."""
    cls = engine(backend)
    memory_mib = int(scenario.options(backend).get("memory_mib") or 0)
    per_mib = memory_mib + cls.estimate_mib
    if not memory_mib:
        how = f"{cls.estimate_mib} MiB per {backend} instance"
    else:
        how = f"memory_mib {memory_mib} + {cls.estimate_mib} MiB {backend} overhead per instance"
    return Estimate(per_mib * MIB, how)


def check_host_memory(scenarios: Iterable[Scenario], available: int | None = None) -> None:
    """Refuse, before anything starts, a density size this host cannot hold (ScenarioError)."""
    available = mem_available_bytes() if available is None else available
    for scenario in scenarios:
        for backend in scenario.backends:
            if not scenario.multi_instance(backend):
                continue
            n = max(scenario.instances_for(backend))
            estimate = static_estimate(scenario, backend)
            need = n * estimate.per_instance_bytes
            if need > available:
                own = scenario.options(backend).get("instances")
                key = f"backend.{backend}.instances" if own else "scenario.instances"
                raise ScenarioError(
                    scenario.path,
                    key,
                    f"{n} {backend} instances need an estimated {_mib(need)} ({estimate.how}), "
                    f"more than the {_mib(available)} this host has available (MemAvailable); "
                    "expected a smaller largest N",
                )


@dataclass
class MemoryGuard:
    """Per-instance host cost measured at smaller N, to refuse a larger N that will not fit."""

    per_instance: dict[tuple[str, ...], tuple[float, int]] = field(default_factory=dict)

    def learn(self, key: tuple[str, ...], n: int, outcome: TrialOutcome) -> None:
        values = {m.metric: m.value for m in outcome.measurements if m.metric in MEMORY_KEYS}
        values["host_used_delta_bytes"] = next(
            (m.value for m in outcome.measurements if m.metric == "host_used_delta_bytes"), 0.0
        )
        own = values.get("pss_bytes", 0.0) + values.get("shim_pss_bytes", 0.0)
        per = max(own, values["host_used_delta_bytes"]) / n
        # The largest N measured: host-wide noise (other VMs starting) is spread over most
        # instances there, so N/2 predicts N without one noisy small run refusing it.
        if n >= self.per_instance.get(key, (0.0, 0))[1]:
            self.per_instance[key] = (per, n)

    def refusal(self, key: tuple[str, ...], n: int, available: int) -> str | None:
        if key not in self.per_instance:
            return None
        per, measured_n = self.per_instance[key]
        need = per * n
        if need <= available:
            return None
        return (
            f"refused before starting: {n} instances need an estimated {_mib(need)} "
            f"({_mib(per)} each, measured at N={measured_n}), more than the "
            f"{_mib(available)} available (MemAvailable)"
        )


def run_density(
    backend: Backend,
    prepared: Prepared,
    spec: LaunchSpec,
    n: int,
    sample_s: float,
    guard: MemoryGuard | None = None,
    guard_key: tuple[str, ...] = (),
    hz: float = DENSITY_HZ,
) -> TrialOutcome:
    """Start ``n`` idle instances back to back, wait for every READY, measure, stop them all
    (``trial.launched``: on success, failure, timeout or Ctrl-C alike)."""
    if guard is not None:
        why = guard.refusal(guard_key, n, mem_available_bytes())
        if why:
            return TrialOutcome("unsupported", why, prepared.accel)
    outcome = TrialOutcome("ok", accel=prepared.accel)
    available_before = mem_available_bytes()
    try:
        with launched(backend, prepared, spec, n) as group:
            outcome.accel = group.accel
            for k in range(n):
                outcome.measurements.append(
                    Measurement("ready_s", group.ready_s(k), f"instance={k + 1}/{n}")
                )
            outcome.measurements.append(
                Measurement(
                    "all_ready_s",
                    group.all_ready_s(),
                    f"first start to last READY; {n} instances started back to back",
                )
            )
            time.sleep(SETTLE_S)
            _measure_together(
                group.instances, available_before, sample_s, hz, outcome, backend.shim
            )
    except TrialStopped as e:
        outcome.status, outcome.detail = e.status, e.detail
        outcome.accel = outcome.accel or e.accel
    except ForeignArchRefused as e:
        return TrialOutcome("ok", accel=e.accel, measurements=[e.measurement])
    _note_drift(outcome, available_before, mem_available_bytes())
    if guard is not None and outcome.status == "ok":
        guard.learn(guard_key, n, outcome)
    return outcome


def _measure_together(
    instances: list[Instance],
    available_before: int,
    sample_s: float,
    hz: float,
    outcome: TrialOutcome,
    shim: str = "",
) -> None:
    """The N instances' memory summed, and the host's MemAvailable change, over one window.
    Every tick full (USS/PSS too): at a few Hz that costs little even for 32 instances."""
    n = len(instances)
    medians, window = sample_memory(instances, sample_s, hz, full_every=1, with_host=True)
    # No PSS is a failure unless the instances said why (a regular user and root's
    # containers: the rows' detail carries that note, and RSS is there).
    excused = "rss_bytes" in medians and any(i.memory_note for i in instances)
    if MEM_AVAILABLE not in medians or ("pss_bytes" not in medians and not excused):
        raise TrialStopped("failed", f"no complete memory sample of all {n} instances (no PSS)")
    window += f" after a {SETTLE_S:g} s settle"
    outcome.measurements.append(
        Measurement(
            "host_used_delta_bytes",
            available_before - medians.pop(MEM_AVAILABLE),
            f"MemAvailable before the first start minus while {n} ran ({window}); "
            "host-wide, so anything else starting or stopping meanwhile is in it",
        )
    )
    outcome.measurements += memory_measurements(medians, f"sum over {n} instances, {window}", shim)


def _note_drift(outcome: TrialOutcome, before: int, after: int) -> None:
    """Say how far MemAvailable was from its start once all were stopped: other activity."""
    for k, m in enumerate(outcome.measurements):
        if m.metric == "host_used_delta_bytes":
            drift = (
                f"; after all were stopped the host used {(before - after) / MIB:+.0f} MiB "
                "vs before (drift: other activity or memory not yet returned)"
            )
            outcome.measurements[k] = replace(m, detail=m.detail + drift)


def _mib(value: float) -> str:
    if value >= 1024 * MIB:
        return f"{value / (1024 * MIB):.1f} GiB"
    return f"{value / MIB:.0f} MiB"
