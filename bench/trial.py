"""One trial: launch an instance, time it to READY, then exit or sample memory, then stop it.

The measuring protocol is the same for every backend; only the Instance differs. The ready
clock starts just before ``Instance.start`` and stops when the READY line's bytes are read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bench import compat
from bench.backends.base import Backend, BackendError, LaunchSpec, Prepared
from bench.measure import DONE, READY, MemorySampler, now_ns, seconds_between


@dataclass(frozen=True)
class Measurement:
    metric: str
    value: float
    detail: str = ""


@dataclass
class TrialOutcome:
    status: str  # ok | failed | timeout | interrupted
    detail: str = ""
    accel: str = "none"
    measurements: list[Measurement] = field(default_factory=list)
    ready_fields: dict[str, str] = field(default_factory=dict)


def run_trial(
    backend: Backend,
    prepared: Prepared,
    spec: LaunchSpec,
    timeout_s: float,
    memory_sample_s: float,
    host_kernel: str,
    sample_hz: float = 20.0,
) -> TrialOutcome:
    """Measure one instance; never leaves it running, whatever happens (also on Ctrl-C).

    A foreign-architecture guest that cannot execute (``exec format error``) is an expected
    result, ``runs_foreign_arch`` = 0 with status ok, not a failed trial.
    """
    outcome = TrialOutcome(status="ok")
    foreign = compat.is_foreign(prepared.guest.arch)
    try:
        instance = backend.create(prepared, spec)
    except BackendError as e:
        return TrialOutcome("failed", str(e))
    outcome.accel = instance.accel
    with instance:  # stops and removes it on every way out
        start_ns = now_ns()
        deadline_ns = start_ns + int(timeout_s * 1e9)
        try:
            instance.start()
        except BackendError as e:
            return _refused(prepared, str(e), instance.accel) or TrialOutcome(
                "failed", str(e), instance.accel
            )
        assert instance.console is not None
        ready = instance.console.wait_for(READY, deadline_ns)
        if ready is None:
            if instance.console.ended:
                refused = _refused(prepared, instance.console.tail(), instance.accel)
                if refused:
                    return refused
                why = f"guest output ended before READY: {instance.console.tail()}"
                return TrialOutcome("failed", why, instance.accel)
            why = f"no READY line within {timeout_s:g} s; last output: {instance.console.tail()}"
            return TrialOutcome("timeout", why, instance.accel)
        fields = ready.fields()
        outcome.ready_fields = fields
        described = " ".join(
            w for w in (instance.describe(), f"guest_init={fields.get('init', '?')}") if w
        )
        outcome.measurements.append(
            Measurement("ready_s", seconds_between(start_ns, ready.t_ns), described)
        )
        for metric, seconds in instance.extra_timings().items():
            outcome.measurements.append(Measurement(metric, seconds, described))
        if "uptime" in fields and instance.accel != "none":
            # A container's /proc/uptime is the host kernel's: only a VM has an uptime of its own.
            outcome.measurements.append(Measurement("guest_uptime_s", float(fields["uptime"])))
        kernel = compat.kernel_fact(fields, host_kernel)
        if kernel is not None:
            outcome.measurements.append(Measurement("kernel_matches_host", *kernel))
        if foreign:
            ran = compat.foreign_arch_ran(
                prepared.guest.arch, fields, container=instance.accel == "none"
            )
            outcome.measurements.append(Measurement("runs_foreign_arch", *ran))
        if spec.workload == "ready":
            _measure_exit(instance, start_ns, deadline_ns, outcome)
        elif spec.workload == "idle":
            _measure_memory(instance, memory_sample_s, sample_hz, outcome)
    return outcome


def _refused(prepared: Prepared, evidence: str, accel: str) -> TrialOutcome | None:
    """A foreign guest that the engine could not execute: the fact 0, an ok outcome."""
    if not compat.is_foreign(prepared.guest.arch):
        return None
    fact = compat.foreign_arch_refused(prepared.guest.arch, evidence)
    if fact is None:
        return None
    return TrialOutcome("ok", accel=accel, measurements=[Measurement("runs_foreign_arch", *fact)])


def _measure_exit(instance, start_ns: int, deadline_ns: int, outcome: TrialOutcome) -> None:
    assert instance.console is not None
    if instance.console.wait_for(DONE, deadline_ns) is None:
        outcome.status, outcome.detail = "timeout", "READY seen but no DONE line before the timeout"
        return
    if not instance.wait_exited(max(0.0, (deadline_ns - now_ns()) / 1e9)):
        outcome.status, outcome.detail = (
            "timeout",
            "DONE seen but the instance did not exit in time",
        )
        return
    outcome.measurements.append(Measurement("exit_s", seconds_between(start_ns, now_ns())))


def _measure_memory(instance, sample_s: float, hz: float, outcome: TrialOutcome) -> None:
    with MemorySampler(instance.memory, hz=hz) as sampler:
        stop_at = now_ns() + int(sample_s * 1e9)
        while now_ns() < stop_at and not (instance.console and instance.console.ended):
            time.sleep(min(0.2, max(0.0, (stop_at - now_ns()) / 1e9)))
    medians = sampler.medians()
    if not medians:
        outcome.status = "failed"
        outcome.detail = f"no memory sample could be taken: {sampler.error or 'instance gone'}"
        return
    detail = f"median of {len(sampler.samples)} samples at {hz:g} Hz"
    for metric, value in medians.items():
        outcome.measurements.append(Measurement(metric, value, detail))
