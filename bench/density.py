"""Density: N idle instances started at once, measured together, then all stopped.

The claim is "more containers than VMs fit on a host", so what counts is what N instances
cost the host together: the change in MemAvailable, and the summed PSS of the instances (the
container shims apart). Memory is guarded twice: before a run starts, an N whose estimated
memory exceeds what the host has available refuses the run (exit 2); during a run, an N that
the per-instance figure measured at a smaller N says will not fit is skipped (``unsupported``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from bench.backends import engine
from bench.backends.base import Backend, BackendError, Instance, LaunchSpec, Prepared
from bench.measure import READY, MemorySampler, mem_available_bytes, now_ns, seconds_between
from bench.scenario import Scenario, ScenarioError
from bench.trial import Measurement, TrialOutcome

MIB = 1 << 20
SETTLE_S = 1.0  # after the last READY, before the memory window: let engines finish their work
DENSITY_HZ = 4.0  # summing N instances' smaps is costly; a few samples a second suffice
MEMORY_KEYS = ("rss_bytes", "uss_bytes", "pss_bytes", "cgroup_bytes", "shim_pss_bytes")
_AVAILABLE = "mem_available"


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
    timeout_s: float,
    sample_s: float,
    guard: MemoryGuard | None = None,
    guard_key: tuple[str, ...] = (),
    hz: float = DENSITY_HZ,
) -> TrialOutcome:
    """Start ``n`` idle instances back to back, wait for every READY, measure, stop them all.

    Every instance is entered into one ExitStack, so all are stopped on success, failure,
    timeout or Ctrl-C, in reverse order of creation.
    """
    accel = prepared.accel
    if guard is not None:
        why = guard.refusal(guard_key, n, mem_available_bytes())
        if why:
            return TrialOutcome("unsupported", why, accel)
    outcome = TrialOutcome("ok", accel=accel)
    available_before = mem_available_bytes()
    with contextlib.ExitStack() as stack:
        instances: list[Instance] = []
        for i in range(n):
            try:
                instance = backend.create(prepared, replace(spec, name=f"{spec.name}-{i + 1}"))
            except BackendError as e:
                return _fail(outcome, "failed", f"instance {i + 1}/{n}: {e}")
            stack.enter_context(instance)
            instances.append(instance)
        outcome.accel = instances[0].accel
        first_ns = now_ns()
        deadline_ns = first_ns + int(timeout_s * 1e9)
        start_ns: list[int] = []
        for i, instance in enumerate(instances):
            start_ns.append(now_ns())
            try:
                instance.start()
            except BackendError as e:
                return _fail(outcome, "failed", f"instance {i + 1}/{n} did not start: {e}")
        ready_ns: list[int] = []
        for i, instance in enumerate(instances):
            assert instance.console is not None
            line = instance.console.wait_for(READY, deadline_ns)
            if line is None:
                status = "failed" if instance.console.ended else "timeout"
                why = "output ended" if instance.console.ended else f"no READY in {timeout_s:g} s"
                return _fail(
                    outcome,
                    status,
                    f"instance {i + 1}/{n}: {why} ({len(ready_ns)} ready so far); "
                    f"last output: {instance.console.tail()}",
                )
            ready_ns.append(line.t_ns)
        for i, (started, ready) in enumerate(zip(start_ns, ready_ns, strict=True)):
            outcome.measurements.append(
                Measurement("ready_s", seconds_between(started, ready), f"instance={i + 1}/{n}")
            )
        outcome.measurements.append(
            Measurement(
                "all_ready_s",
                seconds_between(first_ns, max(ready_ns)),
                f"first start to last READY; {n} instances started back to back",
            )
        )
        time.sleep(SETTLE_S)
        _measure_together(instances, available_before, sample_s, hz, outcome)
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
) -> None:
    n = len(instances)
    # Every tick full (USS/PSS too): at a few Hz that costs little even for 32 instances.
    with MemorySampler(lambda full: _sum_memory(instances, full), hz=hz, full_every=1) as sampler:
        stop_at = now_ns() + int(sample_s * 1e9)
        while now_ns() < stop_at and not any(i.console and i.console.ended for i in instances):
            time.sleep(min(0.1, max(0.0, (stop_at - now_ns()) / 1e9)))
    gone = [str(k + 1) for k, i in enumerate(instances) if i.console and i.console.ended]
    if gone:
        _fail(
            outcome, "failed", f"instance(s) {', '.join(gone)}/{n} ended while memory was sampled"
        )
        return
    medians = sampler.medians()
    if _AVAILABLE not in medians or "pss_bytes" not in medians:
        why = sampler.error or "an instance was gone"
        _fail(outcome, "failed", f"no complete memory sample of all {n} instances: {why}")
        return
    window = f"median of {len(sampler.samples)} samples at {hz:g} Hz after a {SETTLE_S:g} s settle"
    outcome.measurements.append(
        Measurement(
            "host_used_delta_bytes",
            available_before - medians.pop(_AVAILABLE),
            f"MemAvailable before the first start minus while {n} ran ({window}); "
            "host-wide, so anything else starting or stopping meanwhile is in it",
        )
    )
    for metric, value in medians.items():
        outcome.measurements.append(Measurement(metric, value, f"sum over {n} instances, {window}"))


def _note_drift(outcome: TrialOutcome, before: int, after: int) -> None:
    """Say how far MemAvailable was from its start once all were stopped: other activity."""
    for k, m in enumerate(outcome.measurements):
        if m.metric == "host_used_delta_bytes":
            drift = (
                f"; after all were stopped the host used {(before - after) / MIB:+.0f} MiB "
                "vs before (drift: other activity or memory not yet returned)"
            )
            outcome.measurements[k] = replace(m, detail=m.detail + drift)


def _sum_memory(instances: list[Instance], full: bool = True) -> dict[str, int]:
    """One sample: each metric summed over all instances (only metrics every instance has)."""
    total: dict[str, int] = {}
    counts: dict[str, int] = {}
    for instance in instances:
        sample = instance.memory(full)
        if not sample:
            raise RuntimeError("an instance had no memory to read (gone?)")
        for metric, value in sample.items():
            total[metric] = total.get(metric, 0) + value
            counts[metric] = counts.get(metric, 0) + 1
    summed = {k: v for k, v in total.items() if counts[k] == len(instances)}
    summed[_AVAILABLE] = mem_available_bytes()
    return summed


def _fail(outcome: TrialOutcome, status: str, detail: str) -> TrialOutcome:
    outcome.status, outcome.detail = status, detail
    return outcome


def _mib(value: float) -> str:
    if value >= 1024 * MIB:
        return f"{value / (1024 * MIB):.1f} GiB"
    return f"{value / MIB:.0f} MiB"
